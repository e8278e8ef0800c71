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

Within 10 %: only the chip at the model's own reference point (28 nm, INT8: Si et al.,
TOPS/W -9.1 %, energy per MAC +10.0 %, right at the edge). Away from it the model is
not predictive, and these tests pin the ratios actually achieved (1 % relative, so a
model change shows up) instead of widening a tolerance:
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

from fusioncim_plugin.components import IPCIMMacro
from fusioncim_plugin.tables import load_table

T = load_table("published_macros")


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


# chip -> (model/published ratio achieved, reason); see the module docstring.
ACHIEVED = {
    "colonnade energy 0.6V": (0.4536, "bit-serial per-cell adders, ~quadratic in bits; node-scaled 28 nm figure"),
    "colonnade energy 0.8V": (0.1132, "as above, plus 4x supply-voltage energy our model has no knob for"),
    "colonnade area": (0.5212, "617 Kb/mm^2 (28 nm) node-scaled vs 72 Kb/mm^2 with per-cell adders"),
    "fujiwara tops/w": (3.701, "node and linear bit scaling overshoot at 5 nm / 4b"),
}


def test_si_28nm_int8_within_10_percent():
    """The only chip at the model's reference point: both metrics within 10 %."""
    m = macro("si")
    pub_tops_w = v("si.tops_per_w", "TOPS/W")
    assert tops_per_w(m) / pub_tops_w == pytest.approx(0.909, abs=0.001)
    assert abs(tops_per_w(m) / pub_tops_w - 1) <= 0.10
    pub_fj = 2 / pub_tops_w * 1e3  # fJ per MAC
    assert pub_fj == pytest.approx(49.81, abs=0.01)
    assert abs(fj_per_mac(m) / pub_fj - 1) <= 0.10  # +10.0 %: at the edge


def test_colonnade_energy_and_area_ratios_achieved():
    m = macro("colonnade", rows=int(v("colonnade.rows")), cols=int(v("colonnade.cols")),
              frequency=v("colonnade.frequency", "Hz"))
    assert fj_per_mac(m) == pytest.approx(132.45, abs=0.01)
    r06 = fj_per_mac(m) / v("colonnade.energy_per_mac_8b_0v6", "fJ")
    r08 = fj_per_mac(m) / v("colonnade.energy_per_mac_8b_0v8", "fJ")
    area_um2 = m.area * 1e12
    ra = area_um2 / v("colonnade.area", "um^2")
    assert r06 == pytest.approx(ACHIEVED["colonnade energy 0.6V"][0], rel=0.01)
    assert r08 == pytest.approx(ACHIEVED["colonnade energy 0.8V"][0], rel=0.01)
    assert ra == pytest.approx(ACHIEVED["colonnade area"][0], rel=0.01)
    # Outside 10 %: documented above, not hidden behind a wider tolerance.
    assert abs(r06 - 1) > 0.10 and abs(ra - 1) > 0.10


def test_fujiwara_5nm_4b_ratio_achieved():
    m = macro("fujiwara")
    r = tops_per_w(m) / v("fujiwara.tops_per_w", "TOPS/W")
    assert r == pytest.approx(ACHIEVED["fujiwara tops/w"][0], rel=0.01)


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
