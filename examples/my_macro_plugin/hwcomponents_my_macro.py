"""hwcomponents plugin example: ``MyDigitalCIMMacro``, an INT8 digital SRAM CIM macro.

A drop-in for FusionCIM's IP-CIM macro (same constructor arguments and actions as
``fusioncim_plugin.components.IPCIMMacro``: ``compute`` = one MAC, ``read``/``write`` =
one ``cols``-bit row), with its per-MAC energy taken from a different chip: the 28 nm
16 Kb digital CIM macro of Si et al., IEEE TVLSI 2024 (doi:10.1109/TVLSI.2024.3418888),
40.15 TOPS/W at signed 8b inputs and weights -> 2 / 40.15e12 J = 49.81 fJ per MAC.

hwcomponents imports every module named ``hwcomponents_*`` it can see and collects the
public, non-abstract ``ComponentModel`` subclasses; an AccelForge arch spec then names
this class with ``component_class: MyDigitalCIMMacro``.
"""

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import linear, tech_node_area, tech_node_energy, tech_node_leak

REF_TECH_NODE = 28e-9  # m; Si et al., TVLSI 2024 (28 nm)
REF_BITS = 8  # signed 8b inputs and weights (Si et al.)
MAC_ENERGY = 2 / 40.15e12  # J per MAC at 28 nm, INT8 (Si et al.: 40.15 TOPS/W, 1 MAC = 2 ops)
# Array port energies and density: Si et al. give none in the abstract; we reuse the
# values FusionCIM's IP-CIM model uses for its 128 x 128 array (energy_tables/ipcim_macro.yaml:
# CACTI 7 at 28 nm for a 16 Kb array with a 128-bit port, 617 Kb/mm^2), so that only the
# per-MAC energy differs from the default macro.
WRITE_ENERGY_PER_BIT = 0.0243255e-12  # J
READ_ENERGY_PER_BIT = 0.012425e-12  # J
AREA_PER_BIT = 1.5827593e-12  # m^2
LEAK_POWER_PER_BIT = 1.75049e-11  # W
# Inter-macro adder tree of the linear layers (``reduce``): also FusionCIM's value, a
# psum_bits-wide add at Horowitz's (ISSCC 2014) 0.1 pJ per 32-bit add at 45 nm, linear in
# width, scaled to 28 nm by hwcomponents' tech_node_energy.
ADD_ENERGY_PER_BIT = 1.60390e-15  # J


class MyDigitalCIMMacro(ComponentModel):
    """
    Digital SRAM CIM macro with an adder tree per column group: the stationary operand
    sits in the cells (``cols / weight_bits`` rows of ``rows`` values), inputs arrive
    bit-serially on all word lines.

    Parameters
    ----------
    tech_node: float
        Technology node in meters (energies, area, leakage scaled from 28 nm).
    rows: int
        Word lines = dot-product length.
    cols: int
        Bit lines.
    input_bits, weight_bits: int
        Operand widths; MAC energy scales linearly with each (reference: 8).
    frequency: float
        Clock in Hz.
    """

    component_name = "MyDigitalCIMMacro"
    priority = 0.5

    def __init__(self, tech_node: float = 28e-9, rows: int = 128, cols: int = 128,
                 input_bits: int = 8, weight_bits: int = 8, frequency: float = 200e6,
                 psum_bits: int = 16):
        self.rows = self.assert_int("rows", rows)
        self.cols = self.assert_int("cols", cols)
        self.input_bits = self.assert_int("input_bits", input_bits)
        self.weight_bits = self.assert_int("weight_bits", weight_bits)
        self.frequency = float(frequency)
        self.psum_bits = self.assert_int("psum_bits", psum_bits)
        bits = self.rows * self.cols
        super().__init__(area=bits * AREA_PER_BIT, leak_power=bits * LEAK_POWER_PER_BIT)
        self.tech_node = self.scale("tech_node", float(tech_node), REF_TECH_NODE,
                                    area_scale_function=tech_node_area,
                                    energy_scale_function=tech_node_energy,
                                    leak_power_scale_function=tech_node_leak)
        self._mac = (MAC_ENERGY * linear(self.input_bits, REF_BITS)
                     * linear(self.weight_bits, REF_BITS))

    @property
    def macs_per_cycle(self) -> float:
        return self.rows * (self.cols // self.weight_bits) / self.input_bits

    @action
    def compute(self) -> ActionCost:
        """One MAC; throughput is the whole macro's MAC rate."""
        return ActionCost(energy=self._mac, throughput=self.macs_per_cycle * self.frequency,
                          latency=self.input_bits / self.frequency)

    @action
    def reduce(self) -> ActionCost:
        """Add two macros' psum_bits partial sums in the inter-macro adder tree (linear
        layers); one add per column group per cycle."""
        return ActionCost(energy=self.psum_bits * ADD_ENERGY_PER_BIT,
                          throughput=self.cols // self.weight_bits * self.frequency,
                          latency=1 / self.frequency)

    @action(bits_per_action="cols")
    def write(self) -> ActionCost:
        """Write one ``cols``-bit row of the stationary operand."""
        return ActionCost(energy=self.cols * WRITE_ENERGY_PER_BIT, throughput=self.frequency,
                          latency=1 / self.frequency)

    @action(bits_per_action="cols")
    def read(self) -> ActionCost:
        """Read one ``cols``-bit row out through the port."""
        return ActionCost(energy=self.cols * READ_ENERGY_PER_BIT, throughput=self.frequency,
                          latency=1 / self.frequency)
