"""Dataflows of the prior-SOTA CIM designs and of FusionCIM's ablation steps.

Same substrate as FusionCIM (technology, macro budget, buffer, DRAM: one arch spec,
``arch_specs/ipcim_baseline.yaml`` or ``fusioncim.yaml``); only the mapping differs.
Counts use the conventions of :mod:`fusioncim_plugin.dataflow` (bits for memory actions,
MACs/elements for compute).

* ``unfused_kv_stationary`` - IP-CIM, unfused (TranCIM-style, Tu et al. JSSC 2023): per
  block of Q rows sized so its S and P fit the buffer, K tiles are written into the CIM
  arrays as the stationary operand (read transposed from the buffer) and the rows
  stream; S is written to the buffer; softmax is a separate two-pass sweep over S; then
  V tiles are written into the arrays and P streams, O partial sums accumulating in the
  buffer. S goes to DRAM only if one row's S does not fit.
* ``fused_kv_stationary`` - IP-CIM with fused online softmax but KV-stationary (a
  FlashAttention-style tiling on IP-CIM): S stays on chip, but every Q tile re-writes the
  K and V blocks it visits into the arrays, K is read transposed, and the O tile
  accumulates (and is rescaled) in the buffer.
* ``hybrid_k_stationary`` - ablation 1, FusionCIM's hybrid pipeline only: PV on OP-CIM
  with O accumulated in place, fused through the softmax unit, but QK^T keeps K as the
  IP-CIM stationary operand (re-written per Q tile, read transposed).
"""

from __future__ import annotations

import math

import numpy as np

from .arch import Arch, SpecError
from .dataflow import (Counts, _cycles, kv_resident, normalize, opcim_pv, per_cycle,
                       q_o_io, q_tile_rows)
from .workload import Workload


def _stationary_rows(arch: Arch, e: int, n_macros: int) -> int:
    cap = n_macros * arch.var("macro_rows") * arch.var("macro_cols") // (arch.var("data_bits") * e)
    if cap < 1:
        raise SpecError(f"head_dim {e} does not fit the IP-CIM arrays; increase the macro "
                        f"count or MACRO_ROWS x MACRO_COLS")
    return int(cap)


def _visible(wl: Workload, row0: int, rows: int) -> int:
    """Keys a Q tile starting at row0 visits (causal: up to its last row), in
    ceil(keys / Bc) KV blocks."""
    return wl.seq_len if (wl.phase == "decode" or not wl.causal) else min(wl.seq_len, row0 + rows)


def _q_tiles(wl: Workload, br: int) -> list[tuple[int, int, int]]:
    """(first row, rows, multiplicity) per KV head; decode packs the G heads' rows."""
    if wl.phase == "decode":
        return [(0, wl.group, 1)]
    return [(s, min(br, wl.seq_len - s), wl.group) for s in range(0, wl.seq_len, br)]


def unfused_row_block(arch: Arch, wl: Workload) -> tuple[int, bool]:
    """(query rows per row block, spilled): as many rows as let the block's S and P, Q
    rows and O partial sums fit the buffer beside K/V; one row (spilled to DRAM) if even
    one row does not fit."""
    E = F = wl.cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    kv_bits = wl.seq_len * E * db
    per_row = wl.seq_len * (acc + db) + E * db + F * acc  # S and P row, Q row, O row
    bq = (arch.var("glb_bytes") * 8 - (2 * kv_bits if kv_resident(arch, wl) else 0)) // per_row
    return int(max(1, bq)), bq < 1


# --------------------------------------------------------------------------------------
def unfused_kv_stationary(arch: Arch, wl: Workload, rescale=None) -> Counts:
    """Per Q row block (as many rows as let the block's S and P fit the buffer beside
    K/V): every visible K tile is written into IP-CIM and the block's rows stream
    through it; S goes to the buffer; two softmax passes (max; exp, sum -> P); every
    visible V tile is written into IP-CIM and P streams through it, O partial sums
    accumulating in the buffer. K and V are re-written into the arrays for every row
    block: the repeated KV loading of the unfused style."""
    c = Counts()
    cfg = wl.cfg
    E = F = cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    n_kv = wl.batch * cfg.kv_heads
    L = wl.seq_len
    causal = wl.is_causal_square
    bk = _stationary_rows(arch, E, arch.var("n_ip_macros"))  # K or V rows per array load
    kv_bits = L * E * db
    kv_fits = kv_resident(arch, wl)
    bq, spill = unfused_row_block(arch, wl)
    c.block_q = bq
    blocks = _q_tiles(wl, bq)
    c.notes.append(f"row blocks of {bq} query rows keep S and P in the buffer"
                   if not spill else "one query row's S and P exceed the buffer: spilled to DRAM")
    q_o_io(c, wl, db)

    elems = streamed_rows = kv_rows = 0  # per KV head
    for r0, rows, m in blocks:
        r1 = r0 + rows
        kmax = min(L, r1) if causal else L
        k0 = np.arange(0, kmax, bk)
        tile = np.minimum(bk, kmax - k0)
        srows = (r1 - np.maximum(r0, k0)) if causal else np.full_like(k0, rows)
        srows = np.clip(srows, 0, None)
        elems += m * int((tile * srows).sum())
        streamed_rows += m * int(srows.sum())
        kv_rows += m * kmax
    s_bits, p_bits = elems * acc, elems * db
    kv_dram = kv_bits if kv_fits else kv_rows * E * db
    for t in ("K", "V"):
        c.add("DRAM", "read", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "write", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "read", t, n_kv * kv_rows * E * db)
        c.add("IPCIMArray", "write", t, n_kv * kv_rows * E * db)
    # K is stored transposed in IP-CIM: one extra pass through the buffer's transpose stage.
    c.add("GlobalBuffer", "write", "K^T", n_kv * kv_rows * E * db)
    c.add("GlobalBuffer", "read", "K^T", n_kv * kv_rows * E * db)
    c.add("GlobalBuffer", "read", "Q", n_kv * streamed_rows * E * db)
    c.add("IPCIM_MAC", "compute", "S", n_kv * elems * E)
    c.add("GlobalBuffer", "write", "S", n_kv * s_bits)
    c.add("GlobalBuffer", "read", "S", 2 * n_kv * s_bits)
    c.add("GlobalBuffer", "write", "P", n_kv * p_bits)
    c.add("GlobalBuffer", "read", "P", n_kv * p_bits)
    if spill:
        c.add("DRAM", "write", "S", n_kv * s_bits)
        c.add("DRAM", "read", "S", 2 * n_kv * s_bits)
        c.add("DRAM", "write", "P", n_kv * p_bits)
        c.add("DRAM", "read", "P", n_kv * p_bits)
    c.add("SoftmaxUnit", "compute", "P", n_kv * elems)
    o_rows = normalize(c, wl)
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


# --------------------------------------------------------------------------------------
def _fused_blocked(arch: Arch, wl: Workload, rescale, o_in_opcim: bool,
                   n_k_macros: int) -> Counts:
    """Shared by fused_kv_stationary (O in the buffer) and hybrid_k_stationary (O in
    OP-CIM): Q tile of br rows; per KV block, the K block is written (transposed) into
    IP-CIM, the Q rows stream, S -> online softmax -> P; then P meets V."""
    c = Counts()
    cfg = wl.cfg
    E = F = cfg.head_dim
    db, acc = arch.var("data_bits"), arch.var("acc_bits")
    bc = int(arch.var("block_kv"))
    if bc > _stationary_rows(arch, E, n_k_macros):
        raise SpecError(f"BLOCK_KV={bc} keys do not fit {n_k_macros} IP-CIM macros "
                        f"({_stationary_rows(arch, E, n_k_macros)} key rows); lower BLOCK_KV")
    # Q tile: O in OP-CIM -> the OP-CIM capacity (as FusionCIM); O in the buffer -> the
    # spec's BLOCK_Q. Decode packs the G heads' rows (as every design).
    br = q_tile_rows(arch, wl) if o_in_opcim else int(arch.var("block_q"))
    c.block_q = br
    n_kv = wl.batch * cfg.kv_heads
    q_o_io(c, wl, db)
    q_tiles = _q_tiles(wl, br)

    keys_streamed = elems = q_reads = 0
    events = ev_rows = 0.0
    for row0, rows, m in q_tiles:
        keys = _visible(wl, row0, rows)
        keys_streamed += m * keys
        elems += m * rows * keys
        q_reads += m * rows * -(-keys // bc)  # the Q tile streams once per K block
        if rescale is not None:
            passes, rescaled = rescale(rows, keys)
            events += m * passes
            ev_rows += m * rescaled
    kv_bits = wl.seq_len * E * db
    kv_dram = kv_bits if kv_resident(arch, wl) else keys_streamed * E * db
    for t in ("K", "V"):
        c.add("DRAM", "read", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "write", t, n_kv * kv_dram)
        c.add("GlobalBuffer", "read", t, n_kv * keys_streamed * E * db)
    # K blocks are re-written into IP-CIM for every Q tile, read transposed (one extra
    # pass through the transpose stage of the buffer).
    c.add("IPCIMArray", "write", "K", n_kv * keys_streamed * E * db)
    c.add("GlobalBuffer", "write", "K^T", n_kv * keys_streamed * E * db)
    c.add("GlobalBuffer", "read", "K^T", n_kv * keys_streamed * E * db)
    c.add("GlobalBuffer", "read", "Q", n_kv * q_reads * E * db)
    c.add("IPCIM_MAC", "compute", "S", n_kv * elems * E)
    c.add("SoftmaxUnit", "compute", "P", n_kv * elems)
    o_rows = normalize(c, wl)
    c.rescale_events = n_kv * events
    c.add("SoftmaxUnit", "exp", "rescale", n_kv * ev_rows)
    c.add("SoftmaxUnit", "multiply", "rescale", n_kv * ev_rows)
    if o_in_opcim:
        # OP-CIM accumulation per OPCIM_CIRCUIT (dataflow.opcim_pv), per Q tile.
        op_stage = [opcim_pv(c, arch, [(rows * F, _visible(wl, r0, rows), n_kv * m)])
                    for r0, rows, m in q_tiles]
        c.add("OPCIMArray", "rescale", "O", n_kv * ev_rows * F)
    else:
        # V blocks re-written into IP-CIM per Q tile; O accumulates in the buffer
        # (read-modify-write per KV block) and is rescaled there (read, multiply, write).
        c.add("IPCIMArray", "write", "V", n_kv * keys_streamed * E * db)
        c.add("IPCIM_MAC", "compute", "O", n_kv * elems * F)
        o_visits = sum(m * rows * -(-_visible(wl, r0, rows) // bc) for r0, rows, m in q_tiles)
        c.add("GlobalBuffer", "write", "O_acc", n_kv * o_visits * F * acc)
        c.add("GlobalBuffer", "read", "O_acc", n_kv * o_visits * F * acc)
        c.add("GlobalBuffer", "read", "O_acc(rescale)", n_kv * ev_rows * F * acc)
        c.add("GlobalBuffer", "write", "O_acc(rescale)", n_kv * ev_rows * F * acc)
        c.add("SoftmaxUnit", "multiply", "rescale", n_kv * ev_rows * F)
    c.macs_executed = n_kv * elems * (E + F)

    # Latency, per Q tile and KV block of n keys: write the block into the macros it
    # occupies (in parallel; the array is being rewritten, so this does not overlap its
    # compute), then QK^T -> softmax -> PV as a pipeline whose slowest stage sets the
    # pace. A broadcast input occupies a macro for its whole bit-serial duration however
    # many of its rows are used: QK^T costs one macro-broadcast per Q row; PV costs one
    # per P row on V-stationary IP-CIM, or one OP-CIM rank-1 update per key.
    per_macro_ip = per_cycle(arch, "IPCIM_MAC", "compute") / arch.var("n_ip_macros")
    per_macro_wr = per_cycle(arch, "IPCIMArray", "write") / arch.var("n_ip_macros")
    kpm = _stationary_rows(arch, E, 1)  # key rows one macro holds
    broadcast = _cycles(kpm * E, per_macro_ip)  # one input vector through a macro
    sm = per_cycle(arch, "SoftmaxUnit", "compute")
    if o_in_opcim:
        rs = _cycles(br * F, per_cycle(arch, "OPCIMArray", "rescale"))
        rd = per_cycle(arch, "OPCIMArray", "read")
    cyc = 0.0
    def block(rows: int, n: int, pv_per_key: float) -> float:
        """Cycles of one KV block of n keys for a tile of rows Q rows."""
        write = _cycles(min(n, kpm) * E * db, per_macro_wr)
        # OP-CIM's share of the tile's accumulation cycles falls on each block in
        # proportion to its keys (opcim_pv).
        pv = pv_per_key * n if o_in_opcim else rows * broadcast
        return write + max(rows * broadcast, rows * _cycles(n, sm), pv)

    for i, (row0, rows, m) in enumerate(q_tiles):
        keys = _visible(wl, row0, rows)
        per_key = op_stage[i] / (n_kv * m) / keys if o_in_opcim else 0.0
        full, last = divmod(keys, bc)  # full blocks are alike: O(1) per tile
        tile = full * block(rows, bc, per_key) + (block(rows, last, per_key) if last else 0.0)
        if o_in_opcim:
            tile += _cycles(rows * F * acc, rd)  # read-out of the O tile
            if rescale is not None:
                tile += rescale(rows, keys)[0] * rs
        cyc += m * tile
    c.compute_cycles = n_kv * cyc
    return c


def fused_kv_stationary(arch: Arch, wl: Workload, rescale=None) -> Counts:
    return _fused_blocked(arch, wl, rescale, o_in_opcim=False,
                          n_k_macros=max(1, arch.var("n_ip_macros") // 2))


def hybrid_k_stationary(arch: Arch, wl: Workload, rescale=None) -> Counts:
    return _fused_blocked(arch, wl, rescale, o_in_opcim=True,
                          n_k_macros=arch.var("n_ip_macros"))
