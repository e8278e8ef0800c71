"""Reference online softmax (FlashAttention style) in an arbitrary KV-block order.

``online_softmax(scores, V, order, block)`` computes ``softmax(scores) @ V`` one KV block
at a time, keeping per row a reference max ``m``, a running sum ``l`` and an unnormalised
output ``O``:

    m' = max(m, rowmax(S_blk));  a = exp(m − m');  P = exp(S_blk − m')
    l  = a·l + rowsum(P);        O = a·O + P @ V_blk;          result = O / l

The visiting order changes only how often ``a ≠ 1`` (the rescales), never the result:
every term is ``exp(s − m_final) · V`` after the telescoping products of ``a``. Measured
agreement with ``softmax(scores) @ V`` (tests/test_softmax.py): max abs error ≤ 1e-12
(float64) and ≤ 2e-6 (float32) for |V| ≤ ~1 and scores spanning ~±30.

Threshold variant (``threshold=τ > 0``): rescale only when the block max exceeds the
current reference ``m`` by more than ``τ``; otherwise keep ``m`` and accumulate
``exp(s − m)`` terms that may reach ``e^τ``. This is **exact**, not an approximation:
``Σ exp(s−m)·V / Σ exp(s−m)`` does not depend on ``m`` at all, as long as ``O`` and ``l``
use the same ``m``; the only cost is dynamic range. In floating point (fp32/fp64 here) the
result equals the plain one to rounding for any ``τ`` below the overflow limit (~88 in
fp32; we test τ ≤ 8). In a fixed-point accumulator the terms grow to ``e^τ``, so it stays
exact iff the accumulator (for ``l`` and ``O``) has ``h ≥ τ / ln 2`` spare integer bits
(e.g. τ = ln 2·h: 1 bit ↔ τ ≈ 0.69, 4 bits ↔ τ ≈ 2.77). The matching rescale count is
:func:`threshold_rescales`.
"""
from __future__ import annotations

import numpy as np


def softmax_reference(scores: np.ndarray, V: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Plain ``softmax(scores, axis=-1) @ V`` (rows with no finite score → 0)."""
    s = np.asarray(scores, dtype=dtype)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    p = np.exp(s - m)
    l = p.sum(-1, keepdims=True)
    return np.divide(p @ np.asarray(V, dtype=dtype), l, out=np.zeros(
        (s.shape[0], V.shape[-1]), dtype=dtype), where=l > 0)


def online_softmax(scores: np.ndarray, V: np.ndarray, order, block: int,
                   dtype=np.float64, threshold: float = 0.0, return_rescales: bool = False):
    """Online softmax of ``scores`` ``[Lq, Lk]`` (``-inf`` = masked) times ``V`` ``[Lk, d]``.

    ``order``: a permutation of the ``ceil(Lk / block)`` KV blocks, shared by all rows
    (1-D), or one permutation per row (``[Lq, n_blocks]``). ``dtype``: ``np.float64`` or
    ``np.float32`` (all arithmetic in it). ``threshold``: see the module docstring.
    Returns ``O`` ``[Lq, d]`` (and per-row rescale counts if ``return_rescales``).
    """
    s = np.asarray(scores, dtype=dtype)
    Vd = np.asarray(V, dtype=dtype)
    Lq, Lk = s.shape
    nb = -(-Lk // block)
    order = np.asarray(order, dtype=np.intp)
    if order.ndim == 1:
        order = np.broadcast_to(order, (Lq, order.shape[0]))
    if order.shape != (Lq, nb) or not np.array_equal(
            np.sort(order, axis=1), np.broadcast_to(np.arange(nb), (Lq, nb))):
        raise ValueError(f"order must be a permutation of range({nb}) (per row or shared)")
    pad = nb * block - Lk
    if pad:
        s = np.concatenate([s, np.full((Lq, pad), -np.inf, dtype)], 1)
        Vd = np.concatenate([Vd, np.zeros((pad, Vd.shape[1]), dtype)], 0)
    sb = s.reshape(Lq, nb, block)
    Vb = Vd.reshape(nb, block, -1)
    m = np.full(Lq, -np.inf, dtype)
    l = np.zeros(Lq, dtype)
    O = np.zeros((Lq, Vd.shape[1]), dtype)
    resc = np.zeros(Lq, dtype=np.int64)
    rows = np.arange(Lq)
    tau = dtype(threshold)
    for k in range(nb):
        cols = order[:, k]
        blk = sb[rows, cols]                      # [Lq, block]
        bmax = blk.max(-1)
        if tau > 0:
            grow = bmax > m + tau
        else:
            grow = bmax > m
        m_new = np.where(grow, bmax, m)
        fin_new = np.isfinite(m_new)
        resc += grow & np.isfinite(m)
        with np.errstate(invalid="ignore"):
            a = np.where(np.isfinite(m), np.exp(m - np.where(fin_new, m_new, 0)), 0).astype(dtype)
        p = np.where(fin_new[:, None], np.exp(blk - np.where(fin_new, m_new, 0)[:, None]), 0)
        p = p.astype(dtype)
        l = a * l + p.sum(-1)
        if np.all(cols == cols[0]):
            pv = p @ Vb[cols[0]]
        else:
            pv = np.einsum("rb,rbd->rd", p, Vb[cols])
        O = a[:, None] * O + pv
        m = m_new
    out = np.divide(O, l[:, None], out=np.zeros_like(O), where=l[:, None] > 0)
    return (out, resc) if return_rescales else out


def threshold_rescales(block_max: np.ndarray, order, threshold: float) -> np.ndarray:
    """Per-row rescale counts when a rescale is skipped unless the block max exceeds the
    current reference max by more than ``threshold`` (``0`` = the usual count).
    ``block_max`` ``[..., rows, n]``; ``order`` shared (``[n]``/``[..., n]``) or per row."""
    bm = np.asarray(block_max, dtype=np.float64)
    order = np.asarray(order, dtype=np.intp)
    if order.ndim == bm.ndim - 1:
        order = order[..., None, :]
    x = np.take_along_axis(bm, np.broadcast_to(order, bm.shape[:-1] + order.shape[-1:]), -1)
    m = np.full(x.shape[:-1], -np.inf)
    cnt = np.zeros(x.shape[:-1], dtype=np.int64)
    for k in range(x.shape[-1]):
        grow = x[..., k] > m + threshold if threshold > 0 else x[..., k] > m
        cnt += grow & np.isfinite(m)
        m = np.where(grow, x[..., k], m)
    return cnt
