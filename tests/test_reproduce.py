"""`fusioncim reproduce` writes the whole paper-style evaluation."""

import csv
import json

from fusioncim_plugin.designs import DESIGNS
from fusioncim_plugin.report import DECODE_LENS, PREFILL_LENS, reproduce


def test_reproduce_writes_results_plots_and_summary(tmp_path):
    out = reproduce(tmp_path / "r", progress=False)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 * (len(PREFILL_LENS) + len(DECODE_LENS)) * len(DESIGNS)
    assert len(json.loads((out / "results.json").read_text())) == len(rows)
    for r in rows:  # the category columns add up to the total energy
        parts = sum(float(v) for k, v in r.items() if k.startswith("energy_") and k != "energy_j")
        assert abs(parts - float(r["energy_j"])) <= 1e-9 * float(r["energy_j"])
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 2 * 2 * 4 and all((out / p).stat().st_size > 10_000 for p in pngs)
    # The summary's "ours" column is recomputed here from results.csv.
    idx = {(r["design"], r["model"], r["phase"], r["seq_len"]): r for r in rows}
    saving = max(float(r["energy_j"]) / float(idx[("fusioncim",) + k[1:]]["energy_j"])
                 for k, r in idx.items() if k[0] in ("ipcim-unfused", "ipcim-fused"))
    speedup = max(float(r["latency_s"]) / float(idx[("fusioncim",) + k[1:]]["latency_s"])
                  for k, r in idx.items() if k[0] in ("ipcim-unfused", "ipcim-fused"))
    tpw = max(float(r["layer_tops_per_w"]) for r in rows if r["design"] == "fusioncim")
    summary = (out / "summary.md").read_text()
    assert f"| 3.86x | {saving:.2f}x |" in summary
    assert f"| 1.98x | {speedup:.2f}x |" in summary
    assert f"| 29.4 | {tpw:.2f} |" in summary
    assert "Where the gaps come from" in summary
