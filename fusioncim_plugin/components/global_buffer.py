"""Global buffer SRAM: numbers in energy_tables/global_buffer.yaml (one CACTI run)."""

from __future__ import annotations

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import cacti_depth_energy

from fusioncim_plugin.components._util import pick, scale_tech_node
from fusioncim_plugin.tables import load_table


class GlobalBufferSRAM(ComponentModel):
    """
    On-chip SRAM buffer of ``size`` bits in ``n_banks`` independent banks with
    ``width``-bit ports. Energy per access = width * (per-bit energy of the CACTI
    reference) * (depth / reference depth)^0.78 (hwcomponents' CACTI depth fit); area
    and leakage scale with total bits; tech node with hwcomponents.scaling. One access
    per bank per CACTI cycle time. No CACTI at run time.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    size: int | None
        Capacity in bits (None: table reference, 2 MiB). AccelForge passes a Memory's size.
    width: int | None
        Port width in bits (None: table reference, 256).
    n_banks: int
        Independent banks, each size / n_banks bits (default 1).
    """

    component_name = "GlobalBufferSRAM"
    priority = 0.5

    def __init__(
        self,
        tech_node: float | None = None,
        size: int | None = None,
        width: int | None = None,
        n_banks: int = 1,
    ):
        t = load_table("global_buffer")
        ref_node = t.ref("tech_node", "m")
        self.size = float(pick(t, "size", size, "bit"))
        self.width = self.assert_int("width", pick(t, "width", width, "bit"))
        self.n_banks = self.assert_int("n_banks", n_banks)
        self.depth = self.size / self.width / self.n_banks
        ref_depth = t.ref("size", "bit") / t.ref("width", "bit") / t.ref("n_banks", "")
        bits_ratio = self.size / t.ref("size", "bit")
        super().__init__(
            area=t.value("area", "um^2") * 1e-12 * bits_ratio,
            leak_power=t.value("leak_power", "W") * bits_ratio,
        )
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)
        depth_factor = cacti_depth_energy(self.depth, ref_depth)
        self._read = self.width * t.value("read_energy_per_bit", "pJ/bit") * 1e-12 * depth_factor
        self._write = self.width * t.value("write_energy_per_bit", "pJ/bit") * 1e-12 * depth_factor
        self.cycle_time = t.value("cycle_time", "s")

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
