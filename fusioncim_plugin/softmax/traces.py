"""Compact storage of attention-score block maxima and loaders (numpy only).

File format (``.npz``, written by :func:`save_trace`)
------------------------------------------------------
Only *causally visible* 16-key blocks are stored, row after row ("packed": row ``r`` has
``r // 16 + 1`` blocks; masked blocks are implied ``-inf``).

* ``ranks`` ``uint8``/``uint16`` ``[n_rank_heads, P]``: for every stored (layer, head) and
  row, the rank of each visible block's max within its row (number of visible blocks of
  that row with a strictly smaller max; equal maxima share a rank). A causal block whose
  keys are all masked for the row (outside a sliding window) holds the dtype's largest
  value (:data:`MASKED`) and loads as ``-inf``. Every rescale count,
  for every visiting order and every coarser block size, depends only on within-row
  comparisons of block maxima, and max-pooling commutes with ranking, so ranks are
  **lossless for rescale counting** at 16, 32, 64, … key blocks.
* ``rank_heads`` ``int16 [n_rank_heads, 2]``: (layer, head) of each stored row set.
* ``values`` ``float16 [n_value_heads, P]``: ``block_max − row_max`` (≤ 0) for a subset
  of heads (``value_heads``), and ``row_max`` ``float32 [n_value_heads, L]``; fp16 of a
  value ``x`` has absolute error ≤ ``|x|·2⁻¹¹`` (≤ 0.016 for ``|x| < 32``). Used for the
  synthetic fit and the exactness example.
* ``meta``: JSON string (model, text, versions, command, ``layer_windows``: each layer's
  sliding window in keys, ``null`` = global causal attention, and ``summary``: rescale
  counts over ALL layers/heads computed at capture time from the fp32 maxima, see
  :func:`summarize_block_max`).

Sliding-window layers: key ``j`` is visible to query ``i`` iff ``i − window < j ≤ i``
(transformers' convention). A KV block with no visible key for any row of a query tile is
neither visited nor counted (a sliding-window kernel skips it), see
:func:`fusioncim_plugin.softmax.rescale.count_trace` (``window``).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASE_BLOCK = 16
SUMMARY_POLICIES = ("natural", "sink_local", "adaptive", "diagonal_first", "oracle")
SUMMARY_BLOCKS = (16, 32, 64)
DECODE_WINDOW = 64


class TraceError(ValueError):
    """A trace file that cannot be read (missing, truncated, corrupt); names the file."""


def MASKED(dtype) -> int:
    """Stored rank of a causal block with no visible key (outside a sliding window)."""
    return int(np.iinfo(dtype).max)


def data_dir() -> Path:
    """``data/traces`` of the installed package or the source tree."""
    from .._data import data_dir as shipped

    return shipped("data/traces")


def visible_mask(seq_len: int, n_blocks: int, block: int = BASE_BLOCK) -> np.ndarray:
    """Causal block mask ``[seq_len, n_blocks]``: block ``j`` holds a key ``≤`` the row."""
    r = np.arange(seq_len)
    return np.arange(n_blocks)[None, :] < (r // block + 1)[:, None]


def window_mask(seq_len: int, n_keys: int, window: int | None) -> np.ndarray:
    """Key mask ``[seq_len, n_keys]``: causal, and within ``window`` keys if given."""
    i = np.arange(seq_len)[:, None]
    j = np.arange(n_keys)[None, :]
    m = j <= i
    if window:
        m &= j > i - window
    return m


def row_ranks(bm: np.ndarray) -> np.ndarray:
    """Within-row 'min' rank of each entry (count of strictly smaller entries in the row);
    ``-inf`` entries get rank −1 (kept as masked)."""
    x = np.asarray(bm, dtype=np.float64)
    s = np.sort(x, axis=-1)
    flat_s = s.reshape(-1, s.shape[-1])
    flat_x = x.reshape(-1, x.shape[-1])
    n_inf = np.sum(np.isneginf(flat_s), axis=-1)
    out = np.empty(flat_x.shape, dtype=np.int64)
    for i in range(flat_x.shape[0]):  # rows are short; searchsorted per row is fast
        out[i] = np.searchsorted(flat_s[i], flat_x[i], side="left") - n_inf[i]
    out[np.isneginf(flat_x)] = -1
    return out.reshape(x.shape)


def _row_ranks_fast(bm: np.ndarray) -> np.ndarray:
    """Vectorised :func:`row_ranks` (ties share the min rank)."""
    x = np.asarray(bm, dtype=np.float64)
    order = np.argsort(x, axis=-1, kind="stable")
    xs = np.take_along_axis(x, order, axis=-1)
    n = x.shape[-1]
    new = np.ones(xs.shape, dtype=bool)
    new[..., 1:] = xs[..., 1:] != xs[..., :-1]
    idx = np.where(new, np.arange(n), 0)
    first = np.maximum.accumulate(idx, axis=-1)  # index of first equal element = min rank
    n_inf = np.sum(np.isneginf(x), axis=-1, keepdims=True)
    rk = np.empty_like(first)
    np.put_along_axis(rk, order, first - n_inf, axis=-1)
    rk[np.isneginf(x)] = -1
    return rk


def save_trace(path, block_max: np.ndarray, meta: dict, rank_heads=None,
               value_heads=None) -> None:
    """Write ``block_max`` ``[n_layers, n_heads, L, nb16]`` (fp32, -inf masked) compactly.

    ``rank_heads`` / ``value_heads``: lists of (layer, head) to store (default: all /
    none)."""
    nl, nh, L, nb = block_max.shape
    mask = visible_mask(L, nb)
    if rank_heads is None:
        rank_heads = [(l, h) for l in range(nl) for h in range(nh)]
    value_heads = list(value_heads or [])
    rk = np.stack([_row_ranks_fast(block_max[l, h])[mask] for l, h in rank_heads])
    dt = np.uint8 if nb < MASKED(np.uint8) else np.uint16
    rk = np.where(rk < 0, MASKED(dt), rk)
    out = dict(ranks=rk.astype(dt), rank_heads=np.asarray(rank_heads, dtype=np.int16),
               seq_len=np.int32(L), base_block=np.int32(BASE_BLOCK))
    if value_heads:
        vh = np.asarray(value_heads, dtype=np.int16)
        rm = np.stack([block_max[l, h].max(-1) for l, h in value_heads]).astype(np.float32)
        vals = np.stack([(block_max[l, h] - block_max[l, h].max(-1, keepdims=True))[mask]
                         for l, h in value_heads])
        out.update(values=vals.astype(np.float16), value_heads=vh, row_max=rm)
    out["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    np.savez_compressed(path, **out)


def _unpack(packed: np.ndarray, L: int, nb: int, fill=-np.inf) -> np.ndarray:
    mask = visible_mask(L, nb)
    out = np.full((packed.shape[0], L, nb), fill, dtype=np.float32)
    out[:, mask] = packed
    return out


@dataclass
class Trace:
    """A loaded trace. ``ranks`` ``[n_heads, L, nb16]`` (float32, -inf masked)."""

    path: Path
    seq_len: int
    ranks: np.ndarray
    rank_heads: np.ndarray
    values: np.ndarray | None       # [n_value_heads, L, nb16] block_max − row_max
    row_max: np.ndarray | None      # [n_value_heads, L]
    value_heads: np.ndarray | None
    meta: dict

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def windows(self) -> list[int | None]:
        """Sliding window of each stored rank head (None = global causal)."""
        return trace_windows(self.meta, self.rank_heads[:, 0])

    @property
    def model(self) -> str:
        return self.meta.get("model_key", self.path.name.split("_")[0])

    def block_max(self, block_kv: int = BASE_BLOCK, kind: str = "ranks") -> np.ndarray:
        """``[n_heads, L, L/block_kv]`` maxima over ``block_kv``-key blocks; ``kind``
        ``ranks`` (all stored heads, exact for counting) or ``values`` (absolute scores of
        the value heads: ``values + row_max``)."""
        if kind == "ranks":
            x = self.ranks
        else:
            if self.values is None:
                raise ValueError(f"{self.name} stores no values")
            x = self.values + self.row_max[..., None]
        return pool_blocks(x, block_kv // BASE_BLOCK)


def pool_blocks(bm: np.ndarray, factor: int) -> np.ndarray:
    """Max over ``factor`` consecutive blocks (exact coarsening of block maxima)."""
    if factor == 1:
        return bm
    nb = bm.shape[-1]
    pad = (-nb) % factor
    if pad:
        bm = np.concatenate([bm, np.full(bm.shape[:-1] + (pad,), -np.inf, bm.dtype)], -1)
    return bm.reshape(*bm.shape[:-1], -1, factor).max(-1)


def _read(path, fn):
    """Run ``fn(npz)`` on trace file ``path``; any read failure → :class:`TraceError`
    naming the file (a truncated or corrupt download gives zip/pickle/zlib errors)."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"trace file {path} not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            return fn(z)
    except TraceError:
        raise
    except Exception as e:  # noqa: BLE001 - numpy/zipfile/zlib raise many kinds
        raise TraceError(f"trace file {path} is truncated or corrupt ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'}); "
                         "re-copy it or capture it again (data/traces/README.md)") from None


@functools.lru_cache(maxsize=64)
def load_meta(path) -> dict:
    """Only the JSON metadata of a trace file (fast: the arrays are not read)."""
    return _read(path, lambda z: json.loads(str(z["meta"])))


def _load(path: Path, z) -> Trace:
    L = int(z["seq_len"])
    nb = -(-L // int(z["base_block"]))
    raw = z["ranks"]
    ranks = raw.astype(np.float32)
    ranks[raw == MASKED(raw.dtype)] = -np.inf
    ranks = _unpack(ranks, L, nb)
    vals = rm = vh = None
    if "values" in z:
        vals = _unpack(z["values"].astype(np.float32), L, nb)
        rm = z["row_max"]
        vh = z["value_heads"]
    return Trace(path=path, seq_len=L, ranks=ranks, rank_heads=z["rank_heads"],
                 values=vals, row_max=rm, value_heads=vh, meta=json.loads(str(z["meta"])))


@functools.lru_cache(maxsize=16)
def load_trace(path) -> Trace:
    path = Path(path)
    return _read(path, lambda z: _load(path, z))


def trace_name(model: str, text: str, seq_len: int) -> str:
    """File name of a capture: ``{model}_{text}_L{seq_len}.npz`` (model first, so captures
    of different models never share a name)."""
    return f"{model}_{text}_L{seq_len}.npz"


def find_traces(traces) -> list[Path]:
    """Trace files named by ``traces``: a ``.npz`` file, a folder (all ``*_L*.npz`` in
    it), or a list of those. Missing files/folders raise :class:`TraceError`."""
    items = [traces] if isinstance(traces, (str, Path)) else list(traces)
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted(p.glob("*_L*.npz"))
            if not found:
                raise TraceError(f"--traces {p}: no *_L<seq_len>.npz trace files in it")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise TraceError(f"trace file {p} not found")
    return out


def shipped_traces(directory=None, model: str | None = None) -> list[Path]:
    """Every trace file in ``directory`` (default ``data/traces``), optionally of one
    model (file-name prefix)."""
    d = Path(directory) if directory else data_dir()
    return sorted(d.glob(f"{model + '_' if model else ''}*_L*.npz"))


def trace_windows(meta: dict, layers) -> list[int | None]:
    """Sliding window (keys) of each of ``layers`` from a trace's metadata (None = global)."""
    w = meta.get("layer_windows") or []
    return [w[int(l)] if int(l) < len(w) else None for l in layers]


def mean_visible_blocks(seq_len: int, block_q: int, block_kv: int, phase: str,
                        causal: bool = True) -> float:
    """Exact mean number of KV blocks per query tile (prefill: tiles of ``block_q`` rows;
    decode: the decode steps of :func:`decode_rows`)."""
    nb = -(-seq_len // block_kv)
    if not causal:
        return float(nb)
    if phase == "decode":
        return float(np.mean(-(-(decode_rows(seq_len) + 1) // block_kv)))
    stops = np.minimum((np.arange(-(-seq_len // block_q)) + 1) * block_q, seq_len)
    return float(np.mean(-(-stops // block_kv)))


def decode_rows(seq_len: int, window: int = DECODE_WINDOW) -> np.ndarray:
    """Query positions used as decode steps for a decode profile at ``seq_len``: the last
    ``window`` positions (each a single-row tile attending to all earlier keys)."""
    return np.arange(max(0, seq_len - window), seq_len)


def landing_fractions(bm: np.ndarray, block_kv: int, local_blocks: int = 4) -> dict:
    """Where each row's max lands: sink (block 0), diagonal (the row's own block), local
    (1..local_blocks blocks before the diagonal), elsewhere. Rows in block 0 count as
    sink. Ties resolve to the lowest block index."""
    L = bm.shape[-2]
    am = np.argmax(bm, axis=-1)
    diag = np.arange(L) // block_kv
    sink = am == 0
    dg = (am == diag) & ~sink
    loc = (diag - am >= 1) & (diag - am <= local_blocks) & ~sink
    rest = ~(sink | dg | loc)
    return {k: float(v.mean()) for k, v in
            dict(sink=sink, diagonal=dg, local=loc, elsewhere=rest).items()}


def count_heads(bm: np.ndarray, windows, block_q: int, block_kv: int, policy,
                **kw) -> list[float]:
    """``[row_rescales_per_row, tile_rescales_per_tile, n_kv_blocks_per_tile]`` of heads
    ``bm`` ``[n, rows, n_blocks]`` (maxima over ``block_kv``-key blocks), head ``k`` with
    sliding window ``windows[k]`` (None = global; ``windows`` None = all global): every
    head weighs the same. ``kw`` goes to :func:`~.rescale.count_trace`."""
    from .rescale import count_trace

    wins = [None] * len(bm) if windows is None else [None if w is None else int(w)
                                                     for w in windows]
    acc = []
    for w in sorted(set(wins), key=lambda x: -1 if x is None else x):
        idx = [k for k, x in enumerate(wins) if x == w]
        c = count_trace(bm[idx], block_q, block_kv, policy, window=w, **kw)
        acc.append((len(idx), c.row_rescales_per_row, c.tile_rescales_per_tile,
                    c.n_kv_blocks_per_tile))
    n = sum(a[0] for a in acc)
    return [sum(a[0] * a[k] for a in acc) / n for k in (1, 2, 3)]


def summarize_block_max(bm16: np.ndarray, base_block: int = BASE_BLOCK,
                        policies=SUMMARY_POLICIES, blocks=SUMMARY_BLOCKS,
                        layer_windows=None) -> dict:
    """Rescale statistics of ``bm16`` ``[n_layers, n_heads, L, nb16]`` for every policy
    and every (block_q, block_kv) in ``blocks``², prefill and decode; ``layer_windows``:
    each layer's sliding window (None = global). Keys ``"{phase}/{policy}/{block_q}/
    {block_kv}"`` → ``[row_rescales_per_row, tile_rescales_per_tile,
    n_kv_blocks_per_tile]``; ``"landing/{block_kv}"`` → landing fractions."""
    bm16 = np.asarray(bm16)
    nh = bm16.shape[1] if bm16.ndim == 4 else 1
    x = bm16.reshape(-1, *bm16.shape[-2:])
    wins = None if layer_windows is None else [w for w in layer_windows for _ in range(nh)]
    L = x.shape[-2]
    out: dict = {}
    for bkv in blocks:
        xb = pool_blocks(x, bkv // base_block)
        out[f"landing/{bkv}"] = landing_fractions(xb, bkv)
        rows = decode_rows(L)
        for pol in policies:
            out[f"decode/{pol}/1/{bkv}"] = count_heads(xb[:, rows], wins, 1, bkv, pol,
                                                       row_pos=rows)
            for bq in blocks:
                out[f"prefill/{pol}/{bq}/{bkv}"] = count_heads(xb, wins, bq, bkv, pol)
    return out
