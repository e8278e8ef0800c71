"""Query CACTI (through hwcomponents-cacti) for the global-buffer configurations recorded
in energy_tables/global_buffer.yaml (`cacti_queries`), and print them as that YAML block.

    .venv/bin/python scripts/cacti_global_buffer.py > queries.yaml

Each row is one hwcomponents_cacti.SRAM(tech_node=28e-9, size, width, n_banks) - CACTI 7's
22 nm and 32 nm runs interpolated to 28 nm by hwcomponents-cacti - as configured: the
whole buffer of `size_bits` in `n_banks` banks with `width`-bit ports. Needs the CACTI
binary that scripts/setup.sh rebuilds. Takes a few minutes (two CACTI runs per row).
"""

from __future__ import annotations

import itertools
import sys

MIB = 8 * 2**20  # bits
# size x banks at the reference 256-bit port; port widths at 4 banks.
GRID = sorted(set(
    [(s, b, 256) for s, b in itertools.product([MIB // 2, MIB, 2 * MIB, 4 * MIB, 8 * MIB],
                                                [1, 2, 4, 8, 16])]
    + [(s, 4, w) for s in [MIB // 2, MIB, 2 * MIB, 4 * MIB, 8 * MIB] for w in (128, 512)]))


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
    print("cacti_queries:")
    for size, banks, width in rows:
        q = query(size, banks, width)
        print("  - {" + ", ".join(f"{k}: {v}" for k, v in q.items()) + "}", flush=True)


if __name__ == "__main__":
    main()
