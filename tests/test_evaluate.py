"""evaluate(): hand-counted traffic, closed-form MACs, conservation, latency bounds."""

import pytest

from fusioncim_plugin import evaluate
from fusioncim_plugin.arch import load_arch
from fusioncim_plugin.dataflow import q_tile_rows
from fusioncim_plugin.designs import DESIGNS
from fusioncim_plugin.workload import Workload

MiB = 2**20
FIXED = {"BLOCK_Q": 128, "BLOCK_KV": 64}  # hand counts at these blocks (not searched)


@pytest.fixture(scope="module")
def r8k():
    return evaluate("fusioncim", Workload(model="llama3-8b", phase="prefill", seq_len=4096),
                    overrides=FIXED)


def test_dram_traffic_is_the_attention_io_lower_bound(r8k):
    # K+V of one KV head = 2 x 4096 x 128 B = 1 MiB fit the 2 MiB buffer, so DRAM sees
    # Q (32 heads x 4096 x 128 B = 16 MiB), K (8 heads: 4 MiB), V (4 MiB) read once and
    # O (16 MiB) written once.
    assert r8k.attention.dram_bytes == (16 + 4 + 4 + 16) * MiB
    assert "4096 of 4096 keys" in r8k.notes[0]


def test_dram_traffic_when_kv_does_not_fit():
    # 32K tokens: the buffer stages the Q tile in and O tile out (2 x 128 x 256 B), and
    # K+V of the first (2 MiB - 64 KiB) / 256 B = 7936 keys of a KV head stay; tile t
    # (causal: (t+1) x 128 keys) re-streams the keys beyond them, per query head (G = 4).
    r = evaluate("fusioncim", Workload(model="llama3-8b", seq_len=32768), overrides=FIXED)
    k_res = (2 * MiB - 2 * 128 * 256) // 256
    assert k_res == 7936 and "7936 of 32768 keys" in r.notes[0]
    keys = k_res + 4 * sum(max(0, 128 * (t + 1) - k_res) for t in range(256))
    kv = 2 * 8 * keys * 128  # K and V, 8 KV heads, bytes
    q_o = 2 * 32 * 32768 * 128
    assert r.attention.dram_bytes == kv + q_o


@pytest.mark.parametrize("model,phase,L", [
    ("llama3-8b", "prefill", 2048), ("llama3-8b", "decode", 8192),
    ("llama3-70b", "prefill", 1024), ("llama3-70b", "decode", 4096)])
def test_mac_count_closed_form(model, phase, L):
    wl = Workload(model=model, phase=phase, seq_len=L)
    r = evaluate("fusioncim", wl, overrides=FIXED)
    heads, E = wl.cfg.q_heads, 128
    if phase == "decode":
        assert r.attention.macs == 2 * heads * L * E
        assert r.attention.macs_executed == r.attention.macs  # nothing masked
    else:
        assert r.attention.macs == 2 * heads * L * (L + 1) // 2 * E
        # executed: every stored Q row meets every streamed key of its tile; the masked
        # half of each 128x128 diagonal block is computed too: 128*127/2 per tile.
        tiles = L // 128
        assert r.attention.macs_executed == r.attention.macs + 2 * heads * E * tiles * (128 * 127 // 2)


def test_non_causal_executed_macs_equal_across_designs():
    wl = Workload(model="llama3-8b", seq_len=1024, causal=False)
    macs = {d: evaluate(d, wl).attention.macs_executed for d in DESIGNS}
    assert set(macs.values()) == {2 * 32 * 1024 * 1024 * 128}, macs


def test_energy_is_the_sum_of_its_parts(r8k):
    a = r8k.attention
    assert a.energy_j == pytest.approx(sum(r8k.energy_breakdown_j.values()), rel=1e-12)
    assert a.energy_j == pytest.approx(sum(a.energy_by_category_j.values()), rel=1e-12)
    assert r8k.energy_breakdown_j["leakage"] > 0
    assert r8k.layer.energy_j > a.energy_j
    assert r8k.model_total.energy_j == pytest.approx(32 * r8k.layer.energy_j, rel=1e-12)


def test_latency_not_below_compute_or_dram_bound(r8k):
    b = r8k.latency_bounds_s
    assert r8k.attention.latency_s >= b["compute"] > 0
    assert r8k.attention.latency_s >= b["dram"] > 0
    assert r8k.attention.latency_s == max(b.values())
    # DRAM bound by hand: 40 MiB at 25.6 GB/s
    assert b["dram"] == pytest.approx(40 * MiB / 25.6e9)


def test_tops_per_w_is_ops_over_energy(r8k):
    a = r8k.attention
    assert a.tops_per_w == pytest.approx(2 * a.macs / a.energy_j / 1e12)
    assert a.tops == pytest.approx(2 * a.macs / a.latency_s / 1e12)


def test_rescale_is_its_own_line_and_order_matters():
    wl = Workload(model="llama3-8b", seq_len=2048)
    nat = evaluate("fusioncim", wl, softmax_order="natural")
    ada = evaluate("fusioncim", wl, softmax_order="adaptive")
    off = evaluate("fusioncim", wl, softmax_order=None)
    assert nat.attention.energy_by_category_j["rescale"] > 0
    assert "rescale" not in off.attention.energy_by_category_j
    assert nat.rescale_events >= ada.rescale_events
    assert nat.attention.energy_j >= ada.attention.energy_j >= off.attention.energy_j


def test_energy_grows_with_sequence_length():
    e = [evaluate("fusioncim", Workload(model="llama3-8b", seq_len=L)).attention.energy_j
         for L in (512, 1024, 2048, 4096)]
    assert e == sorted(e) and e[-1] > 4 * e[0]


def test_overrides_change_the_arch():
    wl = Workload(model="llama3-8b", seq_len=4096)
    base = evaluate("fusioncim", wl, overrides=FIXED)
    more = evaluate("fusioncim", wl, overrides={"N_IP_MACROS": 16, "N_OP_MACROS": 32,
                                                "BLOCK_Q": 256, "BLOCK_KV": 64})
    # twice the arrays hold twice the Q rows (the capacity, not the blocks passed in)
    assert (q_tile_rows(load_arch("fusioncim", {"N_IP_MACROS": 16, "N_OP_MACROS": 32}), wl)
            == 2 * q_tile_rows(load_arch("fusioncim"), wl) == 256)
    # K (and V) buffer reads by hand: each of the 32 query heads runs n = 4096 / Br tiles;
    # causal, tile i streams the (i + 1) x Br keys up to its last row, 128 x 8 bit each:
    # 32 x Br x n (n + 1) / 2 x 1024 bit. Br 128 -> 256 halves n (32 -> 16 tiles).
    def kv_reads(br):
        n = 4096 // br
        return 32 * br * n * (n + 1) // 2 * 128 * 8

    assert kv_reads(128) == 2_214_592_512 and kv_reads(256) == 1_140_850_688
    for r, br in ((base, 128), (more, 256)):
        assert r.action_counts["GlobalBuffer.read[K]"] == kv_reads(br)
        assert r.action_counts["GlobalBuffer.read[V]"] == kv_reads(br)
    # all K/V stay resident in both, so the buffer traffic differs by exactly those reads
    assert (base.attention.buffer_bytes - more.attention.buffer_bytes
            == 2 * (kv_reads(128) - kv_reads(256)) // 8 == 268_435_456)


def test_rescale_granularity_row_charges_only_the_rows_whose_max_grew():
    from fusioncim_plugin.softmax import rescale_profile

    wl = Workload(model="llama3-8b", seq_len=2048)
    tile = evaluate("fusioncim", wl, softmax_order="natural", overrides=FIXED)
    row = evaluate("fusioncim", wl, softmax_order="natural",
                   overrides=FIXED | {"RESCALE_GRANULARITY": "row"})
    p = rescale_profile("natural", 2048, 128, 64, phase="prefill", causal=True)
    ratio = (row.attention.energy_by_category_j["rescale"]
             / tile.attention.energy_by_category_j["rescale"])
    assert ratio == pytest.approx(p.row_rescales_per_row / p.tile_rescales_per_tile, rel=1e-9)
    assert row.rescale_events == tile.rescale_events  # same passes, fewer rows per pass
