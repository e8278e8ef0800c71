"""Bad input gets one clear line naming the field and what is allowed - never a traceback."""

from pathlib import Path

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


# ---------------------------------------------------------------------------------------
# The bad-input table of issue 11: every case exits 2 with one line that names the input
# and the fix. (Softmax/trace cases: tests/test_softmax.py; `map` at long context:
# tests/test_mapper.py.)

BIG = "1000000000"


def _cases(tmp):
    afile = tmp / "afile"
    afile.write_text("")
    nofield = tmp / "nofield.json"
    nofield.write_text('{"num_hidden_layers": 2, "hidden_size": 512}')
    broken = tmp / "broken.json"
    broken.write_text('{"num_hidden_layers": 2,')
    sweep = tmp / "sw.yaml"
    sweep.write_text("axes: {N_IP_MACRO: [8, 16]}\n")
    ok_sweep = tmp / "ok.yaml"
    ok_sweep.write_text("axes: {N_IP_MACROS: [8, 16]}\n")
    return [
        # unknown names (did-you-mean), on every command that takes --set
        (["evaluate", "--set", "N_IP_MACRO=16"], ["N_IP_MACRO:", "did you mean N_IP_MACROS?"]),
        (["compare", "--set", "N_IP_MACRO=16"], ["N_IP_MACRO:", "did you mean N_IP_MACROS?"]),
        (["map", "--seq-len", "256", "--set", "N_IP_MACRO=16"],
         ["N_IP_MACRO:", "did you mean N_IP_MACROS?"]),
        (["sweep", str(sweep), "--out", str(tmp / "o")], ["'N_IP_MACRO'", "'N_IP_MACROS'"]),
        # types and ranges
        (["evaluate", "--set", "N_IP_MACROS=2.5"], ["N_IP_MACROS = 2.5", "positive integer"]),
        (["evaluate", "--set", "N_IP_MACROS=16.0"], ["N_IP_MACROS = 16.0", "positive integer"]),
        (["evaluate", "--set", "GLB_BYTES=-1"], ["GLB_BYTES = -1", "greater than 0"]),
        (["evaluate", "--set", "TECH_NODE=7"], ["TECH_NODE = 7", "7e-09 .. 1.3e-07"]),
        (["evaluate", "--set", "GLB_BYTES=1"], ["GLB_BYTES = 1", "GLB_BYTES 8192 .. 8388608"]),
        (["evaluate", "--set", "GLB_BYTES=8192", "--set", "BLOCK_KV=128"],
         ["GLB_BYTES = 8192", "--set GLB_BYTES=16384"]),
        (["evaluate", "--set", "GLB_WIDTH_BITS=7"],
         ["GLB_WIDTH_BITS = 7", "128 .. 512", "scripts/cacti_global_buffer.py"]),
        (["evaluate", "--set", "DRAM_TYPE=DDR9"], ["DRAM_TYPE = 'DDR9'", "HBM2, LPDDR4"]),
        (["evaluate", "--set", "RESCALE_GRANULARITY=cell"],
         ["RESCALE_GRANULARITY = 'cell'", "tile or row"]),
        (["evaluate", "--set", "DATA_BITS=32"], ["DATA_BITS = 32", "1 .. 16"]),
        # a fixed block that cannot fit gets the dataflow's own fix, not "enlarge the
        # macros" (the searched BLOCK_KV must not hide which value is at fault)
        (["evaluate", "--set", "BLOCK_Q=1000"], ["BLOCK_Q=1000", "(128 rows); lower BLOCK_Q"]),
        # component-model errors: the root cause first, whole
        (["evaluate", "--set", "MACRO_COLS=100"],
         ["IPCIMArray", "cols=100 is not a multiple of weight_bits=8"]),
        (["evaluate", "--set", "ACC_BITS=24"],
         ["OPCIMArray", "cols=128 is not a multiple of acc_bits=24"]),
        # size guards, before any work starts
        (["evaluate", "--seq-len", BIG], [f"seq-len {BIG}", "shorter --seq-len"]),
        (["compare", "--seq-len", BIG], [f"seq-len {BIG}", "shorter --seq-len"]),
        (["evaluate", "--phase", "decode", "--seq-len", BIG],
         ["rescale model", "--softmax-order none"]),
        # output paths
        (["reproduce", "--out", str(afile)], ["--out", "is a file; give a directory"]),
        (["reproduce", "--out", "/proc/no/such/dir"], ["--out", "choose a writable directory"]),
        # models
        (["evaluate", "--model", "llama3-13b"], ["model:", "unknown model 'llama3-13b'",
                                                 "llama3.2-1b"]),
        (["evaluate", "--model", str(nofield)],
         ["model:", "missing field 'num_attention_heads'"]),
        (["evaluate", "--model", str(broken)], ["model:", "not valid JSON"]),
        (["evaluate", "--model", str(tmp / "missing.json")], ["model:", "not found"]),
        # --arch on every command
        (["compare", "--arch", "nope"], ["unknown arch spec 'nope'"]),
        (["compare", "--baseline-arch", "nope"], ["unknown arch spec 'nope'"]),
        (["reproduce", "--arch", "nope", "--out", str(tmp / "r")], ["unknown arch spec 'nope'"]),
        (["sweep", str(ok_sweep), "--arch", "nope", "--out", str(tmp / "o")],
         ["unknown arch spec 'nope'"]),
    ]


CASE_IDS = [" ".join(a).replace("/", "_")[:60] for a, _ in _cases(__import__("pathlib").Path(
    __import__("tempfile").mkdtemp()))]


@pytest.mark.parametrize("i", range(len(CASE_IDS)), ids=CASE_IDS)
def test_bad_input_table(capsys, tmp_path, i):
    argv, words = _cases(tmp_path)[i]
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 2, out
    assert "Traceback" not in out.err
    assert out.err.startswith("error: ") and out.err.count("\n") == 1, out.err
    for w in words:
        assert w in out.err, (w, out.err)


NO_PORTS = '''
from hwcomponents import ActionCost, ComponentModel, action


class NoPortMacro(ComponentModel):
    """A macro without read/write (test fixture)."""
    component_name = "NoPortMacro"
    priority = 0.5

    def __init__(self, tech_node=28e-9, rows=128, cols=128):
        super().__init__(area=1e-9, leak_power=0.0)

    @action
    def compute(self) -> ActionCost:
        return ActionCost(energy=1e-13, throughput=1e9, latency=1e-9)
'''


def test_macro_without_read_write(capsys, tmp_path, monkeypatch):
    import hwcomponents.find_models as fm

    (tmp_path / "hwcomponents_noport.py").write_text(NO_PORTS)
    arch = bad_spec(tmp_path, "component_class: IPCIMMacro", "component_class: NoPortMacro")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fm, "_ALL_ESTIMATORS", None)
    try:
        err = run(capsys, "--arch", arch)
    finally:
        fm._ALL_ESTIMATORS = None
    assert "IPCIMArray (component_class NoPortMacro)" in err
    assert "does not support action read" in err


def test_broken_table_key():
    """A renamed key in an energy table: the model's own error, whole, names file and key."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    d = Path(tempfile.mkdtemp()) / "tables"
    shutil.copytree(REPO / "energy_tables", d)
    t = d / "ipcim_macro.yaml"
    t.write_text(t.read_text().replace("\n  mac_energy:", "\n  mac_energy_typo:"))
    r = subprocess.run([sys.executable, "-m", "fusioncim_plugin.cli", "evaluate"],
                       capture_output=True, text=True,
                       env={**os.environ, "FUSIONCIM_ENERGY_TABLES": str(d)})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "ipcim_macro.yaml: no entries key 'mac_energy'" in r.stderr
    assert "mac_energy_typo" in r.stderr


def test_api_overrides_are_checked_too():
    from fusioncim_plugin import evaluate
    from fusioncim_plugin.arch import SpecError

    with pytest.raises(SpecError, match="did you mean N_IP_MACROS"):
        evaluate("fusioncim", {"model": "llama3-8b"}, overrides={"N_IP_MACRO": 16})
    with pytest.raises(SpecError, match="TECH_NODE = 7"):
        evaluate("fusioncim", {"model": "llama3-8b"}, overrides={"TECH_NODE": 7})
