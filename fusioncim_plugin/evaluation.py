"""Evaluate a design on a workload: energy, latency, throughput, traffic.

Inputs: a design name (``designs.DESIGNS``), a :class:`Workload`, optional arch-spec
overrides and a softmax KV-block order. Output: a :class:`Result` (pydantic; ``.model_dump()``
gives JSON) for one layer's attention, the whole layer (attention + projections + FFN,
the "system level") and the whole model (x layers).

Energy = sum over (component, action, tensor) of count x J/action from hwcomponents, plus
leakage = leak power x latency; the breakdown's parts add up to the total exactly.
Latency = max(compute pipeline, DRAM transfer, buffer port; the last two at the
throughput hwcomponents gives those components) - loads are double-buffered
and overlap compute (assumption) - so it is never below any of those bounds.
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel

from .arch import Arch, SpecError, load_arch
from .dataflow import Counts, staged_arch, weight_stationary_linear
from .designs import get_design
from .workload import Workload


class Cost(BaseModel):
    """Energy/latency of one scope (attention of one layer, one layer, the model)."""

    energy_j: float
    latency_s: float
    cycles: float
    macs: float  # useful MACs (closed form of the workload)
    macs_executed: float  # incl. masked products computed inside diagonal blocks
    tops: float  # 2 x useful MACs / latency, in 1e12 ops/s
    tops_per_w: float  # 2 x useful MACs / energy, in 1e12 ops/J
    dram_bytes: float
    buffer_bytes: float  # global-buffer reads + writes
    cim_write_bytes: float  # stationary operands written into CIM arrays
    energy_by_category_j: dict[str, float]


class Result(BaseModel):
    design: str
    model: str
    phase: str
    seq_len: int
    batch: int
    causal: bool
    softmax_order: str | None
    block_q: int  # chosen Q tile rows (unfused: row block)
    block_kv: int  # chosen KV block keys (unfused: key rows per array load)
    params: dict  # every chosen free parameter of the design's dataflow
    metric: str  # what the parameter search minimized: energy | latency | edp
    preset: str | None = None
    attention: Cost  # one layer's attention core (QK^T, softmax, PV)
    layer: Cost  # one whole layer: attention + Q/K/V/O projections + FFN
    model_total: Cost  # all layers
    energy_breakdown_j: dict[str, float]  # attention, "Component.action[tensor]" + leakage
    action_counts: dict[str, float]  # attention, "Component.action[tensor]" -> count
    action_count_units: dict[str, str]  # the unit of each action count (count_unit)
    area_mm2: dict[str, float]  # the design's arch, per component (all instances) + "total"
    latency_bounds_s: dict[str, float]  # attention: compute / dram / buffer
    rescale_events: float
    notes: list[str]


# Energy categories of a breakdown, in plotting order: per-component ones, then the
# online-softmax rescale and leakage.
CATEGORY = {"DRAM": "DRAM", "GlobalBuffer": "buffer", "IPCIMArray": "IP-CIM write",
            "IPCIM_MAC": "IP-CIM compute", "SoftmaxUnit": "softmax",
            "OPCIMArray": "OP-CIM array", "OPCIM_MAC": "OP-CIM compute",
            "StagingP": "OP-CIM staging", "StagingV": "OP-CIM staging",
            "StagingS": "score staging"}


CATEGORIES = (*dict.fromkeys(CATEGORY.values()), "rescale", "leakage")


def count_unit(component: str, action: str) -> str:
    """Unit of an action count: memory ``read``/``write`` count bits (AccelForge's
    per-bit actions); a ``*_MAC`` ``compute`` counts MACs; every other action (softmax
    ``compute``/``exp``/``multiply``/``reciprocal``, OP-CIM ``rescale``) counts one
    operation on one element."""
    if action in ("read", "write"):
        return "bit"
    if action == "compute" and component.endswith("_MAC"):
        return "MAC"
    return "element-op"


def _category(component: str, action: str, tensor: str) -> str:
    if action == "rescale" or tensor == "rescale":
        return "rescale"
    return CATEGORY.get(component, component)


def _cost(arch: Arch, counts: Counts, macs: float) -> tuple[Cost, dict, dict]:
    breakdown: dict[str, float] = {}
    by_cat: dict[str, float] = {}
    for comp, action, tensor, n in counts.entries:
        e = n * arch.energy(comp, action)
        key = f"{comp}.{action}[{tensor}]"
        breakdown[key] = breakdown.get(key, 0.0) + e
        cat = _category(comp, action, tensor)
        by_cat[cat] = by_cat.get(cat, 0.0) + e
    clock = arch.var("clock_hz")
    dram_bits = counts.total("DRAM")
    buf_bits = counts.total("GlobalBuffer")

    def port_time(comp: str) -> float:
        """Reads and writes share the component's port (its hwcomponents throughput)."""
        thr = arch.components[comp].throughput
        return sum(counts.total(comp, a) / thr[a] for a in ("read", "write"))

    bounds = {"compute": counts.compute_cycles / clock, "dram": port_time("DRAM"),
              "buffer": port_time("GlobalBuffer")}
    latency = max(bounds.values())
    leak = arch.leak_power * latency
    breakdown["leakage"] = leak
    by_cat["leakage"] = by_cat.get("leakage", 0.0) + leak
    energy = sum(breakdown.values())
    ops = 2 * macs
    cost = Cost(
        energy_j=energy, latency_s=latency, cycles=latency * clock, macs=macs,
        macs_executed=counts.macs_executed,
        tops=ops / latency / 1e12 if latency else 0.0,
        tops_per_w=ops / energy / 1e12 if energy else 0.0,
        dram_bytes=dram_bits / 8, buffer_bytes=buf_bits / 8,
        # stationary operands loaded into CIM arrays (OP-CIM's writes are accumulation)
        cim_write_bytes=counts.total("IPCIMArray", "write") / 8,
        energy_by_category_j=by_cat,
    )
    return cost, breakdown, bounds


_EXTENSIVE = ("energy_j", "latency_s", "cycles", "macs", "macs_executed", "dram_bytes",
              "buffer_bytes", "cim_write_bytes")


def _combine(parts: list[tuple[Cost, float]]) -> Cost:
    """sum of weight x cost: a layer = attention + linear; the model = layer x layers.
    Latencies add (the parts run one after another); rates are recomputed."""
    tot = {k: sum(w * getattr(c, k) for c, w in parts) for k in _EXTENSIVE}
    cats: dict[str, float] = {}
    for c, w in parts:
        for k, v in c.energy_by_category_j.items():
            cats[k] = cats.get(k, 0.0) + w * v
    ops = 2 * tot["macs"]
    return Cost(**tot, energy_by_category_j=cats,
                tops=ops / tot["latency_s"] / 1e12 if tot["latency_s"] else 0.0,
                tops_per_w=ops / tot["energy_j"] / 1e12 if tot["energy_j"] else 0.0)


def _rescale_callback(order: str | None, wl: Workload, bc: int, granularity: str,
                      traces=None):
    """rescale(rows, keys) -> (rescale passes over the O tile, O rows rescaled) for one
    Q tile. A pass happens when any row's max grows (prefill); with granularity "tile"
    every row of the tile is rescaled in it, with "row" only the rows whose max grew
    (per-row word-line masks). Decode: a tile's rows belong to different heads, each
    rescales only its own row. ``traces``: the attention-trace set (None = the shipped
    default, see :func:`fusioncim_plugin.softmax.rescale_profile`)."""
    if order is None:
        return None
    if granularity not in ("tile", "row"):
        raise SpecError(f"RESCALE_GRANULARITY = {granularity!r}; allowed: tile, row")
    from .softmax import rescale_profile

    memo: dict = {}  # tile rows -> profile: the closed forms ask once per Q tile

    def profile(rows, phase):
        if (rows, phase) not in memo:
            memo[rows, phase] = rescale_profile(order, wl.seq_len, rows, bc, phase=phase,
                                                causal=wl.causal, traces=traces)
        return memo[rows, phase]

    def rescale(rows, keys):
        if wl.phase == "decode":
            p = profile(1, "decode")
            return p.row_rescales_per_row * rows, p.row_rescales_per_row * rows
        p = profile(rows, "prefill")
        per_row = p.row_rescales_per_row if granularity == "row" else p.tile_rescales_per_tile
        return p.tile_rescales_per_tile, per_row * rows
    return rescale


# Size guards, checked before any work starts (README, "Limits").
MAX_TILES = 1 << 20  # Q tiles (row blocks) per KV head; the closed forms are vectorized
#                      over them (numpy arrays of this length)
MAX_RESCALE_BYTES = 2 << 30  # working set of the synthetic rescale model for one Q tile
RESCALE_BYTES_PER_BLOCK_MAX = 2 * 32  # two (row, 16-key block) passes x ~32 B of arrays


def check_size(d, hw: Arch, wl: Workload, order: str | None) -> None:
    """SpecError naming the input when a point would exceed MAX_TILES or
    MAX_RESCALE_BYTES; also: the buffer must hold one KV block (K or V) of one head,
    the smallest unit every design stages in it."""
    from . import baselines
    from .dataflow import q_tile_rows

    e, db = wl.cfg.head_dim, hw.var("data_bits")
    need = int(hw.var("block_kv")) * e * db
    if hw.var("glb_bytes") * 8 < need:
        raise SpecError(f"GLB_BYTES = {hw.var('glb_bytes')}: the global buffer must hold at "
                        f"least one KV block of one head (BLOCK_KV x head_dim x DATA_BITS = "
                        f"{need // 8} B); set --set GLB_BYTES={need // 8} or more")
    if wl.phase == "decode":
        rows = max(wl.group, 1)
    elif d.dataflow is baselines.unfused_kv_stationary:
        rows = baselines.unfused_rows_default(hw, wl)
    elif d.dataflow is baselines.fused_kv_stationary:
        rows = int(hw.var("block_q"))
    else:
        rows = q_tile_rows(hw, wl)
    n_tiles = -(-wl.n_queries // rows)
    if n_tiles > MAX_TILES:
        raise SpecError(f"seq-len {wl.seq_len}: {d.name} would iterate over {n_tiles:,} Q "
                        f"tiles of {rows} rows per head, above the bound of {MAX_TILES:,} "
                        f"(about a minute); use a shorter --seq-len")
    if order is not None:
        nbytes = min(rows, wl.n_queries) * -(-wl.seq_len // 16) * RESCALE_BYTES_PER_BLOCK_MAX
        if nbytes > MAX_RESCALE_BYTES:
            raise SpecError(f"seq-len {wl.seq_len}: the rescale model needs about "
                            f"{nbytes / 2**30:.1f} GiB for one Q tile (bound "
                            f"{MAX_RESCALE_BYTES / 2**30:.0f} GiB); use a shorter --seq-len "
                            f"or --softmax-order none (charge no rescale)")


METRICS = ("edp", "energy", "latency")
# Spec variables that fix a searched parameter when the caller sets them.
FIXING = {"BLOCK_Q": "block_q", "BLOCK_KV": "block_kv"}


def _score(cost: Cost, metric: str) -> tuple[float, float]:
    """``metric``, ties broken by energy (latency for the energy metric): of two blocks
    equally fast, the search keeps the one that costs less energy."""
    e, t = cost.energy_j, cost.latency_s
    return {"energy": (e, t), "latency": (t, e), "edp": (e * t, e)}[metric]


def search(d, hw: Arch, wl: Workload, order: str | None, metric: str, fixed: dict,
           traces=None):
    """Every design at its best, by one procedure: evaluate its dataflow at every
    combination of its free parameters (``d.space``; values in ``fixed`` are kept) and
    return the counts and attention cost that minimize ``metric``."""
    if metric not in METRICS:
        raise SpecError(f"metric {metric!r}; allowed: {', '.join(METRICS)}")
    space = dict(d.space(hw, wl)) if d.space else {}
    space.update({k: [v] for k, v in fixed.items() if k in space or d.space is None})
    names = list(space)
    gran = hw.var("rescale_granularity")

    def run(params, order):
        bc = int(params.get("block_kv", hw.var("block_kv")))
        rescale = _rescale_callback(order, wl, bc, gran, traces)
        counts = d.dataflow(hw, wl, rescale, **dict(d.options), **params)
        # stores sized by the blocks (near_memory OP-CIM staging) priced at this point's
        hw_p = staged_arch(hw, wl, counts.block_q, counts.block_kv)
        if hw_p is not hw:
            counts = d.dataflow(hw_p, wl, rescale, **dict(d.options), **params)
        return (counts, *_cost(hw_p, counts, wl.attention_macs()))

    # Rescales only add energy and time, so a candidate's cost without them bounds its
    # cost with them from below: evaluate the candidates in that order and stop once the
    # bound exceeds the best found (the same optimum, far fewer rescale profiles).
    bounded, errors = [], []
    for values in itertools.product(*(space[n] for n in names)):
        params = dict(zip(names, values))
        try:
            bounded.append((_score(run(params, None)[1], metric), params))
        except SpecError as e:
            if set(params) <= set(fixed):
                raise  # the caller's own values do not fit: say so
            errors.append(e)
    # No candidate fits: a value the caller fixed is to blame if an error names it.
    named = [k for k, p in FIXING.items() if p in fixed]
    for e in errors if not bounded else ():
        if any(k in str(e) for k in named):
            raise e
    best = None
    for bound, params in sorted(bounded, key=lambda x: x[0]):
        if best is not None and bound >= _score(best[1], metric):
            break
        res = run(params, order) if order is not None else run(params, None)
        if best is None or _score(res[1], metric) < _score(best[1], metric):
            best = res
    if best is None:
        raise SpecError(f"{d.name}: no block size fits the arrays and buffer; enlarge "
                        f"the macros (N_IP_MACROS, MACRO_ROWS x MACRO_COLS)")
    return best


def evaluate(design: str, workload: Workload | dict, *, softmax_order: str | None = "default",
             overrides: dict | None = None, arch: str | None = None, metric: str = "edp",
             preset: str | None = None, traces=None) -> Result:
    """Evaluate ``design`` on ``workload`` (a Workload or its fields as a dict).

    ``softmax_order``: KV-block order of the online softmax ("default" = the design's
    own; None = charge no rescale). ``overrides``: arch-spec Jinja variables, e.g.
    ``{"N_IP_MACROS": 16, "GLB_BYTES": 4 << 20}``; setting BLOCK_Q / BLOCK_KV fixes that
    block size, otherwise the design's free parameters are searched for the best
    ``metric`` (edp | energy | latency of the attention). ``arch``: another arch spec
    (file stem in arch_specs/ or a path) with the same component names, e.g. one that
    plugs in your own macro class. ``preset``: a named set-up (``presets.PRESETS``,
    e.g. "paper"), applied under ``overrides``. ``traces``: attention traces for
    the rescale counts (a ``.npz`` file, a folder or a list; None = the shipped default
    set).
    """
    from .presets import preset_overrides

    wl = workload if isinstance(workload, Workload) else Workload(**workload)
    d = get_design(design)
    user = overrides or {}
    ov = preset_overrides(preset, arch or d.arch) | user
    hw = load_arch(arch or d.arch, dict(d.overrides) | ov)
    order = d.softmax_order if softmax_order == "default" else softmax_order
    if d.softmax_order is None:
        order = None  # the design does not fuse online softmax
    check_size(d, hw, wl, order)
    fixed = {p: int(hw.var(p.lower())) for k, p in FIXING.items() if k in ov}
    counts, attn, breakdown, bounds = search(d, hw, wl, order, metric, fixed, traces)
    hw = staged_arch(hw, wl, counts.block_q, counts.block_kv)  # its staging at the chosen blocks
    # The projections and FFN run on the design's own chip: weight-stationary on its
    # IP-CIM macros (FusionCIM's OP-CIM macros idle), the whole chip leaking meanwhile.
    lin_on = hw.var("linear_macros")
    if lin_on not in ("ip", "all"):
        raise SpecError(f"LINEAR_MACROS = {lin_on!r}; allowed: ip (the IP-CIM macros), all "
                        f"(IP + OP-CIM macros as if all were IP-CIM)")
    macros = hw.var("n_ip_macros") + (hw.var("n_op_macros") if lin_on == "all" else 0)
    lin, _, _ = _cost(hw, weight_stationary_linear(hw, wl, macros=macros), wl.linear_macs())
    layer = _combine([(attn, 1), (lin, 1)])
    model_total = _combine([(layer, wl.cfg.layers)])
    params = {"block_q": counts.block_q, "block_kv": counts.block_kv, **counts.params}
    return Result(
        design=design, model=wl.model, phase=wl.phase, seq_len=wl.seq_len,
        batch=wl.batch, causal=wl.causal, softmax_order=order, block_q=counts.block_q,
        block_kv=counts.block_kv, params=params, metric=metric, preset=preset,
        attention=attn, layer=layer, model_total=model_total,
        energy_breakdown_j=breakdown, latency_bounds_s=bounds,
        action_counts=counts.by_key(),
        action_count_units={f"{c}.{a}[{t}]": count_unit(c, a) for c, a, t, _ in counts.entries},
        area_mm2={**{k: v.area * 1e6 for k, v in hw.components.items() if v.area},
                  "total": hw.area * 1e6},
        rescale_events=counts.rescale_events, notes=counts.notes,
    )
