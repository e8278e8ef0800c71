"""Outer-product digital SRAM CIM macro (OP-CIM): numbers in energy_tables/opcim_macro.yaml."""

from __future__ import annotations

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import quadratic, tech_node_energy

from fusioncim_plugin.components._util import horowitz_to, int_mult_pj, pick, scale_tech_node
from fusioncim_plugin.tables import load_table


class OPCIMMacro(ComponentModel):
    """
    Outer-product digital SRAM CIM macro. The stationary operand is the output
    accumulator O: ``rows * cols / acc_bits`` accumulators of ``acc_bits`` each. A rank-1
    update (a column of P times a row of V) adds one ``input_bits`` x ``input_bits``
    product into every accumulator. Each accumulator has a near-memory multiply-add unit
    fed bit-serially (``input_bits`` cycles per product, all accumulators in parallel);
    the product is added with an in-place read-modify-write of the stored accumulator.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    rows, cols: int | None
        Array geometry in bit cells (None: table reference, 128 x 768).
    input_bits: int
        Bits of the P and V inputs (default 8).
    acc_bits: int | None
        Bits per stored accumulator (None: table reference, 24).
    scale_bits: int | None
        Bits of the online-softmax rescale factor (None: table reference, 16).
    frequency: float | None
        Clock in Hz (None: table reference, 200 MHz).
    accumulations_per_writeback: int
        Products summed in the near-memory unit's register before one read-modify-write
        of the stored accumulator. 1 (default) = every product is accumulated in place;
        N > 1 adds a register read + write (acc_bits) per product and divides the cell
        read-modify-write by N.
    """

    component_name = "OPCIMMacro"
    priority = 0.5

    def __init__(
        self,
        tech_node: float | None = None,
        rows: int | None = None,
        cols: int | None = None,
        input_bits: int = 8,
        acc_bits: int | None = None,
        scale_bits: int | None = None,
        frequency: float | None = None,
        accumulations_per_writeback: int = 1,
    ):
        t = load_table("opcim_macro")
        ref_node = t.ref("tech_node", "m")
        self.rows = self.assert_int("rows", pick(t, "rows", rows))
        self.cols = self.assert_int("cols", pick(t, "cols", cols))
        self.input_bits = self.assert_int("input_bits", input_bits)
        self.acc_bits = self.assert_int("acc_bits", pick(t, "acc_bits", acc_bits, "bit"))
        self.scale_bits = self.assert_int("scale_bits", pick(t, "scale_bits", scale_bits, "bit"))
        self.frequency = float(pick(t, "frequency", frequency, "Hz"))
        self.accumulations_per_writeback = self.assert_int(
            "accumulations_per_writeback", accumulations_per_writeback
        )
        if self.cols % self.acc_bits:
            raise ValueError(f"cols={self.cols} is not a multiple of acc_bits={self.acc_bits}")
        if self.accumulations_per_writeback < 1:
            raise ValueError("accumulations_per_writeback must be >= 1")
        bits = self.rows * self.cols
        super().__init__(
            area=bits * t.value("area_per_bit", "um^2") * 1e-12,
            leak_power=bits * t.value("leak_power_per_bit", "W"),
        )
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)

        pj = 1e-12
        self._mac_energy = (
            t.value("mac_energy", "pJ") * pj * quadratic(self.input_bits, t.ref("input_bits", "bit"))
        )
        self._rmw_energy = self.acc_bits * pj * (
            t.value("acc_read_energy_per_bit", "pJ/bit") + t.value("acc_write_energy_per_bit", "pJ/bit")
        )
        # With accumulations_per_writeback > 1 each product lands in a near-memory
        # register (read + write of acc_bits) and the cells are updated once per N.
        self._reg_energy = 0.0 if self.accumulations_per_writeback == 1 else (
            2 * self.acc_bits * t.value("register_energy_per_bit", "pJ/bit") * pj
            * tech_node_energy(ref_node, t.ref("register_tech_node", "m")))
        self._scale_mult_energy = (
            int_mult_pj(t, self.acc_bits, self.scale_bits) * pj * horowitz_to(t, ref_node)
        )
        self._write_energy = self.cols * t.value("write_energy_per_bit", "pJ/bit") * pj
        self._read_energy = self.cols * t.value("read_energy_per_bit", "pJ/bit") * pj

    @property
    def n_accumulators(self) -> int:
        """Stored accumulator elements: rows * cols / acc_bits."""
        return self.rows * self.cols // self.acc_bits

    @property
    def macs_per_cycle(self) -> float:
        """MACs per clock: every accumulator takes one product per input_bits cycles."""
        return self.n_accumulators / self.input_bits

    def _mac(self) -> ActionCost:
        return ActionCost(
            energy=(self._mac_energy + self._reg_energy
                    + self._rmw_energy / self.accumulations_per_writeback),
            throughput=self.macs_per_cycle * self.frequency,
            latency=self.input_bits / self.frequency,
        )

    @action
    def compute(self) -> ActionCost:
        """One outer-product MAC: input_bits x input_bits multiply-add plus the
        read-modify-write of one acc_bits accumulator (shared by
        accumulations_per_writeback products). Throughput is the whole macro's."""
        return self._mac()

    @action
    def accumulate(self) -> ActionCost:
        """Alias of ``compute``."""
        return self._mac()

    @action
    def rescale(self) -> ActionCost:
        """Multiply ONE stored accumulator by a scale_bits scalar (online-softmax
        correction exp(m_old - m_new)): read-modify-write of acc_bits plus an
        acc_bits x scale_bits multiply. All accumulators in parallel, scale_bits cycles."""
        return ActionCost(
            energy=self._rmw_energy + self._scale_mult_energy,
            throughput=self.n_accumulators / self.scale_bits * self.frequency,
            latency=self.scale_bits / self.frequency,
        )

    @action(bits_per_action="cols")
    def write(self) -> ActionCost:
        """Write one ``cols``-bit row through the macro port (e.g. initialize O)."""
        return ActionCost(
            energy=self._write_energy, throughput=self.frequency, latency=1 / self.frequency
        )

    @action(bits_per_action="cols")
    def read(self) -> ActionCost:
        """Read one ``cols``-bit row through the macro port (e.g. final O readout)."""
        return ActionCost(
            energy=self._read_energy, throughput=self.frequency, latency=1 / self.frequency
        )
