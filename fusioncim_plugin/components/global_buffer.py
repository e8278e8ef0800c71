"""Global buffer SRAM: CACTI as configured, from the queries in energy_tables/global_buffer.yaml."""

from __future__ import annotations

from hwcomponents import ActionCost, ComponentModel, action

from fusioncim_plugin.components._util import check_in_table, loglog as _loglog, pick, scale_tech_node
from fusioncim_plugin.tables import Table, load_table


def cacti_lookup(table: Table, key: str, size: float, n_banks: float, width: float) -> float:
    """``key`` (a cacti_queries column) for a buffer of ``size`` bits, ``n_banks`` banks,
    ``width``-bit ports: the queried row if there is one, else interpolated in log-log
    over size and banks at the reference width, times the width factor queried at the
    reference bank count."""
    rows = table.cacti_queries
    w_ref, b_ref = table.ref("width", "bit"), table.ref("n_banks", "")

    def at(sz_rows_filter, x_of, x):
        return _loglog([(x_of(r), r[key]) for r in rows if sz_rows_filter(r)], x)

    for r in rows:
        if (r["size_bits"], r["n_banks"], r["width"]) == (size, n_banks, width):
            return r[key]
    sizes = sorted({r["size_bits"] for r in rows if r["width"] == w_ref})
    base = _loglog([(s, at(lambda r, s=s: r["size_bits"] == s and r["width"] == w_ref,
                            lambda r: r["n_banks"], n_banks)) for s in sizes], size)
    if width == w_ref:
        return base
    factor = _loglog([(s, at(lambda r, s=s: r["size_bits"] == s and r["n_banks"] == b_ref,
                              lambda r: r["width"], width)
                       / at(lambda r, s=s: r["size_bits"] == s and r["n_banks"] == b_ref,
                            lambda r: r["width"], w_ref)) for s in sizes], size)
    return base * factor


class GlobalBufferSRAM(ComponentModel):
    """
    On-chip SRAM buffer of ``size`` bits in ``n_banks`` banks with ``width``-bit ports,
    priced by CACTI run on that whole configuration (energy_tables/global_buffer.yaml:
    the queried rows, interpolated between them). Energy per access = width x CACTI's
    per-bit energy for the configuration, so more banks change it only as CACTI says.
    Bandwidth = n_banks x width / max(clock period, CACTI's random cycle time for the
    configuration): a bank takes one width-bit access per clock, or per CACTI cycle when
    the bank is slower than the clock. Configurations outside the queried range (size,
    banks, port width) are refused with the range and how to add a query. Tech node with
    hwcomponents.scaling.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    size: int | None
        Capacity in bits (None: table reference, 2 MiB). AccelForge passes a Memory's size.
    width: int | None
        Port width in bits (None: table reference, 256).
    n_banks: int | None
        Banks (None: table reference, 4).
    frequency: float | None
        Clock in Hz (None: table reference, 200 MHz).
    """

    component_name = "GlobalBufferSRAM"
    priority = 0.5

    def __init__(
        self,
        tech_node: float | None = None,
        size: int | None = None,
        width: int | None = None,
        n_banks: int | None = None,
        frequency: float | None = None,
    ):
        t = load_table("global_buffer")
        ref_node = t.ref("tech_node", "m")
        self.size = float(pick(t, "size", size, "bit"))
        self.width = self.assert_int("width", pick(t, "width", width, "bit"))
        self.n_banks = self.assert_int("n_banks", pick(t, "n_banks", n_banks, ""))
        self.frequency = float(pick(t, "frequency", frequency, "Hz"))
        if self.size <= 0 or self.width < 1 or self.n_banks < 1 or self.frequency <= 0:
            raise ValueError("GlobalBufferSRAM: size, width, n_banks and frequency must be > 0")

        rows = t.cacti_queries
        w_ref, b_ref = t.ref("width", "bit"), t.ref("n_banks", "")
        script = "add it to {} in scripts/cacti_global_buffer.py and rerun that script"
        for param, value, var, per_var, queried, grid in (
                ("size", self.size, "GLB_BYTES", 8, [r["size_bits"] for r in rows], "SIZES"),
                ("n_banks", self.n_banks, "GLB_BANKS", 1,
                 [r["n_banks"] for r in rows if r["width"] == w_ref], "BANKS"),
                ("width", self.width, "GLB_WIDTH_BITS", 1,
                 [r["width"] for r in rows if r["n_banks"] == b_ref], "WIDTHS")):
            check_in_table("GlobalBufferSRAM", "global_buffer", param, value, var, per_var,
                           queried, script.format(grid))

        def q(key):
            return cacti_lookup(t, key, self.size, self.n_banks, self.width)

        super().__init__(area=q("area_mm2") * 1e-6, leak_power=q("leak_power_w"))
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)
        self._read = self.width * q("read_pj_per_bit") * 1e-12
        self._write = self.width * q("write_pj_per_bit") * 1e-12
        self.cacti_cycle_time = q("cycle_time_ns") * 1e-9
        # one access per bank per clock, or per CACTI cycle if the bank is slower
        self.cycle_time = max(1 / self.frequency, self.cacti_cycle_time)

    def _cost(self, energy: float) -> ActionCost:
        return ActionCost(
            energy=energy, throughput=self.n_banks / self.cycle_time, latency=self.cycle_time
        )

    @action(bits_per_action="width")
    def read(self) -> ActionCost:
        """Read one ``width``-bit word (bits_per_action scales the energy)."""
        return self._cost(self._read)

    @action(bits_per_action="width")
    def write(self) -> ActionCost:
        """Write one ``width``-bit word (bits_per_action scales the energy)."""
        return self._cost(self._write)
