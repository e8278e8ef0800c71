"""Tests of the pattern-aware online-softmax model (numpy only; no torch)."""
import json

import numpy as np
import pytest

from fusioncim_plugin.softmax import (
    ORDER_POLICIES, count_rescales, count_trace, online_softmax, register_policy,
    rescale_profile, softmax_reference, threshold_rescales,
)
from fusioncim_plugin.softmax import synthetic as sy
from fusioncim_plugin.softmax import traces as tr

NEG = -np.inf
BUILTIN = ("natural", "sink_local", "adaptive", "diagonal_first", "oracle")

# ---------------------------------------------------------------- hand-made example
# 8 query rows × 8 keys, causal; KV blocks of 2 keys (b0 = keys 0-1, b1 = 2-3, …),
# query tiles of 2 rows.  Block maxima (by hand):
#   row0: b0=5              row4: b0=9 b1=2 b2=3
#   row1: b0=5              row5: b0=1 b1=2 b2=8
#   row2: b0=1 b1=3         row6: b0=0 b1=6 b2=1 b3=7
#   row3: b0=2 b1=4         row7: b0=3 b1=0 b2=2 b3=1
HAND = np.array([
    [5, NEG, NEG, NEG, NEG, NEG, NEG, NEG],
    [5, 1, NEG, NEG, NEG, NEG, NEG, NEG],
    [0, 1, 3, NEG, NEG, NEG, NEG, NEG],
    [2, 0, 1, 4, NEG, NEG, NEG, NEG],
    [9, 0, 1, 2, 3, NEG, NEG, NEG],
    [1, 0, 2, 1, 3, 8, NEG, NEG],
    [0, 0, 6, 1, 1, 1, 7, NEG],
    [1, 3, 0, 0, 2, 1, 1, 0],
], dtype=np.float64)

# Hand counts.  natural: row5 rises at b1 and b2, row6 at b1 and b3, rows 2/3 at b1.
# sink_local visits [0, diag, rest]: tile2 [0,2,1] → row5 once; tile3 [0,3,1,2] → row6
# once.  adaptive: tile1 follows the sink (history: tile0 maxima in b0), tile2 starts at
# its diagonal (tile1 maxima were on the diagonal) → [2,0,1]: row4 rises once at b0;
# tile3 (tile2 maxima: one sink, one diagonal → tie → sink) = sink_local.
# diagonal_first visits [diag, 0, rest]: tile1 [1,0], tile2 [2,0,1] → row4 3→9 once;
# tile3 [3,0,1,2] → row7 1→3 once; row6 starts at its max 7.
# oracle: per row 0; per tile the distinct row-argmax blocks first: tile1 shares b1 (0),
# tile2 {b0, b2} → 1 event, tile3 {b3, b0} → 1 event.
HAND_ROWS = {
    "natural":    [0, 0, 1, 1, 0, 2, 2, 0],
    "sink_local": [0, 0, 1, 1, 0, 1, 1, 0],
    "adaptive":   [0, 0, 1, 1, 1, 0, 1, 0],
    "diagonal_first": [0, 0, 0, 0, 1, 0, 0, 1],
    "oracle":     [0, 0, 0, 0, 0, 0, 0, 0],
}
HAND_TILES = {
    "natural":    [0, 1, 2, 2],
    "sink_local": [0, 1, 1, 1],
    "adaptive":   [0, 1, 1, 1],
    "diagonal_first": [0, 0, 1, 1],
    "oracle":     [0, 0, 1, 1],
}


def hand_block_max():
    return HAND.reshape(8, 4, 2).max(-1)


def test_hand_block_maxima():
    bm = hand_block_max()
    assert bm[5].tolist() == [1, 2, 8, NEG]
    assert bm[6].tolist() == [0, 6, 1, 7]


@pytest.mark.parametrize("policy", BUILTIN)
def test_hand_counts(policy):
    c = count_trace(hand_block_max(), 2, 2, policy)
    assert c.row_counts[0].tolist() == HAND_ROWS[policy]
    assert c.tile_events[0].tolist() == HAND_TILES[policy]
    assert c.n_visible.tolist() == [1, 2, 3, 4]
    assert c.n_kv_blocks_per_tile == 2.5


def test_hand_means():
    means = {p: count_trace(hand_block_max(), 2, 2, p) for p in BUILTIN}
    assert means["natural"].row_rescales_per_row == 6 / 8
    assert means["sink_local"].row_rescales_per_row == 4 / 8
    assert means["oracle"].row_rescales_per_row == 0
    assert means["natural"].tile_rescales_per_tile == 1.25
    assert means["sink_local"].tile_rescales_per_tile == 0.75
    assert means["oracle"].tile_rescales_per_tile == 0.5


def test_count_rescales_rules():
    # first visited block never counts; ties never count; -inf start does not count
    bm = np.array([[3.0, 1.0, 3.0, 4.0], [NEG, 2.0, 5.0, 1.0]])
    rows, ev = count_rescales(bm, [0, 1, 2, 3])
    assert rows.tolist() == [1, 1]   # row0: only 3→4; row1: -inf→2 free, 2→5 counts
    assert int(ev) == 2              # blocks 2 (row1) and 3 (row0)
    rows, ev = count_rescales(bm, [3, 2, 1, 0])
    assert rows.tolist() == [0, 1] and int(ev) == 1


def test_register_custom_policy_and_unknown():
    @register_policy("test_reverse", uses_history=False)
    def rev(q_tile, n_visible, ctx):
        return list(range(n_visible - 1, -1, -1))

    try:
        c = count_trace(hand_block_max(), 2, 2, "test_reverse")
        # reverse: row2 3,1 → 0; row3 4,2 → 0; row4 3,2,9 → 1; row5 8,2,1 → 0;
        # row6 7,1,6,0 → 0; row7 1,2,0,3 → 2
        assert c.row_counts[0].tolist() == [0, 0, 0, 0, 1, 0, 0, 2]
    finally:
        ORDER_POLICIES.pop("test_reverse")

    @register_policy("test_bad", uses_history=False)
    def bad(q_tile, n_visible, ctx):
        return [0] * n_visible

    try:
        with pytest.raises(ValueError, match="permutation"):
            count_trace(hand_block_max(), 2, 2, "test_bad")
    finally:
        ORDER_POLICIES.pop("test_bad")


# ---------------------------------------------------------------- exactness
# Stated tolerance: float64 max |err| ≤ 1e-12, float32 ≤ 2e-6 (|V| ~ 1, scores ~ ±30).
TOL = {np.float64: 1e-12, np.float32: 2e-6}


def _causal_random(L, scale, seed):
    rng = np.random.default_rng(seed)
    S = rng.normal(scale=scale, size=(L, L))
    S[np.triu_indices(L, 1)] = NEG
    V = rng.normal(size=(L, 8))
    return S, V, rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threshold", [0.0, 1.0, 4.0, 8.0])
def test_online_softmax_any_order_is_exact(dtype, threshold):
    S, V, rng = _causal_random(100, 8.0, 0)
    ref = softmax_reference(S, V)
    nb = 7  # ceil(100 / 16)
    orders = [np.arange(nb), np.arange(nb)[::-1], rng.permutation(nb),
              np.stack([rng.permutation(nb) for _ in range(100)])]
    for o in orders:
        out = online_softmax(S, V, o, 16, dtype=dtype, threshold=threshold)
        assert out.dtype == dtype
        assert np.max(np.abs(out - ref)) <= TOL[dtype]


def test_threshold_rescales_consistent():
    S, V, rng = _causal_random(64, 6.0, 1)
    bm = np.pad(S, ((0, 0), (0, 0))).reshape(64, 4, 16).max(-1)
    for tau in (0.0, 2.0):
        o = rng.permutation(4)
        _, r = online_softmax(S, V, o, 16, threshold=tau, return_rescales=True)
        assert r.tolist() == threshold_rescales(bm, o, tau).tolist()
    base = threshold_rescales(bm, np.arange(4), 0.0)
    assert base.tolist() == count_rescales(bm, np.arange(4))[0].tolist()
    assert threshold_rescales(bm, np.arange(4), 3.0).sum() <= base.sum()


def _trace_shaped_scores():
    """A 512×512 score matrix whose 16-key block maxima equal a shipped trace head's
    (layer 0 head 0 of the 512-token LICENSE capture): each block holds its max once,
    the other keys below it."""
    t = tr.load_trace(tr.data_dir() / "smollm2_license_L512.npz")
    bm = t.block_max(16, kind="values")[0].astype(np.float64)   # [512, 32]
    rng = np.random.default_rng(3)
    S = np.repeat(bm, 16, axis=1) - rng.exponential(2.0, size=(512, 512))
    S[:, ::16] = bm
    S[np.triu_indices(512, 1)] = NEG
    fin = np.isfinite(bm)
    assert np.array_equal(S.reshape(512, 32, 16).max(-1)[fin], bm[fin])
    return S, bm


@pytest.mark.parametrize("policy", BUILTIN)
def test_online_softmax_trace_shaped(policy):
    S, bm = _trace_shaped_scores()
    V = np.random.default_rng(4).normal(size=(512, 8))
    ref = softmax_reference(S, V)
    c = count_trace(bm[None], 16, 16, policy, record_orders=True)
    for dtype in (np.float64, np.float32):
        out, resc = online_softmax(S, V, c.orders[0], 16, dtype=dtype, return_rescales=True)
        assert np.max(np.abs(out - ref)) <= TOL[dtype]
        if dtype is np.float64:   # the replay rescales exactly as counted
            assert resc.tolist() == c.row_counts[0].tolist()


# ---------------------------------------------------------------- shipped traces

def test_shipped_traces_present_and_small():
    from fusioncim_plugin.softmax.profile import DEFAULT_TRACES

    names = sorted(p.name for p in tr.shipped_traces())
    gemma = [f"gemma3_{t}_L{n}.npz" for t in ("license", "textwrap") for n in (512, 2048)]
    assert names == sorted(list(DEFAULT_TRACES) + gemma)
    held = sorted(p.name for p in (tr.data_dir() / "heldout").glob("*.npz"))
    assert held == sorted(f"{m}_{t}_L{n}.npz" for m in ("smollm2", "gemma3")
                          for t in ("argparse", "difflib") for n in (512, 2048))
    total = sum(p.stat().st_size for p in tr.data_dir().rglob("*") if p.is_file())
    assert total < 10e6
    t = tr.load_trace(tr.data_dir() / "smollm2_license_L512.npz")
    assert t.ranks.shape == (270, 512, 32)
    assert t.meta["n_layers"] == 30 and t.meta["n_heads"] == 9
    assert t.meta["n_kv_heads"] == 3 and t.meta["head_dim"] == 64
    assert t.meta["layer_windows"] == [None] * 30


def test_gemma_trace_sliding_window_masks():
    """Gemma-3-270M: 5 sliding-window layers (512 keys) per global layer; at 2048 tokens
    every block with no key in the window is masked (-inf), every other block is not."""
    t = tr.load_trace(tr.data_dir() / "gemma3_license_L2048.npz")
    assert t.meta["layer_windows"] == ([512] * 5 + [None]) * 3
    assert t.meta["n_heads"] == 4 and t.meta["n_kv_heads"] == 1
    L, nb = 2048, 128
    r, j = np.arange(L)[:, None], np.arange(nb)[None, :]
    for k, w in enumerate(t.windows):
        vis = (j * 16 <= r) & ((j * 16 + 15 > r - w) if w else True)
        assert np.array_equal(np.isfinite(t.ranks[k]), vis), (k, w)
    assert None in t.windows and 512 in t.windows
    s = t.meta["summary"]
    # blocks a sliding-window kernel skips are not visited. Block 32, 64 query tiles: a
    # global layer visits t + 1 blocks in tile t (mean 32.5); a 512-key window layer
    # t + 1 for t < 16, then 17 (the window's 16 blocks plus the partly covered one):
    # mean (136 + 48 * 17) / 64 = 14.875; 3 global + 15 window layers
    for o in BUILTIN:
        assert s[f"prefill/{o}/32/32"][2] == pytest.approx((3 * 32.5 + 15 * 14.875) / 18)
    assert s["prefill/oracle/32/32"][0] == 0.0


@pytest.mark.parametrize("path", tr.shipped_traces(), ids=lambda p: p.name)
def test_pattern_orders_beat_natural(path):
    t = tr.load_trace(path)
    for B in (16, 32, 64):
        s = t.meta["summary"]
        nat = s[f"prefill/natural/{B}/{B}"][0]
        assert nat >= s[f"prefill/sink_local/{B}/{B}"][0]
        assert nat >= s[f"prefill/adaptive/{B}/{B}"][0]
        assert s[f"prefill/oracle/{B}/{B}"][0] == 0.0
    # the same on the stored heads, recomputed (block 32)
    bm = t.block_max(32)
    got = {p: count_trace(bm, 32, 32, p).row_rescales_per_row for p in BUILTIN}
    assert got["natural"] >= got["sink_local"] and got["natural"] >= got["adaptive"]
    assert got["oracle"] == 0.0


def test_summary_matches_recount_all_heads():
    # at 512 tokens every head is stored: ranks must reproduce the fp32 summary exactly
    t = tr.load_trace(tr.data_dir() / "smollm2_license_L512.npz")
    for B in (32, 64):
        bm = t.block_max(B)
        for p in BUILTIN:
            c = count_trace(bm, B, B, p)
            want = t.meta["summary"][f"prefill/{p}/{B}/{B}"]
            assert c.row_rescales_per_row == pytest.approx(want[0], abs=1e-12)
            assert c.tile_rescales_per_tile == pytest.approx(want[1], abs=1e-12)


# ---------------------------------------------------------------- synthetic

def test_synthetic_deterministic_and_chunked():
    hp = sy.load_fit()[5]
    a = sy.generate_block_max(hp, np.arange(1000, 1064), 256, seed=7)
    b = sy.generate_block_max(hp, np.arange(1000, 1064), 256, seed=7)
    c = sy.generate_block_max(hp, np.arange(1000, 1064), 256, seed=8)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.isneginf(a[:, 67:])) and np.all(np.isfinite(a[:, :62]))
    r1 = sy.synthetic_counts("adaptive", 16384, 64, 64, "prefill")
    r2 = sy.synthetic_counts("adaptive", 16384, 64, 64, "prefill")
    assert r1 == r2


def test_synthetic_fit_file_consistent_with_code():
    fitted = sy.load_fit()
    assert len(fitted) == 60
    t = tr.load_trace(tr.data_dir() / "smollm2_license_L512.npz")
    bm = t.block_max(16, kind="values")
    hp = sy.fit_head(bm[3], source="x")
    stored = fitted[3]
    assert stored.early == pytest.approx(hp.early, rel=1e-6, abs=1e-6)
    for k in ("D", "A", "w", "beta", "sigma_c", "sigma_r", "S", "sigma_s"):
        assert getattr(hp, k) == pytest.approx(getattr(stored, k), rel=1e-6, abs=1e-6)


def test_gemma_fit_file_consistent_with_code():
    """Gemma-3's fit: sliding-window heads keep their layer's 512-key window (configured;
    a 512-token capture cannot show it), global heads none."""
    fitted = sy.load_fit(tr.data_dir() / sy.fit_file("gemma3"))
    assert len(fitted) == 36
    assert [h.window for h in fitted[:18]] == ([512] * 5 + [None]) * 3
    t = tr.load_trace(tr.data_dir() / "gemma3_license_L512.npz")
    hp = sy.fit_head(t.block_max(16, kind="values")[5], source="x", window=None)
    for k in ("D", "A", "w", "beta", "sigma_c", "sigma_r", "S", "sigma_s"):
        assert getattr(hp, k) == pytest.approx(getattr(fitted[5], k), rel=1e-6, abs=1e-6)


def test_synthetic_window_masks_outside_window():
    hp = sy.HeadParams(D=1, A=1, w=2, beta=0.1, sigma_c=0.5, sigma_r=1, S=3, sigma_s=0.5,
                       window=64)
    rows = np.arange(100, 164)
    v = sy.generate_block_max(hp, rows, 11, seed=1)
    j = np.arange(11)[None, :]
    vis = (j * 16 <= rows[:, None]) & (j * 16 + 15 > rows[:, None] - 64)
    assert np.array_equal(np.isfinite(v), vis)


# The aim for the long-context model: within 15 % of the real count, or 0.1
# rescales per row, per order. Held-out texts (argparse, difflib), SmolLM2 fit, prefill,
# block_q = block_kv = 32, 2048 tokens. The cells that miss the aim are the documented
# misses of README "Pattern-aware online softmax" (strict xfail: a model that starts to
# meet the aim there fails the test, so the README gets updated).
def _aim_ok(syn, real, per_row):
    return abs(syn - real) <= max(0.15 * real, 0.1 if per_row else 0.0)


_MISS = "documented miss of the 15 % aim (README, long-context error table)"
_HELDOUT_MISSES = {("natural", "row"), ("sink_local", "row"), ("adaptive", "tile"),
                   ("oracle", "tile")}


def _heldout(order):
    files = sorted((tr.data_dir() / "heldout").glob("smollm2_*_L2048.npz"))
    assert len(files) == 2, files
    real = np.mean([tr.load_meta(p)["summary"][f"prefill/{order}/32/32"] for p in files],
                   axis=0)
    return sy.synthetic_counts(order, 2048, 32, 32, "prefill"), real


@pytest.mark.parametrize("order,kind", [
    pytest.param(o, k, marks=pytest.mark.xfail(strict=True, reason=_MISS)
                 if (o, k) in _HELDOUT_MISSES else ())
    for o in BUILTIN for k in ("row", "tile")])
def test_synthetic_on_heldout_text_meets_the_aim(order, kind):
    syn, real = _heldout(order)
    i = 0 if kind == "row" else 1
    assert _aim_ok(syn[i], real[i], kind == "row"), (order, kind, syn, real)


def test_synthetic_orders_the_orders_as_the_heldout_traces_do():
    syn = {o: _heldout(o)[0][0] for o in ("natural", "sink_local", "adaptive")}
    real = {o: _heldout(o)[1][0] for o in ("natural", "sink_local", "adaptive")}
    assert real["natural"] > real["sink_local"] > real["adaptive"] > 0
    assert syn["natural"] > syn["sink_local"] > syn["adaptive"] > 0


# The same aim on the fit texts at the fit length (512 tokens), every block size.
@pytest.mark.parametrize("B", [16, 32, 64])
@pytest.mark.parametrize("order", BUILTIN)
def test_synthetic_matches_the_fit_texts_within_the_aim(order, B, request):
    if (order, B) == ("oracle", 32):
        request.applymarker(pytest.mark.xfail(strict=True, reason=_MISS))
    sums = [tr.load_meta(p)["summary"] for p in tr.shipped_traces(model="smollm2")
            if p.name.endswith("_L512.npz")]
    real = np.mean([s[f"prefill/{order}/{B}/{B}"] for s in sums], axis=0)
    syn = sy.synthetic_counts(order, 512, B, B, "prefill")
    assert _aim_ok(syn[0], real[0], True) and _aim_ok(syn[1], real[1], False), (syn, real)
    assert syn[2] == pytest.approx(real[2], rel=0.01)


# ---------------------------------------------------------------- rescale_profile

def test_profile_trace_path():
    p = rescale_profile("natural", 512, 32, 32)
    assert p.source.startswith("trace:") and "all-heads" in p.source
    assert p.row_rescales_per_row == pytest.approx((0.58304 + 0.56824) / 2, abs=1e-4)
    assert p.n_kv_blocks_per_tile == 8.5
    d = rescale_profile("sink_local", 2048, 1, 64, phase="decode")
    assert d.block_q == 1 and d.source.startswith("trace:")
    assert d.tile_rescales_per_tile == d.row_rescales_per_row
    # non-built-in block size → recount on stored heads
    q = rescale_profile("natural", 512, 48, 32)
    assert "stored-heads" in q.source
    with pytest.raises(ValueError, match="no causal trace for seq_len=1000"):
        rescale_profile("natural", 1000, 32, 32, source="trace")


def test_profile_ordered_and_cached():
    """Ordering and caching only; the time it takes is benchmarks/bench_rescale_profile.py."""
    ps = {o: rescale_profile(o, 32768, 64, 64) for o in BUILTIN}
    assert all(p.source.startswith("synthetic:") for p in ps.values())
    assert ps["oracle"].row_rescales_per_row == 0.0
    assert ps["natural"].row_rescales_per_row > ps["sink_local"].row_rescales_per_row
    assert ps["natural"].row_rescales_per_row > ps["adaptive"].row_rescales_per_row
    assert ps["natural"].n_kv_blocks_per_tile == pytest.approx(256.5, abs=0.5)
    s = rescale_profile("adaptive", 32768, 48, 48)   # off-table → seeded sample
    assert "[sampled]" in s.source
    assert rescale_profile("adaptive", 32768, 48, 48) is s   # cached


def test_profile_errors():
    with pytest.raises(ValueError, match="known orders: .*natural.*oracle"):
        rescale_profile("zigzag", 512, 32, 32)
    for bad in (0, -5, 3.5, "512", True, None):
        with pytest.raises(ValueError, match="seq_len must be a positive integer"):
            rescale_profile("natural", bad, 32, 32)
    with pytest.raises(ValueError, match="block_kv must be a multiple of 16"):
        rescale_profile("natural", 512, 32, 24)
    with pytest.raises(ValueError, match="phase"):
        rescale_profile("natural", 512, 32, 32, phase="train")
    with pytest.raises(ValueError, match="source"):
        rescale_profile("natural", 512, 32, 32, source="magic")


def test_cli_stats_json(capsys):
    from fusioncim_plugin.softmax.cli import main

    assert main(["softmax-stats", "--json", "--seq-len", "512", "--blocks", "32"]) == 0
    out = json.loads(capsys.readouterr().out)
    ent = out["smollm2_license_L512.npz"]
    assert ent["orders"]["oracle"]["32"]["row_rescales_per_row"] == 0.0
    assert sum(ent["landing"]["32"].values()) == pytest.approx(1.0)


def test_capture_importable_without_torch():
    import subprocess
    import sys

    code = ("import sys, fusioncim_plugin.softmax.capture as c; "
            "assert callable(c.main); "
            "bad = [m for m in ('torch', 'transformers', 'accelforge', 'hwcomponents') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- sliding window
# The HAND scores with a 4-key sliding window (row i sees keys i-3 … i), 2-key blocks,
# 2-row tiles. Block maxima by hand (x = no visible key):
#   row2 [1, 3]   row3 [2, 4]   row4 [0, 2, 3]   row5 [x, 2, 8]
#   row6 [x, 1, 1, 7]   row7 [x, x, 2, 1]
# Tile 3 (rows 6-7) sees no key of block 0: the kernel skips it, so the tile visits
# blocks 1-3 (n_visible 3, not 4). natural: row2 1→3, row3 2→4, row4 0→2→3 (two; with
# the global causal mask its 9 in block 0 comes first: none), row5 2→8, row6 1→7 (the tie
# 1, 1 does not count), row7 starts in block 2 (free) and never rises.
WIN_ROWS = [0, 0, 1, 1, 2, 1, 1, 0]
WIN_TILES = [0, 1, 2, 1]


def _window_scores(window):
    S = HAND.copy()
    i, j = np.indices(S.shape)
    S[j <= i - window] = NEG
    return S


def test_sliding_window_exact_counts():
    S = _window_scores(4)
    assert np.array_equal(np.isfinite(S), tr.window_mask(8, 8, 4))
    bm = S.reshape(8, 4, 2).max(-1)
    assert bm[5].tolist() == [NEG, 2, 8, NEG] and bm[7].tolist() == [NEG, NEG, 2, 1]
    c = count_trace(bm, 2, 2, "natural", window=4, record_orders=True)
    assert c.row_counts[0].tolist() == WIN_ROWS
    assert c.tile_events[0].tolist() == WIN_TILES
    assert c.n_visible.tolist() == [1, 2, 3, 3]      # block 0 not visited by tile 3
    # the replay in the recorded order gives softmax·V and rescales exactly as counted
    V = np.random.default_rng(0).normal(size=(8, 3))
    out, resc = online_softmax(S, V, c.orders[0], 2, return_rescales=True)
    assert np.max(np.abs(out - softmax_reference(S, V))) <= 1e-12
    assert resc.tolist() == WIN_ROWS
    # a window as wide as the context is the causal case
    full = count_trace(hand_block_max(), 2, 2, "natural", window=8)
    assert full.row_counts[0].tolist() == HAND_ROWS["natural"]
    # the bug of issue 10: masking with a large finite negative (fp32 min) instead of
    # -inf makes the first in-window block of row 5 a rescale and visits block 0
    bad = np.where(np.isneginf(bm), np.finfo(np.float32).min, bm)
    wrong = count_trace(np.where(tr.visible_mask(8, 4, 2), bad, NEG), 2, 2, "natural")
    assert wrong.row_counts[0].sum() > sum(WIN_ROWS)


def test_window_trace_roundtrip_and_summary(tmp_path):
    rng = np.random.default_rng(5)
    L, nb = 256, 16
    bm = rng.normal(size=(2, 1, L, L)).astype(np.float32)
    bm[1, :, tr.window_mask(L, L, 64) == 0] = NEG   # layer 1: 64-key window
    bm[0, :, tr.window_mask(L, L, None) == 0] = NEG
    b16 = bm.reshape(2, 1, L, nb, 16).max(-1)
    summ = tr.summarize_block_max(b16, layer_windows=[None, 64], blocks=(32,))
    tr.save_trace(tmp_path / "m_t_L256.npz", b16, {"layer_windows": [None, 64],
                                                   "summary": summ})
    t = tr.load_trace(tmp_path / "m_t_L256.npz")
    assert t.windows == [None, 64]
    assert np.array_equal(np.isneginf(t.ranks), np.isneginf(b16[:, 0]))
    for p in BUILTIN:
        want = summ[f"prefill/{p}/32/32"]
        got = tr.count_heads(t.block_max(32), t.windows, 32, 32, p)
        assert got == pytest.approx(want, abs=1e-12)
    # the windowed layer visits fewer blocks: 64 keys span at most 3 blocks of 32 keys
    w = count_trace(t.block_max(32)[1:], 32, 32, "natural", window=64)
    assert w.n_visible.tolist() == [1, 2, 3, 3, 3, 3, 3, 3]


# ---------------------------------------------------------------- trace sets

def test_trace_names_keyed_by_model_never_overwrite(tmp_path, capsys):
    from fusioncim_plugin.softmax import capture

    names = {tr.trace_name(m, "license", 512) for m in ("smollm2", "gemma3")}
    assert names == {"smollm2_license_L512.npz", "gemma3_license_L512.npz"}
    assert capture.model_key("/x/My_Model.Q4_K_M.gguf") == "my-model-q4-k-m"
    f = tmp_path / "smollm2_license_L512.npz"
    f.write_bytes(b"keep")
    rc = capture.main(["--model", "smollm2", "--text", "license", "--seq-len", "512",
                       "--out", str(tmp_path)])
    assert rc == 2 and f.read_bytes() == b"keep"
    assert "--overwrite" in capsys.readouterr().err
    rc = capture.main(["--model", "nope", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "smollm2" in err and "gemma3" in err


def test_capture_without_torch_names_the_extra(tmp_path, capsys, monkeypatch):
    import importlib.util

    from fusioncim_plugin.softmax import capture

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "torch" else real(n, *a))
    rc = capture.main(["--text", "license", "--seq-len", "512", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "torch" in err and "[traces]" in err


def _fake_trace(path, seq_len=512, seed=0):
    """A valid trace of random scores (1 layer, 2 heads): numbers unlike any model's."""
    rng = np.random.default_rng(seed)
    nb = seq_len // 16
    bm = rng.normal(size=(1, 2, seq_len, nb)).astype(np.float32)
    bm[..., ~tr.visible_mask(seq_len, nb)] = NEG
    tr.save_trace(path, bm, {"seq_len": seq_len, "model": "fake", "n_layers": 1,
                             "n_heads": 2, "summary": tr.summarize_block_max(bm)})


def test_traces_isolation(tmp_path, monkeypatch):
    """A file added to data/traces changes nothing unless selected with traces=."""
    from fusioncim_plugin.evaluation import evaluate
    from fusioncim_plugin.softmax import profile

    data = tmp_path / "traces"
    data.mkdir()
    for n in profile.DEFAULT_TRACES:
        (data / n).symlink_to(tr.data_dir() / n)
    (data / "synthetic_fit.json").symlink_to(tr.data_dir() / "synthetic_fit.json")
    wl = dict(model="llama3-8b", phase="prefill", seq_len=512)
    base = rescale_profile("natural", 512, 32, 32)
    base_e = evaluate("fusioncim", wl).rescale_events
    _fake_trace(data / "zzz_license_L512.npz")
    monkeypatch.setattr(tr, "data_dir", lambda: data)
    rescale_profile.cache_clear()
    assert rescale_profile("natural", 512, 32, 32).row_rescales_per_row == \
        base.row_rescales_per_row
    assert evaluate("fusioncim", wl).rescale_events == base_e
    sel = rescale_profile("natural", 512, 32, 32, traces=data / "zzz_license_L512.npz")
    assert "zzz_license_L512.npz" in sel.source
    assert sel.row_rescales_per_row != pytest.approx(base.row_rescales_per_row, abs=0.05)
    assert evaluate("fusioncim", wl, traces=str(data / "zzz_license_L512.npz")
                    ).rescale_events != base_e


def test_deleted_or_corrupt_trace_is_an_error(tmp_path, monkeypatch):
    from fusioncim_plugin.softmax import profile

    data, real = tmp_path / "traces", tr.data_dir()
    data.mkdir()
    for n in profile.DEFAULT_TRACES[1:]:
        (data / n).symlink_to(real / n)
    monkeypatch.setattr(tr, "data_dir", lambda: data)
    rescale_profile.cache_clear()
    missing = profile.DEFAULT_TRACES[0]
    for L in (512, 4096):  # never silently the synthetic model instead
        with pytest.raises(tr.TraceError, match=missing):
            rescale_profile("natural", L, 32, 32)
    cut = tmp_path / "cut_license_L512.npz"
    cut.write_bytes((real / missing).read_bytes()[:50000])
    with pytest.raises(tr.TraceError, match="cut_license_L512.npz.*truncated or corrupt"):
        rescale_profile("natural", 512, 32, 32, traces=cut)


@pytest.mark.parametrize("bad", ["0", "7", "32,abc", "-16", ""])
def test_cli_stats_bad_blocks_one_line(bad, capsys):
    from fusioncim_plugin.cli import main

    assert main(["softmax-stats", "--blocks", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--blocks" in err and "16" in err


def test_cli_stats_corrupt_trace_names_file(tmp_path, capsys):
    from fusioncim_plugin.cli import main

    cut = tmp_path / "smollm2_cut_L512.npz"
    cut.write_bytes((tr.data_dir() / "smollm2_license_L512.npz").read_bytes()[:4000])
    assert main(["softmax-stats", "--traces", str(cut)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(cut) in err


def test_policies_do_not_import_rescale():
    """The policies <-> rescale import circle is broken: rescale imports policies only."""
    import ast
    import inspect

    from fusioncim_plugin.softmax import policies, rescale

    def imported(mod):
        tree = ast.parse(inspect.getsource(mod))
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}

    assert "rescale" not in imported(policies)
    assert "policies" in imported(rescale)
    assert rescale.TileContext is policies.TileContext
