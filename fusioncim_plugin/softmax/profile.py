"""``rescale_profile``: the numbers the evaluator needs, from real traces or the fit."""
from __future__ import annotations

import functools
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import traces as tr

PHASES = ("prefill", "decode")
SOURCES = ("auto", "trace", "synthetic")
# The traces `evaluate` uses unless told otherwise (``traces=`` / ``--traces``): SmolLM2
# (LLaMA architecture, like the evaluated LLaMA-3 models), named one by one so that a file
# added to data/traces never changes the default numbers and a missing one is an error,
# never silently replaced by the synthetic model.
DEFAULT_TRACES = tuple(f"smollm2_{text}_L{n}.npz" for text in ("license", "textwrap")
                       for n in (512, 2048))


def resolve_traces(traces=None) -> tuple[str, ...]:
    """Absolute paths of the trace set ``traces`` (None = :data:`DEFAULT_TRACES` in
    ``data/traces``; else a ``.npz`` file, a folder, or a list of them)."""
    if traces is None:
        traces = [tr.data_dir() / n for n in DEFAULT_TRACES]
    return tuple(str(p.resolve()) for p in tr.find_traces(traces))


@dataclass(frozen=True)
class RescaleProfile:
    """Mean online-softmax rescale statistics for one configuration.

    ``tile_rescales_per_tile``: mean number of O-tile rescale events per query tile
    (prefill) or per decode step (decode). ``row_rescales_per_row``: mean per-row
    rescales. ``n_kv_blocks_per_tile``: mean number of KV blocks a tile visits (causal).
    ``source``: ``"trace:<files>[...]"`` or ``"synthetic:<params>"``.
    """

    order: str
    seq_len: int
    block_q: int
    block_kv: int
    phase: str
    causal: bool
    tile_rescales_per_tile: float
    row_rescales_per_row: float
    n_kv_blocks_per_tile: float
    source: str


def _pos_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or int(v) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def rescale_profile(order: str, seq_len: int, block_q: int, block_kv: int,
                    phase: str = "prefill", causal: bool = True,
                    source: str = "auto", traces=None) -> RescaleProfile:
    """Mean rescale counts for KV visiting ``order`` at ``seq_len`` tokens.

    ``order``: a name in :data:`~fusioncim_plugin.softmax.ORDER_POLICIES`.
    ``block_q`` (Br) / ``block_kv`` (Bc): query rows per tile / keys per KV block;
    ``block_kv`` must be a multiple of 16 (the traces' and the model's base block).
    ``phase``: ``"prefill"`` (causal self-attention over ``seq_len`` tokens, tiles of
    ``block_q`` rows) or ``"decode"`` (one query row attending to ``seq_len`` keys;
    ``block_q`` is ignored; mean over the last 64 decode steps up to ``seq_len``, so that
    history-based orders have a previous step).
    ``source``: ``"auto"`` (real traces of the set ``traces`` when one has ``seq_len``
    tokens and ``causal``; else the fitted synthetic model), ``"trace"`` (error if none
    matches) or ``"synthetic"``.
    ``traces``: the trace set (a ``.npz`` file, a folder or a list; default
    :data:`DEFAULT_TRACES`, the shipped SmolLM2 captures at 512 and 2048 tokens). A
    missing, truncated or corrupt file is an error naming it.
    Synthetic numbers come from the table precomputed with large samples in
    ``synthetic_fit.json`` (built-in orders, blocks 16/32/64/128, 4096…131072 tokens,
    linear in log2(seq_len) between powers of two; ``[table]``), else from a quick
    seeded sample (~1.5M block maxima; ``[sampled]``, a few % noisier).

    Trace numbers average the shipped texts. For the built-in orders at block sizes
    16/32/64 they come from the all-layer, all-head fp32 summary stored in the trace
    (``[all-heads]``); otherwise they are recomputed from the stored heads
    (``[stored-heads]``). Results are cached (``rescale_profile.cache_clear()`` after
    re-registering a policy under an existing name).
    """
    from .policies import ORDER_POLICIES

    if not isinstance(order, str) or order not in ORDER_POLICIES:
        raise ValueError(f"unknown order {order!r}; known orders: "
                         f"{', '.join(sorted(ORDER_POLICIES))}")
    seq_len = _pos_int("seq_len", seq_len)
    block_q = _pos_int("block_q", block_q)
    block_kv = _pos_int("block_kv", block_kv)
    if block_kv % tr.BASE_BLOCK:
        raise ValueError(f"block_kv must be a multiple of {tr.BASE_BLOCK}, got {block_kv}")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if phase == "decode":
        block_q = 1
    files = resolve_traces(traces) if source != "synthetic" else ()
    return _profile(order, seq_len, block_q, block_kv, phase, bool(causal), source, files)


@functools.lru_cache(maxsize=4096)
def _profile(order, seq_len, block_q, block_kv, phase, causal, source,
             trace_set) -> RescaleProfile:
    files = [Path(p) for p in trace_set if tr.load_meta(p)["seq_len"] == seq_len] \
        if causal else []
    if source == "trace" and not files:
        have = sorted({tr.load_meta(p)["seq_len"] for p in trace_set})
        raise ValueError(f"no causal trace for seq_len={seq_len} in the trace set "
                         f"(have: {have})")
    if source in ("auto", "trace") and files:
        row, tile, nv, src = _from_traces(files, order, seq_len, block_q, block_kv, phase)
    else:
        from .synthetic import FIT_FILE, load_fit, load_table, synthetic_counts, table_lookup

        heads = load_fit()
        hit = table_lookup(load_table(), phase, order, block_q, block_kv, seq_len) \
            if causal else None
        if hit is not None:
            row, tile, nv = hit
            src = f"synthetic:{FIT_FILE}[table](heads={len(heads)},seed=0)"
        else:
            row, tile, nv = synthetic_counts(order, seq_len, block_q, block_kv, phase,
                                             causal=causal, heads=heads)
            src = f"synthetic:{FIT_FILE}[sampled](heads={len(heads)},seed=0)"
        # the sampled tiles approximate this; the geometry gives it exactly
        nv = tr.mean_visible_blocks(seq_len, block_q, block_kv, phase, causal)
    return RescaleProfile(order=order, seq_len=seq_len, block_q=block_q, block_kv=block_kv,
                          phase=phase, causal=causal, tile_rescales_per_tile=tile,
                          row_rescales_per_row=row, n_kv_blocks_per_tile=nv, source=src)


rescale_profile.cache_clear = _profile.cache_clear  # type: ignore[attr-defined]


def _from_traces(files, order, seq_len, block_q, block_kv, phase):
    vals, how = [], set()
    for p in files:
        key = f"{phase}/{order}/{block_q}/{block_kv}"
        summary = tr.load_meta(p).get("summary", {})
        if key in summary:
            vals.append(summary[key])
            how.add("all-heads")
            continue
        t = tr.load_trace(p)
        bm = t.block_max(block_kv)
        if phase == "decode":
            rows = tr.decode_rows(seq_len)
            vals.append(tr.count_heads(bm[:, rows], t.windows, 1, block_kv, order,
                                       row_pos=rows))
        else:
            vals.append(tr.count_heads(bm, t.windows, block_q, block_kv, order))
        how.add(f"stored-heads:{len(t.rank_heads)}")
    row, tile, nv = np.mean(np.asarray(vals, dtype=float), axis=0)
    src = "trace:" + ",".join(p.name for p in files) + "[" + ",".join(sorted(how)) + "]"
    return float(row), float(tile), float(nv), src
