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

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
class TileContext:
    """What an order policy may look at for one query tile.

    Causal policies may use only the geometry fields and ``prev_*``/``state`` (information
    from already-processed tiles). ``block_max`` is the current tile's own scores: only
    an *oracle* may read it.
    """

    q_tile: int                 # index of the query tile (decode: index of the step)
    n_visible: int              # KV blocks with at least one unmasked key for the tile
    diag: int                   # KV block holding the tile's last query row (causal)
    row_start: int              # first query position of the tile
    row_stop: int               # one past the last query position
    block_q: int
    block_kv: int
    batch: int                  # number of independent heads/sequences batched together
    block_max: np.ndarray | None = None      # [batch, rows, n_visible]: oracle only
    prev_row_argmax: np.ndarray | None = None  # [batch, rows_prev], -1 = none
    prev_diag: int | None = None
    prev_n_visible: int | None = None
    state: dict[str, Any] = field(default_factory=dict)  # per-run scratch for policies


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


def _visible_blocks(row_stop: int, n_blocks: int, block_kv: int, causal: bool,
                    kv_offset: int) -> int:
    if not causal:
        return n_blocks
    return min(n_blocks, -(-(row_stop + kv_offset) // block_kv))


def count_trace(block_max: np.ndarray, block_q: int, block_kv: int, policy,
                causal: bool = True, row_pos: np.ndarray | None = None,
                tiles: np.ndarray | None = None, kv_offset: int = 0,
                validate: bool = True, record_orders: bool = False) -> TraceCounts:
    """Run a visiting-order policy over every query tile of ``block_max``.

    ``block_max``: ``[batch, n_rows, n_blocks]`` maxima over KV blocks of ``block_kv``
    keys (use :func:`fusioncim_plugin.softmax.traces.pool_blocks` to coarsen).
    ``policy``: a name in :data:`ORDER_POLICIES` or a policy callable.
    ``row_pos``: query position of each row (default ``arange(n_rows)``); rows are grouped
    into tiles by ``row_pos // block_q``, and ``tiles`` (default: all) picks the tiles to
    evaluate, in increasing order (a policy's history is the previous *evaluated* tile).
    ``kv_offset``: keys before query position 0 (decode/prefix), for causal visibility.
    ``record_orders``: also return each row's full visiting order (its tile's order, the
    per-row order for policies with ``row_order``, then the invisible blocks), e.g. to
    replay it with :func:`~fusioncim_plugin.softmax.exact.online_softmax`.
    """
    from .policies import get_policy

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
        nv = _visible_blocks(r1, n_blocks, block_kv, causal, kv_offset)
        # the KV block holding the tile's last query position (causal: the last visible)
        diag = min((r1 - 1 + kv_offset) // block_kv, nv - 1)
        tbm = bm[:, rows, :nv]
        ctx = TileContext(q_tile=int(t), n_visible=nv, diag=diag, row_start=r0, row_stop=r1,
                          block_q=block_q, block_kv=block_kv, batch=batch, block_max=tbm,
                          prev_row_argmax=prev_arg, prev_diag=prev_diag,
                          prev_n_visible=prev_nv, state=state)
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
            rec[:, rows, :nv] = full
            rec[:, rows, nv:] = np.arange(nv, n_blocks)
        row_counts[:, rows] = rc
        events[:, k] = ev
        arg = row_argmax_block(tbm, order)
        argmax[:, rows] = arg
        nvis[k] = nv
        prev_arg, prev_diag, prev_nv = arg, diag, nv
    sel = np.isin(tile_of, tiles)
    return TraceCounts(row_counts=row_counts[:, sel], tile_events=events, n_visible=nvis,
                       argmax_block=argmax[:, sel], row_pos=pos[sel],
                       orders=None if rec is None else rec[:, sel])


def _check_order(order: np.ndarray, n: int) -> None:
    if order.shape[-1] != n or not np.array_equal(np.sort(order, axis=-1),
                                                  np.broadcast_to(np.arange(n), order.shape)):
        raise ValueError(f"policy returned {order.shape[-1]} block indices that are not a "
                         f"permutation of range({n})")
