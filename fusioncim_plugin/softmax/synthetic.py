"""Synthetic attention-score block maxima for long contexts (8K–128K), fitted to traces.

Score model (one parameter set per attention head; block level, 16-key base blocks)
-----------------------------------------------------------------------------------
For query row ``i`` and 16-key block ``j`` at block distance ``d = i // 16 − j``::

    v[i, j] = f(d) + c[j] + e[i, j]                      (j ≥ 1)
    v[i, 0] = max(f(d) + c[0] + e[i, 0],  S + sigma_s · z[i])   (block 0 holds the sink)

* ``f(0) = D`` (diagonal block, partly masked), ``f(d) = A·exp(−d/w) − beta·ln(1+d)``
  for ``d ≥ 1``: a local window of mass ``A`` and width ``w`` blocks on top of a slow
  (RoPE-like) log decay of the background with distance. Fitted with ``w ≤ W_MAX`` and
  ``beta ≥ 0`` (the background never grows with distance), so that extrapolating from
  512-token fits to 128K stays sane.
* ``c[j] ~ N(0, sigma_c²)``: block salience shared by all rows (content that every query
  likes: makes rows of a tile agree, and lets a fixed block hold many row maxima);
  for blocks ``1 … K_EARLY−1`` (keys 16–63) ``c[j]`` is a fitted constant (``early``):
  the first tokens after the sink form a "sink region" in many heads.
* ``e[i, j]``: per-row block noise, Gumbel with standard deviation ``sigma_r`` (the max of
  many keys is Gumbel-like; Gumbel is max-stable, so pooling two 16-key blocks into a
  32-key block stays in the family), correlated between adjacent query rows: a Gaussian
  AR(1) with coefficient ``rho`` along consecutive rows, mapped to the Gumbel marginal
  through a Gaussian copula (normal CDF ≈ logistic(1.702·z)). Neighbouring queries look
  alike, which is what keeps the rows of a tile in step. (Tried and rejected, worse fit:
  a copy process and a max-autoregressive Gumbel process.) The sink noise is the same
  AR(1) Gaussian, scaled by ``sigma_s``.
* ``S``, ``sigma_s``: the sink key's score relative to the same origin (absolute: it
  does not decay with distance).

Only the *ranks* within a row matter for rescale counts, so a per-row offset is dropped.
Coarser blocks (32, 64, …) are max-pooled from the 16-key blocks, as for the traces.

Generation is per row chunk (:func:`generate_block_max` takes explicit query positions),
so nothing L×L is ever built; everything is seeded (``numpy.random.default_rng``) and
deterministic.

Fitting (:func:`fit_head`): alternating least squares of ``v − row_offset`` into
``f(d)`` (non-parametric per distance), ``c[j]`` (detrended) and residual ``e``, on rows
of the second half of the context; then ``A, w, beta`` by a grid over ``w`` with linear
least squares for the rest; the sink from block 0's excess; then ``rho`` is calibrated
by simulation so that the head's tile events match (:func:`calibrate_rho`). :func:`fit`
runs it on every value head of a model's 512-token fit traces (:func:`fit_files`); the
synthetic model is the equal-weight mixture of those heads, one per model
(``data/traces/synthetic_fit.json`` for SmolLM2, ``synthetic_fit_gemma3.json``). A head of
a sliding-window layer keeps its layer's window (``window``): blocks with no key in it are
``-inf`` and skipped by the counting, as in the traces. :func:`write_fit` checks a fit
against the fit texts, held-out texts and the other model (:func:`validation_sets`).
"""
from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .traces import BASE_BLOCK, data_dir, load_trace, pool_blocks

FIT_FILE = "synthetic_fit.json"
K_EARLY = 4   # blocks 0..3 (the first 64 keys) get fitted, not random, salience
W_MAX = 16.0  # widest local window fitted [16-key blocks] (512-token traces: 32 blocks)
_EULER = 0.5772156649015329


@dataclass(frozen=True)
class HeadParams:
    D: float        # diagonal-block level
    A: float        # local-window amplitude
    w: float        # local-window width [16-key blocks]
    beta: float     # log-decay of the background with block distance
    sigma_c: float  # shared block salience std
    sigma_r: float  # per-row block noise std (Gumbel)
    S: float        # sink score
    sigma_s: float  # sink score std
    rho: float = 0.0  # lag-1 correlation of the row noise between adjacent query rows
    early: tuple = ()  # fixed salience of 16-key blocks 1..K_EARLY-1 (the "sink region")
    source: str = ""
    window: int | None = None  # sliding window [keys] of the head's layer (None: global)

    def f(self, d: np.ndarray) -> np.ndarray:
        d = np.asarray(d, dtype=np.float64)
        far = self.A * np.exp(-d / self.w) - self.beta * np.log1p(d)
        return np.where(d <= 0, self.D, far)


def generate_block_max(params: HeadParams, rows: np.ndarray, n_blocks: int,
                       seed: int = 0, causal: bool = True) -> np.ndarray:
    """Synthetic 16-key block maxima ``[len(rows), n_blocks]`` (float32, -inf masked)
    for query positions ``rows``. Block salience ``c`` depends only on (seed, block), so
    row chunks generated separately are consistent; row noise depends on (seed, row)."""
    rows = np.asarray(rows, dtype=np.int64)
    c = np.random.default_rng([seed, 0]).standard_normal(n_blocks) * params.sigma_c
    early = np.asarray(params.early, dtype=np.float64)[: max(n_blocks - 1, 0)]
    c[1:1 + early.size] = early
    rng = np.random.default_rng([seed, 1, int(rows[0]) if rows.size else 0, rows.size])
    j = np.arange(n_blocks)
    d = (rows // BASE_BLOCK)[:, None] - j[None, :]
    dmax = int(max(d.max(), 0)) if d.size else 0
    ftab = params.f(np.arange(dmax + 1)).astype(np.float32)
    fd = ftab[np.clip(d, 0, dmax)]
    # row noise: Gaussian AR(1) along consecutive query rows (lag-1 correlation rho),
    # mapped to a Gumbel marginal through the logistic approximation of the normal CDF
    g = rng.standard_normal((rows.size, n_blocks + 1), dtype=np.float32)
    phi = float(np.clip(params.rho, 0.0, 0.999))
    if phi > 0 and rows.size > 1:
        a = np.float32(np.sqrt(1.0 - phi * phi))
        for k in np.nonzero(np.diff(rows) == 1)[0] + 1:
            g[k] = np.float32(phi) * g[k - 1] + a * g[k]
    x = np.exp(np.float32(-1.702) * g[:, :n_blocks])          # u = 1 / (1 + x)
    e = -np.log(np.log1p(x)) - np.float32(_EULER)             # Gumbel(u) − mean
    e *= np.float32(params.sigma_r * np.sqrt(6.0) / np.pi)    # std sigma_r
    v = fd + c[None, :].astype(np.float32) + e
    sink = params.S + params.sigma_s * g[:, n_blocks]
    v[:, 0] = np.maximum(v[:, 0], sink.astype(np.float32))
    if causal:
        v[d < 0] = -np.inf
        if params.window:  # blocks with no key in (row − window, row]
            v[j[None, :] * BASE_BLOCK + BASE_BLOCK - 1 <= rows[:, None] - params.window] \
                = -np.inf
    return v


# ---------------------------------------------------------------- fitting

def fit_head(bm: np.ndarray, source: str = "", first_row: int | None = None,
             n_iter: int = 8, window: int | None = None) -> HeadParams:
    """Fit :class:`HeadParams` to one head's 16-key block maxima ``[L, nb]`` (``window``:
    the layer's sliding window in keys; blocks outside it are ``-inf`` and not fitted)."""
    L, nb = bm.shape
    r0 = L // 2 if first_row is None else first_row
    rows = np.arange(r0, L)
    x = bm[rows].astype(np.float64)
    d = (rows // BASE_BLOCK)[:, None] - np.arange(nb)[None, :]
    vis = (d >= 0) & np.isfinite(x)
    x = np.where(vis, x, 0.0)
    body = vis & (np.arange(nb)[None, :] >= 1)
    dmax = int(d.max())
    f = np.zeros(dmax + 1)
    c = np.zeros(nb)
    r = np.zeros(len(rows))
    cnt_d = np.bincount(d[body], minlength=dmax + 1)
    for _ in range(n_iter):
        y = x - f[np.maximum(d, 0)] - c[None, :]
        r = np.nanmean(np.where(body, y, np.nan), axis=1)
        y = x - r[:, None] - c[None, :]
        f = np.bincount(d[body], weights=y[body], minlength=dmax + 1) / np.maximum(cnt_d, 1)
        y = x - r[:, None] - f[np.maximum(d, 0)]
        cnt_c = body.sum(0)
        c = np.where(cnt_c > 0, np.where(body, y, 0).sum(0) / np.maximum(cnt_c, 1), 0.0)
        jj = np.arange(nb)
        ok = cnt_c > 0
        rnd = ok & (jj >= K_EARLY)   # random-salience blocks
        if rnd.sum() > 2:  # remove the linear trend (confounded with f and r)
            p = np.polyfit(jj[rnd], c[rnd], 1)
            c = np.where(ok, c - np.polyval(p, jj), 0.0)
            c -= c[rnd].mean()
    R = np.where(body, x - r[:, None] - f[np.maximum(d, 0)] - c[None, :], np.nan)
    resid = R[body]
    sigma_r = float(np.std(resid))
    both = body[1:] & body[:-1]
    rho = float(np.sum((R[1:] * R[:-1])[both]) / max(np.sum((R[:-1] ** 2)[both]), 1e-12))
    jj = np.arange(nb)
    sigma_c = float(np.std(c[(body.sum(0) > 0) & (jj >= K_EARLY)]))
    early = tuple(float(v) for v in c[1:K_EARLY])
    # parametric f for d >= 1: grid over w, least squares for (A, beta, C)
    dd = np.arange(1, dmax + 1)
    wt = cnt_d[1:].astype(np.float64)
    best = None
    for w in np.geomspace(0.25, W_MAX, 25):
        X = np.stack([np.exp(-dd / w), -np.log1p(dd), np.ones_like(dd, dtype=float)], 1)
        sw = np.sqrt(wt)[:, None]
        coef, *_ = np.linalg.lstsq(X * sw, f[1:] * sw[:, 0], rcond=None)
        if coef[1] < 0:  # background may not grow with distance (extrapolation to 128K)
            c2, *_ = np.linalg.lstsq(X[:, [0, 2]] * sw, f[1:] * sw[:, 0], rcond=None)
            coef = np.array([c2[0], 0.0, c2[1]])
        err = float(np.sum(wt * (X @ coef - f[1:]) ** 2))
        if best is None or err < best[0]:
            best = (err, w, coef)
    _, w, (A, beta, C) = best
    D = float(f[0] - C)
    sink = (x[:, 0] - r - C)[vis[:, 0]]
    if sink.size == 0:  # block 0 outside the window for every fitted row: no sink seen
        sink = np.array([-1e4])
    return HeadParams(D=D, A=float(A), w=float(w), beta=float(beta), sigma_c=sigma_c,
                      sigma_r=sigma_r, S=float(np.mean(sink)), sigma_s=float(np.std(sink)),
                      rho=rho, early=early, source=source, window=window)


RHO_GRID = tuple(round(0.05 * k, 2) for k in range(20))   # 0.00 … 0.95


def calibrate_rho(hp: HeadParams, bm: np.ndarray, seed: int = 0,
                  grid=RHO_GRID) -> HeadParams:
    """Pick ``rho`` (row-noise correlation) so that the synthetic head reproduces the real
    head's tile events (``natural`` + ``sink_local``, 16-row × 16-key tiles) on the same
    rows: the moment estimate of ``rho`` (lag-1 only) under-states how long neighbouring
    queries stay alike, which over-states tile events."""
    from dataclasses import replace

    from .rescale import count_trace

    L, nb = bm.shape
    rows = np.arange(L)
    w = hp.window
    target = sum(count_trace(bm[None], 16, 16, p, window=w).tile_rescales_per_tile
                 for p in ("natural", "sink_local"))
    best = None
    for rho in grid:
        h = replace(hp, rho=float(rho))
        syn = generate_block_max(h, rows, nb, seed=seed)[None]
        v = sum(count_trace(syn, 16, 16, p, validate=False, window=w).tile_rescales_per_tile
                for p in ("natural", "sink_local"))
        if best is None or abs(v - target) < best[0]:
            best = (abs(v - target), h)
    return best[1]


def fit(trace_files=None, calibrate: bool = True) -> list[HeadParams]:
    """Fit every value head of the given traces (default: :func:`fit_files` of
    SmolLM2)."""
    from .traces import trace_windows

    files = trace_files or fit_files("smollm2")
    out = []
    for fn in files:
        t = load_trace(Path(fn))
        if t.values is None:
            continue
        bm = t.block_max(BASE_BLOCK, kind="values")
        # the layer's configured window: a 512-token capture does not show a 512-key one
        kinds = t.meta.get("config_layer_types") or []
        wins = [w or (t.meta.get("config_sliding_window")
                      if int(l) < len(kinds) and kinds[int(l)] == "sliding_attention" else None)
                for w, l in zip(trace_windows(t.meta, t.value_heads[:, 0]), t.value_heads[:, 0])]
        for k, (l, h) in enumerate(t.value_heads):
            hp = fit_head(bm[k], source=f"{Path(fn).name}:L{l}H{h}", window=wins[k])
            out.append(calibrate_rho(hp, bm[k]) if calibrate else hp)
    return out


FIT_TEXTS = ("license", "textwrap")      # the fit sees these texts only
HELDOUT_TEXTS = ("argparse", "difflib")  # data/traces/heldout: validation only
FIT_LEN = 512


def fit_files(model: str, directory=None) -> list[Path]:
    """The traces a model's synthetic fit is made from: its ``FIT_TEXTS`` captures at
    ``FIT_LEN`` tokens in ``directory`` (default ``data/traces``): their fp16 values of
    one head per layer (rows of the second half). (Fitting on the 2048-token captures'
    value heads, one of every third layer, was tried: that head subset is not
    representative of all heads and its errors were larger.)"""
    d = Path(directory) if directory else data_dir()
    return [d / f"{model}_{t}_L{FIT_LEN}.npz" for t in FIT_TEXTS]


def fit_file(model: str = "smollm2") -> str:
    """File name of a model's fit in ``data/traces`` (SmolLM2 keeps the historic name)."""
    return FIT_FILE if model == "smollm2" else f"synthetic_fit_{model}.json"


# ---------------------------------------------------------------- stored fit

@functools.lru_cache(maxsize=4)
def load_fit(path=None) -> tuple[HeadParams, ...]:
    p = Path(path) if path else data_dir() / FIT_FILE
    from .traces import TraceError

    try:
        with open(p) as fh:
            doc = json.load(fh)
        return tuple(HeadParams(**{**h, "early": tuple(h.get("early", ()))})
                     for h in doc["heads"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise TraceError(f"synthetic fit {p} is missing or unreadable ({type(e).__name__}); "
                         "restore it or refit: python -m fusioncim_plugin.softmax.synthetic"
                         ) from None


def save_fit(heads, quality: dict, path=None, extra: dict | None = None) -> Path:
    p = Path(path) if path else data_dir() / FIT_FILE
    doc = {"model": __doc__.split("\n")[0], "n_heads": len(heads), "K_EARLY": K_EARLY,
           "heads": [asdict(h) for h in heads], "quality": quality}
    if extra:
        doc.update(extra)
    p.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return p


# ---------------------------------------------------------------- sampling

def _tile_plan(seq_len: int, block_q: int, n_tiles_per_head: int, head: int,
               n_heads: int, pairs: bool) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic query tiles for one head, stratified jointly over heads and tiles
    (head ``k`` takes quantiles ``(i + (k + 0.5) / n_heads) / n``). Returns
    ``(tiles_to_generate, tiles_to_score)``; with ``pairs`` each scored tile brings its
    predecessor as history for causal policies."""
    n_tiles = -(-seq_len // block_q)
    if n_tiles <= n_tiles_per_head * (2 if pairs else 1):
        t = np.arange(n_tiles)
        return t, t
    q = (np.arange(n_tiles_per_head) + (head + 0.5) / n_heads) / n_tiles_per_head
    t = np.unique(np.clip((q * n_tiles).astype(np.int64), 1, n_tiles - 1))
    gen = np.unique(np.concatenate([t - 1, t])) if pairs else t
    return gen, t


def synthetic_counts(order, seq_len: int, block_q: int, block_kv: int, phase: str,
                     causal: bool = True, heads=None, seed: int = 0,
                     budget: float = 1.5e6, max_tiles: int = 64):
    """Mean rescale statistics of the synthetic model: ``(row, tile, n_kv_blocks)``.

    Prefill: each head scores a few query tiles, stratified over the sequence jointly
    with the other heads; decode: each head scores consecutive decode steps at the end
    of the context. The number of tiles (and, at very long contexts, of heads: every
    k-th fitted head) is chosen so that about ``budget`` block maxima are generated.
    Tiles, steps and heads are weighted equally.
    """
    from .policies import get_policy
    from .rescale import count_trace

    heads = tuple(heads) if heads is not None else load_fit()
    pol = get_policy(order)
    pairs = getattr(pol, "uses_history", True)
    nb16 = -(-seq_len // BASE_BLOCK)
    f = max(block_kv // BASE_BLOCK, 1)
    bq = block_q if phase == "prefill" else 1
    vis = 0.5 if (causal and phase == "prefill") else 1.0
    per_tile = bq * nb16 * vis * (2 if pairs else 1)
    stride = int(max(1, np.ceil(len(heads) * per_tile / budget)))
    use = heads[::stride]
    H = len(use)
    n_per_head = int(max(1, min(max_tiles, budget / (H * per_tile))))
    rows_acc, tiles_acc, nvis_acc = [], [], []
    for k, hp in enumerate(use):
        if phase == "decode":
            n = min(seq_len, n_per_head + 1)
            rows = np.arange(seq_len - n, seq_len)
            score = rows[1:] if n > 1 else rows
        else:
            gen, score = _tile_plan(seq_len, bq, n_per_head, k, H, pairs)
            rows = (gen[:, None] * bq + np.arange(bq)[None, :]).ravel()
            rows = rows[rows < seq_len]
        nb_gen = min(nb16, int(rows.max()) // BASE_BLOCK + 1) if causal else nb16
        bm = generate_block_max(hp, rows, nb_gen, seed=seed * 100003 + k, causal=causal)
        bm = pool_blocks(bm, f)
        c = count_trace(bm[None], bq, block_kv, pol, causal=causal, row_pos=rows,
                        validate=False, window=hp.window)
        tiles = np.unique(rows // bq)
        keep_t = np.isin(tiles, score if phase == "prefill" else score)
        keep_r = np.isin(rows // bq, score if phase == "prefill" else score)
        rows_acc.append(c.row_counts[0][keep_r].mean())
        tiles_acc.append(c.tile_events[0][keep_t].mean())
        nvis_acc.append(c.n_visible[keep_t].mean())
    return float(np.mean(rows_acc)), float(np.mean(tiles_acc)), float(np.mean(nvis_acc))


# ---------------------------------------------------------------- fit quality

def compare_to_traces(heads=None, trace_files=None, policies=None, blocks=(16, 32, 64),
                      seed: int = 0) -> dict:
    """Synthetic vs real mean rescales (per row and per tile) for every trace length in
    ``trace_files`` (real = the all-head summary stored in each file, averaged over the
    files of that length), prefill with ``block_q = block_kv``. Returns
    ``{"{L}/{policy}/{B}": {...}}`` with real/synthetic values and their errors
    (``rel_err``: signed, (synthetic − real) / real)."""
    from .traces import SUMMARY_POLICIES, load_meta

    policies = policies or SUMMARY_POLICIES
    heads = tuple(heads) if heads is not None else load_fit()
    files = trace_files or fit_files("smollm2")
    by_len: dict[int, list[dict]] = {}
    for fn in files:
        m = load_meta(Path(fn))
        by_len.setdefault(m["seq_len"], []).append(m["summary"])
    out = {}
    for L, sums in sorted(by_len.items()):
        for pol in policies:
            for B in blocks:
                key = f"prefill/{pol}/{B}/{B}"
                real = np.mean([s[key] for s in sums], axis=0)
                syn = synthetic_counts(pol, L, B, B, "prefill", heads=heads, seed=seed)
                ent = {"real_row": round(float(real[0]), 4), "syn_row": round(syn[0], 4),
                       "real_tile": round(float(real[1]), 4), "syn_tile": round(syn[1], 4)}
                for k in ("row", "tile"):
                    r, s_ = ent[f"real_{k}"], ent[f"syn_{k}"]
                    ent[f"abs_err_{k}"] = round(abs(s_ - r), 4)
                    ent[f"rel_err_{k}"] = round((s_ - r) / r, 4) if r > 0 else None
                out[f"{L}/{pol}/{B}"] = ent
    return out


def validation_sets(model: str) -> dict[str, list[Path]]:
    """Trace groups a model's fit is checked against: ``fit`` (the fitted texts at 512
    tokens, in sample, and 2048, out of sample), ``heldout`` (texts the fit never saw), ``other_model``
    (every capture of the other built-in model)."""
    other = "gemma3" if model == "smollm2" else "smollm2"
    d, h = data_dir(), data_dir() / "heldout"
    return {
        "fit": [d / f"{model}_{t}_L{n}.npz" for t in FIT_TEXTS for n in (512, 2048)],
        "heldout": sorted(h.glob(f"{model}_*_L*.npz")),
        "other_model": sorted(d.glob(f"{other}_*_L*.npz")) + sorted(h.glob(f"{other}_*_L*.npz")),
    }


def _worst(q: dict) -> dict:
    worst: dict = {}
    for k, v in q.items():
        L = k.split("/")[0]
        for m in ("row", "tile"):
            kk = f"max_abs_err_{m}_L{L}"
            worst[kk] = max(worst.get(kk, 0.0), v[f"abs_err_{m}"])
            if v[f"rel_err_{m}"] is not None and v[f"real_{m}"] >= 0.1:
                kk = f"max_rel_err_{m}_L{L}(real>=0.1)"
                worst[kk] = max(worst.get(kk, 0.0), abs(v[f"rel_err_{m}"]))
    return worst


TABLE_SEQ_LENS = tuple(2 ** k for k in range(12, 18))   # 4096 … 131072
TABLE_BLOCKS = (16, 32, 64, 128)
TABLE_BUDGET = 2.0e7
TABLE_MAX_TILES = 8


def build_table(heads=None, seq_lens=TABLE_SEQ_LENS, blocks=TABLE_BLOCKS, policies=None,
                budget: float = TABLE_BUDGET, seed: int = 0, progress=None) -> dict:
    """Precompute synthetic statistics on a grid (big samples → stable numbers):
    ``"{phase}/{policy}/{block_q}/{block_kv}/{seq_len}" → [row, tile, n_kv_blocks]``
    (decode uses ``block_q = 1``)."""
    from .traces import SUMMARY_POLICIES

    heads = tuple(heads) if heads is not None else load_fit()
    policies = policies or SUMMARY_POLICIES
    out = {}
    for L in seq_lens:
        for pol in policies:
            for bkv in blocks:
                r = synthetic_counts(pol, L, 1, bkv, "decode", heads=heads, seed=seed,
                                     budget=budget, max_tiles=4 * TABLE_MAX_TILES)
                out[f"decode/{pol}/1/{bkv}/{L}"] = [round(x, 5) for x in r]
                for bq in blocks:
                    r = synthetic_counts(pol, L, bq, bkv, "prefill", heads=heads,
                                         seed=seed, budget=budget,
                                         max_tiles=TABLE_MAX_TILES)
                    out[f"prefill/{pol}/{bq}/{bkv}/{L}"] = [round(x, 5) for x in r]
            if progress:
                progress(f"table: L={L} {pol}")
    return out


def table_lookup(table: dict, phase: str, order: str, block_q: int, block_kv: int,
                 seq_len: int):
    """Interpolate the table linearly in log2(seq_len); None if outside/absent."""
    ls = sorted({int(k.rsplit("/", 1)[1]) for k in table})
    if not ls or seq_len < ls[0] or seq_len > ls[-1]:
        return None
    pre = f"{phase}/{order}/{block_q}/{block_kv}/"
    if pre + str(ls[0]) not in table:
        return None
    i = int(np.searchsorted(ls, seq_len))
    if ls[i] == seq_len:
        return tuple(table[pre + str(seq_len)])
    lo, hi = ls[i - 1], ls[i]
    t = (np.log2(seq_len) - np.log2(lo)) / (np.log2(hi) - np.log2(lo))
    a, b = np.asarray(table[pre + str(lo)]), np.asarray(table[pre + str(hi)])
    return tuple(float(x) for x in (1 - t) * a + t * b)


@functools.lru_cache(maxsize=4)
def load_table(path=None) -> dict:
    p = Path(path) if path else data_dir() / FIT_FILE
    with open(p) as fh:
        return json.load(fh).get("table", {})


def main(argv=None) -> int:
    """``python -m fusioncim_plugin.softmax.synthetic [--model M] [--out FILE]``: refit a
    model's synthetic long-context model on its :func:`fit_files`, check it against
    :func:`validation_sets`, and write it with its quality report (and, for SmolLM2, the
    precomputed table ``evaluate`` reads; about 10 minutes on 2 cores)."""
    import argparse

    p = argparse.ArgumentParser(prog="fusioncim_plugin.softmax.synthetic")
    p.add_argument("--model", default="smollm2", choices=["smollm2", "gemma3"])
    p.add_argument("--fit-dir", default=None,
                   help="folder with the model's 512-token license/textwrap captures "
                        "(default data/traces)")
    p.add_argument("--out", default=None)
    p.add_argument("--no-table", action="store_true", help="skip the precomputed grid")
    a = p.parse_args(argv)
    heads = tuple(fit(fit_files(a.model, a.fit_dir)))
    if not heads:
        raise SystemExit(f"no value heads in {[str(f) for f in fit_files(a.model, a.fit_dir)]}"
                         ": capture them first (data/traces/README.md) and pass --fit-dir")
    table = {} if (a.no_table or a.model != "smollm2") else build_table(
        heads, progress=lambda m: print(m, flush=True))
    path, worst = write_fit(a.model, heads, table, a.out)
    print(json.dumps(worst, indent=1))
    print(f"wrote {path}")
    return 0


def write_fit(model: str, heads, table: dict, out=None):
    """Check ``heads`` against :func:`validation_sets` and write the fit file."""
    quality = {g: compare_to_traces(heads, files)
               for g, files in validation_sets(model).items() if files}
    worst = {g: _worst(q) for g, q in quality.items()}
    path = save_fit(heads, quality, out or data_dir() / fit_file(model), extra={
        "fit_model": model,
        "fitted_on": [f.name for f in fit_files(model)],
        "validated_on": {g: [f.name for f in v] for g, v in validation_sets(model).items()},
        "compared_with": "all-layer/all-head summaries stored in the traces (prefill, "
                         "block_q = block_kv, mean over the texts of each length)",
        "worst": worst,
        "refit": f"python -m fusioncim_plugin.softmax.synthetic --model {model}",
        "table_note": f"synthetic statistics precomputed on seq_len {TABLE_SEQ_LENS[0]}…"
                      f"{TABLE_SEQ_LENS[-1]} (powers of 2) × blocks {TABLE_BLOCKS}² with a "
                      f"budget of {TABLE_BUDGET:.0e} block maxima and at most "
                      f"{TABLE_MAX_TILES} query tiles per head each; rescale_profile "
                      "interpolates linearly in log2(seq_len)" if table else "no table",
        "table": table})
    return path, worst


if __name__ == "__main__":
    raise SystemExit(main())
