"""Online-softmax unit: numbers in energy_tables/softmax_unit.yaml."""

from __future__ import annotations

from hwcomponents import ActionCost, ComponentModel, action
from hwcomponents.scaling import tech_node_area, tech_node_leak

from fusioncim_plugin.components._util import (
    horowitz_to,
    int_add_pj,
    int_mult_pj,
    pick,
    scale_tech_node,
)
from fusioncim_plugin.tables import load_table


class SoftmaxUnit(ComponentModel):
    """
    Fused online-softmax unit with ``lanes`` parallel lanes. Each per-element action
    processes one element in one lane. Two datapaths (``datapath``):

    * ``ibert_int16``: ``data_bits`` fixed point; exp() is I-BERT's integer-only
      second-order polynomial (Kim et al., ICML 2021); Horowitz integer add/multiply
      energies, b-bit adds linear and a x b multiplies quadratic in width;
    * ``taylor_fp16``: FP16; exp(x) = 2^n * exp(r), r = x - n ln2, exp(r) by its Taylor
      series to the degree FP16 needs (Horner form); Horowitz FP16 add/multiply energies.

    Operation counts, Horowitz (45 nm) energies and Aladdin (40 nm) areas/leakage come
    from the table.

    Parameters
    ----------
    tech_node: float | None
        Technology node in meters (None: table reference, 28 nm).
    frequency: float | None
        Clock in Hz (None: table reference, 200 MHz).
    lanes: int | None
        Elements processed per cycle (None: table reference, 16).
    data_bits: int | None
        Datapath width in bits (None: table reference, 16).
    datapath: str | None
        "ibert_int16" (None: the table reference) or "taylor_fp16".
    """

    component_name = "SoftmaxUnit"
    priority = 0.5

    def __init__(
        self,
        tech_node: float | None = None,
        frequency: float | None = None,
        lanes: int | None = None,
        data_bits: int | None = None,
        datapath: str | None = None,
    ):
        t = load_table("softmax_unit")
        ref_node = t.ref("tech_node", "m")
        self.frequency = float(pick(t, "frequency", frequency, "Hz"))
        self.lanes = self.assert_int("lanes", pick(t, "lanes", lanes))
        self.data_bits = self.assert_int("data_bits", pick(t, "data_bits", data_bits, "bit"))
        b = self.data_bits
        n = lambda key: t.value(key, "")  # noqa: E731  (operation counts)

        # One datapath sets both the energy and the hardware: the per-exp operator counts
        # below are the multipliers and adders each lane instantiates.
        k = 1e-12 * horowitz_to(t, ref_node)  # pJ at 45 nm -> J at the reference node
        self.datapath = datapath or "ibert_int16"
        if self.datapath == "ibert_int16":
            self._add = int_add_pj(t, b) * k
            self._mult = int_mult_pj(t, b, b) * k
            exp_mults, exp_adds = n("exp_mults"), n("exp_adds")
        elif self.datapath == "taylor_fp16":
            self._add = t.value("fp16_add", "pJ") * k
            self._mult = t.value("fp16_mult", "pJ") * k
            deg = n("taylor_degree")
            exp_mults, exp_adds = n("taylor_range_mults") + deg, n("taylor_range_adds") + deg
        else:
            raise ValueError(f"SoftmaxUnit datapath {datapath!r}; allowed: ibert_int16, "
                             f"taylor_fp16 (spec variable SOFTMAX_EXP)")
        self._exp = exp_mults * self._mult + exp_adds * self._add

        # Per-lane hardware: the compute() pipeline (compare, subtract, exp, add to the
        # running sum, requantize); plus one reciprocal unit shared by all lanes.
        self.lane_adds = n("compare_adds") + 1 + exp_adds + 1 + n("requant_adds")
        self.lane_mults = exp_mults + n("requant_mults")
        adds = self.lanes * self.lane_adds + n("reciprocal_adds")
        mults = self.lanes * self.lane_mults + n("reciprocal_mults")
        aladdin = t.ref("aladdin_tech_node", "m")
        area_um2 = tech_node_area(ref_node, aladdin) * (
            adds * t.value("adder_area_32b", "um^2") * b / 32
            + mults * t.value("multiplier_area_32b", "um^2") * b * b / 1024
        )
        leak_w = tech_node_leak(ref_node, aladdin) * (
            adds * t.value("adder_leak_32b", "W") * b / 32
            + mults * t.value("multiplier_leak_32b", "W") * b * b / 1024
        )
        super().__init__(area=area_um2 * 1e-12, leak_power=leak_w)
        self.tech_node = scale_tech_node(self, pick(t, "tech_node", tech_node), ref_node)

        self._compare = n("compare_adds") * self._add
        self._reciprocal = n("reciprocal_mults") * self._mult + n("reciprocal_adds") * self._add
        self._requant = n("requant_mults") * self._mult + n("requant_adds") * self._add

    def _cost(self, energy: float) -> ActionCost:
        return ActionCost(
            energy=energy, throughput=self.lanes * self.frequency, latency=1 / self.frequency
        )

    @action
    def max_compare(self) -> ActionCost:
        """Compare one score with the running row maximum (a data_bits subtractor)."""
        return self._cost(self._compare)

    @action
    def exp(self) -> ActionCost:
        """One exponential: I-BERT i-exp (3 multiplies, 3 adds and a shift) or the FP16
        Taylor exp (range reduction + Horner polynomial; table counts)."""
        return self._cost(self._exp)

    @action
    def add(self) -> ActionCost:
        """One data_bits add (e.g. add to the running sum l)."""
        return self._cost(self._add)

    @action
    def multiply(self) -> ActionCost:
        """One data_bits x data_bits multiply (e.g. l * exp(m_old - m_new))."""
        return self._cost(self._mult)

    @action
    def reciprocal(self) -> ActionCost:
        """One reciprocal 1/l: LUT seed + 2 Newton-Raphson iterations (table counts)."""
        return self._cost(self._reciprocal)

    @action
    def compute(self) -> ActionCost:
        """Per-score work of fused online softmax: compare with the running max,
        subtract the max, exp, add to the running sum, requantize to INT8 for OP-CIM."""
        return self._cost(self._compare + self._add + self._exp + self._add + self._requant)
