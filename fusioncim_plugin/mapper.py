"""AccelForge's own fusion-aware mapper (FFM) on the FusionCIM specs.

Inputs: a :class:`~fusioncim_plugin.workload.Workload`, the arch spec (``arch_specs/``,
default ``fusioncim``) with optional Jinja overrides, a metric (energy | latency | edp).
Output: a :class:`MapResult` - the best mapping the mapper finds (as a LoopTree YAML that
AccelForge loads back), its energy and latency, the mapper's wall time, and, beside it,
our hand-written QO-stationary LoopTree (``mappings/qo_stationary.yaml``) evaluated by
AccelForge on the same shape and the same spec.

Constraints given to the mapper are only those that define FusionCIM and live in the
arch spec: QK^T only on IP-CIM, PV only on OP-CIM, softmax only on the softmax unit
(the compute nodes' ``enabled:`` expressions), S / P never in DRAM or the global
buffer (``keep: ~Intermediates``), and the QO-stationary dataflow (``CIM_STATIONARY``:
Q is written into IP-CIM once per Q tile and O stays in OP-CIM until its tile is done,
AccelForge's ``no_refetch_from_above``; ``--set CIM_STATIONARY=false`` lifts it, and
tests/test_mapper.py checks that the best mapping is the same either way). Everything
else - loop order, tile sizes, where each tensor is kept, whether and how Einsums are
fused - is the mapper's choice.

The hardware's block sizes (BLOCK_Q query rows x BLOCK_KV keys: the score pipeline is
sized for one such block) are those `fusioncim evaluate` picks for the design (its
block search, unless ``--set`` fixes them), so the mapper, the hand LoopTree and the
referee's explanation all see the same hardware.

What AccelForge cannot express, and so neither the mapper nor the hand LoopTree sees:
the causal mask (its analytical model takes the full square: we always map non-causal
shapes), the online-softmax rescale of O, and the causal block skipping; those are
added only by ``fusioncim_plugin.dataflow``. Both sides of the comparison use the same
AccelForge model, including its per-MAC charge of a read of the stationary operand in
the CIM arrays (see tests/test_accelforge_agreement.py).

The mapper runs in a temporary working directory: its detailed evaluation renders
mappings with Graphviz and writes ``mapping.svg`` into the current directory.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .arch import MAPPING_DIR, WORKLOAD_DIR, SpecError, arch_path, load_arch
from .workload import Workload

METRICS = ("energy", "latency", "edp")


@contextlib.contextmanager
def af_jobs(n: int):
    """Run AccelForge's parallel sections with ``n`` processes (1: in this process).

    With one process the mapper is deterministic; with several, joblib's completion
    order decides between equally good mappings (same energy and latency, e.g. a
    storage node above or below a loop that does not change its traffic), so the
    LoopTree printed can differ from run to run."""
    import importlib

    # the module, not the `parallel` function that accelforge.util re-exports
    afp = importlib.import_module("accelforge.util.parallel")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError("jobs: must be a positive integer")
    prev = (afp.N_PARALLEL_PROCESSES, afp.PARALLELIZE)
    afp.set_n_parallel_jobs(int(n))
    try:
        yield
    finally:
        afp.N_PARALLEL_PROCESSES, afp.PARALLELIZE = prev


@contextlib.contextmanager
def scratch_dir():
    """Run the block in a fresh temporary directory (AccelForge writes render files
    into the current directory), then return to where we were and delete it."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="fusioncim-af-") as d:
        os.chdir(d)
        try:
            yield Path(d)
        finally:
            os.chdir(cwd)


def _af_metric(metric: str):
    import accelforge as af

    try:
        return {"energy": af.Metrics.ENERGY, "latency": af.Metrics.LATENCY,
                "edp": af.Metrics.ENERGY_DELAY_PRODUCT}[metric]
    except KeyError:
        raise ValueError(f"metric: unknown {metric!r}; allowed: {', '.join(METRICS)}") from None


def shape_data(wl: Workload, kv_heads: int | None = None, group: int | None = None) -> dict:
    """Jinja data of workloads/attention.yaml for ``wl`` (non-causal full square), with
    the KV-head count / group size optionally reduced."""
    d = wl.jinja_parse_data()
    for name, flag, v in (("N_KV_HEADS", "kv-heads", kv_heads), ("GROUP", "group", group)):
        if v is not None:
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{flag}: must be a positive integer")
            d[name] = int(v)
    return d


def fusioncim_spec(data: dict, *, arch: str = "fusioncim", overrides: dict | None = None,
                   mapping: Path | str | None = None):
    """An ``af.Spec`` of arch + workloads/attention.yaml (+ a LoopTree), ready for the
    mapper or ``evaluate_mapping``. Returns (spec, notes)."""
    import accelforge as af

    from .variables import validate_overrides

    files = [arch_path(arch), WORKLOAD_DIR / "attention.yaml"]
    try:
        overrides = validate_overrides(files[0], overrides)  # names, types, ranges
    except ValueError as e:
        raise SpecError(str(e)) from None
    if mapping is not None:
        files.append(Path(mapping))
    spec = af.Spec.from_yaml(*files, jinja_parse_data={**(overrides or {}), **data})
    notes = []
    return pin_component_models(spec), notes


def pin_component_models(spec):
    """Give AccelForge the hwcomponents models this spec's components name, instead of
    every installed model: AccelForge costs the components once per Einsum, and each
    time hwcomponents wraps every installed model to find the one named (about 0.3 s
    per Einsum here). Uses AccelForge's own ``config.component_models`` with
    ``use_installed_component_models: false``. The models are the installed ones whose
    name matches a ``component_class`` exactly as hwcomponents matches it (case-blind),
    plus any the spec lists itself, so a plugged-in macro (an installed
    ``hwcomponents_*`` module) is found as before; if a class has no installed model
    the spec is left as it is, and AccelForge's own error names it."""
    from hwcomponents.find_models import installed_models

    cfg = spec.config
    if not cfg.use_installed_component_models:
        return spec
    wanted = {str(n.component_class).lower() for n in spec.arch.nodes
              if getattr(n, "component_class", None)} - {"dummy"}

    def names(m):
        n = m._component_name()
        return {x.lower() for x in ([n] if isinstance(n, str) else n)}

    chosen = [m for m in installed_models() if names(m) & wanted]
    if not wanted <= set().union(*(names(m) for m in chosen)):
        return spec
    cfg.component_models = list(cfg.component_models) + chosen
    cfg.use_installed_component_models = False
    return spec


# --------------------------------------------------------------------------------------
# LoopTree -> YAML (the format of mappings/*.yaml; AccelForge loads it back)
# --------------------------------------------------------------------------------------
def _rank_variable(v) -> str:
    if isinstance(v, (set, frozenset, list, tuple)):
        if len(v) != 1:
            raise ValueError(f"loop over several rank variables {sorted(v)} has no YAML form")
        (v,) = tuple(v)
    return str(v)


def looptree_yaml(mapping, header: str = "") -> str:
    """Render an AccelForge ``Mapping`` (LoopTree) as YAML in the format of
    ``mappings/qo_stationary.yaml``; reservations (mapper bookkeeping) are dropped."""
    import accelforge.frontend.mapping.mapping as M

    lines = [f"# {ln}" if ln else "#" for ln in header.splitlines()]
    lines += ["mapping:", "  nodes:"]

    def walk(node, indent: int) -> None:
        p = " " * indent
        for n in node.nodes:
            if isinstance(n, M.Reservation):
                continue
            if isinstance(n, M.Storage):
                lines.append(f"{p}- !Storage {{tensors: [{', '.join(n.tensors)}], "
                             f"component: {n.component}}}")
            elif isinstance(n, M.Toll):
                lines.append(f"{p}- !Toll {{tensors: [{', '.join(n.tensors)}], "
                             f"component: {n.component}}}")
            elif isinstance(n, M.Temporal):
                lines.append(f"{p}- !Temporal {{rank_variable: {_rank_variable(n.rank_variable)}, "
                             f"tile_shape: {n.tile_shape}}}")
            elif isinstance(n, M.Spatial):
                lines.append(f"{p}- !Spatial {{rank_variable: {_rank_variable(n.rank_variable)}, "
                             f"name: {n.name}, component: {n.component}, "
                             f"tile_shape: {n.tile_shape}}}")
            elif isinstance(n, M.Compute):
                lines.append(f"{p}- !Compute {{einsum: {n.einsum}, component: {n.component}}}")
            elif isinstance(n, (M.Nested, M.Split)):
                lines.append(f"{p}- !{type(n).__name__}")
                lines.append(f"{p}  nodes:")
                walk(n, indent + 2)
            else:
                raise ValueError(f"LoopTree node {type(n).__name__} has no YAML form here")

    walk(mapping, 2)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Running the mapper and the hand LoopTree
# --------------------------------------------------------------------------------------
@dataclass
class Evaluated:
    energy_j: float
    latency_s: float
    energy_by_component_j: dict[str, float]
    energy_by_action_j: dict[str, float]  # "Component.action[tensor]"


@dataclass
class MapResult:
    design: str
    model: str
    phase: str
    seq_len: int
    batch: int
    shape: dict  # rank sizes mapped (B, H, G, M, P, E, F)
    full_shape: dict  # rank sizes of the whole layer's attention
    metric: str
    mapper_wall_s: float
    mapper_jobs: int
    best: Evaluated
    looptree: str  # YAML of the best mapping
    hand_mapping: str | None  # mappings/<name>.yaml of the design, if it exists
    hand_block_q: int | None
    hand: Evaluated | None
    blocks: dict = field(default_factory=dict)  # BLOCK_Q / BLOCK_KV (/ BLOCK_K) mapped
    notes: list[str] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)  # evaluate vs AccelForge, named

    @property
    def reduced(self) -> bool:
        return self.shape != self.full_shape

    def as_dict(self) -> dict:
        return asdict(self)


def _ranks(data: dict) -> dict:
    return {"B": data["BATCH"], "H": data["N_KV_HEADS"], "G": data["GROUP"],
            "M": data["N_QUERIES"], "P": data["N_KEYS"], "E": data["HEAD_DIM"],
            "F": data["HEAD_DIM"]}


def _evaluated(res) -> Evaluated:
    by_comp = {str(k): float(v) for k, v in res.energy(per_component=True).items()}
    by_act = {}
    for k, v in res.energy(per_component=True, per_tensor=True, per_action=True).items():
        comp, tensor, action = k
        key = f"{comp}.{action}" + (f"[{tensor}]" if tensor not in (None, "None") else "")
        by_act[key] = by_act.get(key, 0.0) + float(v)
    return Evaluated(energy_j=float(res.energy()), latency_s=float(res.latency()),
                     energy_by_component_j=by_comp, energy_by_action_j=by_act)


_AF_MODEL: dict = {}  # (arch spec, LoopTree file, Jinja data) -> AccelForge's result
_AF_MODEL_MAX = 32


def af_model(arch_file: Path | str, mapping: Path | str, jinja: dict, *, costed=None,
             remember: bool = True):
    """AccelForge's model (``evaluate_mapping``) of one LoopTree file on an arch spec and
    workloads/attention.yaml with the Jinja data ``jinja``, run in this process (one
    LoopTree is too little work for worker processes).

    Results are remembered by (spec, LoopTree, data) for the life of the process, so the
    hand LoopTree of `fusioncim map` and the referee's evaluation of the same LoopTree
    share one run (``remember=False``: evaluate afresh, remember nothing).
    ``costed``: the ``Mappings`` of a mapper run on the same arch spec and data; its
    per-Einsum costed specs are reused instead of costing the components again
    (AccelForge's own detailed evaluation of the mapper's result does the same; the
    result is identical, tests/test_mapper.py)."""
    import accelforge as af
    from accelforge.model.main import evaluate_mapping

    key = (str(Path(arch_file).resolve()), str(Path(mapping).resolve()),
           tuple(sorted(jinja.items())))
    if remember and key in _AF_MODEL:
        return _AF_MODEL[key]
    spec = pin_component_models(af.Spec.from_yaml(
        arch_file, WORKLOAD_DIR / "attention.yaml", mapping, jinja_parse_data=dict(jinja)))
    reuse = {} if costed is None else dict(flattened_arches=costed.flattened_arches,
                                           evaluated_specs=costed.evaluated_specs)
    with scratch_dir(), af_jobs(1):
        res = evaluate_mapping(spec, **reuse)
    if remember:
        if len(_AF_MODEL) >= _AF_MODEL_MAX:
            _AF_MODEL.pop(next(iter(_AF_MODEL)))
        _AF_MODEL[key] = res
    return res


def evaluate_looptree(data: dict, mapping: Path | str, *, arch: str = "fusioncim",
                      overrides: dict | None = None,
                      block_q_rows: int | None = None, costed=None,
                      remember: bool = True) -> Evaluated:
    """AccelForge's model of one LoopTree file (e.g. the mapper's output read back) on
    ``arch`` with ``overrides`` and the shape ``data`` (see :func:`af_model`)."""
    from .variables import validate_overrides

    d = dict(data) | ({"BLOCK_Q": block_q_rows} if block_q_rows else {})
    try:
        ov = validate_overrides(arch_path(arch), overrides)
    except ValueError as e:
        raise SpecError(str(e)) from None
    return _evaluated(af_model(arch_path(arch), mapping, {**(ov or {}), **d},
                               costed=costed, remember=remember))


def buffer_need_bits(data: dict, arch: str, overrides: dict | None, br: int) -> tuple[int, int]:
    """Global-buffer bits the hand LoopTree needs: (K/V of a KV head resident + the Q/O
    tile, one K/V block streamed + the Q/O tile) - what mappings/*.yaml stage there."""
    a = load_arch(arch, overrides)
    e, db = data["HEAD_DIM"], a.var("data_bits")
    tile = 2 * br * e * db  # Q and O tile
    return tile + 2 * data["N_KEYS"] * e * db, tile + 2 * a.var("block_kv") * e * db


def _glb_fix(need_bits: int) -> str:
    """The --set that makes the buffer hold ``need_bits``, within the sizes CACTI was
    queried for (energy_tables/global_buffer.yaml); beyond them, say so."""
    from .tables import load_table

    kib = -(-need_bits // (8 * 1024))
    largest = int(max(r["size_bits"] for r in load_table("global_buffer").cacti_queries)) // 8
    if kib * 1024 > largest:
        return (f"a buffer of {kib * 1024} B, beyond the CACTI table (largest "
                f"GLB_BYTES={largest}: add the size to SIZES in scripts/cacti_global_buffer.py, "
                f"rerun it, then --set GLB_BYTES={kib * 1024})")
    return f"--set GLB_BYTES={kib * 1024}"


def _design(design: str):
    from .designs import get_design

    d = get_design(design)
    if Path(arch_path(d.arch)).resolve() != Path(arch_path("fusioncim")).resolve():
        raise ValueError(
            f"design: {design!r} uses arch spec {d.arch!r}, which has no compute unit for "
            f"PV (its IP-CIM MAC is enabled for QK^T only), so the mapper cannot map the "
            f"attention cascade on it; use a design on the fusioncim spec "
            f"(fusioncim, hybrid-qo, hybrid)")
    return d


def run_mapper(wl: Workload, *, design: str = "fusioncim", metric: str = "energy",
               overrides: dict | None = None, kv_heads: int | None = None,
               group: int | None = None,
               arch: str | None = None, jobs: int = 1) -> MapResult:
    """Run AccelForge's FFM mapper on one layer's attention (non-causal) on ``design``'s
    arch spec and evaluate the design's hand-written LoopTree (``mappings/<name>.yaml``,
    if it exists) on the same shape and spec.

    ``kv_heads`` / ``group`` reduce the shape (KV heads / query heads per KV head);
    ``arch`` replaces the design's arch spec (same component names); ``jobs`` is the
    number of mapper processes (1, the default, is deterministic - see af_jobs)."""
    metric = metric.lower()
    af_metric = _af_metric(metric)
    d = _design(design)
    arch = arch or d.arch
    overrides = dict(d.overrides) | dict(overrides or {})
    full = _ranks(shape_data(wl))
    blocks = design_blocks(d, arch, wl, overrides)
    data = shape_data(wl, kv_heads, group) | blocks
    notes = []
    if wl.causal and wl.phase == "prefill":
        notes.append("causal mask not expressible in AccelForge: the full (non-causal) "
                     "square is mapped")
    spec, spec_notes = fusioncim_spec(data, arch=arch, overrides=overrides)
    notes += spec_notes
    spec.mapper.metrics = af_metric
    hand_file = MAPPING_DIR / f"{d.mapping}.yaml"
    br = blocks["BLOCK_Q"]
    resident, streamed = buffer_need_bits(data, arch, overrides, br)
    glb = load_arch(arch, overrides).var("glb_bytes") * 8
    with scratch_dir(), af_jobs(jobs):
        t0 = time.perf_counter()
        try:
            mappings = spec.map_workload_to_arch(print_progress=False)
        except Exception as e:  # AccelForge: "No mappings found for P <--> O" and kin
            raise ValueError(_no_mapping(e, glb, streamed)) from None
        wall = time.perf_counter() - t0
        if len(mappings) < 1:
            raise ValueError(_no_mapping(None, glb, streamed))
        best = _evaluated(mappings)
        tree = mappings.mapping()

    hand = None
    if hand_file.exists() and streamed > glb:
        notes.append(f"hand LoopTree not evaluated: its Q/O tile and one K/V block need "
                     f"{-(-streamed // 8)} B of global buffer, GLB_BYTES={glb // 8} B; "
                     f"{_glb_fix(streamed)} evaluates it")
    elif hand_file.exists():
        kv_streamed = resident > glb
        if kv_streamed:
            notes.append(
                f"hand LoopTree: K/V of a KV head and the Q/O tile need "
                f"{resident / 8 / 2**20:.2f} MiB, the global buffer "
                f"holds {glb / 8 / 2**20:.2f} MiB: evaluated with K/V staged per KV block per Q "
                f"tile (KV_STREAMED; `fusioncim evaluate` keeps what fits resident); "
                f"{_glb_fix(resident)} keeps them all resident")
        hand = evaluate_looptree(data | {"KV_STREAMED": kv_streamed}, hand_file, arch=arch,
                                 overrides=overrides, block_q_rows=br, costed=mappings)
    else:
        notes.append(f"design {design!r} has no hand-written LoopTree ({hand_file.name}); "
                     f"nothing to compare with")
    ranks = _ranks(data)
    explanation = []
    if hand is not None and ranks == full and wl.phase == "prefill" \
            and Path(arch_path(arch)).resolve() == Path(arch_path(d.arch)).resolve():
        explanation = evaluate_vs_accelforge(design, wl, overrides)
    header = (f"Best mapping found by AccelForge's FFM mapper (metric: {metric}) for one "
              f"layer's attention of {wl.model} {wl.phase}, seq_len {wl.seq_len}, batch "
              f"{wl.batch}, non-causal;\nrank sizes {ranks}; design {design}, arch spec "
              f"{arch}{' overrides ' + str(overrides) if overrides else ''}."
              f"\nAccelForge energy {best.energy_j:.6e} J, latency {best.latency_s:.6e} s."
              f"\nBlocks (the design's, from `fusioncim evaluate`'s search): "
              f"{', '.join(f'{k}={v}' for k, v in blocks.items())}."
              f"\nLoad with af.Spec.from_yaml(arch, workloads/attention.yaml, this file, "
              f"jinja_parse_data=<the shape and these blocks>).")
    return MapResult(
        design=design, model=wl.model, phase=wl.phase, seq_len=wl.seq_len, batch=wl.batch,
        shape=ranks, full_shape=full, metric=metric, mapper_wall_s=wall, mapper_jobs=jobs,
        best=best,
        looptree=looptree_yaml(tree, header),
        hand_mapping=hand_file.stem if hand is not None else None, hand_block_q=br,
        hand=hand, notes=notes, explanation=explanation, blocks=blocks)


def design_blocks(d, arch: str, wl: Workload, overrides: dict) -> dict:
    """The block sizes `fusioncim evaluate` chooses for design ``d`` on ``wl``'s full,
    non-causal shape (its best-EDP block search; values the overrides set are kept), as
    the Jinja data of the design's LoopTree: BLOCK_Q, BLOCK_KV (and BLOCK_K)."""
    from .referee import _closed_form, looptree_data

    flat = wl.model_copy(update={"causal": False})
    hw = load_arch(arch, overrides)
    return looptree_data(d.name, hw, flat, _closed_form(d, hw, flat, overrides))


def evaluate_vs_accelforge(design: str, wl: Workload, overrides: dict | None) -> list[str]:
    """Why `fusioncim evaluate` reports other numbers than AccelForge's model of the same
    LoopTree: the causal mask and the online-softmax rescale (closed form only), then the
    named corrections of fusioncim_plugin.referee on the mapped (non-causal) shape."""
    from .evaluation import evaluate
    from .referee import explain, referee

    flat = wl.model_copy(update={"causal": False})
    r = referee(design, flat, overrides)
    d = evaluate(design, wl.model_copy(update={"causal": True}), overrides=overrides)
    n = evaluate(design, flat, overrides=overrides)
    rows = [("fusioncim evaluate (its defaults: causal, rescale)", d.attention),
            ("  ... --no-causal (rescale on; the shape mapped)", n.attention)]
    out = ["why `fusioncim evaluate` reports other numbers for this shape:"]
    out += [f"  {k:<52}{c.energy_j:>12.4e} J{c.latency_s:>12.4e} s" for k, c in rows]
    out.append(f"  {'  ... --no-causal --softmax-order none (referee)':<52}"
               f"{sum(r.ours[k] * r.arch.energy(k[0], k[1]) for k in r.ours) + r.ours_leak_energy:>12.4e} J"
               f"{r.ours_total_latency:>12.4e} s")
    out.append(f"  {'AccelForge, hand LoopTree (as above)':<52}"
               f"{sum(r.af.energy.values()) + r.af.leak_energy:>12.4e} J{r.af.total_latency:>12.4e} s")
    out += ["  " + x for x in explain(r)]
    out.append(f"  (full table: fusioncim referee --design {design} --model {wl.model} "
               f"--seq-len {wl.seq_len})")
    return out


def _no_mapping(e: Exception | None, glb: int, need: int) -> str:
    why = f" ({' '.join(str(e).split())[:200]})" if e is not None else ""
    if need > glb:
        return (f"map: no mapping fits the global buffer: GLB_BYTES={glb // 8} B holds less "
                f"than one Q/O tile and one K/V block ({-(-need // 8)} B); "
                f"{_glb_fix(need)} or a smaller BLOCK_KV / N_IP_MACROS fixes it{why}")
    return f"map: AccelForge's mapper found no valid mapping for this spec and shape{why}"


def _pct(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.2f} %" if b else "n/a"


def format_result(r: MapResult, top: int = 8) -> str:
    b, q = r.best, r.hand
    shape = ", ".join(f"{k}={v}" for k, v in r.shape.items())
    lines = [
        f"AccelForge FFM mapper on {r.design}: {r.model} {r.phase}, seq_len {r.seq_len}, "
        f"batch {r.batch}, one layer's attention, non-causal",
        f"  shape mapped     {shape}"
        + ("" if not r.reduced else
           f"  (REDUCED from {', '.join(f'{k}={v}' for k, v in r.full_shape.items())})"),
        f"  metric           {r.metric}",
        f"  blocks           {', '.join(f'{k}={v}' for k, v in r.blocks.items())} (the "
        f"design's, as `fusioncim evaluate` chooses them; they size the score pipeline)",
        f"  mapper wall time {r.mapper_wall_s:.2f} s ({r.mapper_jobs} process"
        f"{'es' if r.mapper_jobs > 1 else ''})",
        "",
        f"{'':26}{'energy [J]':>14}{'latency [s]':>14}{'EDP [J s]':>14}",
        f"  {'mapper best':<24}{b.energy_j:>14.6e}{b.latency_s:>14.6e}"
        f"{b.energy_j * b.latency_s:>14.6e}",
    ]
    if q is not None:
        name = f"{r.hand_mapping} (hand)"
        lines += [
            f"  {name:<24}{q.energy_j:>14.6e}{q.latency_s:>14.6e}"
            f"{q.energy_j * q.latency_s:>14.6e}",
            f"  {'mapper vs hand':<24}{_pct(b.energy_j, q.energy_j):>14}"
            f"{_pct(b.latency_s, q.latency_s):>14}"
            f"{_pct(b.energy_j * b.latency_s, q.energy_j * q.latency_s):>14}",
            f"  (hand LoopTree: Q tile {r.hand_block_q} rows; both evaluated by AccelForge's "
            f"model on the same spec)",
        ]
        diffs = {k: b.energy_by_action_j.get(k, 0.0) - q.energy_by_action_j.get(k, 0.0)
                 for k in set(b.energy_by_action_j) | set(q.energy_by_action_j)}
        diffs = {k: v for k, v in diffs.items()
                 if not math.isclose(v, 0.0, abs_tol=1e-9 * max(q.energy_j, 1e-30))}
        if diffs:
            lines += ["", "where the energies differ (mapper - hand):"]
            for k, v in sorted(diffs.items(), key=lambda kv: (-abs(kv[1]), kv[0]))[:top]:
                lines.append(f"  {k:<34}{v:>+14.4e} J")
        else:
            lines += ["", "per-action energies identical to the hand LoopTree's"]
    lines += [f"note: {n}" for n in r.notes]
    if r.explanation:
        lines += [""] + r.explanation
    return "\n".join(lines)
