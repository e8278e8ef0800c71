"""Area beside energy and latency, and the iso-area comparison (issue 9: compare every
design within the same hardware budget)."""

import json

import pytest
from hwcomponents.scaling import tech_node_area

from fusioncim_plugin.cli import main
from fusioncim_plugin.report import cim_area_mm2, compare, iso_area_macros
from fusioncim_plugin.workload import Workload

# By hand, 28 nm: a 128 x 128 macro's bit cells at 1.5827593 um^2/bit (617 Kb/mm^2);
# an OP-CIM macro adds 128 lanes (8x8 mult 396.875 + 16-b adder 139 + two 16-b registers
# 191.36 um^2) and 8 16x16 rescale multipliers (1587.5 um^2), Aladdin 40 nm x 0.5472.
CELLS_UM2 = 128 * 128 * 1.5827593
OP_UM2 = CELLS_UM2 + (128 * 727.235 + 8 * 1587.5) * tech_node_area(28e-9, 40e-9)
MACROS_MM2 = (8 * CELLS_UM2 + 16 * OP_UM2) * 1e-6  # 1.5485
# near_memory staging SRAMs at the spec's BLOCK_Q=128, BLOCK_KV=64 (CACTI rows of
# energy_tables/staging_buffer.yaml): 2 P banks of 512 words x 128 b (0.011055 mm^2),
# 2 V banks of 64 words x 1024 b (0.048219 mm^2)
STAGING_MM2 = 2 * (0.011055 + 0.048219)  # 0.118548
FUSION_CIM_MM2 = MACROS_MM2 + STAGING_MM2  # 1.6670
IP_MACRO_MM2 = CELLS_UM2 * 1e-6  # 0.025932


def test_iso_area_macro_count_by_hand():
    iso = iso_area_macros()
    assert iso["fusioncim_cim_mm2"] == pytest.approx(FUSION_CIM_MM2, rel=1e-9)
    assert iso["ipcim_macro_mm2"] == pytest.approx(IP_MACRO_MM2, rel=1e-9)
    assert iso["n_ip_macros"] == 64 == int(FUSION_CIM_MM2 / IP_MACRO_MM2)  # 64.3
    assert iso["baseline_cim_mm2"] <= iso["fusioncim_cim_mm2"] \
        < iso["baseline_cim_mm2"] + IP_MACRO_MM2
    # fewer lanes, less area, fewer macros for the baselines
    # (8 lanes per macro: a pass covers 1 O row x 128 columns, so 8-b P words, 8192
    # per P bank: 2 x 0.012192 mm^2)
    assert iso_area_macros({"OPCIM_LANES": 8})["n_ip_macros"] == int(
        ((8 * CELLS_UM2 + 16 * (CELLS_UM2 + (8 * 727.235 + 8 * 1587.5)
                                * tech_node_area(28e-9, 40e-9))) * 1e-6
         + 2 * (0.012192 + 0.048219)) / IP_MACRO_MM2)  # 34


def test_compare_iso_area_gives_baselines_fusioncims_cim_area():
    wl = Workload(model="llama3-8b", seq_len=1024)
    designs = ["dcim", "ipcim-fused", "fusioncim"]
    same = {r.design: r for r in compare(wl, designs=designs)}
    iso = {r.design: r for r in compare(wl, designs=designs, iso_area=True)}
    f = iso["fusioncim"]
    # FusionCIM's CIM area at the blocks its search picks (staging sized by them)
    staging = f.area_mm2["StagingP"] + f.area_mm2["StagingV"]
    assert cim_area_mm2(f) == pytest.approx(MACROS_MM2 + staging, rel=1e-9)
    n = int(cim_area_mm2(f) / IP_MACRO_MM2)
    assert f.attention == same["fusioncim"].attention  # FusionCIM itself unchanged
    for d in ("dcim", "ipcim-fused"):
        assert cim_area_mm2(same[d]) == pytest.approx(24 * IP_MACRO_MM2, rel=1e-9)
        assert cim_area_mm2(iso[d]) == pytest.approx(n * IP_MACRO_MM2, rel=1e-9)
        assert any(f"iso-area: {n} IP-CIM macros" in x for x in iso[d].notes)
        # more macros, each searched again: never slower
        assert iso[d].attention.latency_s <= same[d].attention.latency_s


def test_compare_prints_area_and_json_carries_it(capsys):
    assert main(["compare", "--seq-len", "512"]) == 0
    out = capsys.readouterr().out
    assert "chip mm^2" in out and "CIM mm^2" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("fusioncim "))
    assert float(line.split()[-1]) > MACROS_MM2 + 0.01  # the macros and their staging
    assert main(["compare", "--seq-len", "512", "--iso-area", "--json"]) == 0
    rs = {r["design"]: r for r in json.loads(capsys.readouterr().out)}
    f_cim = sum(rs["fusioncim"]["area_mm2"].get(k, 0.0)
                for k in ("IPCIMArray", "OPCIMArray", "StagingP", "StagingV"))
    assert rs["dcim"]["area_mm2"]["IPCIMArray"] == pytest.approx(
        int(f_cim / IP_MACRO_MM2) * IP_MACRO_MM2, rel=1e-9)
    assert rs["fusioncim"]["area_mm2"]["OPCIMArray"] == pytest.approx(16 * OP_UM2 * 1e-6,
                                                                      rel=1e-9)
