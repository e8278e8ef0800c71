"""Design-space sweeps: validation, values, parallel/Dask equality, resume after a kill,
caching, Pareto fronts. Everything writes under tmp_path."""

import csv
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fusioncim_plugin.arch import load_arch
from fusioncim_plugin.cli import main
from fusioncim_plugin.evaluation import evaluate
from fusioncim_plugin.sweep import SweepError, arch_variables, parse_sweep
from fusioncim_plugin.sweep import runner
from fusioncim_plugin.sweep.pareto import pareto_front
from fusioncim_plugin.sweep.runner import OUTPUT_COLUMNS, SweepAborted, run_sweep
from fusioncim_plugin.workload import Workload

MiB = 2**20
# 24 architectures x 2 prompt lengths; no softmax order, so a point costs one arch load.
REF = {"name": "ref", "fixed": {"model": "llama3-8b", "phase": "prefill",
                                "softmax_order": None},
       "axes": {"N_IP_MACROS": [4, 8, 16, 32], "N_OP_MACROS": [8, 16, 32],
                "GLB_BYTES": [1 * MiB, 4 * MiB], "seq_len": [1024, 4096]}}
N_REF = 4 * 3 * 2 * 2


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_yaml(tmp_path, doc, name="sweep.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))  # axis order = row order
    return p


@pytest.fixture(scope="module")
def ref_csv(tmp_path_factory):
    """The uninterrupted, in-process run every other run must equal."""
    out = tmp_path_factory.mktemp("ref")
    rep = run_sweep(REF, out, jobs=1, progress=False)
    assert rep.ran == N_REF and rep.skipped == 0 and rep.errors == 0
    return rep.path


# ----------------------------------------------------------------------- validation

def test_arch_variables_are_read_from_the_spec_templates():
    v = arch_variables("fusioncim")
    assert (v["N_IP_MACROS"].default, v["N_IP_MACROS"].kind) == (8, "int")
    assert (v["CLOCK_HZ"].default, v["CLOCK_HZ"].kind) == (200e6, "float")
    assert (v["DRAM_TYPE"].default, v["DRAM_TYPE"].kind) == ("LPDDR4", "str")
    assert v["WITH_OPCIM"].kind == "bool"
    b = arch_variables("ipcim_baseline")
    assert b["N_IP_MACROS"].default == 24  # the including spec's default wins
    assert b["MACRO_ROWS"].default == 128  # from the included fusioncim.yaml
    assert "WITH_OPCIM" not in b and "IP_STATIONARY" not in b  # fixed by the baseline


@pytest.mark.parametrize("axes,fragment", [
    ({"N_IP_MACRO": [4]}, "axis 'N_IP_MACRO': unknown parameter. Did you mean 'N_IP_MACROS'"),
    ({"seq_len": []}, "axis 'seq_len': is empty"),
    ({"seq_len": ["abc"]}, "axis 'seq_len': value 'abc'"),
    ({"N_IP_MACROS": [8, -1]}, "axis 'N_IP_MACROS': value -1: Input should be greater than 0"),
    ({"N_IP_MACROS": [2.5]}, "axis 'N_IP_MACROS': value 2.5: Input should be a valid integer"),
    ({"N_IP_MACROS": 8}, "axis 'N_IP_MACROS': must be a list"),
    ({"N_IP_MACROS": [8, 8]}, "axis 'N_IP_MACROS': repeated value"),
    ({"CLOCK_HZ": [True]}, "axis 'CLOCK_HZ': value True"),
    ({"design": ["fusion"]}, "axis 'design': unknown design 'fusion'"),
    ({"model": ["llama3-7b"]}, "axis 'model': value 'llama3-7b': unknown model"),
    ({"phase": ["train"]}, "axis 'phase': value 'train'"),
    ({"softmax_order": ["bogus"]}, "axis 'softmax_order': value 'bogus': unknown order"),
])
def test_bad_axis_is_one_clear_error_before_any_point_runs(tmp_path, axes, fragment):
    with pytest.raises(SweepError) as e:
        run_sweep({"axes": axes}, tmp_path / "out", jobs=1, progress=False)
    assert fragment in str(e.value)
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_arch_variable_must_exist_for_every_design_of_the_sweep():
    # WITH_OPCIM is fixed (false) by ipcim_baseline.yaml: not sweepable there
    with pytest.raises(SweepError, match="axis 'WITH_OPCIM'"):
        parse_sweep({"fixed": {"design": "ipcim-unfused"}, "axes": {"WITH_OPCIM": [True]}})
    with pytest.raises(SweepError, match="axis 'N_IP_MACROS': is also under `fixed:`"):
        parse_sweep({"fixed": {"N_IP_MACROS": 8}, "axes": {"N_IP_MACROS": [4]}})
    with pytest.raises(SweepError, match="Extra inputs"):
        parse_sweep({"axes": {"seq_len": [1024]}, "axis": {}})


def test_cli_reports_bad_axis_and_exits_2(tmp_path, capsys):
    f = write_yaml(tmp_path, {"axes": {"N_IP_MACROS": [-1]}})
    assert main(["sweep", str(f), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "axis 'N_IP_MACROS'" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_points_are_the_product_times_the_listed_subset():
    s = parse_sweep({"fixed": {"seq_len": 2048},
                     "axes": {"N_IP_MACROS": [4, 8], "phase": ["prefill", "decode"]},
                     "points": [{"MACRO_ROWS": 64, "MACRO_COLS": 64},
                                {"MACRO_ROWS": 256, "MACRO_COLS": 256}]})
    pts = s.points()
    assert len(pts) == 2 * 2 * 2 == len(s)
    assert s.input_columns == ["design", "softmax_order", "model", "phase", "seq_len",
                               "batch", "causal", "MACRO_COLS", "MACRO_ROWS", "N_IP_MACROS"]
    assert {(p["MACRO_ROWS"], p["N_IP_MACROS"], p["phase"]) for p in pts} == {
        (r, n, ph) for r in (64, 256) for n in (4, 8) for ph in ("prefill", "decode")}
    assert all(p["seq_len"] == 2048 and p["design"] == "fusioncim" for p in pts)
    # floats of a float variable are canonical: 2e8 and 200000000 are the same point
    s2 = parse_sweep({"axes": {"CLOCK_HZ": [200000000, 4e8]}})
    assert [p["CLOCK_HZ"] for p in s2.points()] == [2e8, 4e8]
    assert s2.points()[0]["softmax_order"] == "default"


# ------------------------------------------------------------------------ values

def test_rows_equal_direct_evaluate(tmp_path):
    doc = {"name": "vals", "fixed": {"model": "llama3-8b"},
           "axes": {"phase": ["prefill", "decode"], "N_OP_MACROS": [16, 32]},
           "points": [{"seq_len": 2048, "softmax_order": "natural"}]}
    rep = run_sweep(doc, tmp_path, jobs=1, progress=False)
    rows = rows_of(rep.path)
    assert rep.path == tmp_path / "vals.csv" and len(rows) == 4 and rep.errors == 0
    assert list(rows[0]) == parse_sweep(doc).input_columns + OUTPUT_COLUMNS
    for r in rows:
        n_op = int(r["N_OP_MACROS"])
        want = evaluate("fusioncim", Workload(model="llama3-8b", phase=r["phase"],
                                              seq_len=2048),
                        softmax_order="natural", overrides={"N_OP_MACROS": n_op})
        assert float(r["energy_j"]) == want.model_total.energy_j
        assert float(r["latency_s"]) == want.model_total.latency_s
        assert float(r["attn_energy_j"]) == want.attention.energy_j
        assert float(r["layer_tops_per_w"]) == want.layer.tops_per_w
        assert float(r["rescale_events"]) == want.rescale_events > 0
        assert int(r["block_q"]) == want.block_q and r["softmax_order_used"] == "natural"
        assert float(r["area_mm2"]) == pytest.approx(
            load_arch("fusioncim", {"N_OP_MACROS": n_op}).area * 1e6, rel=1e-12)
        parts = sum(float(r[c]) for c in OUTPUT_COLUMNS
                    if c.startswith("attn_energy_") and c != "attn_energy_j")
        assert parts == pytest.approx(float(r["attn_energy_j"]), rel=1e-9)
    a16, a32 = (float(r["area_mm2"]) for r in rows if r["phase"] == "prefill")
    assert a32 > a16  # more OP-CIM macros, more area


def test_point_the_model_rejects_is_a_row_with_an_error(tmp_path):
    # 1 IP-CIM macro of 16 x 16 bits cannot hold one 128-element INT8 Q row
    doc = {"fixed": {"softmax_order": None, "MACRO_ROWS": 16, "MACRO_COLS": 16},
           "axes": {"N_IP_MACROS": [1]}}
    rep = run_sweep(doc, tmp_path / "r.csv", jobs=1, progress=False)
    (row,) = rows_of(rep.path)
    assert rep.errors == 1 and "SpecError" in row["error"] and "does not fit" in row["error"]
    assert row["energy_j"] == ""


# ------------------------------------------------------------ parallel and distributed

def test_local_processes_equal_the_serial_run(tmp_path, ref_csv):
    runner.clear_caches()  # forked workers would inherit this process's results
    rep = run_sweep(REF, tmp_path, jobs=2, progress=False)
    pids = {st["pid"] for st in rep.stats}
    assert rep.ran == N_REF and rep.workers == len(pids) <= 2 and os.getpid() not in pids
    # Per arch and worker (chunks follow the arch): the design's spec (the linear
    # layers run on it too).
    assert rep.arch_loads <= 2 * 24 + 2
    assert rep.path.read_bytes() == ref_csv.read_bytes()


def test_dask_cluster_equals_the_local_run(tmp_path, ref_csv):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        rep = run_sweep(REF, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert rep.ran == N_REF and rep.workers >= 1
    assert rep.path.read_bytes() == ref_csv.read_bytes()


def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    pytest.importorskip("dask.distributed")
    with pytest.raises(SweepError, match="cannot connect"):
        run_sweep({"axes": {"seq_len": [1024]}}, tmp_path, scheduler="tcp://127.0.0.1:9",
                  progress=False, connect_timeout_s=1)


# ------------------------------------------------------------------------- resume

def test_resume_after_sigkill_loses_nothing_and_duplicates_nothing(tmp_path, ref_csv):
    f = write_yaml(tmp_path, REF)
    out = tmp_path / "out"
    res = out / "ref.csv"
    cmd = [sys.executable, "-m", "fusioncim_plugin.cli", "sweep", str(f), "--out", str(out),
           "--jobs", "2", "--chunk-size", "1", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            if res.exists() and res.read_bytes().count(b"\n") >= 1 + 6:  # header + 6 rows
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI, its forkserver and workers
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    raw = res.read_text()
    before = list(csv.DictReader(raw[: raw.rfind("\n") + 1].splitlines()))  # whole lines
    assert 6 <= len(before) < N_REF  # killed midway
    rep = run_sweep(f, out, jobs=1, progress=False)
    assert rep.skipped == len(before) and rep.ran == N_REF - len(before)
    after = rows_of(res)
    keys = [tuple(r[c] for c in list(r)[:11]) for r in after]
    assert len(keys) == len(set(keys)) == N_REF
    assert all(r in after for r in before)  # every finished point kept as it was
    assert res.read_bytes() == ref_csv.read_bytes()


def test_interrupt_after_k_points_then_resume(tmp_path, ref_csv, monkeypatch):
    real, calls = runner.evaluate_point, []

    def flaky(*a, **k):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(runner, "evaluate_point", flaky)
    with pytest.raises(SweepAborted, match=r"interrupted: 5 of 48 points are saved"):
        run_sweep(REF, tmp_path, jobs=1, chunk_size=1, progress=False)
    assert len(rows_of(tmp_path / "ref.csv")) == 5
    monkeypatch.setattr(runner, "evaluate_point", real)
    rep = run_sweep(REF, tmp_path, jobs=1, progress=False)
    assert (rep.skipped, rep.ran) == (5, N_REF - 5)
    assert (tmp_path / "ref.csv").read_bytes() == ref_csv.read_bytes()


def test_torn_last_line_is_dropped_and_rerun(tmp_path, ref_csv):
    res = tmp_path / "ref.csv"
    lines = ref_csv.read_bytes().splitlines(keepends=True)
    res.write_bytes(b"".join(lines[:11]) + lines[11][:40])  # 10 rows + a torn one
    rep = run_sweep(REF, tmp_path, jobs=1, progress=False)
    assert (rep.skipped, rep.ran) == (10, N_REF - 10)
    assert res.read_bytes() == ref_csv.read_bytes()
    rep = run_sweep(REF, tmp_path, jobs=1, progress=False)  # complete: nothing to do
    assert (rep.skipped, rep.ran) == (N_REF, 0)


def test_results_file_of_another_layout_is_refused(tmp_path):
    run_sweep({"name": "x", "fixed": {"softmax_order": None}, "axes": {"seq_len": [512]}},
              tmp_path, jobs=1, progress=False)
    with pytest.raises(SweepError, match="different sweep layout.*N_IP_MACROS"):
        run_sweep({"name": "x", "axes": {"N_IP_MACROS": [4]}}, tmp_path, jobs=1,
                  progress=False)


# ------------------------------------------------------------------------- caching

def test_caches_reuse_sub_results_without_changing_them(tmp_path):
    # The unfused baseline charges no rescale: its 3 softmax orders are one evaluation;
    # N_IP_MACROS=24 is ipcim_baseline's default, i.e. the same arch as not setting it.
    doc = {"name": "c", "fixed": {"design": "ipcim-unfused", "seq_len": 1024},
           "axes": {"softmax_order": ["natural", "adaptive", None],
                    "N_IP_MACROS": [12, 24]},
           "points": [{"phase": "prefill"}, {"phase": "decode"}]}
    cached = run_sweep(doc, tmp_path / "a", jobs=1, progress=False)
    # Loads: one spec per N_IP_MACROS (the linear layers run on the design's own spec).
    assert cached.ran == 12 and cached.arch_loads <= 2 and cached.memo_hits == 8
    plain = run_sweep(doc, tmp_path / "b", jobs=1, progress=False, cache=False)
    assert plain.memo_hits == 0 and plain.arch_loads == 12
    assert cached.path.read_bytes() == plain.path.read_bytes()
    rows = rows_of(cached.path)
    assert {r["softmax_order_used"] for r in rows} == {"none"}
    assert len({(r["phase"], r["N_IP_MACROS"], r["energy_j"]) for r in rows}) == 4


# -------------------------------------------------------------------------- Pareto

def test_pareto_front_minimises_both():
    xs = [1, 2, 3, 4, 2, 5, 1]
    ys = [5, 3, 4, 1, 3, 1, 6]
    assert pareto_front(xs, ys) == [0, 1, 3]  # (2,3) twice: first kept; (5,1) dominated
    assert pareto_front(xs, ys, maximize=(True, True)) == [5, 2, 6]


def test_pareto_cli_plots_and_prints_the_front(tmp_path, ref_csv, capsys):
    png = tmp_path / "p.png"
    assert main(["pareto", str(ref_csv), "--x", "latency_s", "--y", "energy_j",
                 "--color", "area_mm2", "--where", "seq_len=4096", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    rows = [r for r in rows_of(ref_csv) if r["seq_len"] == "4096"]
    pts = [(float(r["latency_s"]), float(r["energy_j"])) for r in rows]
    front = [p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q != p
                                       for q in pts)]
    assert f"Pareto front: {len(front)} of {len(rows)} points" in out
    for lat, e in front:
        assert f"{lat:.4g}" in out and f"{e:.4g}" in out
    assert main(["pareto", str(ref_csv), "--x", "latency", "--out", str(png)]) == 2
    assert "--x 'latency': not a numeric column" in capsys.readouterr().err
