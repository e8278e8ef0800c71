"""Benchmark: wall time of one in-process `evaluate` against the sequence length, for
every design, LLaMA-3-8B, 1K ... 1M tokens.

    python benchmarks/bench_evaluate_vs_L.py [--phase prefill] [--max-len 1048576]
                                             [--runs 3] [--model llama3-8b]

Per (design, L): one warm-up call (it loads the specs and builds the rescale profile;
reported as "first"), then the median of ``--runs`` calls. The reference, measured in
the same run, is the same design at the smallest L: ``x 1K`` is t(L) / t(1K), and
``slope`` is d log t / d log L between the two largest L (1: the cost grows linearly
with L, 2: quadratically). The machine may be shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

LENGTHS = [1024, 4096, 16384, 65536, 262144, 1048576]


def _fmt(s: float) -> str:
    return f"{s * 1e3:9.2f} ms" if s < 1 else f"{s:9.2f} s "


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", default="prefill", choices=["prefill", "decode"])
    ap.add_argument("--model", default="llama3-8b")
    ap.add_argument("--max-len", type=int, default=LENGTHS[-1])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--designs", default=None, help="comma-separated (default: all)")
    a = ap.parse_args(argv)

    from fusioncim_plugin.designs import DESIGNS
    from fusioncim_plugin.evaluation import evaluate
    from fusioncim_plugin.workload import Workload

    designs = a.designs.split(",") if a.designs else list(DESIGNS)
    lengths = [L for L in LENGTHS if L <= a.max_len]
    table: dict[str, list[tuple[float, float]]] = {}
    for d in designs:
        table[d] = []
        for L in lengths:
            wl = Workload(model=a.model, phase=a.phase, seq_len=L)
            t = time.perf_counter()
            evaluate(d, wl)
            first = time.perf_counter() - t
            runs = []
            for _ in range(a.runs):
                t = time.perf_counter()
                evaluate(d, wl)
                runs.append(time.perf_counter() - t)
            table[d].append((first, statistics.median(runs)))
            print(f"  {d:<14} L={L:>8}: {_fmt(table[d][-1][1])}", file=sys.stderr, flush=True)

    print(f"evaluate() wall time per call, {a.model} {a.phase}, median of {a.runs} after "
          f"one warm-up call; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    head = "".join(f"{'L=' + (f'{L >> 10}K' if L < 1 << 20 else f'{L >> 20}M'):>13}"
                   for L in lengths)
    print(f"{'design':<15}{head}{'x 1K at max':>13}{'slope':>7}")
    for d, row in table.items():
        cells = "".join(f"{_fmt(t):>13}" for _, t in row)
        ratio = row[-1][1] / row[0][1]
        slope = (math.log(row[-1][1] / row[-2][1]) / math.log(lengths[-1] / lengths[-2])
                 if len(row) > 1 else float("nan"))
        print(f"{d:<15}{cells}{ratio:>12.0f}x{slope:>7.2f}")
    print("first call (spec load from the on-disk cache or AccelForge, rescale profile):")
    for d, row in table.items():
        print(f"{d:<15}" + "".join(f"{_fmt(f):>13}" for f, _ in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
