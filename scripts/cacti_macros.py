"""Query CACTI (through hwcomponents-cacti) for the CIM macro arrays and write the rows
into energy_tables/ipcim_macro.yaml and energy_tables/opcim_macro.yaml (`cacti_queries`;
the block from `cacti_queries:` to the end of each file is replaced).

    .venv/bin/python scripts/cacti_macros.py            # rewrite both tables
    .venv/bin/python scripts/cacti_macros.py --print    # only print the rows

Each row is one hwcomponents_cacti.SRAM(tech_node=28e-9, size=rows*cols, width=cols)
query - the macro's bit-cell array as one bank whose port is one array row (CACTI 7's
22 nm and 32 nm runs interpolated to 28 nm by hwcomponents-cacti) - for every (rows,
cols) of ROWS x COLS below, so the models interpolate between queried geometries and
refuse others. Per bit: read/write = CACTI's dynamic energy per access / cols,
leak = standby leakage / (rows*cols). For the OP-CIM accumulator array the script also
reads CACTI's detailed report of the same runs (its `cacti.log`) for the read-energy
breakdown: `Sub-array output driver` and `Total energy in H-tree` per bit, interpolated
to 28 nm like the totals. Needs the CACTI binary that scripts/setup.sh rebuilds.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

ROWS = [16, 32, 64, 128, 256, 512]
COLS = [16, 32, 64, 128, 256, 512, 768, 1024]
NODE, LO, HI = 28e-9, 22, 32  # hwcomponents-cacti interpolates 28 nm from 22 and 32 nm
TABLES = Path(__file__).resolve().parent.parent / "energy_tables"


def _breakdown(log: Path) -> tuple[float, float, float]:
    """(technology nm, total read nJ, output driver + H-tree nJ) from a CACTI report."""
    text = log.read_text()

    def num(label):
        m = re.search(re.escape(label) + r"[^:]*:\s*([-\d.eE+]+)", text)
        if m is None:
            raise RuntimeError(f"{log}: no {label!r} in the CACTI report")
        return float(m.group(1))

    return (num("Technology size (nm)"), num("Total dynamic read energy per access (nJ)"),
            num("Sub-array output driver (nJ)")
            + num("Total energy in H-tree (that includes both address and data transfer)"))


def query(rows: int, cols: int) -> dict:
    """One SRAM(28 nm, rows*cols bits, cols-bit port) query and its read breakdown."""
    import hwcomponents_cacti.hwcomponents_cacti as hc

    digests = []  # names hwcomponents-cacti gives this query's CACTI runs (its cache keys)

    class _Recorder:
        @staticmethod
        def sha256(data):
            h = hashlib.sha256(data)
            digests.append(h.hexdigest())
            return h

    hc.hashlib = _Recorder
    try:
        m = hc.SRAM(tech_node=NODE, size=rows * cols, width=cols)
    finally:
        hc.hashlib = hashlib
    rd, wr = m.read().energy, m.write().energy
    cache = Path(hc._clean_tmp_dir())
    if not all((cache / f"{d}cacti.log").exists() for d in digests):
        for d in digests:  # a cached result whose report was cleaned up: run CACTI again
            (cache / f"{d}.out").unlink(missing_ok=True)
        return query(rows, cols)
    runs = {}
    for d in digests:
        nm, total, periph = _breakdown(cache / f"{d}cacti.log")
        runs[round(nm)] = (total, periph)
    t = (NODE * 1e9 - LO) / (HI - LO)
    total = (1 - t) * runs[LO][0] + t * runs[HI][0]
    periph = (1 - t) * runs[LO][1] + t * runs[HI][1]
    scale = rd / (total * 1e-9)  # hwcomponents-cacti's own factor (1 unless < 32 b / 64 rows)
    per_bit = 1e12 / cols
    return {"rows": rows, "cols": cols,
            "read_pj_per_bit": round(rd * per_bit, 7), "write_pj_per_bit": round(wr * per_bit, 7),
            "periphery_pj_per_bit": round(periph * 1e-9 * scale * per_bit, 7),
            "leak_w_per_bit": float(f"{m.leak_power / (rows * cols):.6g}")}


def main() -> None:
    grid = [(r, c) for r in ROWS for c in COLS]
    try:
        from tqdm import tqdm
        grid = tqdm(grid, disable=not sys.stderr.isatty())
    except ImportError:
        pass
    rows = [query(r, c) for r, c in grid]
    # IP-CIM: the array is read and written through its port (totals); OP-CIM also
    # records the read periphery so its model can take the array-core share.
    keep = {"ipcim_macro": ("rows", "cols", "read_pj_per_bit", "write_pj_per_bit",
                            "leak_w_per_bit"),
            "opcim_macro": ("rows", "cols", "read_pj_per_bit", "write_pj_per_bit",
                            "periphery_pj_per_bit", "leak_w_per_bit")}
    for name, keys in keep.items():
        block = "cacti_queries:\n" + "".join(
            "  - {" + ", ".join(f"{k}: {q[k]}" for k in keys) + "}\n" for q in rows)
        if "--print" in sys.argv[1:]:
            print(f"# {name}.yaml\n{block}", end="")
            continue
        path = TABLES / f"{name}.yaml"
        text = path.read_text()
        cut = text.find("cacti_queries:")
        path.write_text((text if cut < 0 else text[:cut]) + block)
        print(f"wrote {len(rows)} rows to {path.name}")


if __name__ == "__main__":
    main()
