"""Our IP-CIM macro model against published digital SRAM CIM silicon.

IPCIMMacro is configured as each chip through its constructor only (tech_node, rows,
cols, input/weight bits, frequency from energy_tables/published_macros.yaml); its
per-MAC energy stays the table's 28 nm INT8 figure (ReDCIM, 36.5 TOPS/W) scaled by
hwcomponents' tech-node scaling and linearly in input and weight bits; its area is
rows x cols x the table's area per bit, tech-node scaled. No constant is fitted here.

Result (model / published):

| chip (node, precision)               | quantity          | published     | model         | ratio |
|--------------------------------------|-------------------|---------------|---------------|-------|
| Si et al. TVLSI'24 (28 nm, 8b/8b)    | TOPS/W            | 40.15         | 36.50         | 0.909 |
| Si et al. TVLSI'24                   | energy/MAC        | 49.81 fJ      | 54.79 fJ      | 1.100 |
| Colonnade JSSC'21 (65 nm, 8b/8b)     | energy/MAC @0.6 V | 292.0 fJ      | 132.4 fJ      | 0.454 |
| Colonnade JSSC'21                    | energy/MAC @0.8 V | 1169.7 fJ     | 132.4 fJ      | 0.113 |
| Colonnade JSSC'21 (128x128)          | area              | 227,200 um^2  | 118,422 um^2  | 0.521 |
| Fujiwara ISSCC'22 (5 nm, 4b/4b)      | TOPS/W            | 254           | 940           | 3.70  |
| ReDCIM ISSCC'22 (28 nm, 8b/8b)       | TOPS/W            | 36.5          | 36.5          | 1 (by construction) |

Si et al. is at the model's own reference point (28 nm, INT8), so its row compares two
published figures (ReDCIM's 36.5 TOPS/W, the table's source, against Si's 40.15 TOPS/W):
a consistency row like ReDCIM's, not a check of anything the model derives. Away from
the reference point the model is not predictive. The tests derive the model's figure by
hand from the ipcim_macro table (ReDCIM per-MAC energy, area per bit) and hwcomponents'
Stillmaker-Baas scaling functions, check the model returns exactly that, and state the
10 % agreement as a strict xfail where the model misses it (it fails loudly, as an
XPASS, once the model gets within 10 %):
  * Colonnade (65 nm): a bit-serial design with a full adder and reconfiguration logic in
    every bitcell, so energy grows ~quadratically with precision (1b: 17.1 fJ, 8b: 292 fJ
    at 0.6 V) and steeply with supply (0.6 -> 0.8 V: 4x); our model scales a 28 nm
    adder-tree macro by node (x2.42) and linearly per operand bit, with no voltage.
    Its area (0.52x) reflects our 617 Kb/mm^2 (28 nm, scaled x4.6 to 65 nm) against
    Colonnade's 72 Kb/mm^2 (per-cell adders).
  * Fujiwara (5 nm, 4b/4b): Stillmaker-Baas scaling 28 -> 5 nm (x0.155 energy) times
    the linear 4b x 4b factor (1/4) promises 3.7x more than the silicon delivers: fixed
    costs (input drivers, adder tree, accumulators) do not shrink with operand width.
"""

import ast
import json
from pathlib import Path

import pytest

from hwcomponents.scaling import tech_node_area, tech_node_energy

from fusioncim_plugin.components import IPCIMMacro
from fusioncim_plugin.tables import load_table

T = load_table("published_macros")
M = load_table("ipcim_macro")
REF_NODE = M.ref("tech_node", "m")


def v(key, unit=None):
    return T.value(key, unit)


def macro(chip: str, **kw) -> IPCIMMacro:
    bits = int(v(f"{chip}.bits", "bit"))
    return IPCIMMacro(tech_node=v(f"{chip}.tech_node", "m"), input_bits=bits, weight_bits=bits,
                      **kw)


def fj_per_mac(m: IPCIMMacro) -> float:
    return m.compute().energy * 1e15


def tops_per_w(m: IPCIMMacro) -> float:
    return 2 / m.compute().energy / 1e12


def hand_fj(chip: str) -> float:
    """fJ per MAC by hand: the table's 28 nm INT8 figure x (bits/8)^2 (linear in input
    and in weight bits) x hwcomponents' tech-node energy scaling."""
    bits = v(f"{chip}.bits", "bit") / M.ref("input_bits", "bit")
    return (M.value("mac_energy", "pJ") * 1e3 * bits * bits
            * tech_node_energy(v(f"{chip}.tech_node", "m"), REF_NODE))


def hand_area_um2(chip: str, rows: int, cols: int) -> float:
    return rows * cols * M.value("area_per_bit", "um^2") * tech_node_area(
        v(f"{chip}.tech_node", "m"), REF_NODE)


def test_si_28nm_int8_is_a_consistency_row():
    """At the model's reference point (28 nm, INT8, no scaling) the model's TOPS/W is
    ReDCIM's published figure, so its ratio to Si's is the ratio of two published values
    (36.5 / 40.15 = 0.909): consistency between sources, not a validation."""
    m = macro("si")
    assert fj_per_mac(m) == pytest.approx(hand_fj("si"), rel=1e-9)
    assert tops_per_w(m) == pytest.approx(2 / hand_fj("si") * 1e3, rel=1e-9)
    ratio = tops_per_w(m) / v("si.tops_per_w", "TOPS/W")
    assert ratio == pytest.approx(v("redcim.tops_per_w", "TOPS/W") / v("si.tops_per_w", "TOPS/W"),
                                  rel=1e-5)
    assert 2 / v("si.tops_per_w", "TOPS/W") * 1e3 == pytest.approx(49.81, abs=0.01)  # fJ/MAC


def colonnade() -> IPCIMMacro:
    return macro("colonnade", rows=int(v("colonnade.rows")), cols=int(v("colonnade.cols")),
                 frequency=v("colonnade.frequency", "Hz"))


def test_colonnade_model_figures_by_hand():
    m, rows, cols = colonnade(), int(v("colonnade.rows")), int(v("colonnade.cols"))
    assert fj_per_mac(m) == pytest.approx(hand_fj("colonnade"), rel=1e-9)
    assert m.area * 1e12 == pytest.approx(hand_area_um2("colonnade", rows, cols), rel=1e-9)


@pytest.mark.xfail(strict=True, reason="documented miss (docstring): Colonnade's per-cell "
                   "adders and supply voltage are outside the model (0.45x energy at 0.6 V, "
                   "0.52x area)")
@pytest.mark.parametrize("quantity", ["energy_0v6", "area"])
def test_colonnade_within_10_percent(quantity):
    m = colonnade()
    model, pub = {"energy_0v6": (fj_per_mac(m), v("colonnade.energy_per_mac_8b_0v6", "fJ")),
                  "area": (m.area * 1e12, v("colonnade.area", "um^2"))}[quantity]
    assert abs(model / pub - 1) <= 0.10


def test_fujiwara_model_figure_by_hand():
    assert fj_per_mac(macro("fujiwara")) == pytest.approx(hand_fj("fujiwara"), rel=1e-9)


@pytest.mark.xfail(strict=True, reason="documented miss (docstring): node scaling to 5 nm x "
                   "the linear 4b x 4b factor promises 3.7x the silicon's TOPS/W")
def test_fujiwara_within_10_percent():
    r = tops_per_w(macro("fujiwara")) / v("fujiwara.tops_per_w", "TOPS/W")
    assert abs(r - 1) <= 0.10


def test_redcim_is_the_calibration_point():
    m = IPCIMMacro(tech_node=v("redcim.tech_node", "m"))
    assert tops_per_w(m) == pytest.approx(v("redcim.tops_per_w", "TOPS/W"), rel=1e-5)


def test_colonnade_numbers_match_accelforge_notebook():
    """Our table's Colonnade values are the ones in AccelForge's installed notebook."""
    import accelforge

    nb = Path(accelforge.__file__).parents[1] / "notebooks" / "compute_in_memory" \
        / "colonnade_jssc_2021.ipynb"
    src = "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"]
                    if c["cell_type"] == "code")
    start = src.index("expected_fj_per_mac_iw = {")
    table = ast.literal_eval(src[src.index("{", start): src.index("}", start) + 1])
    assert table[8][0] == v("colonnade.energy_per_mac_8b_0v6", "fJ")
    assert table[8][2] == v("colonnade.energy_per_mac_8b_0v8", "fJ")
    assert "total_ref_area = 227200e-12" in src
    assert v("colonnade.area", "um^2") == pytest.approx(227200e-12 * 1e12)


def test_every_published_value_is_sourced():
    for key in T.entries:
        assert T.entry(key).source.strip(), key
