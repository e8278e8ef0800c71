"""One validation path for arch-spec variables (fusioncim_plugin.variables)."""

import pytest

from fusioncim_plugin.arch import REPO, SpecError, load_arch
from fusioncim_plugin.variables import arch_variables, check_value


def test_names_come_from_the_spec_itself(tmp_path):
    spec = (REPO / "arch_specs" / "fusioncim.yaml").read_text()
    p = tmp_path / "more.yaml"
    p.write_text("{% set MY_NEW_KNOB = MY_NEW_KNOB | default(3) %}\n" + spec)
    v = arch_variables(str(p))
    assert v["MY_NEW_KNOB"].default == 3 and v["MY_NEW_KNOB"].kind == "int"
    assert check_value(str(p), "MY_NEW_KNOB", 5) == 5
    with pytest.raises(ValueError, match="MY_NEW_KNOB = 0.5: .*positive integer"):
        check_value(str(p), "MY_NEW_KNOB", 0.5)


def test_plugin_spec_knows_the_included_variables():
    v = arch_variables(str(REPO / "examples" / "my_macro_plugin" / "fusioncim_my_macro.yaml"))
    assert set(arch_variables("fusioncim")) <= set(v)


def test_fixed_by_the_including_spec_is_not_settable():
    assert "WITH_OPCIM" not in arch_variables("ipcim_baseline")
    with pytest.raises(SpecError, match="WITH_OPCIM: not a variable of arch spec"):
        load_arch("ipcim_baseline", {"WITH_OPCIM": True})


def test_data_bits_reach_the_macro_models():
    """INT4 operands: the IP-CIM MAC energy scales with input bits x weight bits (x1/4 from
    INT8); a macro holds twice the 4-bit column groups and a bit-serial input takes half
    the cycles: MAC throughput x4."""
    a8, a4 = load_arch("fusioncim"), load_arch("fusioncim", {"DATA_BITS": 4})
    assert a4.energy("IPCIM_MAC", "compute") == pytest.approx(
        a8.energy("IPCIM_MAC", "compute") / 4, rel=1e-12)
    t8 = a8.components["IPCIM_MAC"].throughput["compute"]
    t4 = a4.components["IPCIM_MAC"].throughput["compute"]
    assert t4 == pytest.approx(4 * t8, rel=1e-12)
