"""Dataflows: closed-form action counts of a design's mapping on one layer's attention.

What it models: the LoopTree mappings in ``mappings/`` (e.g. QO-stationary), evaluated in
closed form so a point costs microseconds, plus what AccelForge cannot express:
  * causal masking (prefill): a Q tile streams only the keys up to its last row; the
    arrays still compute every stored row against each streamed key, so the masked
    products inside the diagonal block are executed (``macs_executed``) but not useful;
  * the online-softmax rescale of the O tile held in OP-CIM (``rescale`` actions), with
    counts from :mod:`fusioncim_plugin.softmax`;
  * global-buffer capacity: what the design stages in the buffer (tiles, scores) comes
    first; of the K/V of a KV head, the keys that fit the rest stay (read from DRAM
    once), the others re-stream from DRAM for every Q tile that visits them;
  * decode split-K: the few query rows of a decode step are replicated across the
    arrays, each replica taking a share of the keys (merged in the softmax unit);
  * bit-serial timing: a broadcast input occupies a macro for its input_bits cycles
    however many of its rows are in use.
On non-causal prefill shapes the counts equal AccelForge's own model of the same LoopTree
(tests/test_accelforge_agreement.py, tests/test_baseline_mappings.py).

Inputs: an :class:`~fusioncim_plugin.arch.Arch`, a :class:`~fusioncim_plugin.workload.Workload`
and the dataflow options. Output: :class:`Counts` - a list of (component, action,
tensor, count) with count in AccelForge units (bits for memory actions, MACs or
elements for compute actions) - and the cycle/traffic figures the latency model needs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from .arch import Arch, SpecError
from .workload import Workload


@dataclass
class Counts:
    entries: list[tuple[str, str, str, float]] = field(default_factory=list)
    compute_cycles: float = 0.0  # pipeline cycles (clock of the arch)
    macs_executed: float = 0.0
    block_q: int = 0
    block_kv: int = 0
    params: dict = field(default_factory=dict)  # other chosen free parameters
    rescale_events: float = 0.0  # online-softmax rescale passes over O tiles
    # busy cycles per component where the closed form and AccelForge both define them
    # (OP-CIM: lanes' MACs, array port) - AccelForge's per-component latency x clock
    component_cycles: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, component: str, action: str, tensor: str, count: float) -> None:
        if count:
            self.entries.append((component, action, tensor, float(count)))

    def by_key(self) -> dict[str, float]:
        """{"Component.action[tensor]": count}, repeated entries summed."""
        out: dict[str, float] = {}
        for k, a, t, n in self.entries:
            out[f"{k}.{a}[{t}]"] = out.get(f"{k}.{a}[{t}]", 0.0) + n
        return out

    def total(self, component: str | None = None, action: str | None = None,
              tensor: str | None = None) -> float:
        return sum(c for (k, a, t, c) in self.entries
                   if (component is None or k == component)
                   and (action is None or a == action)
                   and (tensor is None or t == tensor))


# --------------------------------------------------------------------------------------
# Tiling helpers
# --------------------------------------------------------------------------------------
def q_tile_rows(arch: Arch, wl: Workload) -> int:
    """Q rows one tile holds: limited by IP-CIM capacity (INT8 Q rows of E values) and
    OP-CIM capacity (accumulator rows of F values)."""
    e = wl.cfg.head_dim
    cap_bits = arch.var("macro_rows") * arch.var("macro_cols")
    br_ip = arch.var("n_ip_macros") * cap_bits // (arch.var("data_bits") * e)
    br_op = arch.var("n_op_macros") * cap_bits // (arch.var("acc_bits") * e)
    br = int(min(br_ip, br_op))
    if br < 1:
        raise SpecError(
            f"head_dim {e} does not fit the arrays: one Q row needs {arch.var('data_bits') * e} "
            f"bits of IP-CIM (have {arch.var('n_ip_macros') * cap_bits}) and one O row "
            f"{arch.var('acc_bits') * e} bits of OP-CIM (have {arch.var('n_op_macros') * cap_bits}); "
            f"increase N_IP_MACROS / N_OP_MACROS or MACRO_ROWS x MACRO_COLS")
    return br


def tiles(wl: Workload, br: int) -> list[tuple[int, int, int]]:
    """(rows in tile, keys streamed, multiplicity) for one KV head's Q tiles.

    Prefill: the G query heads of a KV head are processed one after another, each in
    ceil(L / Br) tiles. Decode: the G query heads' single rows share one tile (GQA
    packing), so K/V stream once per KV head.
    """
    g, L = wl.group, wl.seq_len
    if wl.phase == "decode":
        if g > br:
            return [(br, L, g // br)] + ([(g % br, L, 1)] if g % br else [])
        return [(g, L, 1)]
    out = []
    for start in range(0, L, br):
        rows = min(br, L - start)
        keys = min(L, start + rows) if wl.causal else L
        out.append((rows, keys, g))
    return out


def q_o_io(c: Counts, wl: Workload, db: int) -> int:
    """Q in and O out once, through DRAM and the global buffer (every design does
    this; how often the buffer's Q is read differs). Returns the bits of Q (= of O)."""
    q_bits = wl.batch * wl.cfg.q_heads * wl.n_queries * wl.cfg.head_dim * db
    for comp, act in (("DRAM", "read"), ("GlobalBuffer", "write")):
        c.add(comp, act, "Q", q_bits)
    for comp, act in (("GlobalBuffer", "write"), ("GlobalBuffer", "read"), ("DRAM", "write")):
        c.add(comp, act, "O", q_bits)
    return q_bits


def normalize(c: Counts, wl: Workload) -> int:
    """Final online-softmax normalization in the softmax unit: 1/l per O row, O * (1/l)
    per element (every design; the unfused one folds 1/l into O the same way).
    Returns the number of O rows."""
    o_rows = wl.batch * wl.cfg.q_heads * wl.n_queries
    c.add("SoftmaxUnit", "reciprocal", "l", o_rows)
    c.add("SoftmaxUnit", "multiply", "O", o_rows * wl.cfg.head_dim)
    return o_rows


def kv_resident_keys(arch: Arch, wl: Workload, stage_bits: float) -> int:
    """Keys of one KV head whose K and V rows stay in the global buffer (read from DRAM
    once): the buffer minus what the design stages there (``stage_bits``: its Q/O tiles,
    score blocks, partial sums) holds K and V of the first keys; the rest stream from
    DRAM for every Q tile that visits them. The same rule for every design; partial, so
    energy and latency are continuous in the buffer size (no all-or-nothing cliff)."""
    share = max(0.0, arch.var("glb_bytes") * 8 - stage_bits)
    return int(min(wl.seq_len, share // (2 * wl.cfg.head_dim * arch.var("data_bits"))))


def kv_dram_keys(k_res: int, keys: np.ndarray, m: np.ndarray) -> float:
    """Keys of one KV head read from DRAM: the resident ones once, the others once per
    Q tile (``keys``: keys each tile visits, ``m``: how often the tile runs)."""
    return float(min(k_res, int(keys.max())) + (m * np.maximum(0, keys - k_res)).sum())


def residency_note(k_res: int, wl: Workload) -> str:
    if wl.phase == "decode":
        return "decode: K/V of each KV head stream from DRAM once per step"
    rest = ("; none re-stream from DRAM" if k_res >= wl.seq_len
            else ", the rest re-stream from DRAM per Q tile")
    return (f"K/V of a KV head: {k_res} of {wl.seq_len} keys "
            f"({100 * k_res / wl.seq_len:.0f} %) stay in the global buffer{rest}")


def tile_arrays(wl: Workload, br: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, keys, multiplicity) arrays of one KV head's Q tiles (see ``tiles``),
    built without a Python loop so a point costs the same at any length."""
    if wl.phase == "decode":
        ts = tiles(wl, br)
        return tuple(np.array([t[i] for t in ts], dtype=np.int64) for i in range(3))
    L = wl.seq_len
    start = np.arange(0, L, br, dtype=np.int64)
    rows = np.minimum(br, L - start)
    keys = np.minimum(L, start + rows) if wl.causal else np.full_like(rows, L)
    return rows, keys, np.full_like(rows, wl.group)


def per_rows(fn, rows: np.ndarray) -> np.ndarray:
    """fn(rows) -> (a, b) evaluated once per distinct tile height (at most two), spread
    over the tiles: arrays of a and of b."""
    vals = {int(r): fn(int(r)) for r in np.unique(rows)}
    return (np.array([vals[int(r)][0] for r in rows], dtype=float),
            np.array([vals[int(r)][1] for r in rows], dtype=float))


def _cycles(work, per_cycle: float):
    if per_cycle == math.inf:
        return 0 * work
    return np.ceil(work / per_cycle) if isinstance(work, np.ndarray) else math.ceil(work / per_cycle)


def per_cycle(arch: Arch, component: str, action: str) -> float:
    """Actions per clock cycle of a component (all instances)."""
    thr = arch.components[component].throughput.get(action, math.inf)
    return thr / arch.var("clock_hz")


def pow2_upto(lo: int, hi: int) -> list[int]:
    """lo, 2 lo, 4 lo, ... up to hi, plus hi itself: the block sizes a search tries."""
    out, v = [], lo
    while v < hi:
        out.append(v)
        v *= 2
    return out + [hi] if hi >= lo else [hi]


def lane_group(arch: Arch, f_dim: int, br: int) -> tuple[int, int]:
    """near_memory OP-CIM: (rows, columns) of the O tile that one pass of all the lanes
    (N_OP_MACROS x OPCIM_LANES, one O element each) covers. Columns first: a pass covers
    min(head_dim, lanes) columns, so a V row segment read once is broadcast to every
    macro, and as many rows as the remaining lanes allow (at least 1, at most the tile).
    The arch spec's LANE_ROWS / LANE_COLS are the same rule (tests/test_staging.py)."""
    n = int(arch.var("n_op_macros") * arch.var("opcim_lanes"))
    cols = min(f_dim, n)
    return max(1, min(br, n // cols)), cols


def staging_banks(arch: Arch, f_dim: int, br: int, bc: int) -> dict[str, tuple[int, int]]:
    """Block staging SRAMs: {component: (words per bank, bits per word)}. An S word is
    one key's S column of the Q tile (block-wise online softmax); near_memory OP-CIM: a
    P word is the lane_group rows' P values of one key, a V word the lane_group
    columns' V values of one key. A bank holds a KV block of them (two banks each:
    double-buffered). Only the components the arch has are used."""
    rows, cols = lane_group(arch, f_dim, br)
    db = arch.var("data_bits")
    return {"StagingS": (bc, br * db),  # one S column of the tile per key
            "StagingP": (bc * math.ceil(br / rows), rows * db),
            "StagingV": (bc * math.ceil(f_dim / cols), cols * db)}


def _staging_cost(tech_node: float, words: int, width: int, clock_hz: float):
    """One double-buffered StagingSRAM of ``words`` x ``width`` bits per bank, as a
    ComponentCost per bit. Remembered per geometry and version of its energy table (the
    block search prices the same banks for many candidates)."""
    from .tables import tables_dir

    t = tables_dir() / "staging_buffer.yaml"
    return _staging_cost_at(tech_node, words, width, clock_hz, str(t),
                            t.stat().st_mtime_ns if t.exists() else 0)


@functools.lru_cache(maxsize=1024)
def _staging_cost_at(tech_node, words, width, clock_hz, _table, _mtime):
    from .arch import ComponentCost
    from .components.staging_buffer import StagingSRAM

    sram = StagingSRAM(tech_node=tech_node, rows=words, width=width, banks=2,
                       frequency=clock_hz)
    rd, wr = sram.read(), sram.write()
    return ComponentCost(
        name="StagingSRAM", actions={"read": rd.energy / width, "write": wr.energy / width},
        throughput={"read": rd.throughput * width, "write": wr.throughput * width},
        area=sram.area, leak_power=sram.leak_power)


def staged_arch(arch: Arch, wl: Workload, br: int, bc: int) -> Arch:
    """``arch`` with its block staging stores (StagingS, StagingP, StagingV) sized for a Q
    tile of ``br`` rows and a KV block of ``bc`` keys of ``wl``: the same StagingSRAM
    model, with the attributes arch_specs/fusioncim.yaml gives it at BLOCK_Q=br,
    BLOCK_KV=bc, HEAD_DIM=head_dim (equal to AccelForge's instantiation:
    tests/test_staging.py). Other arches are returned unchanged."""
    if not {"StagingS", "StagingP"} & set(arch.components):
        return arch
    import dataclasses

    comps = dict(arch.components)
    for name, (words, width) in staging_banks(arch, wl.cfg.head_dim, br, bc).items():
        if name not in comps:
            continue
        try:
            cost = _staging_cost(arch.var("tech_node"), words, width, arch.var("clock_hz"))
        except ValueError as e:  # outside the CACTI queries: this block does not fit
            raise SpecError(f"BLOCK_Q={br}, BLOCK_KV={bc}: {e}") from None
        comps[name] = dataclasses.replace(cost, name=name, actions=dict(cost.actions),
                                          throughput=dict(cost.throughput))
    variables = arch.variables | {"block_q": br, "block_kv": bc}
    return dataclasses.replace(arch, variables=variables, components=comps)


def opcim_staging(c: Counts, arch: Arch, rows: np.ndarray, keys: np.ndarray, m: np.ndarray,
                  f_dim: int, share: np.ndarray | None = None) -> np.ndarray:
    """near_memory OP-CIM staging traffic of the P and V operands, per Q tile.

    Per key, the softmax unit writes the tile's P column (``rows`` values) into StagingP
    and the buffer writes the V row (``f_dim`` values) into StagingV: one write per
    staged element. The lanes then make ceil(rows / lane rows) x ceil(f_dim / lane
    columns) passes over the O tile; in each pass, per key, one P word (its rows' P
    values) and one V word (its columns' V values) are read and broadcast to the lanes
    that use them. So every P element is read once per column pass and every V element
    once per row pass (``share``: rows that share one V stream, decode replicas hold
    different keys; default all rows of the tile). Returns, per tile, the cycles the
    staging ports take: each store writes the next block into one bank while the lanes
    read the other, so the slower of its reads and writes."""
    db = arch.var("data_bits")
    br = int(rows.max())
    lrows, lcols = lane_group(arch, f_dim, br)
    share = rows if share is None else share
    col_passes = math.ceil(f_dim / lcols)
    row_passes = np.ceil(rows / np.minimum(lrows, share))
    traffic = {("StagingP", "write", "P"): rows * keys * db,
               ("StagingP", "read", "P"): col_passes * rows * keys * db,
               ("StagingV", "write", "V"): f_dim * keys * db,
               ("StagingV", "read", "V"): row_passes * f_dim * keys * db}
    cycles = {}
    for (comp, act, t), bits in traffic.items():
        c.add(comp, act, t, float((m * bits).sum()))
        rate = per_cycle(arch, comp, act)
        c.component_cycles[comp] = c.component_cycles.get(comp, 0.0) + float((m * bits).sum()) / rate
        cycles[comp] = np.maximum(cycles.get(comp, 0), _cycles(bits, rate))
    return np.maximum(cycles["StagingP"], cycles["StagingV"])


def opcim_pv(c: Counts, arch: Arch, elems: np.ndarray, keys: np.ndarray, m: np.ndarray,
             bc: int, f_dim: int | None = None, share: np.ndarray | None = None) -> np.ndarray:
    """OP-CIM accumulation of PV for O tiles, per the spec's OPCIM_CIRCUIT (one circuit
    sets counts and cycles; components/opcim_macro.py sets their energy and rates).

    Arrays over tiles: ``elems`` stored O elements, ``keys`` keys accumulated into them,
    ``m`` multiplicity; ``bc`` the KV block. An accumulator *update* reads the stored O
    and writes it back: once per product (in_array, rmw_per_product) or once per KV
    block of ``bc`` keys (near_memory, the block summed in a lane register). The first
    update of an element reads nothing (O starts at zero) and the tile's read-out reads
    each element once more, so reads = writes = updates x ACC_BITS - the counts
    AccelForge derives from the LoopTree.

    Adds the MACs and the array reads/writes to ``c`` and the busy cycles of the lanes
    (OPCIM_MAC) and of the array port (OPCIMArray) to ``c.component_cycles``. Returns,
    per tile, the cycles its accumulation occupies in the pipeline (lanes and port
    overlap: the shadow register lets a block's write-back run beside the next MACs);
    the read-out is not included (the caller adds it after each tile). near_memory also
    stages each block's P and V beside the lanes (``opcim_staging``; ``f_dim``: head
    dim, the O tile's columns, ``share`` as there), whose ports overlap the lanes too.
    """
    acc = arch.var("acc_bits")
    per_block = arch.var("opcim_circuit") == "near_memory"
    mac = per_cycle(arch, "OPCIM_MAC", "compute")
    rd, wr = per_cycle(arch, "OPCIMArray", "read"), per_cycle(arch, "OPCIMArray", "write")
    upd = elems * (np.ceil(keys / bc) if per_block else keys)
    macs = float((m * elems * keys).sum())
    updates = float((m * upd).sum())
    port = (upd - elems) * acc / rd + upd * acc / wr
    c.add("OPCIM_MAC", "compute", "O", macs)
    c.add("OPCIMArray", "read", "O", updates * acc)
    c.add("OPCIMArray", "write", "O", updates * acc)
    c.component_cycles["OPCIM_MAC"] = c.component_cycles.get("OPCIM_MAC", 0.0) + macs / mac
    c.component_cycles["OPCIMArray"] = (c.component_cycles.get("OPCIMArray", 0.0)
                                        + updates * acc * (1 / rd + 1 / wr))
    stage = np.maximum(keys * _cycles(elems, mac), port)
    if per_block:
        stage = np.maximum(stage, opcim_staging(c, arch, elems // f_dim, keys, m, f_dim, share))
    return stage


# --------------------------------------------------------------------------------------
# FusionCIM: hybrid IP/OP-CIM pipeline, QO-stationary, fused online softmax
# --------------------------------------------------------------------------------------
def qo_stationary(arch: Arch, wl: Workload, rescale=None, block_q: int | None = None,
                  block_kv: int | None = None) -> Counts:
    """Counts for mappings/qo_stationary.yaml (see its header for the loop nest).

    ``rescale(rows, keys) -> (passes, rows rescaled)`` gives one tile's online-softmax
    rescale passes over its O tile and the O rows they rescale (from the softmax order
    model, for KV blocks of ``block_kv`` keys); None means no rescale is charged.
    ``block_q``: Q rows per tile (default and maximum: the arrays' capacity).
    """
    c = Counts()
    cfg = wl.cfg
    E = F = cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    n_kv = wl.batch * cfg.kv_heads  # KV heads over the batch
    cap = q_tile_rows(arch, wl)
    br = int(block_q or cap)
    if br > cap:
        raise SpecError(f"BLOCK_Q={br} Q rows do not fit the arrays ({cap} rows); lower BLOCK_Q")
    rows, keys, m = tile_arrays(wl, br)
    c.block_q, c.block_kv = br, int(block_kv or arch.var("block_kv"))

    q_bits = q_o_io(c, wl, db)
    streamed_keys = float((keys * m).sum())  # keys streamed per KV head, all tiles
    rows_x_keys = float((rows * keys * m).sum())  # executed score elements per KV head
    # The buffer stages the Q tile in and the O tile out (double-buffered); K and V keep
    # the rest.
    k_res = kv_resident_keys(arch, wl, 2 * br * (E + F) * db)
    c.notes.append(residency_note(k_res, wl))

    # DRAM: Q in, O out once; K, V: the resident keys once, the others per Q tile.
    kv_dram = n_kv * kv_dram_keys(k_res, keys, m) * E * db
    c.add("DRAM", "read", "K", kv_dram)
    c.add("DRAM", "read", "V", kv_dram)
    # Global buffer: stage what DRAM delivers; K, V rows read once per streamed key.
    c.add("GlobalBuffer", "read", "Q", q_bits)
    c.add("GlobalBuffer", "write", "K", kv_dram)
    c.add("GlobalBuffer", "write", "V", kv_dram)
    c.add("GlobalBuffer", "read", "K", n_kv * streamed_keys * E * db)
    c.add("GlobalBuffer", "read", "V", n_kv * streamed_keys * E * db)
    # Decode (split-K, FlashDecoding-style): a tile of G rows would leave most of the
    # arrays idle, so the Q rows are replicated `rep` times across them and each replica
    # takes 1/rep of the keys; at the end the rep partial O rows are merged in the softmax
    # unit (scale by exp(m_i - m), add). Prefill: rep = 1.
    rep = max(1, br // int(rows[0])) if wl.phase == "decode" else 1
    # IP-CIM: Q tile written once per tile (per replica); QK^T MACs on every stored row
    # x streamed key.
    c.add("IPCIMArray", "write", "Q", rep * q_bits)
    c.add("IPCIM_MAC", "compute", "S", n_kv * rows_x_keys * E)
    # Softmax unit: every executed score element; final 1/l and O * (1/l) per row.
    c.add("SoftmaxUnit", "compute", "P", n_kv * rows_x_keys)
    # Block-wise online softmax: P of a KV block needs its row max, so the block's S
    # columns wait in StagingS (written as IP-CIM emits them, read once by the softmax
    # unit); its two banks take the next block's writes beside this block's reads.
    s_stage = 0
    if "StagingS" in arch.components:
        s_bits = rows * keys * db
        for act in ("write", "read"):
            rate = per_cycle(arch, "StagingS", act)
            c.add("StagingS", act, "S", n_kv * float((m * s_bits).sum()))
            c.component_cycles["StagingS"] = (c.component_cycles.get("StagingS", 0.0)
                                              + n_kv * float((m * s_bits).sum()) / rate)
            s_stage = np.maximum(s_stage, _cycles(s_bits, rate))
    o_rows = normalize(c, wl)
    # OP-CIM: PV accumulates into the O tile per OPCIM_CIRCUIT (opcim_pv); each replica
    # accumulates its share of the keys.
    op_stage = opcim_pv(c, arch, rep * rows * F, np.ceil(keys / rep), n_kv * m, c.block_kv,
                        F, share=rows)
    if rep > 1:
        c.add("SoftmaxUnit", "exp", "merge", rep * o_rows)
        c.add("SoftmaxUnit", "multiply", "merge", rep * o_rows * F)
        c.notes.append(f"decode: Q rows replicated {rep}x across the arrays, keys split "
                       f"among the replicas, partial O merged in the softmax unit")
    c.macs_executed = 2 * n_kv * rows_x_keys * E

    # Online-softmax rescale: the rescaled O rows are multiplied in place, and each one's
    # running sum l by exp(m_old - m_new); a pass costs the array's scale_bits cycles.
    if rescale is not None:
        passes, rescaled = per_rows(lambda r: rescale(r, None), rows)
    else:
        passes = rescaled = np.zeros(len(rows))
    c.rescale_events = float(n_kv * (m * passes).sum())
    ev_rows = float(n_kv * (m * rescaled).sum())
    c.add("OPCIMArray", "rescale", "O", ev_rows * F)
    c.add("SoftmaxUnit", "exp", "rescale", ev_rows)
    c.add("SoftmaxUnit", "multiply", "rescale", ev_rows)

    # Latency: the three stages run as a pipeline (the slowest sets the pace). A
    # broadcast K row occupies the whole IP-CIM array for its bit-serial duration however
    # many of its rows are filled, so QK^T costs the capacity's worth of MACs per key (a
    # smaller tile leaves rows idle); OP-CIM takes its accumulation cycles (opcim_pv).
    # Per tile add the Q write into IP-CIM, the O read-out and the rescale passes.
    ip = per_cycle(arch, "IPCIM_MAC", "compute")
    sm = per_cycle(arch, "SoftmaxUnit", "compute")
    wr = per_cycle(arch, "IPCIMArray", "write")
    rd = per_cycle(arch, "OPCIMArray", "read")
    rs = per_cycle(arch, "OPCIMArray", "rescale")
    tile = (np.maximum(np.maximum(np.ceil(keys / rep) * np.maximum(_cycles(cap * E, ip),
                                                                   _cycles(rows, sm)),
                                  op_stage), s_stage)
            + _cycles(rep * rows * E * db, wr) + _cycles(rep * rows * F * acc, rd)
            + passes * _cycles(br * F, rs) + (_cycles(rep * rows * F, sm) if rep > 1 else 0))
    c.compute_cycles = float(n_kv * (m * tile).sum())
    return c


def max_block_kv(arch: Arch, wl: Workload, br: int) -> int:
    """Largest KV block the QO-stationary dataflow can stage at a Q tile of ``br`` rows:
    the sequence; the global buffer must hold one block of K and V of a head; each
    staging bank (S, and with near_memory OP-CIM P and V) must lie within the CACTI
    queries of energy_tables/staging_buffer.yaml (StagingSRAM's range)."""
    e, db = wl.cfg.head_dim, arch.var("data_bits")
    hi = min(wl.seq_len, arch.var("glb_bytes") * 8 // (2 * e * db))
    staged = {n: b for n, b in staging_banks(arch, e, br, 1).items() if n in arch.components}
    if staged:
        from .tables import load_table

        max_words = max(r["rows"] for r in load_table("staging_buffer").cacti_queries)
        for words, _ in staged.values():
            hi = min(hi, max_words // words)
    return max(1, int(hi))


def qo_space(arch: Arch, wl: Workload) -> dict[str, list]:
    """Free parameters of the QO-stationary dataflow: the Q tile (up to the arrays'
    capacity) and the KV block (16, 32, 64, ... keys up to ``max_block_kv``, plus that
    limit), which sets how often O is rescaled and, for near-memory OP-CIM, written back
    and how large the staging stores are (their energy per bit, area and leakage grow
    with the block, so the search trades them off)."""
    bq = pow2_upto(16, q_tile_rows(arch, wl))
    return {"block_q": bq,
            "block_kv": sorted({b for q in bq for b in pow2_upto(16, max_block_kv(arch, wl, q))})}


# --------------------------------------------------------------------------------------
# The rest of the layer (Q/K/V/O projections, SwiGLU FFN): weight-stationary on the
# design's own IP-CIM macros (mappings/weight_stationary_linear.yaml)
# --------------------------------------------------------------------------------------
def _linear_tiling(arch: Arch, T: int, din: int, dout: int, r: int,
                   stacks: int | None = None, group: int = 0, macros: int | None = None) -> dict:
    """Counts and cycles of one weight matrix when ``r`` of the ``n_ip_macros`` macros
    are stacked along din (their column outputs summed by the inter-macro adder tree)
    and ``stacks`` such stacks (default and at most ``n_ip_macros // r``) span dout; the
    other macros idle. Bits for memory traffic, adds for the adder tree, clock cycles
    for ``cycles``.

    Two schedules (mappings/weight_stationary_linear.yaml, outer to inner):
      * ``group = 0`` (inputs resident): token blocks; the block's inputs stay in the
        buffer; column tiles of ``cols`` outputs, whose partial sums stay in the buffer
        across the row passes;
      * ``group = g`` (partial sums resident): groups of g column tiles; token blocks
        whose partial sums for the group's columns stay in the buffer; row passes, each
        bringing the block's input slice into the buffer (from DRAM once per group);
        the group's column tiles.
    Innermost: row passes of ``r x macro_rows`` inputs (the weight tile written into
    the arrays), the block's tokens one by one, each broadcast bit-serially
    (``data_bits`` cycles, however many rows and columns of the tile are filled). So the
    compute takes passes x column tiles x T x data_bits cycles, plus the weight writes:
    the macros in use take one ``macro_cols``-bit row per cycle each, in parallel, so a
    column tile's weights take the rows of its fullest macro (macro_rows per pass, fewer
    in a partial last pass). The weights are fetched once per token block."""
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    rows, mcols, glb = arch.var("macro_rows"), arch.var("macro_cols"), arch.var("glb_bytes") * 8
    n = macros or arch.var("n_ip_macros")  # macros that run it (LINEAR_MACROS)
    stacks = min(stacks or n, n // r)
    cols = stacks * mcols // db
    passes = math.ceil(din / (r * rows))  # row passes whose partial sums meet in the buffer
    col_tiles = math.ceil(dout / cols)
    # Token blocks: what the schedule keeps per token (inputs and one column tile's
    # partial sums, or an input slice and a column group's partial sums) beside the
    # weight tile on its way to the arrays must fit the buffer.
    w_tile = min(din, r * rows) * min(dout, cols) * db
    psum_bits = acc if passes > 1 else db
    if group:
        group = min(group, col_tiles)
        per_token = min(dout, group * cols) * psum_bits + min(din, r * rows) * db
        x_fills = math.ceil(col_tiles / group)  # the inputs come from DRAM once per group
    else:
        per_token = din * db + (min(dout, cols) * acc if passes > 1 else 0)
        x_fills = 1
    fit = (glb - w_tile) // per_token
    if fit < 1:
        raise SpecError(f"GLB_BYTES = {glb // 8}: the global buffer must hold one token's "
                        f"input (slice) and partial sums ({per_token // 8} B) beside a "
                        f"weight tile ({w_tile // 8} B) for the linear layers; set --set "
                        f"GLB_BYTES={(per_token + w_tile) // 8} or more")
    blocks = math.ceil(T / fit)
    w_bits = din * dout * db * blocks
    # rows one macro of the stack receives per column tile: a full pass fills all
    # macro_rows of each macro, the last pass min(macro_rows, its rows)
    write_rows = (passes - 1) * rows + min(rows, din - (passes - 1) * r * rows)
    return {"r": r, "stacks": stacks, "group": group, "col_tiles": col_tiles,
            "token_blocks": blocks, "passes": passes, "cols": cols,
            "psum": (passes - 1) * T * dout * acc,  # written, and read back, once each
            "x_fill": T * din * db * x_fills,  # DRAM -> buffer
            "x_reads": T * din * db * col_tiles,
            "adds": (min(r, math.ceil(din / rows)) - 1) * passes * T * dout,
            "w_bits": w_bits,
            "cycles": passes * col_tiles * T * db + blocks * col_tiles * write_rows}


_LINEAR_CHOICE: dict = {}  # (arch scalars, energies, shape) -> the chosen (r, stacks, group)


def weight_stationary_linear(arch: Arch, wl: Workload, weights: dict | None = None,
                             macros: int | None = None) -> Counts:
    """Linear layers on the design's own IP-CIM macros in the usual weight-stationary
    CIM mode (what runs where: README "Linear layers"; the whole chip leaks meanwhile).

    Per weight matrix (din x dout): the weights are written into the arrays tile by
    tile and every token streams through each tile. A macro holds ``macro_rows`` input
    rows x ``macro_cols / data_bits`` output columns; ``r`` macros stacked along din add
    their partial sums in an inter-macro adder tree (``IPCIM_MAC.reduce``), and
    ``stacks <= n_ip_macros // r`` such stacks span more output columns. The input
    activations are read from the buffer once per column tile. Across the
    ``ceil(din / (r * macro_rows))`` row passes the partial sums (ACC_BITS) go through the
    global buffer: written after every pass but the last, read back before every one but
    the first. The tokens run in blocks that fit the buffer (with their inputs resident,
    or with a group of column tiles' partial sums resident and the inputs re-read from
    DRAM per group: ``_linear_tiling``), and the weights are fetched (DRAM, buffer, array
    write) once per token block. ``(r, stacks, schedule)`` is the choice with the least
    energy for that matrix, the chip's leakage over its cycles included (fewer stacks:
    fewer partial sums per token, larger token blocks); no divisor restriction, so the
    cost does not jump at a prime macro count, and one more macro never costs more than
    its leakage. The outputs go to DRAM once.
    The Einsums are those of workloads/layer.yaml (Q, K_new, V_new, Z, A, U, Y);
    ``weights``: {name: (din, dout)} to cost only those (default: the layer's);
    ``macros``: how many macros run them (default ``n_ip_macros``; LINEAR_MACROS=all in
    ``evaluate``: FusionCIM's OP-CIM macros too, as if they were IP-CIM).
    """
    c = Counts()
    db = arch.var("data_bits")
    T = wl.tokens
    m = macros or arch.var("n_ip_macros")
    e_rd, e_wr = arch.energy("GlobalBuffer", "read"), arch.energy("GlobalBuffer", "write")
    e_add, e_dram = arch.energy("IPCIM_MAC", "reduce"), arch.energy("DRAM", "read")
    e_aw = arch.energy("IPCIMArray", "write")
    e_cycle = arch.leak_power / arch.var("clock_hz")

    def energy(t: dict) -> float:
        return (t["psum"] * (e_rd + e_wr) + t["x_reads"] * e_rd + t["adds"] * e_add
                + t["x_fill"] * (e_dram + e_wr)
                + t["w_bits"] * (e_dram + e_rd + e_wr + e_aw) + t["cycles"] * e_cycle)

    def candidates(dout: int):
        """Every (r, stacks); inputs resident, or partial sums of 1, 2, 4, ... column
        tiles (all of them last) resident."""
        for r in range(1, m + 1):
            for s in range(1, m // r + 1):
                yield r, s, 0
                g, tiles = 1, math.ceil(dout / (s * arch.var("macro_cols") // db))
                while g < tiles:
                    yield r, s, g
                    g *= 2
                yield r, s, tiles

    def best(din: int, dout: int) -> tuple:
        key = (m, arch.var("macro_rows"), arch.var("macro_cols"), db, arch.var("acc_bits"),
               arch.var("glb_bytes"), e_rd, e_wr, e_add, e_dram, e_aw, e_cycle, T, din, dout)
        if key not in _LINEAR_CHOICE:
            fits = []
            for r, s, g in candidates(dout):
                try:
                    fits.append(_linear_tiling(arch, T, din, dout, r, s, g, m))
                except SpecError:  # this tile does not fit the buffer; smaller ones may
                    pass
            if not fits:
                _linear_tiling(arch, T, din, dout, 1, 1, 1, m)  # the smallest tile: its error
            t = min(fits, key=energy)
            if len(_LINEAR_CHOICE) > 4096:
                _LINEAR_CHOICE.clear()
            _LINEAR_CHOICE[key] = (t["r"], t["stacks"], t["group"])
        return _LINEAR_CHOICE[key]

    for name, (din, dout) in (weights or wl.linear_weights()).items():
        t = _linear_tiling(arch, T, din, dout, *best(din, dout), m)
        c.notes.append(f"{name}: {t['r']} macros along the input rows x {t['stacks']} "
                       f"along the outputs, {t['token_blocks']} token block(s), "
                       + (f"partial sums of {t['group']} column tile(s) resident"
                          if t["group"] else "inputs resident"))
        c.params[name] = {k: t[k] for k in ("r", "stacks", "group", "cols", "passes",
                                            "col_tiles", "token_blocks")}
        w_bits = t["w_bits"]
        c.add("GlobalBuffer", "write", f"{name}_psum", t["psum"])
        c.add("GlobalBuffer", "read", f"{name}_psum", t["psum"])
        c.add("IPCIM_MAC", "reduce", f"{name}_psum", t["adds"])
        c.add("DRAM", "read", name, w_bits)
        c.add("DRAM", "read", "X", t["x_fill"])
        c.add("DRAM", "write", "Y", T * dout * db)
        c.add("GlobalBuffer", "write", name, w_bits)
        c.add("GlobalBuffer", "read", name, w_bits)
        c.add("GlobalBuffer", "write", "X", t["x_fill"])
        c.add("GlobalBuffer", "read", "X", t["x_reads"])
        c.add("GlobalBuffer", "write", "Y", T * dout * db)
        c.add("GlobalBuffer", "read", "Y", T * dout * db)
        c.add("IPCIMArray", "write", name, w_bits)
        c.add("IPCIM_MAC", "compute", name, T * din * dout)
        c.macs_executed += T * din * dout
        c.compute_cycles += t["cycles"]
    return c
