"""`fusioncim stock` (AccelForge's stock CIM macros on our attention workload) and the
plug-in example (examples/my_macro_plugin: a hwcomponents macro found by discovery)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncim_plugin import evaluate
from fusioncim_plugin.cli import main
from fusioncim_plugin.stock import cim_examples_dir, stock_spec
from fusioncim_plugin.workload import Workload

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "examples" / "my_macro_plugin"
VARIANT = PLUGIN / "fusioncim_my_macro.yaml"
WL = Workload(model="llama3-8b", phase="prefill", seq_len=128, causal=False)
MACS = 2 * 32 * 128 * 128 * 128  # QK^T + PV, 32 query heads, L = 128, E = 128


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["stock", "--seq-len", "128", "--macros",
                   "colonnade_jssc_2021,sinangil_jssc_2021,basic_analog", "--json"])
    assert rc == 0
    return {r["name"]: r for r in json.loads(out.getvalue())}


def test_stock_specs_come_from_the_installed_accelforge():
    import accelforge

    assert Path(accelforge.__file__).parents[1] in cim_examples_dir().parents
    assert not (REPO / "examples" / "arches").exists()  # not copied into our repo
    spec = stock_spec("colonnade_jssc_2021", WL)
    assert [e.name for e in spec.workload.einsums] == ["S", "O"]


def test_stock_rows_have_real_values(table):
    for name in ("colonnade_jssc_2021", "sinangil_jssc_2021"):
        r = table[name]
        assert r["error"] is None
        assert r["macs"] == MACS  # every MAC of both products, nothing dropped
        assert r["energy_j"] > 0 and r["latency_s"] > 0
        assert r["tops_per_w"] == pytest.approx(2 * MACS / r["energy_j"] / 1e12)
        assert r["tops"] == pytest.approx(2 * MACS / r["latency_s"] / 1e12)
    # Colonnade is a 65 nm bit-serial digital macro: INT8 costs on the order of the
    # 1.17 pJ/MAC its paper reports at 0.8 V (AccelForge's own model of it).
    fj = table["colonnade_jssc_2021"]["energy_j"] / MACS * 1e15
    assert 500 < fj < 3000


def test_basic_analog_mapper_failure_is_reported_not_raised(table):
    assert table["basic_analog"]["energy_j"] is None
    assert "spatial loop" in table["basic_analog"]["error"]


def test_fusioncim_rows_are_our_evaluate(table):
    r = evaluate("fusioncim", WL)
    assert table["fusioncim"]["energy_j"] == pytest.approx(r.attention.energy_j, rel=1e-12)
    assert table["fusioncim"]["macs"] == MACS == r.attention.macs
    macro = table["fusioncim: CIM macros only"]
    parts = ("IP-CIM compute", "IP-CIM write", "OP-CIM compute", "OP-CIM array", "rescale")
    assert macro["energy_j"] == pytest.approx(
        sum(r.attention.energy_by_category_j.get(c, 0.0) for c in parts), rel=1e-12)
    assert macro["energy_j"] < table["fusioncim"]["energy_j"]


def test_cli_stock_table_and_bad_macro(capsys):
    assert main(["stock", "--seq-len", "128", "--macros", "nonexistent_macro"]) == 2
    assert "nonexistent_macro" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# The plug-in example
# --------------------------------------------------------------------------------------
def _energy_per_mac(arch):
    from fusioncim_plugin.arch import load_arch

    return load_arch(str(arch)).energy("IPCIM_MAC", "compute")


def test_plugin_on_sys_path_is_discovered_and_evaluates(tmp_path, monkeypatch):
    """hwcomponents' installed_models() scans every `hwcomponents_*` module that
    pkgutil.iter_modules() sees on sys.path, so a plain module on sys.path works - but
    the scan is cached per process (find_models._ALL_ESTIMATORS), so reset it."""
    import hwcomponents.find_models as fm

    shutil.copy(PLUGIN / "hwcomponents_my_macro.py", tmp_path)  # keep the repo clean
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(fm, "_ALL_ESTIMATORS", None)
    try:
        names = {m.__name__ for m in fm.installed_models()}
        assert {"MyDigitalCIMMacro", "IPCIMMacro"} <= names

        wl = Workload(model="llama3-8b", phase="prefill", seq_len=1024)
        fixed = {"BLOCK_Q": 128, "BLOCK_KV": 64}  # the same mapping for both (no search)
        mine = evaluate("fusioncim", wl, arch=str(VARIANT), overrides=fixed)
        ref = evaluate("fusioncim", wl, overrides=fixed)
        # Only the IP-CIM MAC energy changes: 2 / 40.15e12 J (Si et al.) instead of the
        # default table's 54.79 fJ (2 / 36.5e12 J, ReDCIM).
        assert _energy_per_mac(VARIANT) == pytest.approx(2 / 40.15e12, rel=1e-9)
        ratio = _energy_per_mac(VARIANT) / _energy_per_mac("fusioncim")
        assert ratio == pytest.approx(36.5 / 40.15, rel=1e-5)
        assert mine.attention.energy_by_category_j["IP-CIM compute"] == pytest.approx(
            ref.attention.energy_by_category_j["IP-CIM compute"] * ratio, rel=1e-9)
        for cat, e in ref.attention.energy_by_category_j.items():
            if cat != "IP-CIM compute":
                assert mine.attention.energy_by_category_j[cat] == pytest.approx(e, rel=1e-9), cat
        assert mine.attention.latency_s == pytest.approx(ref.attention.latency_s, rel=1e-12)
    finally:
        sys.modules.pop("hwcomponents_my_macro", None)
        fm._ALL_ESTIMATORS = None


def test_plugin_pip_install_editable_is_discovered(tmp_path):
    """`pip install -e` (a copy, so the repo gets no egg-info) into the running venv: the
    editable module is invisible to pkgutil.iter_modules() (a finder hook), and
    hwcomponents finds it through the distribution's top_level.txt because the
    distribution name starts with "hwcomponents". Uninstalled afterwards."""
    pkg = tmp_path / "my_macro_plugin"
    shutil.copytree(PLUGIN, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    inst = subprocess.run(pip + ["install", "-e", str(pkg)], capture_output=True, text=True,
                          timeout=240)
    if inst.returncode != 0:
        if "Could not" in inst.stderr or "network" in inst.stderr.lower():
            pytest.skip(f"pip could not build the plugin (no package index?): "
                        f"{inst.stderr.strip().splitlines()[-1]}")
        raise AssertionError(inst.stderr)
    try:
        probe = (
            "import pkgutil, json\n"
            "from hwcomponents.find_models import installed_models\n"
            "from fusioncim_plugin.arch import load_arch\n"
            f"a = load_arch({str(VARIANT)!r})\n"
            "print(json.dumps({'found': [m.__name__ for m in installed_models()],"
            " 'iter_modules': [m.name for m in pkgutil.iter_modules()"
            " if m.name == 'hwcomponents_my_macro'],"
            " 'mac': a.energy('IPCIM_MAC', 'compute')}))\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             cwd=tmp_path, env=env, timeout=240)
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout.strip().splitlines()[-1])
        assert "MyDigitalCIMMacro" in got["found"]
        assert got["iter_modules"] == []
        assert got["mac"] == pytest.approx(2 / 40.15e12, rel=1e-9)
    finally:
        subprocess.run(pip + ["uninstall", "-y", "hwcomponents-my-macro"], capture_output=True,
                       timeout=240)
