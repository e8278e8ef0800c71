"""Counting online-softmax rescales for a KV-block visiting order.

Online (FlashAttention-style) softmax keeps, per query row, a running max ``m`` and sum
``l``. When a KV block raises ``m`` (``m_new > m_old``) the partial output row ``O`` and
``l`` must be multiplied by ``exp(m_old − m_new)``: a *rescale*. In FusionCIM the output
tile lives in the OP-CIM arrays, so a rescale is a read-modify-write of stored O rows.

Definitions used throughout this package
-----------------------------------------
* ``block_max[..., r, j]``: max over the keys of KV block ``j`` of the (pre-softmax)
  score of query row ``r``; ``-inf`` when every key of the block is masked for that row.
* **Row rescale**: visiting block ``j`` raises row ``r``'s running max *from a finite
  value* (strict ``>``; a tie does not rescale). A row's first visited block that has any
  unmasked key never counts, because the accumulators are still empty (``m = -inf``,
  ``l = 0``, ``O = 0``): "the first visited block never counts" generalised to rows for
  which the first visited block(s) are fully masked (possible when ``block_q > block_kv``
  or for out-of-order visits).
* **Tile rescale event**: the query tile of ``block_q`` rows shares one KV visiting order
  (all rows of the tile sit in the CIM arrays together and consume the same streamed K/V
  block). A tile event happens at block ``j`` when ANY row of the tile raises its max
  there. *Modelling choice*: the hardware rescales the whole O tile (all ``block_q`` rows)
  at once on an event, because the O tile is updated by one OP-CIM read-modify-write pass
  and the row-level ``exp(m_old − m_new)`` factors (1.0 for rows that did not change) are
  applied by the same pass. Per-row counts are reported as well, for a design that
  rescales only the rows whose max changed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .policies import TileContext, get_policy

__all__ = ["TileContext", "TraceCounts", "count_rescales", "count_trace", "row_argmax_block"]


def count_rescales(block_max: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Count rescales of one query tile (or a batch of tiles) for a visiting order.

    ``block_max``: ``[..., rows, n]`` block maxima (``-inf`` = masked block).
    ``order``: ``[n]`` or ``[..., n]`` (one order shared by all rows of the tile) or
    ``[..., rows, n]`` (one order per row: then the tile events are still returned, but
    they mean "blocks at which some row rescaled", i.e. per-row-order hardware).
    Each order may be shorter than ``n`` only if the omitted blocks are fully masked.

    Returns ``(row_counts [..., rows], tile_events [...])`` as int64 arrays.
    """
    bm = np.asarray(block_max)
    order = np.asarray(order, dtype=np.intp)
    if order.ndim == bm.ndim - 1:  # shared per tile: broadcast over rows
        order = order[..., None, :]
    order = np.broadcast_to(order, bm.shape[:-1] + order.shape[-1:])
    m = np.take_along_axis(bm, order, axis=-1)
    if m.shape[-1] < 2:
        z = np.zeros(m.shape[:-1], dtype=np.int64)
        return z, z[..., 0] if z.ndim else z
    run = np.maximum.accumulate(m, axis=-1)
    prev = run[..., :-1]
    raised = (m[..., 1:] > prev) & (prev > -np.inf)
    return raised.sum(-1, dtype=np.int64), raised.any(-2).sum(-1, dtype=np.int64)


def row_argmax_block(block_max: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Block index where each row's final max was found in the visiting order (the block
    that last raised it, i.e. the first block in visit order attaining the max); -1 for
    rows that saw no unmasked key. This is what a small per-row register can record."""
    bm = np.asarray(block_max)
    order = np.asarray(order, dtype=np.intp)
    if order.ndim == bm.ndim - 1:
        order = order[..., None, :]
    order = np.broadcast_to(order, bm.shape[:-1] + order.shape[-1:])
    m = np.take_along_axis(bm, order, axis=-1)
    mx = m.max(-1, keepdims=True)
    pos = np.argmax(m == mx, axis=-1)
    blk = np.take_along_axis(order, pos[..., None], axis=-1)[..., 0]
    return np.where(mx[..., 0] > -np.inf, blk, -1)


@dataclass
class TraceCounts:
    """Rescale counts for a whole attention (all tiles, batched over heads)."""

    row_counts: np.ndarray      # [batch, n_rows]
    tile_events: np.ndarray     # [batch, n_tiles]
    n_visible: np.ndarray       # [n_tiles]
    argmax_block: np.ndarray    # [batch, n_rows]: block holding each row's max (-1: none)
    row_pos: np.ndarray         # [n_rows] query positions
    orders: np.ndarray | None = None  # [batch, n_rows, n_blocks] if record_orders

    @property
    def row_rescales_per_row(self) -> float:
        return float(self.row_counts.mean())

    @property
    def tile_rescales_per_tile(self) -> float:
        return float(self.tile_events.mean())

    @property
    def n_kv_blocks_per_tile(self) -> float:
        return float(self.n_visible.mean())


def _visible_blocks(row_start: int, row_stop: int, n_blocks: int, block_kv: int,
                    causal: bool, kv_offset: int, window: int | None) -> tuple[int, int]:
    """``(first, n)``: the tile's visible KV blocks are ``first … first + n − 1`` (those
    holding a key that some row of the tile may attend to)."""
    if not causal:
        return 0, n_blocks
    stop = min(n_blocks, -(-(row_stop + kv_offset) // block_kv))
    first = max(0, row_start + kv_offset - window + 1) // block_kv if window else 0
    return first, stop - first


def count_trace(block_max: np.ndarray, block_q: int, block_kv: int, policy,
                causal: bool = True, row_pos: np.ndarray | None = None,
                tiles: np.ndarray | None = None, kv_offset: int = 0,
                validate: bool = True, record_orders: bool = False,
                window: int | None = None) -> TraceCounts:
    """Run a visiting-order policy over every query tile of ``block_max``.

    ``block_max``: ``[batch, n_rows, n_blocks]`` maxima over KV blocks of ``block_kv``
    keys (use :func:`fusioncim_plugin.softmax.traces.pool_blocks` to coarsen).
    ``policy``: a name in :data:`ORDER_POLICIES` or a policy callable.
    ``row_pos``: query position of each row (default ``arange(n_rows)``); rows are grouped
    into tiles by ``row_pos // block_q``, and ``tiles`` (default: all) picks the tiles to
    evaluate, in increasing order (a policy's history is the previous *evaluated* tile).
    ``kv_offset``: keys before query position 0 (decode/prefix), for causal visibility.
    ``window``: sliding-window attention (keys; query ``i`` sees keys ``i − window < j ≤
    i``, ``block_max`` must already be ``-inf`` outside it): KV blocks that no row of the
    tile can see are neither visited nor counted, as a sliding-window kernel skips them.
    The policy then sees the tile's visible blocks ``first … first + n_visible − 1`` as
    ``0 … n_visible − 1`` (block 0 is the oldest visible one; ``TileContext.first_block``
    gives the offset), and the tile's ``n_visible`` counts only those.
    ``record_orders``: also return each row's full visiting order (its tile's order, the
    per-row order for policies with ``row_order``, then the invisible blocks), e.g. to
    replay it with :func:`~fusioncim_plugin.softmax.exact.online_softmax`.
    """
    pol = get_policy(policy)
    bm = np.asarray(block_max)
    if bm.ndim == 2:
        bm = bm[None]
    batch, n_rows, n_blocks = bm.shape
    pos = np.arange(n_rows) if row_pos is None else np.asarray(row_pos)
    tile_of = pos // block_q
    all_tiles = np.unique(tile_of)
    tiles = all_tiles if tiles is None else np.asarray(tiles)
    row_counts = np.zeros((batch, n_rows), dtype=np.int64)
    argmax = np.full((batch, n_rows), -1, dtype=np.int64)
    events = np.zeros((batch, len(tiles)), dtype=np.int64)
    nvis = np.zeros(len(tiles), dtype=np.int64)
    prev_arg = prev_diag = prev_nv = None
    state: dict[str, Any] = {}
    rec = np.zeros((batch, n_rows, n_blocks), dtype=np.intp) if record_orders else None
    for k, t in enumerate(tiles):
        rows = np.nonzero(tile_of == t)[0]
        r0, r1 = int(pos[rows[0]]), int(pos[rows[-1]]) + 1
        lo, nv = _visible_blocks(r0, r1, n_blocks, block_kv, causal, kv_offset, window)
        # the KV block holding the tile's last query position (causal: the last visible)
        diag = min((r1 - 1 + kv_offset) // block_kv - lo, nv - 1)
        tbm = bm[:, rows, lo:lo + nv]
        # history in this tile's block numbering (blocks that slid out of the window: -1)
        p_arg = None if prev_arg is None else np.where(prev_arg >= lo, prev_arg - lo, -1)
        ctx = TileContext(q_tile=int(t), n_visible=nv, diag=diag, row_start=r0, row_stop=r1,
                          block_q=block_q, block_kv=block_kv, batch=batch, block_max=tbm,
                          prev_row_argmax=p_arg,
                          prev_diag=None if prev_diag is None else max(prev_diag - lo, 0),
                          prev_n_visible=None if prev_nv is None else prev_nv - lo,
                          state=state, first_block=lo)
        order = np.asarray(pol(int(t), nv, ctx), dtype=np.intp)
        if validate:
            _check_order(order, nv)
        if order.ndim == 1:
            order = np.broadcast_to(order, (batch, nv))
        rc, ev = count_rescales(tbm, order)
        row_order = getattr(pol, "row_order", None)
        ro = None
        if row_order is not None:  # per-row definition (e.g. oracle) for the row counts
            ro = np.asarray(row_order(int(t), nv, ctx))
            rc, _ = count_rescales(tbm, ro)
        if rec is not None:
            full = np.broadcast_to((ro if ro is not None else order[:, None, :]),
                                   (batch, len(rows), nv))
            rec[:, rows, :nv] = full + lo
            rec[:, rows, nv:] = np.r_[0:lo, lo + nv:n_blocks]
        row_counts[:, rows] = rc
        events[:, k] = ev
        arg = row_argmax_block(tbm, order)
        arg = np.where(arg >= 0, arg + lo, -1)   # absolute block numbers
        argmax[:, rows] = arg
        nvis[k] = nv
        prev_arg, prev_diag, prev_nv = arg, diag + lo, nv + lo
    sel = np.isin(tile_of, tiles)
    return TraceCounts(row_counts=row_counts[:, sel], tile_events=events, n_visible=nvis,
                       argmax_block=argmax[:, sel], row_pos=pos[sel],
                       orders=None if rec is None else rec[:, sel])


def _check_order(order: np.ndarray, n: int) -> None:
    if order.shape[-1] != n or not np.array_equal(np.sort(order, axis=-1),
                                                  np.broadcast_to(np.arange(n), order.shape)):
        raise ValueError(f"policy returned {order.shape[-1]} block indices that are not a "
                         f"permutation of range({n})")
