"""Outer-product digital SRAM CIM macro (OP-CIM): numbers in energy_tables/opcim_macro.yaml.

One circuit sets energy, throughput, port use and area (``circuit``, spec variable
``OPCIM_CIRCUIT``); README "OP-CIM accumulation" explains the choice.
"""

from __future__ import annotations

import math

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import tech_node_area, tech_node_energy, tech_node_leak

from fusioncim_plugin.components._util import (horowitz_to, int_add_pj, int_mult_pj, macro_cacti, pick,
                                              scale_tech_node)
from fusioncim_plugin.tables import load_table

CIRCUITS = ("near_memory", "in_array", "rmw_per_product")


class OPCIMMacro(ComponentModel):
    """
    Outer-product digital SRAM CIM macro. The stationary operand is the output
    accumulator O: ``rows * cols / acc_bits`` accumulators of ``acc_bits`` each, laid
    out ``cols / acc_bits`` to an array row. PV adds P[m,p] * V[p,f] into every O[m,f].
    In every circuit the INT8 product is formed by a near-memory multiplier; the
    circuits differ in how it reaches the stored accumulator:

    * ``near_memory`` - ``lanes`` MAC lanes, each with an accumulator register (plus a
      shadow register for the write-back). A lane reads a stored accumulator once per
      KV block, sums the block's products in its register and writes it back with the
      online-softmax rescale fused in (FlashAttention-2: O <- diag(alpha) O + P~ V_j)
      by ``cols / acc_bits`` rescale multipliers at the port (one per accumulator of a
      row: the write-back moves a row per cycle), not one per lane.
      ``compute`` = multiply + add + register update, ``lanes`` per cycle; the block's
      read/write of O are ``read``/``write`` actions through the array port.
    * ``in_array`` - bit-serial in-array accumulation (Compute SRAM): one row operation
      per cycle across all columns (read a bit row, add in the column ALU, write the sum
      bit), so an acc_bits add takes acc_bits cycles and the array absorbs
      ``cols / acc_bits`` accumulations per cycle. ``compute`` = the multiply; every
      product's accumulation is an acc_bits ``read`` + ``write`` of O at the measured
      in-array add energy, a row read and a row write per cycle.
    * ``rmw_per_product`` - every product is added by a read-modify-write of its stored
      accumulator through the array port (one row read or write per cycle), by
      ``cols / acc_bits`` lanes (multiplier + adder) at the sense amplifiers.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    rows, cols: int | None
        Array geometry in bit cells (None: table reference).
    input_bits: int
        Bits of the P and V inputs (default 8).
    acc_bits: int | None
        Bits per stored accumulator (None: table reference).
    scale_bits: int | None
        Bits of the online-softmax rescale factor (None: table reference, 16).
    frequency: float | None
        Clock in Hz (None: table reference, 200 MHz).
    circuit: str
        ``near_memory`` (default), ``in_array`` or ``rmw_per_product``.
    lanes: int | None
        near_memory only: MAC lanes per macro (None: cols / acc_bits, one per column
        group, i.e. the accumulators of one array row). The other circuits have
        cols / acc_bits lanes, fixed by the array.
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
        circuit: str = "near_memory",
        lanes: int | None = None,
    ):
        t = load_table("opcim_macro")
        ref_node = t.ref("tech_node", "m")
        self.rows = self.assert_int("rows", pick(t, "rows", rows))
        self.cols = self.assert_int("cols", pick(t, "cols", cols))
        self.input_bits = self.assert_int("input_bits", input_bits)
        self.acc_bits = self.assert_int("acc_bits", pick(t, "acc_bits", acc_bits, "bit"))
        self.scale_bits = self.assert_int("scale_bits", pick(t, "scale_bits", scale_bits, "bit"))
        self.frequency = float(pick(t, "frequency", frequency, "Hz"))
        if circuit not in CIRCUITS:
            raise ValueError(f"OPCIM_CIRCUIT = {circuit!r}; allowed: {', '.join(CIRCUITS)}")
        self.circuit = circuit
        if self.cols % self.acc_bits:
            raise ValueError(f"cols={self.cols} is not a multiple of acc_bits={self.acc_bits}")
        row_lanes = self.cols // self.acc_bits
        if circuit == "near_memory":
            self.lanes = row_lanes if lanes is None else lanes
            if isinstance(self.lanes, bool) or not 1 <= self.lanes <= self.n_accumulators \
                    or self.lanes != int(self.lanes):
                raise ValueError(f"OPCIM_LANES = {self.lanes}; must be an integer 1 .. "
                                 f"{self.n_accumulators} (stored accumulators per macro)")
            self.lanes = int(self.lanes)
        else:
            self.lanes = row_lanes

        # Area and leakage: the array, the lanes and the rescale multipliers (Aladdin
        # 40 nm logic, scaled to the reference node here; the whole model is then scaled
        # to tech_node). A lane is an input_bits^2 product multiplier (+ an acc_bits adder
        # unless in_array, + accumulator and shadow registers for near_memory). The
        # rescale (acc_bits x scale_bits multiply) is applied as accumulators pass the
        # array port, a row of cols / acc_bits at a time (near_memory: fused into the
        # write-back), so the macro has one rescale multiplier per accumulator of a row,
        # however many lanes it has.
        a40 = tech_node_area(ref_node, t.ref("register_tech_node", "m")) * 1e-12
        l40 = tech_node_leak(ref_node, t.ref("register_tech_node", "m"))
        mult_a, mult_l = t.value("multiplier_area_32x32", "um^2"), t.value("multiplier_leak_power_32x32", "W")
        lane_area = mult_a * self.input_bits ** 2 / 1024
        lane_leak = mult_l * self.input_bits ** 2 / 1024
        self.rescale_multipliers = row_lanes
        scale_frac = self.acc_bits * self.scale_bits / 1024
        port_area, port_leak = row_lanes * mult_a * scale_frac, row_lanes * mult_l * scale_frac
        if circuit == "in_array":  # a 1-bit full adder and a carry latch per column
            fixed_area = self.cols * (t.value("adder_area_32b", "um^2") / 32
                                      + t.value("register_area_per_bit", "um^2"))
            fixed_leak = self.cols * t.value("adder_leak_power_32b", "W") / 32
        else:  # an acc_bits adder per lane (+ accumulator and shadow registers)
            lane_area += t.value("adder_area_32b", "um^2") * self.acc_bits / 32
            lane_leak += t.value("adder_leak_power_32b", "W") * self.acc_bits / 32
            if circuit == "near_memory":
                lane_area += 2 * self.acc_bits * t.value("register_area_per_bit", "um^2")
            fixed_area = fixed_leak = 0.0
        fixed_area, fixed_leak = fixed_area + port_area, fixed_leak + port_leak
        bits = self.rows * self.cols

        def cacti(value):  # CACTI run on this rows x cols array (scripts/cacti_macros.py)
            return macro_cacti(t, "OPCIMMacro", self.rows, self.cols, value)

        self.logic_area = (self.lanes * lane_area + fixed_area) * a40
        super().__init__(
            area=bits * t.value("area_per_bit", "um^2") * 1e-12 + self.logic_area,
            leak_power=(bits * cacti(lambda r: r["leak_w_per_bit"])
                        + (self.lanes * lane_leak + fixed_leak) * l40),
        )
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)

        pj, h = 1e-12, horowitz_to(t, ref_node)
        # array core: CACTI's total minus the read periphery (output driver + H-tree);
        # the accumulate logic sits at the column sense amplifiers
        e_rd = cacti(lambda r: r["read_pj_per_bit"] - r["periphery_pj_per_bit"])
        e_wr = cacti(lambda r: r["write_pj_per_bit"] - r["periphery_pj_per_bit"])
        mult = int_mult_pj(t, self.input_bits, self.input_bits) * h
        add = int_add_pj(t, self.acc_bits) * h
        reg = (self.acc_bits * t.value("register_energy_per_bit", "pJ/bit")
               * tech_node_energy(ref_node, t.ref("register_tech_node", "m")))
        scale_mult = int_mult_pj(t, self.acc_bits, self.scale_bits) * h
        if circuit == "in_array":  # measured at 0.6 V: scaled (C V^2) to CACTI's supply
            e_add = t.value("inarray_add_energy_per_bit", "pJ/bit") * (
                t.value("cacti_supply", "V") / t.value("inarray_measured_supply", "V")) ** 2
            e_rd, e_wr = e_add * e_rd / (e_rd + e_wr), e_add * e_wr / (e_rd + e_wr)
        self._mac_energy = pj * {"near_memory": mult + add + reg, "in_array": mult,
                                 "rmw_per_product": mult + add}[circuit]
        self._read_bit, self._write_bit = e_rd * pj, e_wr * pj
        # near_memory: the rescale multiplies during the block's write-back (no extra
        # array access); otherwise it is one more read-modify-write of the accumulator.
        self._rescale_energy = pj * scale_mult + (
            0.0 if circuit == "near_memory" else self.acc_bits * (self._read_bit + self._write_bit))

    @property
    def n_accumulators(self) -> int:
        """Stored accumulator elements: rows * cols / acc_bits."""
        return self.rows * self.cols // self.acc_bits

    @property
    def macs_per_cycle(self) -> float:
        """Products the lanes form per clock (one per lane per cycle). How fast the
        array absorbs them is the port rate of ``read``/``write``."""
        return float(self.lanes)

    @property
    def row_ops_per_cycle(self) -> float:
        """Row reads (and row writes) per clock: in_array reads and writes a row in
        the same cycle (one row operation); otherwise one port access per cycle."""
        return 2.0 if self.circuit == "in_array" else 1.0

    @action
    def compute(self) -> ActionCost:
        """One PV product (input_bits x input_bits multiply), plus for near_memory its
        add into the lane register and for rmw_per_product its add at the sense amps.
        The accumulator's array access is ``read``/``write``. Throughput: all lanes."""
        return ActionCost(energy=self._mac_energy, throughput=self.lanes * self.frequency,
                          latency=1 / self.frequency)

    @action
    def accumulate(self) -> ActionCost:
        """Alias of ``compute``."""
        return self.compute()

    @action
    def rescale(self) -> ActionCost:
        """Multiply ONE stored accumulator by a scale_bits scalar (online-softmax
        correction exp(m_old - m_new)). near_memory: fused into the KV block's
        write-back, only the multiply, no extra cycles. Otherwise: an acc_bits x
        scale_bits multiply in a lane plus a read-modify-write of the accumulator, a row
        of cols / acc_bits accumulators per row read + row write."""
        if self.circuit == "near_memory":
            return ActionCost(energy=self._rescale_energy, throughput=math.inf, latency=0.0)
        per_cycle = (self.cols // self.acc_bits) * self.row_ops_per_cycle / 2
        return ActionCost(energy=self._rescale_energy, throughput=per_cycle * self.frequency,
                          latency=2 / self.frequency)

    @action(bits_per_action="cols")
    def write(self) -> ActionCost:
        """Write one ``cols``-bit row of accumulators (an accumulation's write-back)."""
        return ActionCost(energy=self.cols * self._write_bit,
                          throughput=self.row_ops_per_cycle * self.frequency,
                          latency=1 / self.frequency)

    @action(bits_per_action="cols")
    def read(self) -> ActionCost:
        """Read one ``cols``-bit row of accumulators (for an accumulation, or the final
        read-out of O)."""
        return ActionCost(energy=self.cols * self._read_bit,
                          throughput=self.row_ops_per_cycle * self.frequency,
                          latency=1 / self.frequency)
