"""Hand counts and independent recomputations (not the evaluator's own sums).

Shapes: LLaMA-3-8B (32 query heads, 8 KV heads, G = 4, head dim 128, INT8), default
arch (Q tile 128 rows, KV block 64, 2 MiB buffer in 4 x 256-bit banks, 200 MHz).
"""

import math

import pytest

from fusioncim_plugin import evaluate
from fusioncim_plugin.arch import load_arch
from fusioncim_plugin.components import DRAM, GlobalBufferSRAM, IPCIMMacro, OPCIMMacro
from fusioncim_plugin.designs import DESIGNS
from fusioncim_plugin.workload import Workload

HEADS, E = 32, 128


FIXED = {"BLOCK_Q": 128, "BLOCK_KV": 64}  # hand counts at these blocks (not searched)


def counts(design, **wl):
    return evaluate(design, Workload(model="llama3-8b", **wl), softmax_order=None,
                    overrides=FIXED)


def test_compute_entries_are_the_executed_macs():
    for causal in (True, False):
        r = counts("fusioncim", seq_len=1024, causal=causal)
        c = r.action_counts
        assert c["IPCIM_MAC.compute[S]"] + c["OPCIM_MAC.compute[O]"] == r.attention.macs_executed
    assert r.attention.macs_executed == r.attention.macs == 2 * HEADS * 1024 * 1024 * E


def test_partial_last_tile_masked_products():
    # L = 200: tile 0 (rows 0-127, keys 0-127) wastes 128*127/2 = 8128 masked products;
    # tile 1 (rows 128-199) streams 200 keys for 72 rows = 14400, of which
    # sum(129..200) = 11844 are useful: 2556 wasted.
    r = counts("fusioncim", seq_len=200)
    assert r.attention.macs_executed - r.attention.macs == 2 * HEADS * E * (8128 + 2556)


def test_energy_recomputed_from_the_component_models():
    """Counts x energies taken straight from our hwcomponents classes (not through
    AccelForge), plus leakage x latency, give the evaluator's total."""
    r = counts("fusioncim", seq_len=1024)
    per_bit_or_op = {
        "DRAM.read": DRAM("LPDDR4", 64).read(bits_per_action=1).energy,
        "DRAM.write": DRAM("LPDDR4", 64).write(bits_per_action=1).energy,
        "GlobalBuffer.read": GlobalBufferSRAM(28e-9, 2**24, 256, 4).read(bits_per_action=1).energy,
        "GlobalBuffer.write": GlobalBufferSRAM(28e-9, 2**24, 256, 4).write(bits_per_action=1).energy,
        "IPCIMArray.write": IPCIMMacro(28e-9, 128, 128).write(bits_per_action=1).energy,
        "IPCIM_MAC.compute": IPCIMMacro(28e-9, 128, 128).compute().energy,
        "OPCIMArray.read": OPCIMMacro(28e-9, 128, 128, acc_bits=16).read(bits_per_action=1).energy,
        "OPCIMArray.write": OPCIMMacro(28e-9, 128, 128, acc_bits=16).write(bits_per_action=1).energy,
        "OPCIM_MAC.compute": OPCIMMacro(28e-9, 128, 128, acc_bits=16).compute().energy,
    }
    arch = load_arch("fusioncim")
    total = 0.0
    for key, n in r.action_counts.items():
        comp_action = key.split("[")[0]
        comp, action = comp_action.split(".")
        e = per_bit_or_op.get(comp_action, None)
        if e is None:  # softmax unit actions: checked in test_components
            e = arch.energy(comp, action)
        total += n * e
    total += arch.leak_power * r.attention.latency_s
    assert r.attention.energy_j == pytest.approx(total, rel=1e-9)


def test_fusioncim_latency_by_hand():
    # Non-causal, no rescale: 8 KV heads x 4 query heads x 8 Q tiles. Per key, IP-CIM
    # takes 8 cycles (a bit-serial INT8 broadcast) and OP-CIM's near-memory lanes (16
    # macros x 128 lanes by the default rule, one product each per cycle) take
    # 128x128 / 2048 = 8 cycles; the once-per-block write-back port (15 reads + 16
    # writes of the tile's 16384 x 16 b at 2048 b/cycle = 3968 cycles per tile) hides
    # behind them. Per tile add writing the 128x128 INT8 Q tile (1024 b/cycle over 8
    # macros) and reading the 16-bit O tile out (2048 b/cycle over 16 macros):
    # 1024 x 8 + 128 + 128 cycles. With 8 lanes per macro OP-CIM takes 128 cycles a key.
    r = counts("fusioncim", seq_len=1024, causal=False)
    cycles = 8 * 4 * 8 * (1024 * 8 + 128 + 128)
    assert r.latency_bounds_s["compute"] == pytest.approx(cycles / 200e6)
    r8 = evaluate("fusioncim", Workload(model="llama3-8b", seq_len=1024, causal=False),
                  softmax_order=None, overrides={"OPCIM_LANES": 8})
    assert r8.latency_bounds_s["compute"] == pytest.approx(
        8 * 4 * 8 * (1024 * 128 + 128 + 128) / 200e6)
    # Buffer: Q and O staged (in + out), K and V written once per KV head and read once
    # per Q tile, through 4 banks x 256 b per 200 MHz clock.
    q = HEADS * 1024 * E * 8
    kv_reads = 2 * HEADS * 8 * 1024 * E * 8  # K and V, per query head, 8 tiles
    kv_writes = 2 * 8 * 1024 * E * 8
    buffer_bits = 4 * q + kv_writes + kv_reads
    assert r.latency_bounds_s["buffer"] == pytest.approx(buffer_bits / (4 * 256 * 200e6))


def test_fused_kv_stationary_hand_counts():
    # L = 256 causal, Br = 128, Bc = 64: tile 0 visits 2 KV blocks (128 keys), tile 1
    # visits 4 (256 keys); per query head: Q re-read per block, K re-written per tile.
    c = counts("ipcim-fused", seq_len=256).action_counts
    assert c["GlobalBuffer.read[Q]"] == HEADS * 128 * (2 + 4) * E * 8 == 25_165_824
    assert c["GlobalBuffer.read[K]"] == HEADS * (128 + 256) * E * 8 == 12_582_912
    assert c["IPCIMArray.write[K]"] == 12_582_912
    assert c["GlobalBuffer.write[O_acc]"] == HEADS * 128 * 6 * E * 16 == 50_331_648


def test_decode_streams_kv_once_per_kv_head():
    c = counts("fusioncim", phase="decode", seq_len=256).action_counts
    assert c["GlobalBuffer.read[K]"] == 8 * 256 * E * 8 == 2_097_152
    assert c["DRAM.read[K]"] == 2_097_152


def test_unfused_spills_the_part_of_s_that_does_not_fit():
    # 8 KiB buffer, row blocks of 1 query row: the block's Q row (double-buffered) and
    # O partial sums take 2*128*8 + 128*16 = 4096 b, so 61440 b of S (16 b/element) stay;
    # causal row r has r+1 scores, so rows with r+1 > 3840 spill 16(r+1) - 61440 b.
    r = evaluate("dcim", Workload(model="llama3-8b", seq_len=4096), softmax_order=None,
                 overrides={"GLB_BYTES": 8192, "BLOCK_Q": 1})
    c = r.action_counts
    spill = sum(16 * k - 61440 for k in range(3841, 4097)) * HEADS
    assert c["DRAM.write[S]"] == spill == 16_842_752
    assert c["DRAM.read[S]"] == 2 * spill  # max pass, exp pass
    assert c["DRAM.write[P]"] == c["DRAM.read[P]"] == spill / 2  # INT8 P written over S
    assert c["DRAM.read[K]"] == 8 * 4096 * 4097 // 2 * 4 * E * 8  # bits; nothing stays
    assert r.params["block_q"] == 1


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("wl", [dict(seq_len=2048), dict(seq_len=16384),
                                dict(phase="decode", seq_len=8192)])
def test_flow_conservation(design, wl):
    """What DRAM delivers is written into the buffer; what leaves for DRAM was read from
    it; every design reads Q once and writes O once."""
    c = counts(design, **wl).action_counts
    n_q = Workload(model="llama3-8b", **wl).n_queries
    for t in ("Q", "K", "V"):
        assert c[f"DRAM.read[{t}]"] == c[f"GlobalBuffer.write[{t}]"], t
    assert c["GlobalBuffer.read[O]"] == c["DRAM.write[O]"] == c["DRAM.read[Q]"] \
        == HEADS * n_q * E * 8


@pytest.mark.parametrize("tokens", [512, 4096])
def test_linear_partial_sums_by_hand(tokens):
    """Review item 6: the 24 IP-CIM macros of the linear layers cannot hold a 4096-long
    dot product. A 4096 x 4096 projection with the macros side by side (r = 1: 128 input
    rows x 384 output columns per tile) has 32 row passes, so every output passes 31
    partial sums (16 b) through the buffer, written and read back. The buffer (2 MiB =
    16,777,216 b) holds, beside a 128 x 384 weight tile (393,216 b), the inputs and one
    column tile's partial sums of (16,777,216 - 393,216) // (4096 x 8 + 384 x 16) = 421
    tokens, so the tokens run in ceil(T / 421) blocks (2 at 512 tokens, 10 at 4096) and
    the weights are fetched once per block. Stacking r = 4 macros along the input rows
    (an adder tree of 3 adds per output and pass; 6 stacks, 96 columns, a 512 x 96 weight
    tile) leaves 8 passes, 7 partial sums, 4096 / 96 -> 43 reads of the input per token
    and 16,384,000 // (32,768 + 96 x 16) = 477 tokens per block (2 blocks, 9 at 4096)."""
    from fusioncim_plugin.dataflow import _linear_tiling, weight_stationary_linear

    hw = load_arch("ipcim_baseline", {"N_IP_MACROS": 24})
    w = 4096 * 4096 * 8
    t1 = _linear_tiling(hw, tokens, 4096, 4096, 1)
    assert t1["psum"] == 31 * tokens * 4096 * 16 and t1["adds"] == 0
    assert t1["w_bits"] == (10 if tokens == 4096 else 2) * w
    assert t1["x_reads"] == 11 * tokens * 4096 * 8
    t4 = _linear_tiling(hw, tokens, 4096, 4096, 4)
    assert t4["psum"] == 7 * tokens * 4096 * 16
    assert t4["w_bits"] == (9 if tokens == 4096 else 2) * w
    assert t4["adds"] == 3 * 8 * tokens * 4096
    assert t4["x_reads"] == 43 * tokens * 4096 * 8
    # The other schedule: r = 4, 6 stacks, the partial sums of 8 column tiles (768
    # columns) resident: per token 768 x 16 b of partial sums + a 512-row input slice
    # x 8 b = 16,384 b, so 16,384,000 // 16,384 = 1000 tokens per block (1 block at 512
    # tokens, 5 at 4096); the inputs come from DRAM once per group, ceil(43 / 8) = 6 times.
    g8 = _linear_tiling(hw, tokens, 4096, 4096, 4, 6, 8)
    assert g8["token_blocks"] == (5 if tokens == 4096 else 1)
    assert g8["w_bits"] == g8["token_blocks"] * 4096 * 4096 * 8
    assert g8["x_fill"] == 6 * tokens * 4096 * 8 and t4["x_fill"] == tokens * 4096 * 8
    assert g8["psum"] == t4["psum"] and g8["x_reads"] == t4["x_reads"]

    # the layer takes, per matrix, the tiling with the least energy (leakage included)
    c = weight_stationary_linear(hw, Workload(model="llama3-8b", seq_len=tokens))
    e = hw.energy

    def energy(t):
        return (t["psum"] * (e("GlobalBuffer", "read") + e("GlobalBuffer", "write"))
                + t["x_reads"] * e("GlobalBuffer", "read") + t["adds"] * e("IPCIM_MAC", "reduce")
                + t["x_fill"] * (e("DRAM", "read") + e("GlobalBuffer", "write"))
                + t["w_bits"] * (e("DRAM", "read") + e("GlobalBuffer", "read")
                                 + e("GlobalBuffer", "write") + e("IPCIMArray", "write"))
                + t["cycles"] * hw.leak_power / hw.var("clock_hz"))
    p = c.params["Wq"]
    chosen = _linear_tiling(hw, tokens, 4096, 4096, p["r"], p["stacks"], p["group"])
    others = [_linear_tiling(hw, tokens, 4096, 4096, r) for r in (1, 2, 3, 4, 6, 8, 12, 24)]
    assert energy(chosen) <= min(energy(t) for t in [t1, t4, g8] + others)
    for comp, action, tensor, n in (("GlobalBuffer", "write", "Wq_psum", chosen["psum"]),
                                    ("IPCIM_MAC", "reduce", "Wq_psum", chosen["adds"]),
                                    ("DRAM", "read", "Wq", chosen["w_bits"]),
                                    ("IPCIMArray", "write", "Wq", chosen["w_bits"])):
        assert c.total(comp, action, tensor) == n, (comp, action, tensor)


# Aladdin 40 nm (hwcomponents-library 1.0.58) areas of a near_memory lane (8x8 multiplier,
# 16-b adder, two 16-b registers) and of a 16x16 rescale multiplier, um^2.
LANE_UM2 = 6350 * 64 / 1024 + 278 * 16 / 32 + 2 * 16 * 5.98  # 727.235
RESCALE_UM2 = 6350 * 256 / 1024  # 1587.5


def test_default_opcim_lanes_pv_keeps_pace_with_qkt():
    """Design rule: OPCIM_LANES = ceil(N_IP_MACROS x IP-CIM MACs per cycle per macro /
    N_OP_MACROS), an IP-CIM macro forming rows x (cols / data_bits) / data_bits MACs a
    cycle (bit serial). Defaults: 128 x 16 / 8 = 256 per macro, 8 x 256 / 16 = 128 lanes,
    so the QK^T and PV stages of a 128 x 128 tile both take 16384 / 2048 = 8 cycles per
    key; the lanes' area is in the OP-CIM macros' (16 x (128 x 128 bits at
    1.5827593 um^2 + 128 lanes + 8 rescale multipliers))."""
    from hwcomponents.scaling import tech_node_area

    a = load_arch("fusioncim")
    assert a.var("opcim_lanes") == 128
    ip = a.components["IPCIM_MAC"].throughput["compute"] / 200e6
    op = a.components["OPCIM_MAC"].throughput["compute"] / 200e6
    assert ip == pytest.approx(8 * 256) and op == pytest.approx(16 * 128)
    assert 128 * 128 / ip == pytest.approx(8) and 128 * 128 / op == pytest.approx(8)
    a40 = tech_node_area(28e-9, 40e-9)
    macro_um2 = 128 * 128 * 1.5827593 + (128 * LANE_UM2 + 8 * RESCALE_UM2) * a40
    assert a.components["OPCIMArray"].area == pytest.approx(16 * macro_um2 * 1e-12, rel=1e-9)
    # overridable, and the lanes' area follows: 120 lanes fewer per macro
    a8 = load_arch("fusioncim", {"OPCIM_LANES": 8})
    assert a8.var("opcim_lanes") == 8
    assert a.components["OPCIMArray"].area - a8.components["OPCIMArray"].area == \
        pytest.approx(16 * 120 * LANE_UM2 * a40 * 1e-12, rel=1e-9)
    # the rule follows the spec's own variables: the smallest lane count that keeps pace
    for ov, lanes in (({"N_IP_MACROS": 3}, 48),  # 3 x 256 / 16
                      ({"N_IP_MACROS": 5, "N_OP_MACROS": 3}, 427),  # ceil(1280 / 3)
                      ({"DATA_BITS": 4}, 512),  # 8 x (128 x 32 / 4) / 16
                      ({"N_OP_MACROS": 1}, 1024)):  # 2048, capped at the 1024 accumulators
        b = load_arch("fusioncim", ov)
        assert b.var("opcim_lanes") == lanes, ov
        ip_b = b.components["IPCIM_MAC"].throughput["compute"]
        op_b = b.components["OPCIM_MAC"].throughput["compute"]
        if lanes < 1024:
            assert ip_b <= op_b < ip_b + b.var("n_op_macros") * 200e6, ov


def test_linear_layers_no_cliff_in_macro_count():
    """Stacking r macros along din needs no divisor of the macro count (the remainder
    idles): one more macro never costs more than its leakage (< 1 %), so a prime count
    (59, e.g. an iso-area baseline) is not a cliff (it was 2x the energy of 58 when r
    had to divide it)."""
    from fusioncim_plugin.dataflow import weight_stationary_linear
    from fusioncim_plugin.evaluation import _cost

    wl = Workload(model="llama3-8b", seq_len=4096)
    e = {}
    for n in range(20, 65):
        hw = load_arch("ipcim_baseline", {"N_IP_MACROS": n})
        e[n] = _cost(hw, weight_stationary_linear(hw, wl), wl.linear_macs())[0].energy_j
    assert all(e[n + 1] <= e[n] * 1.01 for n in range(20, 64))
    assert e[59] <= e[58] * 1.01 and e[64] < e[20]


def test_linear_latency_follows_the_tiling_59_macros():
    """Review item 10: the linear layers' latency comes from the tiling that sets their
    energy. 59 IP-CIM macros (the iso-area baseline) stacked r = 4 deep: 14 stacks,
    3 macros idle, 14 x 16 = 224 output columns per tile, so a 4096 x 4096 projection
    has ceil(4096 / 224) = 19 column tiles (the last one 64 of 224 full) and
    4096 / 512 = 8 row passes. At 256 tokens (one token block): 8 x 19 x 256 tokens x
    8 bit-serial cycles = 311,296 compute cycles, plus 19 column tiles x 8 passes x
    128 rows written per macro = 19,456 weight-write cycles. Counting all 59 macros
    busy (the old rule) gives 4096^2 x 256 / (59 x 256) MACs per cycle = 284,360 plus
    4096^2 x 8 / (59 x 128) = 17,773: 9.5 % too fast."""
    from fusioncim_plugin.dataflow import _linear_tiling

    hw = load_arch("ipcim_baseline", {"N_IP_MACROS": 59})
    t = _linear_tiling(hw, 256, 4096, 4096, 4)
    assert (t["cols"], t["col_tiles"], t["passes"], t["token_blocks"]) == (224, 19, 8, 1)
    assert t["cycles"] == 8 * 19 * 256 * 8 + 19 * 8 * 128 == 330_752
    old = math.ceil(4096**2 * 256 / (59 * 256)) + math.ceil(4096**2 * 8 / (59 * 128))
    assert old == 284_360 + 17_773 and t["cycles"] > 1.09 * old
    # a partial last pass writes only its rows: din = 4160 on r = 1 -> 33 passes, the
    # last one 64 rows; 59 macros x 16 = 944 columns -> 5 column tiles
    t = _linear_tiling(hw, 256, 4160, 4096, 1)
    assert (t["passes"], t["col_tiles"], t["token_blocks"]) == (33, 5, 1)
    assert t["cycles"] == 33 * 5 * 256 * 8 + 5 * (32 * 128 + 64)


@pytest.mark.parametrize("n_ip", [24, 59])
def test_linear_layer_cycles_are_the_sum_of_its_matrices(n_ip):
    """The layer's linear compute cycles are the chosen tilings' cycles, matrix by
    matrix, and its latency is at least that (compute) and at least the DRAM / buffer
    port time at the same counts."""
    from fusioncim_plugin.dataflow import _linear_tiling, weight_stationary_linear

    hw = load_arch("ipcim_baseline", {"N_IP_MACROS": n_ip})
    wl = Workload(model="llama3-8b", seq_len=4096)
    c = weight_stationary_linear(hw, wl)
    want = 0
    for name, (din, dout) in wl.linear_weights().items():
        p = c.params[name]
        want += _linear_tiling(hw, wl.tokens, din, dout, p["r"], p["stacks"],
                               p["group"])["cycles"]
    assert c.compute_cycles == want


@pytest.mark.parametrize("design", ["fusioncim", "dcim", "hybrid"])
def test_linear_layers_leak_the_whole_chip(design):
    """Review item 2b: the linear layers run on the design's own chip, and all of it
    leaks while they run - FusionCIM's idle OP-CIM macros (9 mW of its 16 mW) included.
    Linear leakage = the chip's leak power x the linear latency."""
    from fusioncim_plugin.designs import get_design
    from fusioncim_plugin.evaluation import evaluate

    d = get_design(design)
    from fusioncim_plugin.dataflow import staged_arch

    wl = Workload(model="llama3-8b", seq_len=4096)
    r = evaluate(design, wl, softmax_order=None)
    # the chip with its block staging SRAMs sized for the blocks the search chose
    chip = staged_arch(load_arch(d.arch, dict(d.overrides)), wl, r.block_q, r.block_kv)
    leak = chip.leak_power
    assert leak == pytest.approx(sum(c.leak_power for c in chip.components.values()))
    lin_t = r.layer.latency_s - r.attention.latency_s
    lin_leak = r.layer.energy_by_category_j["leakage"] - r.attention.energy_by_category_j["leakage"]
    assert lin_leak == pytest.approx(leak * lin_t, rel=1e-9)
    if d.arch == "fusioncim":
        op = chip.components["OPCIMArray"].leak_power
        assert op > 0.5 * leak  # the idle OP-CIM macros leak too
        ip_only = load_arch("ipcim_baseline", {"N_IP_MACROS": chip.var("n_ip_macros")})
        assert lin_leak > ip_only.leak_power * lin_t + 0.99 * op * lin_t


def test_linear_layers_need_one_token_in_the_buffer():
    """With its inputs resident, the smallest linear tile (r = 1, one 16-column stack)
    needs, for the 14336-wide FFN down projection, one token's input (14336 B) and its
    16 partial sums (32 B) beside a 128 x 16 weight tile (2048 B): 16416 B; one byte
    less is one clear error naming GLB_BYTES and the fix. With partial sums resident a
    token needs only a 128-row input slice and a column tile's partial sums (160 B), so
    an 8 KiB buffer still runs the layer: 38 tokens per block."""
    from fusioncim_plugin.arch import SpecError
    from fusioncim_plugin.dataflow import _linear_tiling, weight_stationary_linear

    with pytest.raises(SpecError, match=r"GLB_BYTES = 16415: .*set --set GLB_BYTES=16416 or more"):
        _linear_tiling(load_arch("fusioncim", {"GLB_BYTES": 16415}), 64, 14336, 4096, 1, 1)
    hw = load_arch("fusioncim", {"GLB_BYTES": 16416})
    assert _linear_tiling(hw, 64, 14336, 4096, 1, 1)["token_blocks"] == 64
    hw = load_arch("fusioncim", {"GLB_BYTES": 8192})
    assert _linear_tiling(hw, 64, 14336, 4096, 1, 1, 1)["token_blocks"] == math.ceil(64 / 38)
    c = weight_stationary_linear(hw, Workload(model="llama3-8b", seq_len=64))
    assert all(p["group"] for p in c.params.values())  # only partial sums resident fit


def test_residency_note_says_none_re_stream_when_all_stay():
    from fusioncim_plugin.dataflow import residency_note
    from fusioncim_plugin.workload import Workload

    wl = Workload(model="llama3-8b", seq_len=4096)
    assert residency_note(4096, wl).endswith("4096 of 4096 keys (100 %) stay in the global "
                                             "buffer; none re-stream from DRAM")
    assert residency_note(1024, wl).endswith("(25 %) stay in the global buffer, the rest "
                                             "re-stream from DRAM per Q tile")


def test_linear_macros_all_runs_fusioncim_linear_layers_on_every_macro():
    """LINEAR_MACROS=all (the earlier macro-budget assumption, a sensitivity row): the
    linear layers take the 8 + 16 macros' tiling - the counts of 24 IP-CIM macros - and
    still the whole FusionCIM chip leaks over them; a bad value is one clear error."""
    from fusioncim_plugin.arch import SpecError
    from fusioncim_plugin.dataflow import staged_arch, weight_stationary_linear

    wl = Workload(model="llama3-8b", seq_len=4096)
    hw = load_arch("fusioncim")
    c24 = weight_stationary_linear(hw, wl, macros=24)
    assert all(p["r"] * p["stacks"] <= 24 for p in c24.params.values())
    assert max(p["r"] * p["stacks"] for p in c24.params.values()) > 8
    ip = evaluate("fusioncim", wl, softmax_order=None)
    al = evaluate("fusioncim", wl, softmax_order=None, overrides={"LINEAR_MACROS": "all"})
    lin_t = al.layer.latency_s - al.attention.latency_s
    assert lin_t < 0.5 * (ip.layer.latency_s - ip.attention.latency_s)
    leak = al.layer.energy_by_category_j["leakage"] - al.attention.energy_by_category_j["leakage"]
    chip = staged_arch(hw, wl, al.block_q, al.block_kv)  # the chip at its chosen blocks
    assert leak == pytest.approx(chip.leak_power * lin_t, rel=1e-9)
    with pytest.raises(SpecError, match="LINEAR_MACROS = 'op'; allowed: ip"):
        evaluate("fusioncim", wl, overrides={"LINEAR_MACROS": "op"})
