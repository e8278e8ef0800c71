"""The built wheel works on its own: specs, tables, mappings, workloads, model configs and
traces are package data. Builds the wheel, installs it (--no-deps) into a fresh venv that
sees the pinned dependencies of the test venv through a .pth line, and runs `evaluate`,
`compare` and `softmax-stats` from a directory outside the source tree."""

import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

from fusioncim_plugin._data import REPO


def test_every_code_package_is_in_the_wheel_list():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())
                 ["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "fusioncim_plugin").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {found - listed}"


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp / "dist"), str(REPO)], capture_output=True, text=True)
    if build.returncode:
        pytest.skip(f"cannot build the wheel here (no setuptools from PyPI or the pip cache): "
                    f"{build.stderr.strip()[-300:]}")
    whl = next((tmp / "dist").glob("*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    site = subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig."
                                    "get_paths()['purelib'])"], text=True).strip()
    # The dependencies, not this package: a plain path line does not run the test venv's
    # editable-install hook, so only the wheel provides fusioncim_plugin.
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(whl)],
                   check=True)
    run_dir = tmp / "elsewhere"
    run_dir.mkdir()
    return env_dir, run_dir


def _run(wheel_venv, *args):
    env_dir, run_dir = wheel_venv
    r = subprocess.run([str(env_dir / "bin" / "fusioncim"), *args], cwd=run_dir,
                       capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_wheel_is_used_not_the_source_tree(wheel_venv):
    env_dir, run_dir = wheel_venv
    where = subprocess.check_output(
        [str(env_dir / "bin" / "python"), "-c",
         "import fusioncim_plugin._data as d; print(d.data_dir('arch_specs'))"],
        cwd=run_dir, text=True, env={"PATH": "/usr/bin:/bin"}).strip()
    assert where.startswith(str(env_dir)) and where.endswith("fusioncim_plugin/arch_specs")


def test_wheel_evaluate_compare_softmax_stats(wheel_venv):
    out = _run(wheel_venv, "evaluate", "--model", "llama3.2-1b", "--seq-len", "1024")
    assert "fusioncim on llama3.2-1b prefill, seq_len 1024" in out and " J" in out
    out = _run(wheel_venv, "compare", "--seq-len", "1024")
    assert all(d in out for d in ("dcim", "trancim-like", "ipcim-fused", "hybrid-qo", "fusioncim"))
    out = _run(wheel_venv, "softmax-stats", "--blocks", "32")
    assert "smollm2" in out
