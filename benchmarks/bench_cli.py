"""Benchmark: one `fusioncim evaluate` process, cold and warm, against the same point
evaluated in process.

    python benchmarks/bench_cli.py [--runs 5] [--design fusioncim] [--seq-len 4096]

Reference (measured in this run): ``evaluate()`` in this process once the spec is
loaded (median of many calls). Then whole processes of the console command, each
``--runs`` times, median and range:

* no cache  - ``FUSIONCIM_CACHE_DIR=off``: what every call cost before the cache;
* cold      - an empty cache directory per run (AccelForge parses and costs the spec,
              the result is written);
* warm      - the cache filled by a previous process (no AccelForge import).

The floor is a bare ``python -c pass``. The machine may be shared: the load average is
printed, and each process's CPU time (user + system) beside its wall time; compare the
ratios, which are measured under the same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("fusioncim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "fusioncim_plugin.cli"]


def _time(cmd: list[str], env: dict, before=None) -> tuple[float, float]:
    """(wall, CPU) seconds of one process; CPU = user + system, less sensitive than the
    wall time to other jobs on a shared machine."""
    if before:
        before()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime


def _stats(runs: list[tuple[float, float]]) -> str:
    xs = [w for w, _ in runs]
    return (f"{statistics.median(xs):7.3f} s  (min {min(xs):.3f}, max {max(xs):.3f}); "
            f"CPU {statistics.median(c for _, c in runs):.3f} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--design", default="fusioncim")
    ap.add_argument("--seq-len", type=int, default=4096)
    a = ap.parse_args(argv)

    from fusioncim_plugin.evaluation import evaluate
    from fusioncim_plugin.workload import Workload

    wl = Workload(model="llama3-8b", phase="prefill", seq_len=a.seq_len)
    evaluate(a.design, wl)  # loads the specs, builds the rescale profile
    n, t = 0, time.perf_counter()
    while n < 20 or time.perf_counter() - t < 1.0:
        evaluate(a.design, wl)
        n += 1
    inproc = (time.perf_counter() - t) / n

    cmd = _cli() + ["evaluate", "--design", a.design, "--seq-len", str(a.seq_len)]
    work = Path(tempfile.mkdtemp(prefix="bench_cli_"))
    cache = work / "cache"
    base = dict(os.environ)
    try:
        floor = [_time([sys.executable, "-c", "pass"], base) for _ in range(a.runs)]
        off = [_time(cmd, base | {"FUSIONCIM_CACHE_DIR": "off"}) for _ in range(a.runs)]
        cold = [_time(cmd, base | {"FUSIONCIM_CACHE_DIR": str(cache)},
                      before=lambda: shutil.rmtree(cache, ignore_errors=True))
                for _ in range(a.runs)]
        warm = [_time(cmd, base | {"FUSIONCIM_CACHE_DIR": str(cache)}) for _ in range(a.runs)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"`{' '.join(['fusioncim'] + cmd[-5:])}`: {a.runs} runs each; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"  in process (reference)  {inproc * 1e3:9.3f} ms per evaluation ({n} calls)")
    print(f"  python -c pass (floor)  {_stats(floor)}")
    print(f"  CLI, no cache           {_stats(off)}")
    print(f"  CLI, cold (empty cache) {_stats(cold)}")
    print(f"  CLI, warm               {_stats(warm)}")

    def m(runs):
        return statistics.median(w for w, _ in runs)

    print(f"ratios: warm / in-process {m(warm) / inproc:,.0f}x, cold / in-process "
          f"{m(cold) / inproc:,.0f}x; cold / no cache {m(cold) / m(off):.2f}x; "
          f"no cache / warm {m(off) / m(warm):.1f}x; warm - python floor "
          f"{m(warm) - m(floor):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
