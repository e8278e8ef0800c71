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
from .referee import (AF_FLOAT_RTOL, AFRun, Correction, _add, action_residuals,
                      component_latency, free_levels, referee_args)
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
        out = action_residuals(self.arch, self.corrected, self.af)
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
    if matrix not in wl.linear_weights():
        raise ValueError(f"matrix: {matrix!r} is not a weight matrix of the layer; allowed: "
                         f"{', '.join(wl.linear_weights())}")
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


# --------------------------------------------------------------------------------------
# CLI: fusioncim referee-linear
# --------------------------------------------------------------------------------------
def format_table(r: LinearReferee) -> str:
    from .referee import _rel

    t = r.tiling
    lines = [f"AccelForge referee: {r.design}'s linear layer {r.matrix} ({r.looptree['D_IN']} x "
             f"{r.looptree['D_OUT']}), {r.looptree['TOKENS']} tokens, on its own arch",
             f"closed form's tiling: r = {t['r']} x {t['stacks']} stacks, {t['passes']} row "
             f"passes, {t['col_tiles']} column tiles of {t['cols']}, {t['token_blocks']} token "
             f"block(s), " + (f"partial sums of {t['group']} column tile(s) resident"
                              if t["group"] else "inputs resident"),
             "ours = the closed form after the named corrections; AF = "
             "accelforge.model.main.evaluate_mapping on mappings/weight_stationary_linear.yaml",
             "",
             f"{'component':<14}{'count ours':>12}{'count AF':>12}{'energy ours':>13}"
             f"{'energy AF':>13}{'latency ours':>14}{'latency AF':>13}{'rel':>9}",
             f"{'':<14}{'[bit|MAC]':>12}{'[bit|MAC]':>12}{'[J]':>13}{'[J]':>13}{'[s]':>14}"
             f"{'[s]':>13}"]
    free = free_levels(r.arch)
    for comp in sorted({k[0] for k in set(r.corrected) | set(r.af.actions)} - free):
        n_o = sum(v for k, v in r.corrected.items() if k[0] == comp)
        n_a = sum(v for k, v in r.af.actions.items() if k[0] == comp)
        e_o = sum(v * r.arch.energy(k[0], k[1]) for k, v in r.corrected.items() if k[0] == comp)
        e_a = sum(v for k, v in r.af.energy.items() if k[0] == comp)
        t_o = component_latency(r.arch, r.corrected, comp)
        t_a = r.af.latency.get(comp, 0.0)
        lines.append(f"{comp:<14}{n_o:>12.4e}{n_a:>12.4e}{e_o:>13.4e}{e_a:>13.4e}"
                     f"{t_o:>14.4e}{t_a:>13.4e}{_rel(e_o, e_a):>+9.1e}")
    f = r.fill
    lines += ["", f"latency: closed form {r.ours_latency():.4e} s = AccelForge's IPCIM_MAC x "
              f"tile_fill ({f['idle']:.4f} idle x {f['cols']:.4f} columns x {f['rows']:.4f} "
              f"rows) + its weight writes (serial_weight_writes): {r.af_latency_corrected():.4e} s",
              f"leakage: AccelForge {r.af.leak_energy:.4e} J = the chip's {r.arch.leak_power * 1e3:.2f} "
              f"mW x its {r.af.total_latency:.4e} s"]
    res = r.residuals()
    lines.append("after the named corrections: " + (
        "every count, energy and component latency agrees with AccelForge" if not res
        else f"{len(res)} DISAGREEMENT(S):"))
    lines += [f"  {x}" for x in res]
    used = sorted({n for ns in r.applied.values() for n in ns})
    lines += ["", "corrections:"] + [f"  {c.name}: {c.reason}" for c in CORRECTIONS
                                     if c.name in used]
    lines += [f"  {k}: {v}" for k, v in LATENCY_CORRECTIONS.items()]
    return "\n".join(lines)


def cmd_referee_linear(a) -> int:
    from .cli import _overrides

    wl = Workload(model=a.model, phase="prefill", seq_len=a.seq_len, causal=False)
    r = linear_referee(a.design, wl, a.matrix, _overrides(a.set))
    print(format_table(r))
    return 1 if r.residuals() else 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "referee-linear", help="one linear-layer matrix: closed form vs AccelForge's model "
                               "of its weight-stationary LoopTree, per component")
    referee_args(p, seq_len_help="tokens through the layer")
    p.add_argument("--matrix", default="Wq", help="Wq | Wk | Wv | Wo | W_gate | W_up | W_down")
    p.set_defaults(func=cmd_referee_linear)
