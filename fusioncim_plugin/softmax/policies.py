"""KV-block visiting-order policies (pluggable).

A policy is a callable ``policy(q_tile, n_visible, ctx) -> order`` where ``order`` is a
permutation of ``range(n_visible)``: either one list/1-D array shared by the whole batch,
or a ``[ctx.batch, n_visible]`` array (one order per head/sequence, e.g. when it depends
on history). ``ctx`` is a :class:`TileContext` (defined here; :mod:`.rescale` imports this module,
never the other way round).
A causal (realisable) policy may only use the tile geometry and what earlier tiles left
(``ctx.prev_*``, ``ctx.state``); only oracles read ``ctx.block_max``.

Register your own with::

    from fusioncim_plugin.softmax import register_policy

    @register_policy("reverse")
    def reverse(q_tile, n_visible, ctx):
        return list(range(n_visible - 1, -1, -1))

A policy may carry a ``row_order(q_tile, n_visible, ctx) -> [batch, rows, n_visible]``
attribute (``register_policy(name, row_order=fn)``): per-row counts then use it, while
tile events use the shared order (see ``oracle``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


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
    first_block: int = 0        # absolute index of visible block 0 (sliding window)



Policy = Callable[[int, int, TileContext], "np.ndarray | list[int]"]
ORDER_POLICIES: dict[str, Policy] = {}


def register_policy(name: str, row_order: Callable | None = None,
                    uses_history: bool = True):
    """Decorator registering ``fn`` as order policy ``name`` in :data:`ORDER_POLICIES`.

    ``uses_history=False`` promises that the order does not depend on earlier tiles
    (lets the synthetic sampler skip generating history tiles)."""

    def deco(fn):
        if row_order is not None:
            fn.row_order = row_order
        fn.uses_history = uses_history
        ORDER_POLICIES[name] = fn
        return fn

    return deco


def get_policy(policy) -> Policy:
    if callable(policy):
        return policy
    try:
        return ORDER_POLICIES[policy]
    except KeyError:
        raise ValueError(f"unknown order {policy!r}; known orders: "
                         f"{', '.join(sorted(ORDER_POLICIES))}") from None


def _front(first: list[int], n: int) -> np.ndarray:
    """``first`` (deduplicated, in range) followed by the remaining blocks in natural order."""
    seen: list[int] = []
    for b in first:
        if 0 <= b < n and b not in seen:
            seen.append(b)
    rest = np.setdiff1d(np.arange(n), seen, assume_unique=True)
    return np.concatenate([np.asarray(seen, dtype=np.intp), rest])


@register_policy("natural", uses_history=False)
def natural(q_tile: int, n_visible: int, ctx: TileContext):
    """Blocks 0, 1, …, n_visible−1 (plain FlashAttention)."""
    return np.arange(n_visible)


@register_policy("sink_local", uses_history=False)
def sink_local(q_tile: int, n_visible: int, ctx: TileContext):
    """Sink block 0, then the tile's diagonal block, then the rest in natural order."""
    return _front([0, ctx.diag], n_visible)


@register_policy("diagonal_first", uses_history=False)
def diagonal_first(q_tile: int, n_visible: int, ctx: TileContext):
    """The paper's order (Xuan et al., arXiv 2604.25317 (2026)): the tile's diagonal block
    first, then every other block in natural order (so the sink block 0 comes second).
    The true row max is still tracked and every visible block is visited (no skipping),
    so the result is exact; only the number of rescales changes."""
    return _front([ctx.diag, 0], n_visible)


def _adaptive_first(ctx: TileContext) -> np.ndarray:
    """Per batch entry: first block to visit, from where the previous tile's rows found
    their max. Classes: 'sink' (block 0), 'diag' (the previous tile's diagonal block →
    this tile's diagonal), or an absolute block index. The most frequent class wins
    (ties: sink > diag > lowest block index). No history → sink."""
    first = np.zeros(ctx.batch, dtype=np.intp)
    if ctx.prev_row_argmax is None:
        return first
    n_prev = max(ctx.prev_n_visible or 1, 1)
    a = np.asarray(ctx.prev_row_argmax)
    b_idx = np.broadcast_to(np.arange(ctx.batch)[:, None], a.shape)
    ok = a >= 0
    cnt = np.bincount((b_idx[ok] * n_prev + a[ok]).ravel(),
                      minlength=ctx.batch * n_prev).reshape(ctx.batch, n_prev)
    n_sink = cnt[:, 0].copy()
    pd = ctx.prev_diag if ctx.prev_diag is not None else 0
    n_diag = cnt[:, pd].copy() if pd != 0 else np.zeros(ctx.batch, dtype=cnt.dtype)
    other = cnt.copy()
    other[:, 0] = 0
    other[:, pd] = 0
    blk = np.argmax(other, axis=1)
    n_other = other[np.arange(ctx.batch), blk]
    best = np.maximum(np.maximum(n_sink, n_diag), n_other)
    first = np.where(n_sink == best, 0, np.where(n_diag == best, ctx.diag, blk))
    return first.astype(np.intp)


def _priority_order(firsts: list[np.ndarray], n: int) -> np.ndarray:
    """[batch, n] orders: the blocks in ``firsts`` (each a [batch] array, in priority
    order, duplicates / out-of-range ignored), then the rest in natural order."""
    batch = len(firsts[0])
    key = np.full((batch, n), len(firsts), dtype=np.intp)
    for p in range(len(firsts) - 1, -1, -1):
        f = np.asarray(firsts[p])
        ok = (f >= 0) & (f < n)
        key[np.nonzero(ok)[0], f[ok]] = p
    return np.argsort(key, axis=1, kind="stable")


@register_policy("adaptive")
def adaptive(q_tile: int, n_visible: int, ctx: TileContext):
    """First block = where the previous query tile's row maxima landed most often (sink,
    diagonal, or a fixed block index), then sink and diagonal (if not yet visited), then
    the rest in natural order.

    Realisable: after a tile finishes, each row knows which block last raised its max
    (a ``log2(n_blocks)``-bit register per row); a small histogram of the ``block_q``
    register values gives the choice for the next tile. Causal: only the previous tile's
    outcome is used. The first tile (no history) uses ``sink_local``."""
    first = _adaptive_first(ctx)
    z = np.zeros_like(first)
    return _priority_order([first, z, z + ctx.diag], n_visible)


def _oracle_row_order(q_tile: int, n_visible: int, ctx: TileContext) -> np.ndarray:
    """Per-row oracle: each row visits the block holding its own max first."""
    bm = ctx.block_max
    am = np.argmax(bm, axis=-1)  # [batch, rows]
    idx = np.broadcast_to(np.arange(n_visible), bm.shape).copy()
    # swap the argmax block to the front, keep the rest in natural order
    rows = np.arange(n_visible)
    order = np.where(rows[None, None, :] < am[..., None] + 1,
                     np.concatenate([am[..., None], idx[..., :-1]], axis=-1), idx)
    return order


def _oracle_tile_order(q_tile: int, n_visible: int, ctx: TileContext) -> np.ndarray:
    """Per-tile oracle: the distinct row-argmax blocks first (most rows first), then the
    rest in natural order. After every argmax block has been visited no row can rise
    again, so the tile has at most (#distinct argmax blocks − 1) events, which is the
    minimum over all shared orders (ties aside): 0 iff all rows share the argmax block."""
    bm = ctx.block_max
    am = np.argmax(bm, axis=-1)  # [batch, rows]
    ok = bm.max(-1) > -np.inf
    b_idx = np.broadcast_to(np.arange(bm.shape[0])[:, None], am.shape)
    cnt = np.bincount((b_idx[ok] * n_visible + am[ok]).ravel(),
                      minlength=bm.shape[0] * n_visible).reshape(bm.shape[0], n_visible)
    return np.argsort(-cnt, axis=1, kind="stable")


@register_policy("oracle", row_order=_oracle_row_order, uses_history=False)
def oracle(q_tile: int, n_visible: int, ctx: TileContext):
    """Not realisable (reads the tile's own scores); a lower bound.

    Per-row counts use the per-row oracle (each row visits its own max block first):
    0 rescales by construction. Tile events use the per-tile oracle order (distinct
    row-argmax blocks first, by how many rows they hold): the minimum number of O-tile
    events any shared order can reach; 0 only when all rows of the tile share one
    argmax block."""
    return _oracle_tile_order(q_tile, n_visible, ctx)
