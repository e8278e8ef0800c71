"""Benchmark: wall time of AccelForge's FFM mapper on the FusionCIM spec.

    python benchmarks/bench_mapper.py [--repeat 2] [--jobs 1] [--quick] [--json]

Each case maps one layer's attention (non-causal: AccelForge cannot express the causal
mask) with ``fusioncim_plugin.mapper.run_mapper`` (metric: energy) and reports the
mapper's wall time (``spec.map_workload_to_arch()`` only; the hand-written QO-stationary
LoopTree is evaluated separately and not timed), best of ``--repeat`` runs, plus the
best mapping's energy against QO-stationary's. The full LLaMA-3-8B prefill 4096 shape is
mapped unreduced. ``--jobs 1`` (default) is the deterministic setting of ``fusioncim map``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

CASES = [
    # label, workload fields, reduction
    ("8B prefill L=256, 1 KV head x 1 q head", dict(model="llama3-8b", seq_len=256),
     dict(kv_heads=1, group=1)),
    ("8B prefill L=4096 (full: 8 KV x 4 q heads)", dict(model="llama3-8b", seq_len=4096), {}),
    ("8B decode KV=4096 (full)", dict(model="llama3-8b", phase="decode", seq_len=4096), {}),
    ("70B prefill L=4096 (full: 8 KV x 8 q heads)", dict(model="llama3-70b", seq_len=4096), {}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="only the first two cases")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    from fusioncim_plugin.mapper import run_mapper
    from fusioncim_plugin.workload import Workload

    rows = []
    for label, wl_kw, red in CASES[:2] if a.quick else CASES:
        wl = Workload(**({"phase": "prefill"} | wl_kw), causal=False)
        runs = [run_mapper(wl, jobs=a.jobs, **red) for _ in range(max(1, a.repeat))]
        r = min(runs, key=lambda x: x.mapper_wall_s)
        rows.append(dict(
            case=label, shape=r.shape, wall_s=[round(x.mapper_wall_s, 2) for x in runs],
            best_wall_s=r.mapper_wall_s, energy_j=r.best.energy_j,
            qo_energy_j=r.hand.energy_j if r.hand else None,
            same_looptree_every_run=len({x.looptree for x in runs}) == 1))
        print(f"  {label}: {r.mapper_wall_s:.2f} s", file=sys.stderr, flush=True)

    if a.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"AccelForge FFM mapper wall time, {a.jobs} process(es), best of {a.repeat}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"{'case':<46}{'wall [s]':>10}{'energy [J]':>14}{'vs QO':>10}{'same tree':>11}")
    for r in rows:
        vs = (f"{100 * (r['energy_j'] - r['qo_energy_j']) / r['qo_energy_j']:+.2f}%"
              if r["qo_energy_j"] else "n/a")
        print(f"{r['case']:<46}{r['best_wall_s']:>10.2f}{r['energy_j']:>14.4e}{vs:>10}"
              f"{str(r['same_looptree_every_run']):>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
