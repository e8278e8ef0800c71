"""Inner-product digital SRAM CIM macro (IP-CIM): numbers in energy_tables/ipcim_macro.yaml."""

from __future__ import annotations

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import linear

from fusioncim_plugin.components._util import horowitz_to, int_add_pj, macro_cacti, pick, scale_tech_node
from fusioncim_plugin.tables import load_table


class IPCIMMacro(ComponentModel):
    """
    Inner-product digital SRAM CIM macro. The stationary operand (Q rows) sits in the
    bit cells, one stationary row per group of ``weight_bits`` columns laid out along the
    ``rows`` word lines; an input vector (a K row) is broadcast bit-serially (one input
    bit per cycle, all word lines at once); each column group's adder tree produces one
    dot product.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    rows: int | None
        Word lines = dot-product length (None: table reference, 128).
    cols: int | None
        Bit lines; ``cols / weight_bits`` stationary rows (None: table reference, 256).
    input_bits: int
        Bits of the broadcast input, fed bit-serially (default 8).
    weight_bits: int
        Bits of the stationary operand, bit-parallel across columns (default 8).
    frequency: float | None
        Clock in Hz (None: table reference, 200 MHz).

    Energy of ``compute`` scales linearly with input_bits and with weight_bits; all
    energies, area and leakage scale with tech_node via hwcomponents.scaling.
    """

    component_name = "IPCIMMacro"
    priority = 0.5

    def __init__(
        self,
        tech_node: float | None = None,
        rows: int | None = None,
        cols: int | None = None,
        input_bits: int = 8,
        weight_bits: int = 8,
        frequency: float | None = None,
        psum_bits: int | None = None,
    ):
        t = load_table("ipcim_macro")
        ref_node = t.ref("tech_node", "m")
        self.rows = self.assert_int("rows", pick(t, "rows", rows))
        self.cols = self.assert_int("cols", pick(t, "cols", cols))
        self.input_bits = self.assert_int("input_bits", input_bits)
        self.weight_bits = self.assert_int("weight_bits", weight_bits)
        self.frequency = float(pick(t, "frequency", frequency, "Hz"))
        if self.cols % self.weight_bits:
            raise ValueError(f"cols={self.cols} is not a multiple of weight_bits={self.weight_bits}")
        bits = self.rows * self.cols

        def cacti(key):  # CACTI run on this rows x cols array (scripts/cacti_macros.py)
            return macro_cacti(t, "IPCIMMacro", self.rows, self.cols, lambda r: r[key])

        super().__init__(
            area=bits * t.value("area_per_bit", "um^2") * 1e-12,
            leak_power=bits * cacti("leak_w_per_bit"),
        )
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)
        self._mac_energy = (
            t.value("mac_energy", "pJ") * 1e-12
            * linear(self.input_bits, t.ref("input_bits", "bit"))
            * linear(self.weight_bits, t.ref("weight_bits", "bit"))
        )
        self._write_energy = self.cols * cacti("write_pj_per_bit") * 1e-12
        self._read_energy = self.cols * cacti("read_pj_per_bit") * 1e-12
        self.psum_bits = self.assert_int("psum_bits", pick(t, "psum_bits", psum_bits, "bit"))
        self._reduce_energy = (int_add_pj(t, self.psum_bits) * 1e-12
                               * horowitz_to(t, ref_node))

    @property
    def macs_per_cycle(self) -> float:
        """MACs per clock: rows * (cols / weight_bits) dot-product lanes, each taking
        input_bits cycles (bit-serial inputs, bit-parallel stationary operand)."""
        return self.rows * (self.cols // self.weight_bits) / self.input_bits

    @action
    def compute(self) -> ActionCost:
        """One MAC (input_bits x weight_bits multiply, adder-tree share, accumulate).

        Throughput is the whole macro's MAC rate, macs_per_cycle * frequency."""
        return ActionCost(
            energy=self._mac_energy,
            throughput=self.macs_per_cycle * self.frequency,
            latency=self.input_bits / self.frequency,
        )

    @action
    def reduce(self) -> ActionCost:
        """Add two macros' psum_bits partial sums in the inter-macro adder tree (linear
        layers whose input rows span several macros). One adder per column group and
        tree level, pipelined: one add per output per cycle."""
        return ActionCost(energy=self._reduce_energy,
                          throughput=self.cols // self.weight_bits * self.frequency,
                          latency=1 / self.frequency)

    @action(bits_per_action="cols")
    def write(self) -> ActionCost:
        """Write one ``cols``-bit row of the stationary operand into the array (one row
        per cycle); pass bits_per_action to write any number of bits."""
        return ActionCost(
            energy=self._write_energy, throughput=self.frequency, latency=1 / self.frequency
        )

    @action(bits_per_action="cols")
    def read(self) -> ActionCost:
        """Read one ``cols``-bit row of stored data out of the array (one row per cycle).
        Producing dot-product results is part of ``compute``."""
        return ActionCost(
            energy=self._read_energy, throughput=self.frequency, latency=1 / self.frequency
        )
