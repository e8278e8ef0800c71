"""Off-chip DRAM: numbers in energy_tables/dram.yaml."""

from __future__ import annotations

from hwcomponents import ActionCost, ComponentModel, action

from fusioncim_plugin.components._util import pick
from fusioncim_plugin.tables import load_table


class DRAM(ComponentModel):
    """
    Off-chip DRAM with a flat energy per bit (read = write) and a bandwidth of
    ``width`` bits per transfer at the type's per-pin data rate. Area and leakage are 0
    (off chip; refresh/background power not modeled).

    Parameters
    ----------
    dram_type: str
        DRAM type with entries ``<type>_energy_per_bit`` and ``<type>_data_rate`` in
        the table: "LPDDR4" (default) or "HBM2".
    width: int | None
        Interface width in bits (None: table reference, 64).
    """

    component_name = "DRAM"
    priority = 0.5

    def __init__(self, dram_type: str = "LPDDR4", width: int | None = None):
        t = load_table("dram")
        key = str(dram_type).lower()
        self.dram_type = str(dram_type)
        self.width = self.assert_int("width", pick(t, "width", width, "bit"))
        self.energy_per_bit = t.value(f"{key}_energy_per_bit", "pJ/bit") * 1e-12
        self.data_rate = t.value(f"{key}_data_rate", "1/s")
        super().__init__(area=0.0, leak_power=0.0)

    def _cost(self) -> ActionCost:
        return ActionCost(
            energy=self.width * self.energy_per_bit,
            throughput=self.data_rate,
            latency=1 / self.data_rate,
        )

    @action(bits_per_action="width")
    def read(self) -> ActionCost:
        """Read one ``width``-bit transfer (bits_per_action scales the energy)."""
        return self._cost()

    @action(bits_per_action="width")
    def write(self) -> ActionCost:
        """Write one ``width``-bit transfer (bits_per_action scales the energy)."""
        return self._cost()
