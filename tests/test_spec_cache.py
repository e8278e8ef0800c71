"""The on-disk parsed-spec cache (fusioncim_plugin/spec_cache.py).

Each test points FUSIONCIM_CACHE_DIR at its own empty directory and counts how often the
spec is instantiated through AccelForge (``arch._instantiate``): a hit must not call it.
"""

import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fusioncim_plugin import arch as arch_mod, spec_cache, tables
from fusioncim_plugin.arch import ARCH_DIR, WORKLOAD_DIR, load_arch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache directory; yields (dir, calls) where calls counts AccelForge
    instantiations. The in-process lru cache is cleared before and after."""
    d = tmp_path / "cache"
    monkeypatch.setenv(spec_cache.ENV_VAR, str(d))
    calls = []
    real = arch_mod._instantiate

    def counting(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(arch_mod, "_instantiate", counting)
    arch_mod._load_arch.cache_clear()
    yield d, calls
    arch_mod._load_arch.cache_clear()


def _fresh(name, overrides=None):
    """load_arch as a new process would see it (empty in-process cache)."""
    arch_mod._load_arch.cache_clear()
    return load_arch(name, overrides)


def _files(d: Path):
    return sorted(d.glob("*.json"))


def test_hit_returns_identical_costs_without_accelforge(cache):
    d, calls = cache
    first = _fresh("fusioncim")
    assert len(calls) == 1 and len(_files(d)) == 1
    again = _fresh("fusioncim")
    assert len(calls) == 1, "a hit must not instantiate the spec again"
    assert again == first  # every energy, throughput, area, leakage and variable
    assert again.energy("IPCIM_MAC", "compute") == first.energy("IPCIM_MAC", "compute")
    assert again.area == first.area and again.leak_power == first.leak_power


def test_hit_gives_the_same_evaluation(cache):
    from fusioncim_plugin.evaluation import evaluate
    from fusioncim_plugin.workload import Workload

    d, calls = cache
    wl = Workload(model="llama3-8b", phase="prefill", seq_len=2048)
    arch_mod._load_arch.cache_clear()
    cold = evaluate("hybrid", wl).model_dump()
    n = len(calls)
    arch_mod._load_arch.cache_clear()
    warm = evaluate("hybrid", wl).model_dump()
    assert len(calls) == n
    assert warm == cold


def test_changed_variable_misses(cache):
    d, calls = cache
    a = _fresh("fusioncim")
    b = _fresh("fusioncim", {"N_IP_MACROS": 16})
    assert len(calls) == 2 and len(_files(d)) == 2
    assert b.var("n_ip_macros") == 16 and a.var("n_ip_macros") == 8
    assert b.area > a.area


def test_changed_energy_table_misses(cache, tmp_path, monkeypatch):
    d, calls = cache
    tdir = tmp_path / "tables"
    shutil.copytree(tables.DEFAULT_DIR, tdir)
    monkeypatch.setenv(tables.ENV_VAR, str(tdir))
    before = _fresh("fusioncim").energy("DRAM", "read")
    f = tdir / "dram.yaml"
    text = f.read_text()
    assert "lpddr4_energy_per_bit:\n    value: 8.0\n" in text
    f.write_text(text.replace("lpddr4_energy_per_bit:\n    value: 8.0\n",
                              "lpddr4_energy_per_bit:\n    value: 16.0\n"))
    after = _fresh("fusioncim").energy("DRAM", "read")
    assert len(calls) == 2
    assert after == pytest.approx(2 * before, rel=1e-12)


def test_changed_spec_or_included_file_misses(cache, tmp_path, monkeypatch):
    """ipcim_baseline.yaml includes fusioncim.yaml: editing the included file misses."""
    d, calls = cache
    specs = tmp_path / "specs"
    shutil.copytree(ARCH_DIR, specs)
    base = specs / "ipcim_baseline.yaml"
    a = _fresh(str(base))
    inc = specs / "fusioncim.yaml"
    inc.write_text(inc.read_text().replace("default(200e6)", "default(100e6)"))
    b = _fresh(str(base))
    assert len(calls) == 2
    assert a.var("clock_hz") == 200e6 and b.var("clock_hz") == 100e6
    base.write_text(base.read_text() + "\n# an edit\n")
    _fresh(str(base))
    assert len(calls) == 3
    _fresh(str(base))
    assert len(calls) == 3


def test_keys_follow_every_input(tmp_path, monkeypatch):
    monkeypatch.setenv(spec_cache.ENV_VAR, str(tmp_path))
    files = [ARCH_DIR / "fusioncim.yaml", WORKLOAD_DIR / "attention.yaml"]
    k = spec_cache.key(files, {})
    assert k == spec_cache.key(files, {}) and len(k) == 64
    assert spec_cache.key(files, {"N_IP_MACROS": 8}) != k
    assert spec_cache.key(files, {"N_IP_MACROS": 8}) != spec_cache.key(files, {"N_IP_MACROS": 8.0})
    assert spec_cache.key(files[:1], {}) != k
    # a source tree's version-less build metadata is not (`python -c` run in the repo
    # puts the repo and its hwcomponents_fusioncim.egg-info on sys.path)
    (tmp_path / "src" / "hwcomponents_x.egg-info").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    assert spec_cache.key(files, {}) == k
    # an installed plugin module (hwcomponents_*) on sys.path is part of the key
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "hwcomponents_x.py").write_text("# a plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "plug"))
    assert spec_cache.key(files, {}) != k


def test_computed_include_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(spec_cache.ENV_VAR, str(tmp_path / "c"))
    f = tmp_path / "s.yaml"
    f.write_text("{% set F = 'x.yaml' %}\n{{ include_text(F) }}\n")
    assert spec_cache.key([f], {}) is None
    (tmp_path / "x.yaml").write_text("a: 1\n")
    g = tmp_path / "t.yaml"
    g.write_text("{{ include_text('x.yaml') }}\n")
    k = spec_cache.key([g], {})
    assert k is not None
    (tmp_path / "x.yaml").write_text("a: 2\n")
    assert spec_cache.key([g], {}) != k


def test_disabled(tmp_path, monkeypatch):
    for off in ("off", "0", "none"):
        monkeypatch.setenv(spec_cache.ENV_VAR, off)
        assert spec_cache.cache_dir() is None
        assert spec_cache.key([ARCH_DIR / "fusioncim.yaml"], {}) is None
    monkeypatch.delenv(spec_cache.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert spec_cache.cache_dir() == tmp_path / "fusioncim"


@pytest.mark.parametrize("garbage", [b"", b"{\"format\": 1, \"key\"", b"\x00\xff\xfe",
                                     b"[1, 2, 3]", b"{\"format\": 1, \"key\": \"other\"}"])
def test_corrupt_file_is_ignored_and_rewritten(cache, garbage):
    d, calls = cache
    good = _fresh("fusioncim")
    (f,) = _files(d)
    f.write_bytes(garbage)
    again = _fresh("fusioncim")
    assert len(calls) == 2, "a corrupt entry is a miss"
    assert again == good
    doc = json.loads(f.read_text())  # rewritten whole
    assert doc["key"] == f.stem
    _fresh("fusioncim")
    assert len(calls) == 2


def _writer(d: str, k: str, i: int, n: int) -> None:
    os.environ[spec_cache.ENV_VAR] = d
    for _ in range(n):
        assert spec_cache.store(k, {"writer": i, "payload": [i] * 20000})


def test_concurrent_writers_never_leave_a_partial_file(tmp_path, monkeypatch):
    """4 processes rewrite one key 100 times each while this process reads it: every
    read is a complete file written by one writer (a plain open-and-write would show
    truncated files), and no temporary files are left."""
    monkeypatch.setenv(spec_cache.ENV_VAR, str(tmp_path))
    k = "f" * 64
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k, i, 100)) for i in range(4)]
    for p in procs:
        p.start()
    seen, reads = set(), 0
    f = tmp_path / f"{k}.json"
    while any(p.is_alive() for p in procs):
        try:
            text = f.read_text()
        except FileNotFoundError:
            continue
        doc = json.loads(text)  # never partial
        v = doc["value"]
        assert set(v["payload"]) == {v["writer"]}
        seen.add(v["writer"])
        reads += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reads > 0
    assert spec_cache.load(k)["writer"] in range(4)
    assert [p.name for p in tmp_path.iterdir()] == [f.name]


def test_unwritable_cache_dir_only_costs_time(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(spec_cache.ENV_VAR, str(blocker / "sub"))
    arch_mod._load_arch.cache_clear()
    try:
        assert load_arch("fusioncim").var("n_ip_macros") == 8
    finally:
        arch_mod._load_arch.cache_clear()


def test_warm_cli_process_does_not_import_accelforge(cache):
    """With the cache filled, `fusioncim evaluate` in a new process prints the same
    result and never imports AccelForge, matplotlib or pandas."""
    d, _ = cache
    probe = ("import sys, runpy\n"
             "sys.argv = ['fusioncim', 'evaluate', '--design', 'ipcim-fused', '--json']\n"
             "from fusioncim_plugin.cli import main\n"
             "rc = main(sys.argv[1:])\n"
             "heavy = [m for m in ('accelforge', 'matplotlib', 'pandas', 'sympy') "
             "if m in sys.modules]\n"
             "print('HEAVY', heavy, file=sys.stderr)\n")
    env = dict(os.environ, **{spec_cache.ENV_VAR: str(d)})
    runs = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=env, cwd=REPO, timeout=300) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    assert "'accelforge'" in runs[0].stderr  # cold: the cache was empty
    assert "HEAVY []" in runs[1].stderr
    assert json.loads(runs[1].stdout) == json.loads(runs[0].stdout)


def test_bad_variables_are_never_cached(cache):
    """Entries are keyed by the variables as given: a rejected one stores nothing, so
    the next process rejects it again."""
    from fusioncim_plugin.arch import SpecError

    d, calls = cache
    for _ in range(2):
        for bad in ({"N_IP_MACROS": -3}, {"N_IP_MACRO": 8}):
            with pytest.raises(SpecError, match="N_IP_MACRO"):
                _fresh("fusioncim", bad)
    assert _files(d) == [] and calls == []
