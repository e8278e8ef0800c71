"""`--preset paper` (CLI and Python API) and the FP16 Taylor-exp softmax unit."""

import math

import numpy as np
import pytest

from fusioncim_plugin import evaluate
from fusioncim_plugin.arch import load_arch
from fusioncim_plugin.cli import main
from fusioncim_plugin.components import SoftmaxUnit
from fusioncim_plugin.presets import preset_overrides
from fusioncim_plugin.tables import load_table
from fusioncim_plugin.workload import Workload

W4K = Workload(model="llama3-8b", seq_len=4096)


def test_paper_preset_sets_the_reported_set_up():
    f = load_arch("fusioncim", preset_overrides("paper", "fusioncim"))
    b = load_arch("ipcim_baseline", preset_overrides("paper", "ipcim_baseline"))
    # 16 Hybrid Engines x (1 IP-CIM + 2 OP-CIM macros); the baselines get the same 48
    for hw in (f, b):
        assert hw.var("glb_bytes") == 2**20 and hw.var("clock_hz") == 400e6
        assert hw.var("data_bits") == 8 and hw.var("softmax_exp") == "taylor_fp16"
    assert (f.var("n_ip_macros"), f.var("n_op_macros")) == (16, 32)
    assert b.var("n_ip_macros") == 48 and b.var("n_op_macros") == 0
    from fusioncim_plugin.dataflow import q_tile_rows

    assert q_tile_rows(f, W4K) == 256  # 16 engines x 16 Q rows: the largest Q tile
    blocks = {"BLOCK_Q": 256, "BLOCK_KV": 128}
    r = evaluate("fusioncim", W4K, preset="paper", overrides=blocks)
    assert r.preset == "paper"
    # the caller's own --set wins over the preset
    r2 = evaluate("fusioncim", W4K, preset="paper", overrides=blocks | {"GLB_BYTES": 2**21})
    # DRAM K (and V) reads by hand. The buffer stages the Q and O tiles, double-buffered:
    # 2 x 256 rows x (128 + 128) x 8 bit = 2^20 bit; 2048 bit (K + V of a key) per
    # resident key. 1 MiB: (2^23 - 2^20) / 2048 = 3584 keys stay, read once; the other
    # 512 re-stream per Q tile that visits them (causal, 16 tiles of 256 rows per query
    # head: tile 14 needs 256 of them, tile 15 all 512), for each of the G = 4 query heads.
    # 2 MiB: all 4096 keys stay. x 8 KV heads x 128 x 8 bit.
    per_kv_head = {2**20: 3584 + 4 * (256 + 512), 2**21: 4096}
    for res, glb in ((r, 2**20), (r2, 2**21)):
        assert res.action_counts["DRAM.read[K]"] == 8 * per_kv_head[glb] * 128 * 8
        assert res.action_counts["DRAM.read[V]"] == 8 * per_kv_head[glb] * 128 * 8
    assert "3584 of 4096 keys" in " ".join(r.notes)


def test_unknown_preset_is_one_clear_error(capsys):
    assert main(["evaluate", "--preset", "papr"]) == 2
    assert "unknown preset 'papr'; allowed: paper" in capsys.readouterr().err


def test_cli_prints_the_chosen_blocks(capsys):
    assert main(["evaluate", "--design", "ipcim-fused", "--preset", "paper", "--seq-len",
                 "1024", "--metric", "latency"]) == 0
    out = capsys.readouterr().out
    assert "chosen by the search (best latency): block_q" in out and "preset paper" in out
    assert main(["compare", "--seq-len", "512", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "free parameters chosen by each design's search (best edp)" in out
    assert "dcim" in out and "trancim-like" in out


def test_taylor_degree_is_the_smallest_that_fp16_needs():
    """Degree n Taylor exp on r in [-ln2, 0], Horner in float16, against exp: within
    2 FP16 ulps for n = 5 (the table's degree), not for n = 4."""
    n = int(load_table("softmax_unit").value("taylor_degree", ""))
    r = np.linspace(-math.log(2), 0, 2001)

    def horner(deg):
        acc = np.float16(1 / math.factorial(deg))
        for k in range(deg - 1, -1, -1):
            acc = np.float16(acc * np.float16(r)) + np.float16(1 / math.factorial(k))
        return acc.astype(np.float64)

    ulp = np.spacing(np.float16(np.exp(r))).astype(np.float64)
    assert np.max(np.abs(horner(n) - np.exp(r)) / ulp) <= 2
    assert np.max(np.abs(horner(n - 1) - np.exp(r)) / ulp) > 2


def test_fp16_taylor_exp_energy_from_horowitz():
    """exp = (2 range-reduction + 5 Horner) FP16 multiplies + (3 + 5) FP16 adds, Horowitz
    45 nm (1.1 pJ, 0.4 pJ) scaled to 28 nm the same way as every table number."""
    fp = SoftmaxUnit(28e-9, datapath="taylor_fp16")
    ref = SoftmaxUnit(45e-9, datapath="taylor_fp16")  # no tech scaling at Horowitz's node
    assert ref.exp().energy == pytest.approx((7 * 1.1 + 8 * 0.4) * 1e-12, rel=1e-9)
    assert fp.exp().energy < ref.exp().energy
    assert fp.compute().energy > SoftmaxUnit(28e-9).compute().energy  # FP16 costs more
    with pytest.raises(ValueError, match="SOFTMAX_EXP"):
        SoftmaxUnit(28e-9, datapath="lut")


def test_fp16_taylor_lane_hardware_follows_its_datapath():
    """A Taylor FP16 lane instantiates the operators its energy counts: multipliers =
    2 range-reduction + 5 Horner + 1 requantize = 8; adders = 1 compare + 1 subtract +
    (3 range + 5 Horner) + 1 running sum + 1 requantize = 12 (I-BERT: 3 + 1 = 4 and
    1 + 1 + 4 + 1 + 1 = 8). Area and leakage: Aladdin 40 nm 32-bit adder 278 um^2 /
    2.4 uW, multiplier 6350 um^2 / 80 uW, at 16 bit (adder x 16/32, multiplier x
    (16/32)^2), plus one shared reciprocal (4 multipliers, 2 adders), scaled 40 -> 28 nm."""
    from hwcomponents.scaling import tech_node_area, tech_node_leak

    lanes = 256  # the paper preset's softmax unit
    fp = SoftmaxUnit(28e-9, lanes=lanes, datapath="taylor_fp16")
    ib = SoftmaxUnit(28e-9, lanes=lanes, datapath="ibert_int16")
    assert (fp.lane_mults, fp.lane_adds) == (8, 12)
    assert (ib.lane_mults, ib.lane_adds) == (4, 8)
    for unit, mults, adds in ((fp, 8, 12), (ib, 4, 8)):
        n_add, n_mult = lanes * adds + 2, lanes * mults + 4
        area_um2 = n_add * 278.0 * 16 / 32 + n_mult * 6350.0 * 16 * 16 / 1024
        leak_w = n_add * 2.4e-6 * 16 / 32 + n_mult * 80e-6 * 16 * 16 / 1024
        assert unit.area == pytest.approx(area_um2 * 1e-12 * tech_node_area(28e-9, 40e-9), rel=1e-9)
        assert unit.leak_power == pytest.approx(leak_w * tech_node_leak(28e-9, 40e-9), rel=1e-9)
    # 2053 / 1026 multipliers dominate: the FP16 unit is about twice the I-BERT one
    assert 1.9 < fp.area / ib.area < 2.0
