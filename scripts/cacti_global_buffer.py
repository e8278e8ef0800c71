"""Query CACTI (through hwcomponents-cacti) for the global-buffer configurations recorded
in energy_tables/global_buffer.yaml (`cacti_queries`), and write them into that table
(the block from `cacti_queries:` to the end of the file is replaced).

    .venv/bin/python scripts/cacti_global_buffer.py            # rewrite the table
    .venv/bin/python scripts/cacti_global_buffer.py --print    # only print the block

GlobalBufferSRAM accepts only configurations inside the queried range (size, banks, port
width); to cover another one, add it to SIZES / BANKS / WIDTHS below and rerun.

Each row is one hwcomponents_cacti.SRAM(tech_node=28e-9, size, width, n_banks) - CACTI 7's
22 nm and 32 nm runs interpolated to 28 nm by hwcomponents-cacti - as configured: the
whole buffer of `size_bits` in `n_banks` banks with `width`-bit ports. Needs the CACTI
binary that scripts/setup.sh rebuilds. Takes a few minutes (two CACTI runs per row).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

KIB, MIB = 8 * 2**10, 8 * 2**20  # bits
SIZES = [8 * KIB, 32 * KIB, 128 * KIB, MIB // 2, MIB, 2 * MIB, 4 * MIB, 8 * MIB]
BANKS, WIDTHS = [1, 2, 4, 8, 16], [128, 256, 512]
REF_BANKS, REF_WIDTH = 4, 256  # energy_tables/global_buffer.yaml reference_point
# size x banks at the reference 256-bit port; port widths at the reference 4 banks.
GRID = sorted(set(
    [(s, b, REF_WIDTH) for s, b in itertools.product(SIZES, BANKS)]
    + [(s, REF_BANKS, w) for s in SIZES for w in WIDTHS]))
TABLE = Path(__file__).resolve().parent.parent / "energy_tables" / "global_buffer.yaml"


def query(size_bits: int, n_banks: int, width: int) -> dict:
    from hwcomponents_cacti import SRAM

    m = SRAM(tech_node=28e-9, size=size_bits, width=width, n_banks=n_banks)
    return {"size_bits": size_bits, "n_banks": n_banks, "width": width,
            "read_pj_per_bit": round(m.read().energy / width * 1e12, 6),
            "write_pj_per_bit": round(m.write().energy / width * 1e12, 6),
            "area_mm2": round(m.area * 1e6, 6), "leak_power_w": float(f"{m.leak_power:.6g}"),
            "cycle_time_ns": round(m.cycle_period * 1e9, 6)}


def main() -> None:
    try:
        from tqdm import tqdm
        rows = tqdm(GRID, disable=not sys.stderr.isatty())
    except ImportError:
        rows = GRID
    lines = ["cacti_queries:"]
    for size, banks, width in rows:
        q = query(size, banks, width)
        lines.append("  - {" + ", ".join(f"{k}: {v}" for k, v in q.items()) + "}")
    block = "\n".join(lines) + "\n"
    if "--print" in sys.argv[1:]:
        print(block, end="")
        return
    text = TABLE.read_text()
    TABLE.write_text(text[:text.index("cacti_queries:")] + block)
    print(f"wrote {len(lines) - 1} rows to {TABLE.name}")


if __name__ == "__main__":
    main()
