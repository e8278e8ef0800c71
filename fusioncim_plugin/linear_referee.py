"""AccelForge as the referee of the linear layers: one weight matrix's closed form
(``dataflow.weight_stationary_linear``) vs AccelForge's model of the same LoopTree
(``mappings/weight_stationary_linear.yaml`` on ``workloads/linear.yaml``), evaluated
with ``accelforge.model.main.evaluate_mapping`` on the arch the design runs it on (its
own chip, e.g. FusionCIM's with its idle OP-CIM macros leaking).

The LoopTree gets the closed form's tiles (token block, column tile, row pass). Every
count and energy must agree after the named corrections in :data:`CORRECTIONS`, and
every component's latency at AccelForge's formula (count / throughput). The closed
form's linear latency is its own tiling's cycles; it equals AccelForge's component
latencies times the named :data:`LATENCY_CORRECTIONS` (``tile_fill``: macros left idle
by the stacking and part-filled tiles, which AccelForge's latency counts as busy;
``serial_weight_writes``: the weight writes do not overlap the MACs). Leakage is the
whole chip's leak power x latency on both sides.

Use: ``linear_referee("fusioncim", Workload(...), "Wk")`` -> :class:`LinearReferee`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from .arch import MAPPING_DIR, WORKLOAD_DIR, Arch, arch_path, load_arch
from .referee import (AF_FLOAT_RTOL, RTOL, AFRun, Correction, _add, component_latency,
                      free_levels)
from .workload import Workload

MAPPING = MAPPING_DIR / "weight_stationary_linear.yaml"


@functools.lru_cache(maxsize=32)
def _af_linear(arch_file: str, data_items: tuple) -> AFRun:
    """AccelForge's evaluation of the linear LoopTree: counts and energies per
    (component, action, tensor; compute: the Einsum Y), latency per component."""
    import accelforge as af
    from accelforge.model.main import evaluate_mapping

    from .mapper import af_jobs, scratch_dir

    spec = af.Spec.from_yaml(arch_file, WORKLOAD_DIR / "linear.yaml", MAPPING,
                             jinja_parse_data=dict(data_items))
    with scratch_dir(), af_jobs(1):
        res = evaluate_mapping(spec)
    actions, energy, leak = {}, {}, 0.0
    for (ein, comp, tensor, action), v in res.actions(
            per_einsum=True, per_component=True, per_tensor=True).items():
        if float(v):
            actions[(comp, action, ein if tensor in (None, "None") else tensor)] = float(v)
    for (ein, comp, tensor, action), v in res.energy(
            per_einsum=True, per_component=True, per_tensor=True, per_action=True).items():
        if action == "leak":
            leak += float(v)
        elif float(v):
            energy[(comp, action, ein if tensor in (None, "None") else tensor)] = float(v)
    lat = {str(k): float(v) for k, v in res.latency(per_component=True).items()}
    return AFRun(actions, energy, lat, {"Y": float(res.latency())}, float(res.latency()), leak)


# --------------------------------------------------------------------------------------
# Named corrections: closed-form counts -> what AccelForge counts for the same LoopTree
# --------------------------------------------------------------------------------------
def _operand_read(ctx, c):
    _add(c, ("IPCIMArray", "read", "W"), ctx.db * c.get(("IPCIM_MAC", "compute", "Y"), 0.0))


def _padding(ctx, c):
    k = ("IPCIMArray", "read", "W")
    if k in c:
        c[k] *= math.ceil(ctx.T / ctx.block) * ctx.block / ctx.T
    k = ("GlobalBuffer", "read", "X")
    if ctx.group_tiles and k in c:  # column tiles per group, the last group counted full
        c[k] *= math.ceil(ctx.col_tiles / ctx.group_tiles) * ctx.group_tiles / ctx.col_tiles


def _adder_tree(ctx, c):
    c.pop(("IPCIM_MAC", "reduce", "Y_psum"), None)


def _acc_width(ctx, c):
    for a in ("read", "write"):
        n = c.pop(("GlobalBuffer", a, "Y_psum"), 0.0)
        _add(c, ("GlobalBuffer", a, "Y"), n * ctx.db / ctx.acc)


CORRECTIONS = (
    Correction("cim_operand_read_in_mac",
               "AccelForge reads the stationary weight (data_bits) once per MAC through the "
               "array's read action; in a CIM macro that access is the MAC (its energy is in "
               "the per-MAC energy, it uses no port cycles), so the closed form does not "
               "charge it", _operand_read),
    Correction("af_imperfect_tile_padding",
               "AccelForge counts those per-MAC weight reads below an imperfectly factorized "
               "token-block loop (TOKEN_BLOCK not dividing the tokens) as if every block were "
               "full: x ceil(T / TOKEN_BLOCK) * TOKEN_BLOCK / T, and the input reads of the "
               "column tiles in a part-filled last column group as a full group's (its MAC "
               "count is exact)",
               _padding),
    Correction("inter_macro_adder_tree",
               "the r macros stacked along the input rows add their column outputs in the "
               "inter-macro adder tree (IPCIM_MAC.reduce, ACC_BITS adds); AccelForge has no "
               "such action (its reduction is inside the MAC)", _adder_tree),
    Correction("accumulator_width_in_buffer",
               "the partial sums of all row passes but the last sit in the buffer at "
               "ACC_BITS (Y_psum); AccelForge holds Y at DATA_BITS there", _acc_width),
)
LATENCY_CORRECTIONS = {
    "tile_fill":
        "AccelForge's MAC and array-write latency is the count over all N_IP_MACROS macros' "
        "rate; the closed form counts the tiling's cycles: the macros left idle by the "
        "stacking (N_IP_MACROS mod r) and the part-filled last column tile / row pass "
        "take cycles too (x idle x column fill x row fill)",
    "serial_weight_writes":
        "the closed form adds the weight writes into the arrays after the MACs (no "
        "overlap); AccelForge's latency of the Einsum is its slowest component",
    "leakage_follows_latency":
        "leakage = the whole chip's leak power x latency on both sides",
}


def fill_factors(arch: Arch, t: dict, din: int, dout: int) -> dict:
    """How much longer the closed form's tiling takes than AccelForge's all-busy rate:
    idle macros (N_IP_MACROS / macros in use), column fill (columns of all column tiles /
    dout) and row fill of the MAC passes (rows of all passes / din) and of the weight
    writes (rows written per macro in use x r / din)."""
    n, rows = arch.var("n_ip_macros"), arch.var("macro_rows")
    used = t["stacks"] * t["r"]
    write_rows = (t["passes"] - 1) * rows + min(rows, din - (t["passes"] - 1) * t["r"] * rows)
    return {"idle": n / used, "cols": t["col_tiles"] * t["cols"] / dout,
            "rows": t["passes"] * t["r"] * rows / din, "write_rows": write_rows * t["r"] / din}


@dataclass
class LinearReferee:
    design: str
    matrix: str
    wl: Workload
    arch: Arch
    tiling: dict  # the closed form's choice: r, cols, passes, col_tiles, token_blocks
    ours: dict  # closed-form counts per Key (W, X, Y, Y_psum)
    corrected: dict
    applied: dict  # Key -> names of the corrections that changed it
    af: AFRun
    ours_cycles: float  # the closed form's compute cycles (MAC passes + weight writes)
    fill: dict = field(default_factory=dict)
    looptree: dict = field(default_factory=dict)

    def ours_latency(self) -> float:
        return self.ours_cycles / self.arch.var("clock_hz")

    def af_latency_corrected(self) -> float:
        """AccelForge's IPCIM_MAC latency x its tile fill, plus its IPCIMArray write
        latency x that fill: what the closed form's tiling takes (tile_fill,
        serial_weight_writes)."""
        f = self.fill
        writes = {k: v for k, v in self.af.actions.items()
                  if k[0] == "IPCIMArray" and k[1] == "write"}
        mac = self.af.latency.get("IPCIM_MAC", 0.0) * f["idle"] * f["cols"] * f["rows"]
        wr = component_latency(self.arch, writes, "IPCIMArray") * f["idle"] * f["cols"] \
            * f["write_rows"]
        return mac + wr

    def residuals(self) -> list[str]:
        """Every disagreement left after the named corrections (empty = agreement)."""
        out = []
        free = free_levels(self.arch)
        keys = {k for k in set(self.corrected) | set(self.af.actions) if k[0] not in free}
        for k in sorted(keys):
            ours, af = self.corrected.get(k, 0.0), self.af.actions.get(k, 0.0)
            if not math.isclose(ours, af, rel_tol=RTOL, abs_tol=1e-6):
                out.append(f"count {k}: corrected closed form {ours:.10g}, AccelForge {af:.10g}")
            e_ours, e_af = ours * self.arch.energy(k[0], k[1]), self.af.energy.get(k, 0.0)
            if not math.isclose(e_ours, e_af, rel_tol=AF_FLOAT_RTOL, abs_tol=1e-18):
                out.append(f"energy {k}: {e_ours:.10g} J vs AccelForge {e_af:.10g} J")
        for comp, t in self.af.latency.items():
            mine = component_latency(self.arch, self.corrected, comp)
            if not math.isclose(mine, t, rel_tol=AF_FLOAT_RTOL, abs_tol=1e-15):
                out.append(f"latency {comp}: corrected closed form {mine:.10g} s, "
                           f"AccelForge {t:.10g} s")
        if not math.isclose(self.af.leak_energy, self.arch.leak_power * self.af.total_latency,
                            rel_tol=AF_FLOAT_RTOL):
            out.append("leakage: AccelForge's leak energy is not the chip's leak power x "
                       "its latency")
        if not math.isclose(self.ours_latency(), self.af_latency_corrected(),
                            rel_tol=AF_FLOAT_RTOL):
            out.append(f"compute latency: closed form {self.ours_latency():.10g} s, "
                       f"AccelForge x tile_fill + writes {self.af_latency_corrected():.10g} s")
        return out


def linear_referee(design: str, wl: Workload, matrix: str,
                   overrides: dict | None = None) -> LinearReferee:
    """The closed form of weight matrix ``matrix`` (a key of ``wl.linear_weights()``,
    e.g. "Wk") on ``design``'s own arch vs AccelForge's model of its LoopTree."""
    from types import SimpleNamespace

    from .dataflow import weight_stationary_linear
    from .designs import get_design

    d = get_design(design)
    arch = load_arch(d.arch, dict(d.overrides) | dict(overrides or {}))
    din, dout = wl.linear_weights()[matrix]
    counts = weight_stationary_linear(arch, wl, {matrix: (din, dout)})
    t = counts.params[matrix]
    rename = {matrix: "W", f"{matrix}_psum": "Y_psum"}
    ours: dict = {}
    for comp, a, tensor, n in counts.entries:
        _add(ours, (comp, a, "Y" if comp == "IPCIM_MAC" and a == "compute"
                    else rename.get(tensor, tensor)), n)
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    T = wl.tokens
    block = -(-T // t["token_blocks"])  # tokens per block, the blocks as even as they go
    group_tiles = min(t["group"], t["col_tiles"]) if t["group"] else 0
    ctx = SimpleNamespace(db=db, acc=acc, T=T, block=block, group_tiles=group_tiles,
                          col_tiles=t["col_tiles"])
    corrected, applied = dict(ours), {}
    for corr in CORRECTIONS:
        before = dict(corrected)
        corr.apply(ctx, corrected)
        for k in set(before) | set(corrected):
            if before.get(k) != corrected.get(k):
                applied.setdefault(k, []).append(corr.name)
    corrected = {k: v for k, v in corrected.items() if v}
    looptree = {"TOKENS": T, "D_IN": din, "D_OUT": dout, "DATA_BITS": db,
                "TOKEN_BLOCK": block, "COLS": min(t["cols"], dout),
                "PASS_ROWS": min(din, t["r"] * arch.var("macro_rows")),
                "COL_GROUP": min(dout, t["group"] * t["cols"])}
    data = dict(d.overrides) | dict(overrides or {}) | looptree
    af = _af_linear(str(arch_path(d.arch)), tuple(sorted(data.items())))
    return LinearReferee(design=design, matrix=matrix, wl=wl, arch=arch, tiling=t,
                         ours=ours, corrected=corrected, applied=applied, af=af,
                         ours_cycles=counts.compute_cycles,
                         fill=fill_factors(arch, t, din, dout), looptree=looptree)
