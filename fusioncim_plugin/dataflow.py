"""Dataflows: closed-form action counts of a design's mapping on one layer's attention.

What it models: the LoopTree mappings in ``mappings/`` (e.g. QO-stationary), evaluated in
closed form so a point costs microseconds, plus what AccelForge cannot express:
  * causal masking (prefill): a Q tile streams only the keys up to its last row; the
    arrays still compute every stored row against each streamed key, so the masked
    products inside the diagonal block are executed (``macs_executed``) but not useful;
  * the online-softmax rescale of the O tile held in OP-CIM (``rescale`` actions), with
    counts from :mod:`fusioncim_plugin.softmax`;
  * global-buffer capacity: K/V of a KV head are fetched from DRAM once if they take at
    most half the buffer, otherwise re-streamed from DRAM for every Q tile;
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

import math
from dataclasses import dataclass, field

from .arch import Arch, SpecError
from .workload import Workload


@dataclass
class Counts:
    entries: list[tuple[str, str, str, float]] = field(default_factory=list)
    compute_cycles: float = 0.0  # pipeline cycles (clock of the arch)
    macs_executed: float = 0.0
    block_q: int = 0
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


def kv_resident(arch: Arch, wl: Workload) -> bool:
    """K and V of one KV head stay in the global buffer (read from DRAM once) when they
    take at most half of it; the other half stages Q/O tiles or S blocks. The same rule
    for every design."""
    return 2 * wl.seq_len * wl.cfg.head_dim * arch.var("data_bits") <= arch.var("glb_bytes") * 8 // 2


def _cycles(work: float, per_cycle: float) -> float:
    return math.ceil(work / per_cycle) if per_cycle != math.inf else 0


def per_cycle(arch: Arch, component: str, action: str) -> float:
    """Actions per clock cycle of a component (all instances)."""
    thr = arch.components[component].throughput.get(action, math.inf)
    return thr / arch.var("clock_hz")


def opcim_pv(c: Counts, arch: Arch, tiles_: list[tuple[float, float, float]]) -> float:
    """OP-CIM accumulation of PV for O tiles, per the spec's OPCIM_CIRCUIT (one circuit
    sets counts and cycles; components/opcim_macro.py sets their energy and rates).

    ``tiles_``: (stored O elements, keys accumulated into them, multiplicity). An
    accumulator *update* reads the stored O and writes it back: once per product
    (in_array, rmw_per_product) or once per KV block of BLOCK_KV keys (near_memory,
    the block summed in a lane register). The first update of an element reads nothing
    (O starts at zero) and the tile's read-out reads each element once more, so reads =
    writes = updates x ACC_BITS - the counts AccelForge derives from the LoopTree.

    Adds the MACs and the array reads/writes to ``c`` and the busy cycles of the lanes
    (OPCIM_MAC) and of the array port (OPCIMArray) to ``c.component_cycles``. Returns
    the cycles the tiles' accumulation occupies in the pipeline (lanes and port overlap:
    the shadow register lets a block's write-back run beside the next MACs); the
    read-out is not included (the caller adds it after each tile).
    """
    acc = arch.var("acc_bits")
    per_block = arch.var("opcim_circuit") == "near_memory"
    bc = arch.var("block_kv")
    mac = per_cycle(arch, "OPCIM_MAC", "compute")
    rd, wr = per_cycle(arch, "OPCIMArray", "read"), per_cycle(arch, "OPCIMArray", "write")
    macs = updates = elems_total = stage = 0.0
    for elems, keys, m in tiles_:
        upd = elems * (math.ceil(keys / bc) if per_block else keys)
        macs += m * elems * keys
        updates += m * upd
        elems_total += m * elems
        port = (upd - elems) * acc / rd + upd * acc / wr
        stage += m * max(keys * _cycles(elems, mac), port)
    c.add("OPCIM_MAC", "compute", "O", macs)
    c.add("OPCIMArray", "read", "O", updates * acc)
    c.add("OPCIMArray", "write", "O", updates * acc)
    c.component_cycles["OPCIM_MAC"] = c.component_cycles.get("OPCIM_MAC", 0.0) + macs / mac
    c.component_cycles["OPCIMArray"] = (c.component_cycles.get("OPCIMArray", 0.0)
                                        + updates * acc * (1 / rd + 1 / wr))
    return stage


# --------------------------------------------------------------------------------------
# FusionCIM: hybrid IP/OP-CIM pipeline, QO-stationary, fused online softmax
# --------------------------------------------------------------------------------------
def qo_stationary(arch: Arch, wl: Workload, rescale=None) -> Counts:
    """Counts for mappings/qo_stationary.yaml (see its header for the loop nest).

    ``rescale(rows, keys) -> (passes, rows rescaled)`` gives one tile's online-softmax
    rescale passes over its O tile and the O rows they rescale (from the softmax order
    model); None means no rescale is charged.
    """
    c = Counts()
    cfg = wl.cfg
    E = F = cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    n_kv = wl.batch * cfg.kv_heads  # KV heads over the batch
    br = q_tile_rows(arch, wl)
    ts = tiles(wl, br)
    c.block_q = br

    q_bits = q_o_io(c, wl, db)
    kv_bits_head = wl.seq_len * E * db  # K (or V) of one KV head
    streamed_keys = sum(k * m for _, k, m in ts)  # keys streamed per KV head, all tiles
    rows_x_keys = sum(r * k * m for r, k, m in ts)  # executed score elements per KV head
    kv_fits = kv_resident(arch, wl)
    if wl.phase == "decode":
        c.notes.append("decode: K/V of each KV head stream from DRAM once per step")
    else:
        c.notes.append(f"K/V of a KV head ({2 * kv_bits_head / 8 / 2**20:.2f} MiB) " + (
            "fit the global buffer: read from DRAM once" if kv_fits
            else "do not fit the global buffer: re-streamed from DRAM per Q tile"))

    # DRAM: Q in, O out once; K, V once per KV head if they fit, else per Q tile.
    kv_dram = n_kv * (kv_bits_head if kv_fits else streamed_keys * E * db)
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
    rep = max(1, br // ts[0][0]) if wl.phase == "decode" else 1
    # IP-CIM: Q tile written once per tile (per replica); QK^T MACs on every stored row
    # x streamed key.
    c.add("IPCIMArray", "write", "Q", rep * q_bits)
    c.add("IPCIM_MAC", "compute", "S", n_kv * rows_x_keys * E)
    # Softmax unit: every executed score element; final 1/l and O * (1/l) per row.
    c.add("SoftmaxUnit", "compute", "P", n_kv * rows_x_keys)
    o_rows = normalize(c, wl)
    # OP-CIM: PV accumulates into the O tile per OPCIM_CIRCUIT (opcim_pv); each replica
    # accumulates its share of the keys.
    op_stage = [opcim_pv(c, arch, [(rep * rows * F, math.ceil(keys / rep), n_kv * m)])
                for rows, keys, m in ts]
    if rep > 1:
        c.add("SoftmaxUnit", "exp", "merge", rep * o_rows)
        c.add("SoftmaxUnit", "multiply", "merge", rep * o_rows * F)
        c.notes.append(f"decode: Q rows replicated {rep}x across the arrays, keys split "
                       f"among the replicas, partial O merged in the softmax unit")
    c.macs_executed = 2 * n_kv * rows_x_keys * E

    # Online-softmax rescale: the rescaled O rows are multiplied in place, and each one's
    # running sum l by exp(m_old - m_new); a pass costs the array's scale_bits cycles.
    ev_rows = 0.0
    if rescale is not None:
        for rows, keys, m in ts:
            passes, rescaled = rescale(rows, keys)
            c.rescale_events += n_kv * m * passes
            ev_rows += n_kv * m * rescaled
    c.add("OPCIMArray", "rescale", "O", ev_rows * F)
    c.add("SoftmaxUnit", "exp", "rescale", ev_rows)
    c.add("SoftmaxUnit", "multiply", "rescale", ev_rows)

    # Latency: the three stages run as a pipeline (the slowest sets the pace). A
    # broadcast K row occupies the whole IP-CIM array for its bit-serial duration however
    # many of the br rows are filled, so QK^T costs br rows' worth of MACs per key; OP-CIM
    # takes its accumulation cycles (opcim_pv). Per tile add the Q write into IP-CIM,
    # the O read-out and the rescale passes.
    ip = per_cycle(arch, "IPCIM_MAC", "compute")
    sm = per_cycle(arch, "SoftmaxUnit", "compute")
    wr = per_cycle(arch, "IPCIMArray", "write")
    rd = per_cycle(arch, "OPCIMArray", "read")
    rs = per_cycle(arch, "OPCIMArray", "rescale")
    cyc = 0.0
    for (rows, keys, m), op in zip(ts, op_stage):
        ev = rescale(rows, keys)[0] if rescale else 0.0
        readout = _cycles(rep * rows * F * acc, rd)
        tile = (max(math.ceil(keys / rep) * max(_cycles(br * E, ip), _cycles(rows, sm)),
                    op / (n_kv * m))
                + _cycles(rep * rows * E * db, wr) + readout
                + ev * _cycles(br * F, rs) + (_cycles(rep * rows * F, sm) if rep > 1 else 0))
        cyc += m * tile
    c.compute_cycles = n_kv * cyc
    return c


# --------------------------------------------------------------------------------------
# The rest of the layer (Q/K/V/O projections, SwiGLU FFN), identical for every design
# --------------------------------------------------------------------------------------
def _linear_tiling(arch: Arch, T: int, din: int, dout: int, r: int) -> dict:
    """Counts of one weight matrix when ``r`` of the ``n_ip_macros`` macros are stacked
    along din (their column outputs summed by the inter-macro adder tree) and the other
    factor spans dout. Bits for memory traffic, adds for the adder tree."""
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    rows, glb = arch.var("macro_rows"), arch.var("glb_bytes") * 8
    cols = max(1, arch.var("n_ip_macros") // r * arch.var("macro_cols") // db)
    passes = math.ceil(din / (r * rows))  # row passes whose partial sums meet in the buffer
    col_tiles = math.ceil(dout / cols)
    # When a column tile's partial sums for all tokens exceed the buffer, the tokens run
    # in blocks that fit and the weights are fetched once per block.
    blocks = math.ceil(T * min(dout, cols) * acc / glb) if passes > 1 else 1
    return {"r": r, "col_tiles": col_tiles, "token_blocks": blocks,
            "psum": (passes - 1) * T * dout * acc,  # written, and read back, once each
            "x_reads": T * din * db * col_tiles,
            "adds": (min(r, math.ceil(din / rows)) - 1) * passes * T * dout,
            "w_bits": din * dout * db * blocks}


def weight_stationary_linear(arch: Arch, wl: Workload) -> Counts:
    """Linear layers on the IP-CIM macros in the usual weight-stationary CIM mode.

    Per weight matrix (din x dout): the weights are written into the arrays tile by
    tile and every token streams through each tile. A macro holds ``macro_rows`` input
    rows x ``macro_cols / data_bits`` output columns; ``r`` macros stacked along din add
    their partial sums in an inter-macro adder tree (``IPCIM_MAC.reduce``), the other
    ``n_ip_macros / r`` span more output columns. The input activations are read from
    the buffer once per column tile. Across the ``ceil(din / (r * macro_rows))`` row
    passes the partial sums (ACC_BITS) go through the global buffer: written after every
    pass but the last, read back before every one but the first. When a column tile's
    partial sums for all tokens exceed the buffer, the tokens run in blocks that fit and
    the weights are fetched (DRAM, buffer, array write) once per token block. ``r`` is
    the divisor of ``n_ip_macros`` with the least energy for that matrix (the same
    search for every design: this is their common substrate, only in the whole-layer
    figures). Activations come from / go to DRAM once. The Einsums are those of
    workloads/layer.yaml (Q, K_new, V_new, Z, A, U, Y).
    """
    c = Counts()
    db = arch.var("data_bits")
    T = wl.tokens
    m = arch.var("n_ip_macros")
    e_rd, e_wr = arch.energy("GlobalBuffer", "read"), arch.energy("GlobalBuffer", "write")
    e_add, e_dram = arch.energy("IPCIM_MAC", "reduce"), arch.energy("DRAM", "read")
    e_aw = arch.energy("IPCIMArray", "write")

    def energy(t: dict) -> float:
        return (t["psum"] * (e_rd + e_wr) + t["x_reads"] * e_rd + t["adds"] * e_add
                + t["w_bits"] * (e_dram + e_rd + e_wr + e_aw))

    for name, (din, dout) in wl.linear_weights().items():
        t = min((_linear_tiling(arch, T, din, dout, r) for r in range(1, m + 1) if m % r == 0),
                key=energy)
        c.notes.append(f"{name}: {t['r']} macros along the input rows, "
                       f"{t['token_blocks']} token block(s)")
        w_bits = t["w_bits"]
        c.add("GlobalBuffer", "write", f"{name}_psum", t["psum"])
        c.add("GlobalBuffer", "read", f"{name}_psum", t["psum"])
        c.add("IPCIM_MAC", "reduce", f"{name}_psum", t["adds"])
        c.add("DRAM", "read", name, w_bits)
        c.add("DRAM", "read", "X", T * din * db)
        c.add("DRAM", "write", "Y", T * dout * db)
        c.add("GlobalBuffer", "write", name, w_bits)
        c.add("GlobalBuffer", "read", name, w_bits)
        c.add("GlobalBuffer", "write", "X", T * din * db)
        c.add("GlobalBuffer", "read", "X", t["x_reads"])
        c.add("GlobalBuffer", "write", "Y", T * dout * db)
        c.add("GlobalBuffer", "read", "Y", T * dout * db)
        c.add("IPCIMArray", "write", name, w_bits)
        c.add("IPCIM_MAC", "compute", name, T * din * dout)
        c.macs_executed += T * din * dout
        c.compute_cycles += (_cycles(T * din * dout, per_cycle(arch, "IPCIM_MAC", "compute"))
                             + _cycles(w_bits, per_cycle(arch, "IPCIMArray", "write")))
    return c
