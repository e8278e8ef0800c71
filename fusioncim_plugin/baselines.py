"""Dataflows of the prior-SOTA CIM designs and of FusionCIM's ablation steps.

Same substrate as FusionCIM (technology, macro budget, buffer, DRAM: one arch spec,
``arch_specs/ipcim_baseline.yaml`` or ``fusioncim.yaml``); only the mapping differs.
Counts use the conventions of :mod:`fusioncim_plugin.dataflow` (bits for memory actions,
MACs/elements for compute). Every dataflow takes its free parameters (block sizes) as
arguments; ``*_space`` lists the values ``evaluation.evaluate`` searches.

* ``unfused_kv_stationary`` - IP-CIM, unfused (designs ``dcim``, ``trancim-like``): per
  row block of Q rows, K tiles are written into the CIM arrays as the stationary
  operand and the rows stream; S is written to the buffer (to DRAM for the part that
  does not fit); softmax is a separate two-pass sweep over S writing P over it; then V
  tiles are written into the arrays and P streams, O partial sums in the buffer.
* ``fused_kv_stationary`` - IP-CIM with fused online softmax but KV-stationary (a
  FlashAttention-style tiling on IP-CIM): S stays on chip, but every Q tile re-writes the
  K and V blocks it visits into the arrays and the O tile accumulates (and is rescaled)
  in the buffer.
* ``hybrid_k_stationary`` - ablation 1, FusionCIM's hybrid pipeline only: PV on OP-CIM
  with O accumulated in place, fused through the softmax unit, but QK^T keeps K as the
  IP-CIM stationary operand (re-written per Q tile).
K is stored transposed in a K-stationary array; how it gets there (``TRANSPOSE``) is
each design's own (designs.py).
"""

from __future__ import annotations

import numpy as np

from .arch import Arch, SpecError
from .dataflow import (Counts, _cycles, kv_dram_keys, kv_resident_keys, normalize,
                       opcim_pv, per_cycle, per_rows, pow2_upto, q_o_io, q_tile_rows,
                       residency_note, tile_arrays)
from .workload import Workload

# How K reaches a K-stationary IP-CIM array, where it is stored transposed (one key per
# column group): "buffer" = read from the buffer through a transpose stage (one extra
# write and read of every K row: an ordinary digital CIM macro has no transposed write
# port); "bitline" = written through the macro's bitline-transpose path (TranCIM, Tu et
# al., JSSC 2023), at the cost of an ordinary array write and no extra buffer pass.
TRANSPOSE = ("buffer", "bitline")


def _stationary_rows(arch: Arch, e: int, n_macros: int) -> int:
    cap = n_macros * arch.var("macro_rows") * arch.var("macro_cols") // (arch.var("data_bits") * e)
    if cap < 1:
        raise SpecError(f"head_dim {e} does not fit the IP-CIM arrays; increase the macro "
                        f"count or MACRO_ROWS x MACRO_COLS")
    return int(cap)


def _transpose(c: Counts, how: str, k_bits: float) -> None:
    if how not in TRANSPOSE:
        raise SpecError(f"K transpose {how!r}; allowed: {', '.join(TRANSPOSE)}")
    if how == "buffer":
        c.add("GlobalBuffer", "write", "K^T", k_bits)
        c.add("GlobalBuffer", "read", "K^T", k_bits)


# --------------------------------------------------------------------------------------
def unfused_rows_default(arch: Arch, wl: Workload) -> int:
    """The largest row block whose S (P written over it) fits the buffer beside its Q
    rows and O partial sums, for a full-length row (at least 1): the closed form's
    default when no block is given (the search in evaluate() chooses its own)."""
    E = wl.cfg.head_dim
    per_row = wl.seq_len * arch.var("acc_bits") + 2 * E * arch.var("data_bits") + E * arch.var("acc_bits")
    return int(max(1, min(wl.seq_len, arch.var("glb_bytes") * 8 // per_row)))


def _unfused_blocks(wl: Workload, bq: int, bk: int):
    """Per row block (vectorized over blocks, closed form over the K tiles of bk keys):
    rows, visible keys, rows streamed through the K tiles (a row streams through a tile
    if it sees any of its keys), executed score elements, and the multiplicity."""
    L = wl.seq_len
    if wl.phase == "decode":
        rows = np.array([wl.group], dtype=np.int64)
        kmax, m = np.array([L], dtype=np.int64), np.array([1], dtype=np.int64)
        causal = False
    else:
        r0 = np.arange(0, L, bq, dtype=np.int64)
        rows = np.minimum(bq, L - r0)
        causal = wl.causal
        kmax = r0 + rows if causal else np.full_like(rows, L)
        m = np.full_like(rows, wl.group)
    nch = -(-kmax // bk)  # K tiles a block visits
    if not causal:
        return rows, kmax, nch * rows, rows * kmax, m
    r1 = r0 + rows
    a = np.minimum(nch, r0 // bk + 1)  # tiles starting at or before the block's first row
    # tiles j >= a start inside the block: rows r1 - j bk see them
    srows = a * rows + (nch - a) * r1 - bk * (a + nch - 1) * (nch - a) // 2
    last = nch - 1
    s_last = np.where(last < a, rows, r1 - last * bk)
    t_last = kmax - last * bk
    elems = bk * srows - (bk - t_last) * s_last
    return rows, kmax, srows, elems, m


def unfused_kv_stationary(arch: Arch, wl: Workload, rescale=None, block_q: int | None = None,
                          transpose: str = "buffer") -> Counts:
    """Per row block of ``block_q`` query rows: every visible K tile is written into
    IP-CIM and the block's rows stream through it; S goes to the buffer; two softmax
    passes (max; exp and sum, writing P over S); every visible V tile is written into
    IP-CIM and P streams through it, O partial sums accumulating in the buffer. K and V
    are re-written into the arrays for every row block: the repeated KV loading of the
    unfused style. The buffer holds the block's Q rows and O partial sums, then as much
    of its S as fits (the rest goes to DRAM and back), then K/V (partial residency)."""
    c = Counts()
    cfg = wl.cfg
    E = F = cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    n_kv = wl.batch * cfg.kv_heads
    glb = arch.var("glb_bytes") * 8
    bk = _stationary_rows(arch, E, arch.var("n_ip_macros"))  # K or V rows per array load
    bq = int(block_q or unfused_rows_default(arch, wl))
    c.block_q, c.block_kv = bq, bk
    rows, kmax, srows, elems_b, m = _unfused_blocks(wl, bq, bk)
    stage = rows * (2 * E * db + F * acc)  # Q rows (double-buffered), O partial sums
    s_bits = elems_b * acc
    s_res = np.minimum(s_bits, np.maximum(0, glb - stage))
    spill = float((m * (s_bits - s_res)).sum())  # S bits per KV head that go to DRAM
    k_res = kv_resident_keys(arch, wl, float((stage + s_res).max()))
    elems = float((m * elems_b).sum())
    streamed_rows = float((m * srows).sum())
    kv_rows = float((m * kmax).sum())
    c.params["s_in_dram"] = round(spill / (elems * acc), 4) if elems else 0.0
    c.notes.append(residency_note(k_res, wl))
    c.notes.append(f"row blocks of {bq} query rows; {100 * c.params['s_in_dram']:.0f} % "
                   f"of S (P written over it) goes through DRAM")
    q_o_io(c, wl, db)

    s_total, p_total = elems * acc, elems * db
    kv_dram = kv_dram_keys(k_res, kmax, m) * E * db
    for t in ("K", "V"):
        c.add("DRAM", "read", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "write", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "read", t, n_kv * kv_rows * E * db)
        c.add("IPCIMArray", "write", t, n_kv * kv_rows * E * db)
    _transpose(c, transpose, n_kv * kv_rows * E * db)
    c.add("GlobalBuffer", "read", "Q", n_kv * streamed_rows * E * db)
    c.add("IPCIM_MAC", "compute", "S", n_kv * elems * E)
    # S written once, read by the max pass and the exp pass, which writes P (DATA_BITS)
    # over S; PV reads P once. The part of S beyond the buffer makes the same trips to
    # DRAM (through the buffer).
    c.add("GlobalBuffer", "write", "S", n_kv * s_total)
    c.add("GlobalBuffer", "read", "S", 2 * n_kv * s_total)
    c.add("GlobalBuffer", "write", "P", n_kv * p_total)
    c.add("GlobalBuffer", "read", "P", n_kv * p_total)
    c.add("DRAM", "write", "S", n_kv * spill)
    c.add("DRAM", "read", "S", 2 * n_kv * spill)
    c.add("DRAM", "write", "P", n_kv * spill * db / acc)
    c.add("DRAM", "read", "P", n_kv * spill * db / acc)
    c.add("SoftmaxUnit", "compute", "P", n_kv * elems)
    normalize(c, wl)
    c.add("IPCIM_MAC", "compute", "O", n_kv * elems * F)
    # O partial sums (acc bits): written after every V tile and read back once (by the
    # next V tile, or by the final 1/l normalization).
    c.add("GlobalBuffer", "write", "O_psum", n_kv * streamed_rows * F * acc)
    c.add("GlobalBuffer", "read", "O_psum", n_kv * streamed_rows * F * acc)
    c.macs_executed = n_kv * elems * (E + F)

    # Latency: QK^T, the two softmax passes and PV run one after another; every array
    # load stalls the macros it rewrites. Each streamed row costs one bit-serial
    # broadcast through the macros (in parallel), however full the tile is.
    per_macro_ip = per_cycle(arch, "IPCIM_MAC", "compute") / arch.var("n_ip_macros")
    broadcast = _cycles(_stationary_rows(arch, E, 1) * E, per_macro_ip)
    sm = per_cycle(arch, "SoftmaxUnit", "compute")
    wr = per_cycle(arch, "IPCIMArray", "write")
    c.compute_cycles = n_kv * (2 * streamed_rows * broadcast + 2 * _cycles(elems, sm)
                               + _cycles(2 * kv_rows * E * db, wr))
    return c


def unfused_space(arch: Arch, wl: Workload) -> dict[str, list]:
    """Row blocks from one query row to the whole sequence (powers of two) and the
    largest block whose S fits the buffer: the search trades S spilled to DRAM against
    K/V re-written per block."""
    if wl.phase == "decode":
        return {"block_q": [wl.group]}  # one block: the G heads' rows
    return {"block_q": sorted(set(pow2_upto(1, wl.seq_len)) | {unfused_rows_default(arch, wl)})}


def trancim_space(arch: Arch, wl: Workload) -> dict[str, list]:
    """TranCIM-like: the Q tile's S stays on chip (its softmax reads it from the buffer),
    so the row blocks go up to the largest whose S fits."""
    if wl.phase == "decode":
        return {"block_q": [wl.group]}
    top = unfused_rows_default(arch, wl)
    return {"block_q": sorted(set(pow2_upto(1, top)))}


# --------------------------------------------------------------------------------------
def _fused_blocked(arch: Arch, wl: Workload, rescale, o_in_opcim: bool, n_k_macros: int,
                   block_q: int | None, block_kv: int | None, transpose: str) -> Counts:
    """Shared by fused_kv_stationary (O in the buffer) and hybrid_k_stationary (O in
    OP-CIM): Q tile of br rows; per KV block, the K block is written (transposed) into
    IP-CIM, the Q rows stream, S -> online softmax -> P; then P meets V. Vectorized over
    Q tiles, closed form over the KV blocks of a tile."""
    c = Counts()
    cfg = wl.cfg
    E = F = cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    kpm = _stationary_rows(arch, E, 1)  # key rows one macro holds
    bc = int(block_kv or arch.var("block_kv"))
    if bc > _stationary_rows(arch, E, n_k_macros):
        raise SpecError(f"BLOCK_KV={bc} keys do not fit {n_k_macros} IP-CIM macros "
                        f"({_stationary_rows(arch, E, n_k_macros)} key rows); lower BLOCK_KV")
    # Q tile: O in OP-CIM -> at most the OP-CIM capacity; O in the buffer -> any size the
    # buffer stages. Decode packs the G heads' rows (as every design).
    cap = q_tile_rows(arch, wl) if o_in_opcim else None
    br = int(block_q or (cap if o_in_opcim else arch.var("block_q")))
    if cap is not None and br > cap:
        raise SpecError(f"BLOCK_Q={br} O rows do not fit the OP-CIM arrays ({cap}); lower BLOCK_Q")
    c.block_q, c.block_kv = br, bc
    n_kv = wl.batch * cfg.kv_heads
    q_o_io(c, wl, db)
    rows, keys, m = tile_arrays(wl, br)
    nb = -(-keys // bc)  # KV blocks per tile
    n_last = keys - (nb - 1) * bc
    keys_streamed = float((m * keys).sum())
    elems = float((m * rows * keys).sum())
    q_reads = float((m * rows * nb).sum())  # the Q tile streams once per K block
    if rescale is not None:
        passes, rescaled = per_rows(lambda r: rescale(r, None), rows)
    else:
        passes = rescaled = np.zeros(len(rows))
    # Buffer staging: the Q tile (double-buffered), and the O tile: its accumulator when
    # O stays in the buffer, else the O rows out (double-buffered).
    stage = 2 * br * E * db + (2 * br * F * acc if not o_in_opcim else 2 * br * F * db)
    k_res = kv_resident_keys(arch, wl, stage)
    c.notes.append(residency_note(k_res, wl))
    kv_dram = kv_dram_keys(k_res, keys, m) * E * db
    for t in ("K", "V"):
        c.add("DRAM", "read", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "write", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "read", t, n_kv * keys_streamed * E * db)
    # K blocks are re-written into IP-CIM for every Q tile (stored transposed).
    c.add("IPCIMArray", "write", "K", n_kv * keys_streamed * E * db)
    _transpose(c, transpose, n_kv * keys_streamed * E * db)
    c.add("GlobalBuffer", "read", "Q", n_kv * q_reads * E * db)
    c.add("IPCIM_MAC", "compute", "S", n_kv * elems * E)
    c.add("SoftmaxUnit", "compute", "P", n_kv * elems)
    normalize(c, wl)
    c.rescale_events = float(n_kv * (m * passes).sum())
    ev_rows = float(n_kv * (m * rescaled).sum())
    c.add("SoftmaxUnit", "exp", "rescale", ev_rows)
    c.add("SoftmaxUnit", "multiply", "rescale", ev_rows)
    if o_in_opcim:
        # OP-CIM accumulation per OPCIM_CIRCUIT (dataflow.opcim_pv), per Q tile.
        op_stage = opcim_pv(c, arch, rows * F, keys, n_kv * m, bc, F)
        c.add("OPCIMArray", "rescale", "O", ev_rows * F)
    else:
        # V blocks re-written into IP-CIM per Q tile; O accumulates in the buffer
        # (read-modify-write per KV block) and is rescaled there (read, multiply, write).
        c.add("IPCIMArray", "write", "V", n_kv * keys_streamed * E * db)
        c.add("IPCIM_MAC", "compute", "O", n_kv * elems * F)
        c.add("GlobalBuffer", "write", "O_acc", n_kv * q_reads * F * acc)
        c.add("GlobalBuffer", "read", "O_acc", n_kv * q_reads * F * acc)
        c.add("GlobalBuffer", "read", "O_acc(rescale)", ev_rows * F * acc)
        c.add("GlobalBuffer", "write", "O_acc(rescale)", ev_rows * F * acc)
        c.add("SoftmaxUnit", "multiply", "rescale", ev_rows * F)
    c.macs_executed = n_kv * elems * (E + F)

    # Latency, per Q tile and KV block of n keys: write the block into the macros it
    # occupies (in parallel; the array is being rewritten, so this does not overlap its
    # compute), then QK^T -> softmax -> PV as a pipeline whose slowest stage sets the
    # pace. A broadcast input occupies a macro for its whole bit-serial duration however
    # many of its rows are used: QK^T costs one macro-broadcast per Q row; PV costs one
    # per P row on V-stationary IP-CIM, or one OP-CIM rank-1 update per key.
    per_macro_ip = per_cycle(arch, "IPCIM_MAC", "compute") / arch.var("n_ip_macros")
    per_macro_wr = per_cycle(arch, "IPCIMArray", "write") / arch.var("n_ip_macros")
    broadcast = _cycles(kpm * E, per_macro_ip)  # one input vector through a macro
    sm = per_cycle(arch, "SoftmaxUnit", "compute")
    rs = _cycles(br * F, per_cycle(arch, "OPCIMArray", "rescale")) if o_in_opcim else 0
    # OP-CIM's share of the tile's accumulation cycles falls on each block in proportion
    # to its keys (opcim_pv).
    per_key = op_stage / keys if o_in_opcim else 0

    def block(n):  # cycles of one KV block of n keys (n: array over tiles)
        write = _cycles(np.minimum(n, kpm) * E * db, per_macro_wr)
        pv = per_key * n if o_in_opcim else rows * broadcast
        return write + np.maximum(np.maximum(rows * broadcast, rows * _cycles(n, sm)), pv)

    tile = (nb - 1) * block(np.full_like(n_last, bc)) + block(n_last) + passes * rs
    if o_in_opcim:
        tile = tile + _cycles(rows * F * acc, per_cycle(arch, "OPCIMArray", "read"))  # read-out
    c.compute_cycles = float(n_kv * (m * tile).sum())
    return c


def _kv_space(arch: Arch, wl: Workload, n_k_macros: int, q_rows: list[int]) -> dict[str, list]:
    kcap = _stationary_rows(arch, wl.cfg.head_dim, n_k_macros)
    return {"block_q": q_rows,
            "block_kv": [b for b in sorted(set(pow2_upto(16, kcap))) if b % 16 == 0 and b <= kcap]
            or [kcap]}


def fused_kv_stationary(arch: Arch, wl: Workload, rescale=None, block_q: int | None = None,
                        block_kv: int | None = None, transpose: str = "bitline") -> Counts:
    return _fused_blocked(arch, wl, rescale, False, max(1, arch.var("n_ip_macros") // 2),
                          block_q, block_kv, transpose)


def fused_space(arch: Arch, wl: Workload) -> dict[str, list]:
    """Q tiles of 16, 32, 64, ... rows up to what a quarter of the buffer stages; KV
    blocks of 16, 32, 64, ... keys up to (and including) the K half of the macros."""
    E = wl.cfg.head_dim
    per_row = 2 * E * arch.var("data_bits") + 2 * E * arch.var("acc_bits")
    hi = max(16, min(wl.seq_len, arch.var("glb_bytes") * 8 // 4 // per_row))
    return _kv_space(arch, wl, max(1, arch.var("n_ip_macros") // 2),
                     [b for b in pow2_upto(16, hi) if b & (b - 1) == 0] or [16])


def hybrid_k_stationary(arch: Arch, wl: Workload, rescale=None, block_q: int | None = None,
                        block_kv: int | None = None, transpose: str = "bitline") -> Counts:
    return _fused_blocked(arch, wl, rescale, True, arch.var("n_ip_macros"),
                          block_q, block_kv, transpose)


def hybrid_space(arch: Arch, wl: Workload) -> dict[str, list]:
    return _kv_space(arch, wl, arch.var("n_ip_macros"), pow2_upto(16, q_tile_rows(arch, wl)))
