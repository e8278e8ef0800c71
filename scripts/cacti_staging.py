"""Query CACTI (through hwcomponents-cacti) for the OP-CIM staging banks recorded in
energy_tables/staging_buffer.yaml (`cacti_queries`), and print them as that YAML block.

    .venv/bin/python scripts/cacti_staging.py > queries.yaml

Each row is one hwcomponents_cacti.SRAM(tech_node=28e-9, size=rows x width, width,
n_banks=1) - CACTI 7's 22 nm and 32 nm runs interpolated to 28 nm by hwcomponents-cacti:
one staging bank of `rows` words (one per key of a KV block) of `width` bits (a V row of
head_dim INT8 values, or a P column of BLOCK_Q INT8 values). Needs the CACTI binary that
scripts/setup.sh rebuilds.
"""

from __future__ import annotations

import itertools
import sys

ROWS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
WIDTHS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]


def query(rows: int, width: int) -> dict:
    from hwcomponents_cacti import SRAM

    m = SRAM(tech_node=28e-9, size=rows * width, width=width, n_banks=1)
    return {"rows": rows, "width": width,
            "read_pj_per_bit": round(m.read().energy / width * 1e12, 6),
            "write_pj_per_bit": round(m.write().energy / width * 1e12, 6),
            "area_mm2": round(m.area * 1e6, 6), "leak_power_w": float(f"{m.leak_power:.6g}"),
            "cycle_time_ns": round(m.cycle_period * 1e9, 6)}


def main() -> None:
    grid = list(itertools.product(ROWS, WIDTHS))
    try:
        from tqdm import tqdm
        grid = tqdm(grid, disable=not sys.stderr.isatty())
    except ImportError:
        pass
    print("cacti_queries:")
    for rows, width in grid:
        q = query(rows, width)
        print("  - {" + ", ".join(f"{k}: {v}" for k, v in q.items()) + "}", flush=True)


if __name__ == "__main__":
    main()
