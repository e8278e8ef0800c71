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
    summary = (out / "summary.md").read_text()
    for claim in ("3.86x", "1.98x", "29.4"):
        assert claim in summary
    assert "Where the gaps come from" in summary
