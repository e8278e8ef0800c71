"""OP-CIM staging SRAM (near_memory circuit): CACTI per bank, from the queries in
energy_tables/staging_buffer.yaml.

The near_memory OP-CIM lanes sum a whole KV block of products in their registers, so the
block's P and V operands must sit beside the lanes while they make their passes over the
O tile (README "OP-CIM accumulation"). Each operand has its own double-buffered store:
two banks of ``rows`` words of ``width`` bits, one being read by the lanes while the next
block is written into the other.
"""

from __future__ import annotations

import math

from hwcomponents import ActionCost, ComponentModel, action

from fusioncim_plugin.components._util import pick, scale_tech_node
from fusioncim_plugin.tables import Table, load_table


def bank_lookup(table: Table, key: str, rows: float, width: float) -> float:
    """``key`` (a cacti_queries column) for one bank of ``rows`` x ``width`` bits:
    bilinear in (log rows, log width) between the queried grid points (exact at them,
    continuous). Outside the queried grid: ValueError naming the range and the fix."""
    grid = table.cacti_queries
    rs, ws = sorted({q["rows"] for q in grid}), sorted({q["width"] for q in grid})
    if not (rs[0] <= rows <= rs[-1] and ws[0] <= width <= ws[-1]):
        raise ValueError(
            f"StagingSRAM: a bank of {rows:g} words x {width:g} bits is outside the CACTI "
            f"queries of energy_tables/staging_buffer.yaml ({rs[0]}-{rs[-1]} words, "
            f"{ws[0]}-{ws[-1]} bits); lower BLOCK_KV / BLOCK_Q or add the point with "
            f"scripts/cacti_staging.py")
    val = {(q["rows"], q["width"]): q[key] for q in grid}

    def bracket(xs, x):  # xs[i] <= x <= xs[i+1], and x's position between them in log
        if len(xs) == 1:
            return xs[0], xs[0], 0.0
        i = max(j for j in range(len(xs) - 1) if xs[j] <= x)
        return xs[i], xs[i + 1], math.log(x / xs[i]) / math.log(xs[i + 1] / xs[i])

    r0, r1, tr = bracket(rs, rows)
    w0, w1, tw = bracket(ws, width)
    lg = {k: math.log(val[k]) for k in ((r0, w0), (r0, w1), (r1, w0), (r1, w1))}
    return math.exp((1 - tr) * ((1 - tw) * lg[r0, w0] + tw * lg[r0, w1])
                    + tr * ((1 - tw) * lg[r1, w0] + tw * lg[r1, w1]))


class StagingSRAM(ComponentModel):
    """
    A double-buffered operand store of the near_memory OP-CIM lanes: ``banks`` SRAM
    banks (default 2) of ``rows`` words x ``width`` bits, each priced by CACTI as one
    single-bank SRAM (energy_tables/staging_buffer.yaml). The lanes read one word per
    clock from the bank holding the current KV block while the next block's words are
    written into the other bank, one word per clock: ``read`` and ``write`` each move one
    ``width``-bit word, each at one word per clock (or per CACTI cycle time, if that is
    longer than the clock). Area and leakage: ``banks`` x one bank.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    rows: int | None
        Words per bank (None: table reference).
    width: int | None
        Bits per word (None: table reference).
    banks: int
        Banks (2: double-buffered).
    frequency: float | None
        Clock in Hz (None: table reference, 200 MHz).
    size: float | None
        AccelForge passes the Memory's size; it must equal banks x rows x width.
    """

    component_name = "StagingSRAM"
    priority = 0.5

    def __init__(
        self,
        tech_node: float | None = None,
        rows: int | None = None,
        width: int | None = None,
        banks: int = 2,
        frequency: float | None = None,
        size: float | None = None,
    ):
        t = load_table("staging_buffer")
        ref_node = t.ref("tech_node", "m")
        self.rows = self.assert_int("rows", pick(t, "rows", rows, ""))
        self.width = self.assert_int("width", pick(t, "width", width, "bit"))
        self.banks = self.assert_int("banks", banks)
        self.frequency = float(pick(t, "frequency", frequency, "Hz"))
        if min(self.rows, self.width, self.banks) < 1 or self.frequency <= 0:
            raise ValueError("StagingSRAM: rows, width, banks and frequency must be > 0")
        if size is not None and not math.isinf(size) and size != self.banks * self.rows * self.width:
            raise ValueError(f"StagingSRAM: size {size:g} bits != banks x rows x width = "
                             f"{self.banks * self.rows * self.width} bits")

        def q(key):
            return bank_lookup(t, key, self.rows, self.width)

        super().__init__(area=self.banks * q("area_mm2") * 1e-6,
                         leak_power=self.banks * q("leak_power_w"))
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)
        self._read = self.width * q("read_pj_per_bit") * 1e-12
        self._write = self.width * q("write_pj_per_bit") * 1e-12
        self.cacti_cycle_time = q("cycle_time_ns") * 1e-9
        self.cycle_time = max(1 / self.frequency, self.cacti_cycle_time)

    def _cost(self, energy: float) -> ActionCost:
        return ActionCost(energy=energy, throughput=1 / self.cycle_time, latency=self.cycle_time)

    @action(bits_per_action="width")
    def read(self) -> ActionCost:
        """Read one ``width``-bit word for the lanes (one per clock)."""
        return self._cost(self._read)

    @action(bits_per_action="width")
    def write(self) -> ActionCost:
        """Write one ``width``-bit word of the next KV block (one per clock, other bank)."""
        return self._cost(self._write)
