"""`fusioncim reproduce`: the paper preset on the paper's grid, then the extended grid."""

import csv
import json

import pytest

from fusioncim_plugin.designs import DESIGNS
from fusioncim_plugin.presets import PAPER_GRID
from fusioncim_plugin.report import extended_grid, reproduce


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return reproduce(tmp_path_factory.mktemp("r"), progress=False)


def test_reproduce_writes_results_plots_and_summary(out):
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == (len(PAPER_GRID) + len(extended_grid())) * len(DESIGNS)
    assert len(json.loads((out / "results.json").read_text())) == len(rows)
    for r in rows:  # the category columns add up to the total energy
        parts = sum(float(v) for k, v in r.items() if k.startswith("energy_") and k != "energy_j")
        assert abs(parts - float(r["energy_j"])) <= 1e-9 * float(r["energy_j"])
        assert "block_q=" in r["params"]  # every design's chosen blocks are reported
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 2 * 2 * 4 and all((out / p).stat().st_size > 10_000 for p in pngs)


def test_summary_figures_are_recomputed_from_the_csv(out):
    rows = list(csv.DictReader(open(out / "results.csv")))
    idx = {(r["design"], r["model"], r["phase"], int(r["seq_len"])): r for r in rows}
    grid = [("llama3-8b", "prefill", L) for L in PAPER_GRID]
    # savings at each design's least-energy blocks, speedups at its least-latency blocks
    saving = max(float(idx[(d,) + k]["best_energy_j"])
                 / float(idx[("fusioncim",) + k]["best_energy_j"])
                 for k in grid for d in ("dcim", "trancim-like"))
    k4 = ("llama3-8b", "prefill", 4096)
    speed_4k = (float(idx[("dcim",) + k4]["best_latency_s"])
                / float(idx[("fusioncim",) + k4]["best_latency_s"]))
    tpw = max(float(idx[("fusioncim",) + k]["best_layer_tops_per_w"]) for k in grid)
    for r in rows:  # each optimum is at least as good as the EDP point in its own factor
        assert float(r["best_energy_j"]) <= float(r["energy_j"]) * (1 + 1e-12)
        assert float(r["best_latency_s"]) <= float(r["latency_s"]) * (1 + 1e-12)
    summary = (out / "summary.md").read_text()
    assert f"| 3.86x | {saving:.2f}x |" in summary
    assert f"| 1.98x | {speed_4k:.2f}x |" in summary
    assert f"| 29.4 | {tpw:.2f} |" in summary
    for section in ("Where the gaps come from", "Sensitivity", "Extended grid",
                    "buffer bandwidth x 4", "chosen blocks"):
        assert section in summary


def test_speedup_over_dcim_depends_on_the_buffer_bandwidth(out):
    """Review item 4: the 4K speedup over the unfused baseline is set by the buffer
    bandwidth (its S passes); the sensitivity table shows it, and it must move."""
    summary = (out / "summary.md").read_text()
    rows = {ln.split("|")[1].strip(): ln for ln in summary.splitlines()
            if ln.startswith("| ") and ("preset as is" in ln or "buffer bandwidth x 4" in ln)}
    as_is = rows["preset as is"].split("|")[2]
    wide = rows["buffer bandwidth x 4 (GLB_BANKS=16)"].split("|")[2]
    t_as_is, t_wide = (float(x.split(",")[1].strip().rstrip("x")) for x in (as_is, wide))
    assert t_wide < t_as_is


def test_sensitivity_has_lanes_and_iso_area_with_area(out):
    """OPCIM_LANES 8 / 32 / the default rule / 2x it, and the baselines at FusionCIM's
    CIM area, each with the CIM areas: FusionCIM's grows with the lanes, the iso-area
    baselines' is FusionCIM's less at most one IP-CIM macro (0.026 mm^2)."""
    summary = (out / "summary.md").read_text()
    rows = {ln.split("|")[1].strip(): ln.split("|")[2:-1] for ln in summary.splitlines()
            if ln.startswith("| OP-CIM lanes") or "iso-area" in ln}

    def areas(label):
        return [float(x) for x in next(v for k, v in rows.items() if k.startswith(label))[-1]
                .split(",")]

    lanes = [areas(f"OP-CIM lanes: {x}") for x in ("8 per", "32 per", "the default", "2x")]
    assert "OPCIM_LANES=128)" in summary and "OPCIM_LANES=256)" in summary  # paper preset
    assert [a[0] for a in lanes] == sorted(a[0] for a in lanes) and lanes[0][0] < lanes[3][0]
    assert len({a[1] for a in lanes}) == 1  # the baselines do not change
    f, b = areas("baselines at FusionCIM's CIM area")
    assert b <= f < b + 0.026 + 0.01  # printed to 0.01 mm^2
