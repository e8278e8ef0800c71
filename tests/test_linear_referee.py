"""AccelForge is the referee of the linear layers too: one weight matrix's closed form
(dataflow.weight_stationary_linear) against accelforge.model.main.evaluate_mapping on
mappings/weight_stationary_linear.yaml, on the arch the design runs it on (its own chip).
After the named corrections (fusioncim_plugin.linear_referee) every count, energy and
component latency agrees, and the closed form's latency is AccelForge's x tile_fill."""

import pytest

from fusioncim_plugin.arch import load_arch
from fusioncim_plugin.linear_referee import linear_referee
from fusioncim_plugin.workload import Workload

MACS_PER_CYCLE = 128 * 16 / 8  # one 128 x 128 INT8 bit-serial IP-CIM macro


def wl(tokens):
    return Workload(model="llama3-8b", seq_len=tokens, causal=False)


GRID = [
    ("fusioncim", "Wk", {}, 256),  # 8 IP-CIM macros, r = 2: every macro busy
    ("fusioncim", "W_down", {}, 128),  # din 14336: 56 row passes
    ("fusioncim", "Wq", {}, 4096),  # the real shape: X runs in token blocks that fit
    ("fusioncim", "W_down", {}, 4096),
    ("dcim", "Wk", {}, 256),  # 24 macros, r = 3: a part-filled last row pass
    ("dcim", "Wq", {"N_IP_MACROS": 59}, 256),  # iso-area: 3 macros idle
    ("dcim", "W_up", {}, 4096),
    ("hybrid", "Wo", {"GLB_BYTES": 1 << 18}, 512),  # a small buffer: token blocks
]


@pytest.mark.parametrize("design,matrix,ov,tokens", GRID)
def test_linear_layer_agrees_with_accelforge(design, matrix, ov, tokens):
    r = linear_referee(design, wl(tokens), matrix, ov)
    assert r.residuals() == []


def test_the_grid_covers_both_schedules():
    """Inputs resident (group 0) and partial sums resident (a column group, the last
    one part-filled at hybrid's Wo: 43 column tiles in groups of 4)."""
    groups = {(d, m, t): linear_referee(d, wl(t), m, ov).tiling["group"]
              for d, m, ov, t in GRID}
    assert groups[("dcim", "Wq", 256)] == 0 and groups[("fusioncim", "Wq", 4096)] > 0
    h = linear_referee("hybrid", wl(512), "Wo", {"GLB_BYTES": 1 << 18})
    assert h.tiling["col_tiles"] % h.tiling["group"] and h.looptree["COL_GROUP"] > 0


def test_linear_corrections_by_hand_59_macros():
    """dcim at 59 IP-CIM macros, Wq (4096 x 4096), 256 tokens; the closed form stacks
    r = 4: 14 stacks x 16 = 224 columns, 19 column tiles, 8 row passes."""
    r = linear_referee("dcim", wl(256), "Wq", {"N_IP_MACROS": 59})
    T, macs = 256, 256 * 4096 * 4096
    assert {k: r.tiling[k] for k in ("r", "cols", "col_tiles", "passes")} == \
        dict(r=4, cols=224, col_tiles=19, passes=8)
    # cim_operand_read_in_mac: AccelForge reads the weight once per MAC, 8 bits
    assert r.af.actions[("IPCIMArray", "read", "W")] == 8 * macs
    assert ("IPCIMArray", "read", "W") not in r.ours
    # inter_macro_adder_tree: 3 adds per output and pass in the closed form only
    assert r.ours[("IPCIM_MAC", "reduce", "Y_psum")] == 3 * 8 * T * 4096
    assert all(k[1] != "reduce" for k in r.af.actions)
    # accumulator_width_in_buffer: 7 partial sums at 16 b + the output at 8 b, written;
    # AccelForge writes 8 passes at 8 b
    assert r.ours[("GlobalBuffer", "write", "Y_psum")] == 7 * T * 4096 * 16
    assert r.af.actions[("GlobalBuffer", "write", "Y")] == 8 * T * 4096 * 8
    # tile_fill: 59 / 56 macros, 19 x 224 / 4096 columns; AccelForge's MAC time counts
    # all 59 busy
    clock = 200e6
    assert r.af.latency["IPCIM_MAC"] == pytest.approx(macs / (59 * MACS_PER_CYCLE * clock),
                                                      rel=1e-7)
    assert r.fill["idle"] == 59 / 56 and r.fill["cols"] == 19 * 224 / 4096
    assert r.ours_cycles == 8 * 19 * T * 8 + 19 * 8 * 128
    assert r.ours_latency() == pytest.approx(r.af_latency_corrected(), rel=1e-7)


def test_accelforge_charges_the_whole_fusioncim_chip_leakage():
    """The linear layers on FusionCIM: AccelForge's leakage of the LoopTree is the whole
    chip's leak power (its idle OP-CIM arrays included) x its latency."""
    r = linear_referee("fusioncim", wl(256), "Wk")
    chip = load_arch("fusioncim")
    op = chip.components["OPCIMArray"].leak_power
    assert op > 0.5 * chip.leak_power
    assert r.af.leak_energy == pytest.approx(chip.leak_power * r.af.total_latency, rel=1e-6)
