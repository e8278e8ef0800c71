"""Benchmark: `fusioncim map` against AccelForge's stock mapper on its own CIM example at
the same shape, whole processes, plus where each spends its time.

    python benchmarks/bench_map_vs_stock.py [--runs 3] [--jobs 1] [--seq-len 4096]
                                            [--no-phases]

Reference (measured in this run, alternating with the command so both see the same
load): a process that imports AccelForge, loads the stock ``wang_vlsi_2022`` example
(AccelForge's examples/arches/compute_in_memory, through its own ``_load_spec``) with
our attention shape as two Einsums (``fusioncim_plugin.stock.stock_spec``) and runs
``map_workload_to_arch`` - the mapper on its own example. The command: ``fusioncim map
--model llama3-8b --phase prefill --seq-len L`` (mapper on the fused three-Einsum
cascade on arch_specs/fusioncim.yaml, the hand LoopTree evaluated beside it, the
report printed). Median of ``--runs`` each; the ratio is of the medians.

Phases (one more run of each, in fresh processes): import, spec parsing, pmapping
generation, joining, the detailed evaluation of the chosen mapping (with its Graphviz
rendering timed on its own) and, for `map`, the hand LoopTree.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

STOCK = "wang_vlsi_2022"


def _phases(which: str, seq_len: int, jobs: int) -> dict:
    """Run one mapping in this (fresh) process and time its phases."""
    marks = [("start", time.perf_counter())]

    def mark(name):
        marks.append((name, time.perf_counter()))

    import accelforge as af  # noqa: F401
    import accelforge.mapper.FFM.main as ffm
    from accelforge.model.main import evaluate_mapping

    mark("import accelforge")
    from copy import deepcopy

    from fusioncim_plugin import mapper as M
    from fusioncim_plugin.workload import Workload

    wl = Workload(model="llama3-8b", phase="prefill", seq_len=seq_len, causal=False)
    if which == "map":
        blocks = M.design_blocks(M._design("fusioncim"), "fusioncim", wl, {})
        data = M.shape_data(wl) | blocks
        spec, _ = M.fusioncim_spec(data)
        spec.mapper.metrics = af.Metrics.ENERGY
    else:
        from fusioncim_plugin.stock import stock_spec

        spec = stock_spec(STOCK, wl)
    mark("parse spec")
    with M.scratch_dir(), M.af_jobs(jobs):
        pm = ffm.make_pmappings(spec, print_progress=False)
        mark("generate pmappings")
        ms = ffm.join_pmappings(pm, require_all_einsums=False, print_progress=False,
                                metrics=spec.mapper.metrics)
        mark("join pmappings")
        render = 0.0
        for i in range(len(ms.data)):  # what map_workload_to_arch's detailed pass does
            local = deepcopy(spec)
            local.model.metrics = local.mapper.info_metrics
            local.mapping = ms.data.iloc[i]["Total<SEP>mapping"](_for_model=True)
            t = time.perf_counter()
            ms[i].render()
            render += time.perf_counter() - t
            evaluate_mapping(local, flattened_arches=ms.flattened_arches,
                             evaluated_specs=ms.evaluated_specs)
        mark("detailed evaluation")
        if which == "map":
            M.evaluate_looptree(data, M.MAPPING_DIR / "qo_stationary.yaml",
                                costed=ms)
            mark("hand LoopTree")
    out = {b: t1 - t0 for (_, t0), (b, t1) in zip(marks, marks[1:])}
    out["  of which Graphviz render"] = render
    out["mappings kept"] = {e: [len(g), sum(len(x.mappings.data) for x in g)]
                            for e, g in pm.einsum2pmappings.items()}
    return out


def _stock_process(seq_len: int, jobs: int, freeze: bool = False) -> None:
    import gc

    import accelforge  # noqa: F401

    if freeze:  # as `fusioncim map` does after importing AccelForge
        gc.freeze()

    from fusioncim_plugin.mapper import af_jobs, scratch_dir
    from fusioncim_plugin.stock import stock_spec
    from fusioncim_plugin.workload import Workload

    spec = stock_spec(STOCK, Workload(model="llama3-8b", seq_len=seq_len, causal=False))
    with scratch_dir(), af_jobs(jobs):
        m = spec.map_workload_to_arch(print_progress=False)
    print(float(m.energy()))


def _run(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--no-phases", action="store_true")
    ap.add_argument("--_phases", choices=["map", "stock"], help=argparse.SUPPRESS)
    ap.add_argument("--_stock", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_freeze", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a._phases:
        print(json.dumps(_phases(a._phases, a.seq_len, a.jobs)))
        return 0
    if a._stock:
        _stock_process(a.seq_len, a.jobs, a._freeze)
        return 0

    exe = Path(sys.executable).with_name("fusioncim")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "fusioncim_plugin.cli"]
    me = [sys.executable, __file__, "--seq-len", str(a.seq_len), "--jobs", str(a.jobs)]
    map_cmd = cli + ["map", "--model", "llama3-8b", "--phase", "prefill",
                     "--seq-len", str(a.seq_len), "--jobs", str(a.jobs)]
    loads, t_map, t_stock, t_frozen = [], [], [], []
    for i in range(a.runs):
        t_map.append(_run(map_cmd))
        t_stock.append(_run(me + ["--_stock"]))
        t_frozen.append(_run(me + ["--_stock", "--_freeze"]))
        loads.append(os.getloadavg()[0])
        print(f"  run {i + 1}: map {t_map[-1]:.1f} s, stock mapper {t_stock[-1]:.1f} s",
              file=sys.stderr, flush=True)
    m, s = statistics.median(t_map), statistics.median(t_stock)
    print(f"LLaMA-3-8B prefill {a.seq_len} (non-causal), {a.jobs} mapper process(es), "
          f"{a.runs} runs each; {os.cpu_count()} CPUs, load average "
          f"{min(loads):.1f}-{max(loads):.1f}")
    print(f"  stock mapper, {STOCK} (reference) {s:7.1f} s  (min {min(t_stock):.1f}, "
          f"max {max(t_stock):.1f})")
    print(f"  fusioncim map                       {m:7.1f} s  (min {min(t_map):.1f}, "
          f"max {max(t_map):.1f})")
    print(f"  ratio map / stock mapper            {m / s:7.2f}x")
    f = statistics.median(t_frozen)
    print(f"  like for like: the stock mapper process with gc.freeze() after importing "
          f"AccelForge, as `fusioncim map` does: {f:.1f} s (min {min(t_frozen):.1f}, max "
          f"{max(t_frozen):.1f}); ratio {m / f:.2f}x")
    if a.no_phases:
        return 0
    ph = {w: json.loads(subprocess.run(me + ["--_phases", w], check=True, text=True,
                                       capture_output=True).stdout)
          for w in ("map", "stock")}
    print("where the time goes (one more process each):")
    print(f"  {'phase':<28}{'map [s]':>10}{'stock [s]':>11}")
    for k in ph["map"]:
        if k == "mappings kept":
            continue
        sv = ph["stock"].get(k)
        print(f"  {k:<28}{ph['map'][k]:>10.2f}{'' if sv is None else f'{sv:>11.2f}'}")
    for w in ("map", "stock"):
        kept = ", ".join(f"{e}: {g} groups / {n} pmappings"
                         for e, (g, n) in ph[w]["mappings kept"].items())
        print(f"  {w} pmappings after generation: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
