"""AccelForge as the referee: the closed form vs AccelForge's model of the same LoopTree.

For a design with a LoopTree in ``mappings/`` and a non-causal prefill shape,
:func:`referee` evaluates that LoopTree with ``accelforge.model.main.evaluate_mapping``
on the design's arch spec (with the same overrides and tile shapes) and compares it,
per component, with the design's closed form (``Design.dataflow``, run without the
online-softmax rescale, which AccelForge cannot express): action counts, energies and
latencies.

Every difference is a named correction in :data:`CORRECTIONS`: a small function that
turns the closed form's counts into what AccelForge counts for the same LoopTree, with
the reason it differs. After the corrections every count, every energy and every
component's latency must equal AccelForge's (``Referee.residuals``; tests/test_referee.py
runs a grid of shapes and designs). Beyond the counts:

* ``pipelined_einsums`` - AccelForge's latency of a mapping is the sum over Einsums of
  the slowest component in each; the closed form runs QK^T, softmax and PV as one
  pipeline per key (per KV block in the baselines) and adds what does not overlap
  (:func:`pipeline_latency`). Leakage is leak power x latency on both sides, so it
  follows the latency difference (``leakage_follows_latency``).
* ``partial_kv_residency`` - when K/V of a KV head do not all fit the global buffer,
  the closed form keeps the first keys resident and streams the rest per Q tile. A
  LoopTree keeps a tensor whole or tiles it, so the referee evaluates the two LoopTree
  variants (``KV_STREAMED`` false / true) and mixes their K/V DRAM and buffer-fill
  counts with the resident fraction of keys; every other count is the same in both.
* AccelForge keeps latencies (and some energies) in float32: they are compared to
  :data:`AF_FLOAT_RTOL`; counts are exact.

Use: ``referee("fusioncim", Workload(...), overrides)`` -> :class:`Referee`;
``format_table(r)`` prints the agreement table (``fusioncim referee``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from .arch import MAPPING_DIR, Arch, SpecError, arch_path, load_arch
from .dataflow import staged_arch
from .workload import Workload

Key = tuple[str, str, str]  # (component, action, tensor); compute actions: tensor = Einsum
RTOL = 1e-9  # counts and energies computed in float64 on both sides
AF_FLOAT_RTOL = 1e-7  # AccelForge's latency (and float32 energy) columns: float32 resolution
EINSUMS = ("S", "P", "O")


# --------------------------------------------------------------------------------------
# AccelForge's side
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AFRun:
    """AccelForge's evaluation of one LoopTree: counts and energies per Key (memory
    actions in bits, compute actions in MACs / elements), per-component latency summed
    over Einsums, total latency (sum over Einsums of the slowest component), leakage."""

    actions: dict
    energy: dict
    latency: dict  # component -> s, summed over Einsums
    latency_by_einsum: dict  # Einsum -> s (its slowest component)
    total_latency: float
    leak_energy: float
    latency_ec: dict = field(default_factory=dict)  # (Einsum, component) -> s


def looptree_data(design: str, arch: Arch, wl: Workload, ours) -> dict:
    """Jinja data of the design's LoopTree: the tile shapes its closed form uses."""
    e, db = wl.cfg.head_dim, arch.var("data_bits")
    # key rows one load of the IP-CIM arrays holds (unfused K / V tiles)
    block_k = min(wl.seq_len, arch.var("n_ip_macros") * arch.var("macro_rows")
                  * arch.var("macro_cols") // (db * e))
    bkv = getattr(ours, "block_kv", 0) or arch.var("block_kv")  # chosen by the search
    from .designs import get_design

    if get_design(design).mapping == "unfused_kv_stationary" and getattr(ours, "block_kv", 0):
        block_k = ours.block_kv  # the unfused design's "KV block" is its array load
    from .dataflow import lane_group

    bq = min(ours.block_q, wl.seq_len)
    lane_rows, lane_cols = lane_group(arch, wl.cfg.head_dim, bq) if arch.var("n_op_macros") \
        else (1, 1)
    return {
        "BLOCK_Q": bq,  # Q tile rows / unfused row block
        "BLOCK_KV": bkv,  # keys per KV block
        "BLOCK_K": block_k,
        "LANE_ROWS": lane_rows,  # near_memory OP-CIM: O rows x columns of one lane pass
        "LANE_COLS": lane_cols,
    }


@functools.lru_cache(maxsize=64)
def _af_run(arch_file: str, mapping_file: str, data_items: tuple) -> AFRun:
    from .mapper import af_model

    # in process; shared with `fusioncim map`'s evaluation of the same LoopTree and data
    res = af_model(arch_file, mapping_file, dict(data_items))
    actions, energy = {}, {}
    for (ein, comp, tensor, action), v in res.actions(
            per_einsum=True, per_component=True, per_tensor=True).items():
        key = (comp, action, ein if tensor in (None, "None") else tensor)
        actions[key] = actions.get(key, 0.0) + float(v)
    leak = 0.0
    for (ein, comp, tensor, action), v in res.energy(
            per_einsum=True, per_component=True, per_tensor=True, per_action=True).items():
        if action == "leak":
            leak += float(v)
            continue
        key = (comp, action, ein if tensor in (None, "None") else tensor)
        energy[key] = energy.get(key, 0.0) + float(v)
    lat = {str(k): float(v) for k, v in res.latency(per_component=True).items()}
    by_ein = {str(k): float(v) for k, v in res.latency(per_einsum=True).items()}
    ec = {(str(e), str(c)): float(v)
          for (e, c), v in res.latency(per_einsum=True, per_component=True).items()}
    return AFRun({k: v for k, v in actions.items() if v}, {k: v for k, v in energy.items() if v},
                 lat, by_ein, float(res.latency()), leak, ec)


# --------------------------------------------------------------------------------------
# Named corrections: closed-form counts -> what AccelForge counts for the same LoopTree
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Correction:
    name: str
    reason: str
    apply: callable  # (ctx, counts: dict[Key, float]) -> None, edits counts in place


def free_levels(arch: Arch) -> set[str]:
    """Staging levels that cost nothing (Dummy: 0 J per action, no port limit), e.g. the
    input latches, the score pipeline and the OP-CIM lane registers: AccelForge counts
    their accesses, neither side charges them."""
    return {n for n, c in arch.components.items() if c.actions
            and all(e == 0 for e in c.actions.values())
            and all(t == math.inf for t in c.throughput.values())}


def _add(c: dict, key: Key, n: float) -> None:
    if n:
        c[key] = c.get(key, 0.0) + n


def _cim_operand_read(ctx, c):
    st = "Q" if c.get(("IPCIMArray", "write", "Q")) else "K"
    _add(c, ("IPCIMArray", "read", st), ctx.db * c.get(("IPCIM_MAC", "compute", "S"), 0.0))
    _add(c, ("IPCIMArray", "read", "V"), ctx.db * c.get(("IPCIM_MAC", "compute", "O"), 0.0))


def _imperfect_tile_padding(ctx, c):
    # AccelForge counts the array reads below an imperfectly factorized Q-row loop as if
    # every tile were full: ceil(M / BLOCK_Q) * BLOCK_Q rows instead of M (its MAC count
    # stays exact)
    m, bq = ctx.wl.n_queries, ctx.block_q
    pad = math.ceil(m / bq) * bq / m
    for k in [k for k in c if k[0] == "IPCIMArray" and k[1] == "read"]:
        c[k] *= pad


def _normalization(ctx, c):
    for k in [k for k in c if k[0] == "SoftmaxUnit" and k[1] in ("reciprocal", "multiply")]:
        del c[k]
    if any(k[2] in ("O_psum", "O_acc") for k in c):  # O accumulates in the buffer
        for a in ("read", "write"):
            c[("GlobalBuffer", a, "O")] -= ctx.o_bits


def _k_transpose(ctx, c):
    for k in [k for k in c if k[2] == "K^T"]:
        del c[k]


def _two_pass_softmax(ctx, c):
    if ("GlobalBuffer", "read", "S") in c:
        c[("GlobalBuffer", "read", "S")] /= 2


def _acc_width_in_buffer(ctx, c):
    for k in [k for k in c if k[0] == "GlobalBuffer" and k[2] in ("S", "O_psum", "O_acc")]:
        n = c.pop(k) * ctx.db / ctx.acc
        _add(c, (k[0], k[1], "O" if k[2] != "S" else "S"), n)


CORRECTIONS = (
    Correction("cim_operand_read_in_mac",
               "AccelForge reads the stationary operand of a CIM array (data_bits) once per "
               "MAC through the array's read action; in a CIM macro that access is the MAC "
               "(bit-line compute): its energy is inside the published per-MAC energy and "
               "it uses no port cycles, so the closed form does not charge it",
               _cim_operand_read),
    Correction("af_imperfect_tile_padding",
               "AccelForge counts those per-MAC array reads below an imperfectly factorized "
               "Q-row loop (BLOCK_Q not dividing the rows, e.g. the unfused row block) as if "
               "every tile were full: x ceil(M / BLOCK_Q) * BLOCK_Q / M (its MAC count is exact)",
               _imperfect_tile_padding),
    Correction("final_normalization",
               "the 1/l normalization of O closing online softmax (SoftmaxUnit reciprocal "
               "and multiply; where O accumulates in the buffer, the normalized-O write and "
               "read) is not an Einsum of workloads/attention.yaml",
               _normalization),
    Correction("k_transpose_in_buffer",
               "K written into K-stationary IP-CIM passes the buffer's transpose stage once "
               "more (tensor K^T); AccelForge has no such tensor",
               _k_transpose),
    Correction("two_pass_softmax",
               "the unfused softmax reads S twice (max; exp and sum); AccelForge's "
               "elementwise softmax Einsum reads it once",
               _two_pass_softmax),
    Correction("accumulator_width_in_buffer",
               "S and the O partial sums sit in the buffer at ACC_BITS in the closed form "
               "(O_psum / O_acc); AccelForge holds every buffer tensor at DATA_BITS, as O",
               _acc_width_in_buffer),
)
LATENCY_CORRECTIONS = {
    "pipelined_einsums":
        "AccelForge's latency is the sum over Einsums (S, P, O) of each one's slowest "
        "component; the closed form pipelines them per key / KV block and adds the "
        "non-overlapped array writes and read-outs (referee.pipeline_latency)",
    "leakage_follows_latency":
        "leakage = leak power x latency on both sides (the same leak power)",
    "partial_kv_residency":
        "K/V that do not all fit the buffer: the resident fraction of keys is read from "
        "DRAM once, the rest per Q tile; AccelForge evaluates both LoopTree variants "
        "(KV_STREAMED) and their K/V DRAM and buffer-fill counts are mixed by that fraction",
}


# --------------------------------------------------------------------------------------
# The comparison
# --------------------------------------------------------------------------------------
@dataclass
class Referee:
    design: str
    wl: Workload
    overrides: dict
    arch: Arch
    ours: dict  # closed-form counts per Key (attention, no rescale)
    corrected: dict  # ours after CORRECTIONS: what AccelForge should count
    applied: dict  # Key -> names of the corrections that changed it
    af: AFRun  # AccelForge (for partial residency: the mix of both variants)
    kv_resident_keys: int  # keys of a KV head resident in the buffer (closed form)
    ours_latency: dict  # component -> s, closed-form counts at the component's throughput
    ours_total_latency: float  # the closed form's attention latency (evaluate())
    ours_leak_energy: float
    pipeline_latency: float  # AccelForge's per-component latencies, pipelined as ours
    ours_compute_latency: float  # the closed form's compute pipeline (cycles / clock)
    looptree: dict = field(default_factory=dict)  # tile shapes given to the LoopTree
    preset: str | None = None
    energy_delta: dict = field(default_factory=dict)  # correction -> J AccelForge adds
    notes: list = field(default_factory=list)

    def energy_per_action(self, key: Key) -> float:
        return self.arch.energy(key[0], key[1])

    def residuals(self) -> list[str]:
        """Every disagreement left after the named corrections (empty = agreement)."""
        out = action_residuals(self.arch, self.corrected, self.af)
        if not math.isclose(self.af.leak_energy, self.arch.leak_power * self.af.total_latency,
                            rel_tol=AF_FLOAT_RTOL):
            out.append("leakage: AccelForge's leak energy is not leak power x its latency")
        if self.pipeline_latency and not math.isclose(
                self.pipeline_latency, self.ours_compute_latency, rel_tol=AF_FLOAT_RTOL):
            out.append(f"pipeline: AccelForge's component latencies pipelined "
                       f"{self.pipeline_latency:.10g} s, closed-form compute "
                       f"{self.ours_compute_latency:.10g} s")
        return out


def action_residuals(arch: Arch, corrected: dict, af: AFRun) -> list[str]:
    """Per action and per component, what the corrected closed-form counts and AccelForge
    still disagree on: counts (to RTOL), energies and latencies (to AccelForge's float32,
    AF_FLOAT_RTOL). Free staging levels are left out (neither side charges them)."""
    out = []
    free = free_levels(arch)
    for k in sorted({k for k in set(corrected) | set(af.actions) if k[0] not in free}):
        ours, theirs = corrected.get(k, 0.0), af.actions.get(k, 0.0)
        if not math.isclose(ours, theirs, rel_tol=RTOL, abs_tol=1e-6):
            out.append(f"count {k}: corrected closed form {ours:.10g}, AccelForge {theirs:.10g}")
        e_ours, e_af = ours * arch.energy(k[0], k[1]), af.energy.get(k, 0.0)
        if not math.isclose(e_ours, e_af, rel_tol=AF_FLOAT_RTOL, abs_tol=1e-18):
            out.append(f"energy {k}: {e_ours:.10g} J vs AccelForge {e_af:.10g} J")
    for comp, t in af.latency.items():
        mine = component_latency(arch, corrected, comp)
        if not math.isclose(mine, t, rel_tol=AF_FLOAT_RTOL, abs_tol=1e-15):
            out.append(f"latency {comp}: corrected closed form {mine:.10g} s, "
                       f"AccelForge {t:.10g} s")
    return out


def component_latency(arch: Arch, counts: dict, comp: str) -> float:
    """AccelForge's formula for one component: sum over its actions of n / throughput."""
    thr = arch.components[comp].throughput
    t = 0.0
    for (c, a, _), n in counts.items():
        if c == comp and n and thr.get(a, math.inf) != math.inf:
            t += n / thr[a]
    return t


def pipeline_latency(design: str, arch: Arch, wl: Workload, lat: dict, ours: dict) -> float:
    """The closed form's compute latency rebuilt from per-component latencies
    (AccelForge's), for the QO-stationary pipeline on whole tiles: the stages overlap
    (the slowest sets the pace: IP-CIM MACs, softmax, OP-CIM lanes, and the OP-CIM array
    port's accumulator traffic without the read-out - each equal to AccelForge's component
    latency), then per Q tile the Q write into IP-CIM and the O read-out do not overlap.
    Returns 0 for mappings without such a rule here (their closed-form pipeline is only
    bounded: tests/test_referee.py)."""
    from .designs import get_design

    if get_design(design).mapping != "qo_stationary":
        return 0.0
    o_elems = wl.batch * wl.cfg.q_heads * wl.n_queries * wl.cfg.head_dim
    readout = o_elems * arch.var("acc_bits") / arch.components["OPCIMArray"].throughput["read"]
    stages = max(lat.get("IPCIM_MAC", 0.0), lat.get("SoftmaxUnit", 0.0),
                 lat.get("OPCIM_MAC", 0.0), lat.get("OPCIMArray", 0.0) - readout)
    for comp in ("StagingS", "StagingP", "StagingV"):  # double-buffered: reads beside writes
        if comp in lat:
            w = component_latency(arch, {k: v for k, v in ours.items() if k[1] == "write"}, comp)
            stages = max(stages, lat[comp] - w, w)
    q_write = component_latency(arch, {k: v for k, v in ours.items() if k[1] == "write"},
                                "IPCIMArray")
    return stages + q_write + readout


class NotExpressible(ValueError):
    """The closed form's choice at this point has no LoopTree here (one clear line)."""


def _closed_form(d, arch: Arch, wl: Workload, ov: dict):
    """The design's counts without rescale, at the free parameters (block sizes) that
    `evaluate` chooses for them (its search, where the design has one)."""
    from . import evaluation

    if not hasattr(evaluation, "search"):
        return d.dataflow(arch, wl, None)
    fixed = {p: int(arch.var(p.lower())) for k, p in evaluation.FIXING.items() if k in ov}
    return evaluation.search(d, arch, wl, None, "edp", fixed)[0]


def referee(design: str, wl: Workload, overrides: dict | None = None,
            preset: str | None = None) -> Referee:
    """Our closed form vs AccelForge's model of ``design``'s LoopTree on ``wl``
    (``overrides``: arch-spec variables; ``preset``: a named set-up, e.g. "paper")."""
    from types import SimpleNamespace

    from .designs import get_design
    from .evaluation import evaluate

    d = get_design(design)
    if wl.phase != "prefill" or wl.causal:
        raise ValueError("referee: AccelForge cannot express the causal mask or decode "
                         "split-K; use a non-causal prefill workload (--phase prefill; the "
                         "referee maps the full square)")
    mapping = MAPPING_DIR / f"{d.mapping}.yaml"
    if not mapping.exists():
        raise ValueError(f"design: {design!r} has no LoopTree ({mapping.name}); "
                         f"nothing to referee")
    user = dict(overrides or {})
    if preset is not None:
        try:
            from .presets import preset_overrides
        except ImportError:
            raise ValueError(f"preset: {preset!r} unknown (no presets defined)") from None
        user = preset_overrides(preset, d.arch) | user
    ov = dict(d.overrides) | user
    arch = load_arch(d.arch, ov)
    counts = _closed_form(d, arch, wl, user)
    arch = staged_arch(arch, wl, counts.block_q, counts.block_kv)  # staging at the chosen blocks
    spill = getattr(counts, "params", {}).get("s_in_dram", 0.0)
    if spill:
        raise NotExpressible(
            f"referee: {design} sends {spill:.0%} of S through DRAM at this shape (row block "
            f"{counts.block_q}); its LoopTree keeps S in the buffer, so AccelForge cannot "
            f"model this point: use a shorter --seq-len or fix the row block, e.g. "
            f"--set BLOCK_Q=64")
    ours: dict = {}
    for comp, a, t, n in counts.entries:
        _add(ours, (comp, a, t), n)
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    ctx = SimpleNamespace(db=db, acc=acc, wl=wl, block_q=min(counts.block_q, wl.n_queries),
                          o_bits=wl.batch * wl.cfg.q_heads * wl.n_queries
                          * wl.cfg.head_dim * db)
    corrected, applied, energy_delta = dict(ours), {}, {}
    for corr in CORRECTIONS:
        before = dict(corrected)
        corr.apply(ctx, corrected)
        for k in set(before) | set(corrected):
            if before.get(k) != corrected.get(k):
                applied.setdefault(k, []).append(corr.name)
                energy_delta[corr.name] = energy_delta.get(corr.name, 0.0) + (
                    corrected.get(k, 0.0) - before.get(k, 0.0)) * arch.energy(k[0], k[1])
    corrected = {k: v for k, v in corrected.items() if v}

    data = wl.jinja_parse_data() | ov | looptree_data(design, arch, wl, counts)
    items = lambda streamed: tuple(sorted((data | {"KV_STREAMED": streamed}).items()))
    E, L = wl.cfg.head_dim, wl.seq_len
    n_kv = wl.batch * wl.cfg.kv_heads
    kv_once = n_kv * L * E * db  # K (or V) read once per KV head
    dram_k = ours.get(("DRAM", "read", "K"), 0.0)
    notes = []
    def run(streamed: bool) -> AFRun:
        try:
            return _af_run(str(arch_path(d.arch)), str(mapping), items(streamed))
        except Exception as e:  # AccelForge: capacity -> "No mappings found ..." and kin
            variant = "K/V staged per KV block" if streamed else "K/V resident"
            raise ValueError(
                f"referee: AccelForge cannot evaluate {design}'s LoopTree ({variant}, tiles "
                f"{', '.join(f'{k}={v}' for k, v in looptree_data(design, arch, wl, counts).items())}) "
                f"with GLB_BYTES={arch.var('glb_bytes')}: "
                f"{' '.join(str(e).split())[:160]}; a larger --set GLB_BYTES=... or smaller "
                f"blocks fit it") from None

    if dram_k <= kv_once * (1 + RTOL):
        af = run(False)
        k_res = L
    else:
        streamed = run(True)
        per_visit = streamed.actions[("DRAM", "read", "K")]  # every Q tile visit reads all keys
        visits = per_visit / kv_once
        # closed form: k_res + visits * (L - k_res) keys per KV head
        k_res = (visits * L - dram_k / (n_kv * E * db)) / (visits - 1) if visits > 1 else 0
        k_res = int(round(k_res))
        af = _mix(arch, streamed, k_res / L, kv_once) if k_res else streamed
        notes.append(f"K/V: {k_res} of {L} keys per KV head resident in the buffer "
                     f"(partial_kv_residency); AccelForge: the KV_STREAMED LoopTree"
                     + (" mixed with the resident one" if k_res else ""))
        if k_res:
            applied.setdefault(("DRAM", "read", "K"), []).append("partial_kv_residency")
    r = evaluate(design, wl, softmax_order=None, overrides=user)
    our_lat = {c: component_latency(arch, ours, c) for c in arch.components}
    clock = arch.var("clock_hz")
    ref = Referee(design=design, wl=wl, overrides=dict(overrides or {}), arch=arch,
                  ours=ours, corrected=corrected, applied=applied, af=af,
                  kv_resident_keys=k_res, ours_latency=our_lat,
                  ours_total_latency=r.attention.latency_s,
                  ours_leak_energy=r.energy_breakdown_j.get("leakage", 0.0),
                  pipeline_latency=pipeline_latency(design, arch, wl, af.latency, ours),
                  ours_compute_latency=counts.compute_cycles / clock,
                  looptree={k: v for k, v in data.items() if k.startswith("BLOCK_")},
                  preset=preset,
                  energy_delta=energy_delta, notes=notes)
    return ref


def _mix(arch: Arch, streamed: AFRun, frac: float, kv_once: float) -> AFRun:
    """AccelForge's counts for partial residency: the resident LoopTree reads K/V from
    DRAM (and fills the buffer) once per KV head, the streamed one once per Q tile
    visit; every other count is the same. ``frac`` of the keys resident -> the K/V DRAM
    reads and buffer writes are frac x resident + (1 - frac) x streamed. Energies follow
    at AccelForge's per-bit energy of the same action; latencies of DRAM and the buffer
    at their throughput (AccelForge's formula: n / throughput)."""
    actions, energy, lat = dict(streamed.actions), dict(streamed.energy), dict(streamed.latency)
    for comp, a in (("DRAM", "read"), ("GlobalBuffer", "write")):
        for t in ("K", "V"):
            k = (comp, a, t)
            n = streamed.actions[k]
            new = frac * kv_once + (1 - frac) * n
            actions[k] = new
            energy[k] = streamed.energy[k] * new / n
        # scale AccelForge's (float32) latency by the float64 ratio of its formula on the
        # mixed and the streamed counts: keeps its relative precision
        thr = arch.components[comp].throughput
        busy = lambda acts: sum(v / thr[kk[1]] for kk, v in acts.items() if kk[0] == comp)
        lat[comp] = streamed.latency[comp] * busy(actions) / busy(streamed.actions)
    return AFRun(actions, energy, lat, streamed.latency_by_einsum, streamed.total_latency,
                 streamed.leak_energy, streamed.latency_ec)


# --------------------------------------------------------------------------------------
# The agreement table
# --------------------------------------------------------------------------------------
COMPONENT_ORDER = ("DRAM", "GlobalBuffer", "IPCIMArray", "OPCIMArray", "IPCIM_MAC",
                   "SoftmaxUnit", "OPCIM_MAC", "StagingS", "StagingP", "StagingV", "InputLatch",
                   "ScorePipe",
                   "OPCIMAccumulator")


def _rel(ours: float, af: float) -> float:
    return (ours - af) / af if af else (0.0 if not ours else math.inf)


def table_rows(r: Referee) -> list[dict]:
    """Component x {count, energy, latency}: closed form (as evaluate() charges it),
    AccelForge, relative difference and the corrections that explain it."""
    comps = [c for c in COMPONENT_ORDER if c in r.arch.components]
    comps += sorted(set(r.arch.components) - set(comps))
    rows = []
    for comp in comps:
        ok = {k: v for k, v in r.ours.items() if k[0] == comp}
        ak = {k: v for k, v in r.af.actions.items() if k[0] == comp}
        if not ok and not ak:
            continue
        names = sorted({n for k, ns in r.applied.items() if k[0] == comp for n in ns})
        if comp in free_levels(r.arch):
            names = ["free_staging (Dummy: 0 J, no port limit)"]
        e_ours = sum(n * r.energy_per_action(k) for k, n in ok.items())
        e_af = sum(v for k, v in r.af.energy.items() if k[0] == comp)
        t_ours, t_af = r.ours_latency.get(comp, 0.0), r.af.latency.get(comp, 0.0)
        rows.append(dict(component=comp, count_ours=sum(ok.values()), count_af=sum(ak.values()),
                         energy_ours_j=e_ours, energy_af_j=e_af, latency_ours_s=t_ours,
                         latency_af_s=t_af, corrections=names))
    rows.append(dict(component="leakage", count_ours=0.0, count_af=0.0,
                     energy_ours_j=r.ours_leak_energy, energy_af_j=r.af.leak_energy,
                     latency_ours_s=0.0, latency_af_s=0.0,
                     corrections=["leakage_follows_latency"]))
    rows.append(dict(component="total", count_ours=math.nan, count_af=math.nan,
                     energy_ours_j=sum(x["energy_ours_j"] for x in rows),
                     energy_af_j=sum(x["energy_af_j"] for x in rows),
                     latency_ours_s=r.ours_total_latency, latency_af_s=r.af.total_latency,
                     corrections=["pipelined_einsums"]
                     + (["partial_kv_residency"] if 0 < r.kv_resident_keys < r.wl.seq_len else [])))
    for x in rows:
        for q in ("count", "energy", "latency"):
            u = "_j" if q == "energy" else "_s" if q == "latency" else ""
            x[f"{q}_rel"] = _rel(x[f"{q}_ours{u}"], x[f"{q}_af{u}"])
    return rows


def explain(r: Referee) -> list[str]:
    """Why AccelForge's energy and latency of the LoopTree differ from the closed form's,
    each part named (the corrections' shares of the energy; per Einsum, the component
    that sets AccelForge's latency)."""
    rows = {x["component"]: x for x in table_rows(r)}
    e_ours, e_af = rows["total"]["energy_ours_j"], rows["total"]["energy_af_j"]
    t_ours, t_af = r.ours_total_latency, r.af.total_latency
    parts = dict(r.energy_delta)
    if 0 < r.kv_resident_keys < r.wl.seq_len:
        parts["partial_kv_residency"] = 0.0  # mixed on AccelForge's side: no energy share
    parts["leakage_follows_latency"] = r.af.leak_energy - r.ours_leak_energy
    lines = [f"energy: AccelForge {e_af:.4e} J vs closed form {e_ours:.4e} J "
             f"(x{e_af / e_ours:.2f}); AccelForge's extra, by named correction:"]
    for name, de in sorted(parts.items(), key=lambda kv: -abs(kv[1])):
        if de:
            lines.append(f"  {name:<28}{de:+.4e} J")
    rest = e_af - e_ours - sum(parts.values())
    lines.append(f"  {'(unexplained)':<28}{rest:+.4e} J")
    lines.append(f"latency: AccelForge {t_af:.4e} s vs closed form {t_ours:.4e} s "
                 f"(x{t_af / t_ours:.1f}): AccelForge adds its Einsums' slowest components "
                 f"(pipelined_einsums):")
    why = {c: sorted({n for k, ns in r.applied.items() if k[0] == c for n in ns})
           for c in r.arch.components}
    for ein in EINSUMS:
        ec = {c: t for (e, c), t in r.af.latency_ec.items() if e == ein}
        if not ec:
            continue
        comp = max(ec, key=ec.get)
        lines.append(f"  {ein}: {ec[comp]:.4e} s in {comp}"
                     + (f" ({', '.join(why[comp])})" if why.get(comp) else "")
                     + f"; closed form {r.ours_latency.get(comp, 0.0):.4e} s there")
    lines.append(f"  closed form: one pipeline, {r.ours_compute_latency:.4e} s of compute "
                 f"(DRAM {r.ours_latency.get('DRAM', 0):.4e} s, buffer "
                 f"{r.ours_latency.get('GlobalBuffer', 0):.4e} s overlap it)")
    return lines


def format_table(r: Referee) -> str:
    w = r.wl
    ov = ", ".join(f"{k}={v}" for k, v in r.overrides.items())
    lines = [
        f"AccelForge referee: {r.design} on {w.model} prefill {w.seq_len} tokens, batch "
        f"{w.batch}, non-causal, no rescale{' (' + ov + ')' if ov else ''}"
        f"{'; preset ' + r.preset if r.preset else ''}",
        "ours = the closed form as `fusioncim evaluate` charges it; AF = "
        "accelforge.model.main.evaluate_mapping on the design's LoopTree; "
        "rel = ours/AF - 1",
        "LoopTree tiles (the closed form's choice): "
        + ", ".join(f"{k}={v}" for k, v in r.looptree.items()),
        "",
        f"{'component':<17}{'count ours':>12}{'count AF':>12}{'rel':>9}"
        f"{'energy ours':>13}{'energy AF':>13}{'rel':>9}"
        f"{'latency ours':>14}{'latency AF':>13}{'rel':>9}  corrections",
        f"{'':<17}{'[bit|op]':>12}{'[bit|op]':>12}{'':>9}{'[J]':>13}{'[J]':>13}{'':>9}"
        f"{'[s]':>14}{'[s]':>13}",
    ]

    def num(v, fmt):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    def rel(v):
        return "" if math.isnan(v) else ("inf" if math.isinf(v) else f"{v:+.2%}"
                                         if abs(v) >= 1e-4 else f"{v:+.0e}")

    for x in table_rows(r):
        lines.append(
            f"{x['component']:<17}{num(x['count_ours'], '12.4e')}{num(x['count_af'], '12.4e')}"
            f"{rel(x['count_rel']):>9}{x['energy_ours_j']:>13.4e}{x['energy_af_j']:>13.4e}"
            f"{rel(x['energy_rel']):>9}{x['latency_ours_s']:>14.4e}{x['latency_af_s']:>13.4e}"
            f"{rel(x['latency_rel']):>9}  {', '.join(x['corrections'])}")
    res = r.residuals()
    lines += ["", f"after the named corrections: "
              + ("every count, energy and component latency agrees with AccelForge "
                 f"(counts {RTOL:g}, float32 columns {AF_FLOAT_RTOL:g} relative)"
                 if not res else f"{len(res)} DISAGREEMENT(S):")]
    lines += [f"  {x}" for x in res]
    if r.pipeline_latency:
        lines.append(f"closed-form pipeline from AccelForge's component latencies: "
                     f"{r.pipeline_latency:.4e} s (closed form: {r.ours_compute_latency:.4e} s)")
    lines += [f"note: {n}" for n in r.notes]
    lines += [""] + explain(r)
    used = sorted({n for ns in r.applied.values() for n in ns})
    lines += ["", "corrections:"]
    for c in CORRECTIONS:
        if c.name in used:
            lines.append(f"  {c.name}: {c.reason}")
    for name, why in LATENCY_CORRECTIONS.items():
        if name != "partial_kv_residency" or 0 < r.kv_resident_keys < r.wl.seq_len:
            lines.append(f"  {name}: {why}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# CLI: fusioncim referee
# --------------------------------------------------------------------------------------
def cmd_referee(a) -> int:
    import json

    from .cli import _overrides

    wl = Workload(model=a.model, phase=a.phase, seq_len=a.seq_len, batch=a.batch, causal=False)
    r = referee(a.design, wl, _overrides(a.set), preset=a.preset)
    if a.json:
        print(json.dumps(dict(rows=table_rows(r), residuals=r.residuals(),
                              kv_resident_keys=r.kv_resident_keys, notes=r.notes), indent=2))
    else:
        print(format_table(r))
    return 1 if r.residuals() else 0


def referee_args(p, seq_len_help: str | None = None) -> None:
    """The arguments every referee command takes: design, model, tokens, --set."""
    p.add_argument("--design", default="fusioncim")
    p.add_argument("--model", default="llama3-8b", help="llama3-8b | llama3-70b")
    p.add_argument("--seq-len", default="4096", help=seq_len_help)
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override an arch-spec variable (repeatable)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "referee", help="closed form vs AccelForge's model of the design's LoopTree: "
                        "counts, energy and latency per component, with named corrections")
    referee_args(p)
    p.add_argument("--phase", default="prefill", help="prefill (non-causal; AccelForge "
                   "cannot express the causal mask)")
    p.add_argument("--batch", default="1")
    p.add_argument("--preset", default=None, help="a named set-up, e.g. paper")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_referee)
