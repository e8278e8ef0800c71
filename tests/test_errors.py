"""Bad input gets one clear line naming the field and what is allowed - never a traceback."""

import pytest

from fusioncim_plugin.arch import REPO
from fusioncim_plugin.cli import main

SPEC = (REPO / "arch_specs" / "fusioncim.yaml").read_text()


def run(capsys, *argv):
    rc = main(["evaluate", "--softmax-order", "none", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def bad_spec(tmp_path, old, new):
    assert old in SPEC
    p = tmp_path / "bad.yaml"
    p.write_text(SPEC.replace(old, new, 1))
    return str(p)


def test_spec_missing_field(capsys, tmp_path):
    err = run(capsys, "--arch", bad_spec(tmp_path, "    size: glb_bytes * 8\n", ""))
    assert "arch.nodes.1.Memory.size: Field required" in err


def test_spec_missing_variable(capsys, tmp_path):
    err = run(capsys, "--arch", bad_spec(tmp_path, "  glb_bytes: {{GLB_BYTES}}\n", ""))
    assert "nodes.GlobalBuffer.size" in err and "variables:" in err


def test_unknown_component_class(capsys, tmp_path):
    err = run(capsys, "--arch", bad_spec(tmp_path, "component_class: IPCIMMacro",
                                         "component_class: NoSuchMacro"))
    assert "component_class 'nosuchmacro'" in err and "hwcomponents_<name>" in err


def test_negative_size(capsys):
    err = run(capsys, "--set", "GLB_BYTES=-1")
    assert "GLB_BYTES = -1: Input should be greater than 0" in err


def test_shape_that_does_not_fit_the_arrays(capsys):
    err = run(capsys, "--set", "N_IP_MACROS=1", "--set", "N_OP_MACROS=1", "--set", "MACRO_ROWS=16",
              "--set", "MACRO_COLS=16")
    assert "head_dim 128 does not fit the arrays" in err and "N_IP_MACROS" in err


@pytest.mark.parametrize("value,words", [
    ("0", "seq-len: Input should be greater than 0"),
    ("-4", "seq-len: Input should be greater than 0"),
    ("4k", "seq-len: Input should be a valid integer"),
    ("4096.5", "seq-len: Input should be a valid integer"),
])
def test_seq_len_not_a_positive_integer(capsys, value, words):
    assert words in run(capsys, "--seq-len", value)


def test_unknown_model(capsys):
    err = run(capsys, "--model", "llama3-13b")
    assert "model:" in err and "allowed: llama3-70b, llama3-8b, llama3.1-405b" in err


def test_unknown_design_and_arch(capsys):
    assert "allowed: dcim" in run(capsys, "--design", "flashcim")
    assert "known: fusioncim, ipcim_baseline" in run(capsys, "--arch", "nope")


def test_bad_override_syntax(capsys):
    assert "expected NAME=VALUE" in run(capsys, "--set", "GLB_BYTES")


@pytest.mark.parametrize("setting,words", [
    ("OPCIM_CIRCUIT=magic", "OPCIM_CIRCUIT = 'magic'"),
    ("OPCIM_LANES=0", "OPCIM_LANES = 0: Input should be greater than 0"),
    ("OPCIM_LANES=5000", "OPCIM_LANES = 5000; must be an integer 1 .. 1024"),
])
def test_bad_opcim_circuit_or_lanes(capsys, setting, words):
    err = run(capsys, "--set", setting)
    assert words in err
