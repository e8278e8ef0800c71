"""Benchmark: a 1,000-point FusionCIM design-space sweep, with and without caching.

    python benchmarks/bench_sweep.py [--jobs 2] [--uncached-points 250] [--out DIR]

Sweep: N_IP_MACROS (5) x N_OP_MACROS (5) x GLB_BYTES (2) x seq_len (5) x phase (2) x
design (fusioncim, hybrid-qo) = 1,000 points on 50 architectures (both designs use
arch_specs/fusioncim.yaml), each with its design's softmax order (adaptive / natural).

Run 1 ("cached"): the normal sweep: chunks of points sharing an architecture, per-process
load_arch / rescale-profile / point caches. Run 2 ("uncached"): ``cache=False`` clears
every cache before every point, so each point instantiates its architecture through
AccelForge + hwcomponents and recomputes its rescale profile. Per-point cost = worker
seconds (summed over workers) / points. Both runs must give identical CSVs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

MiB = 2**20
SWEEP = {
    "name": "bench_1000",
    "fixed": {"model": "llama3-8b", "batch": 1},
    "axes": {
        "design": ["fusioncim", "hybrid-qo"],
        "phase": ["prefill", "decode"],
        "N_IP_MACROS": [4, 8, 16, 32, 64],
        "N_OP_MACROS": [8, 16, 32, 64, 128],
        "GLB_BYTES": [1 * MiB, 4 * MiB],
        "seq_len": [1024, 2048, 4096, 8192, 16384],
    },
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--uncached-points", type=int, default=250,
                    help="run the uncached pass on every k-th point only (<1000 = faster)")
    ap.add_argument("--out", help="directory for the CSVs (default: a temp dir)")
    a = ap.parse_args(argv)

    from fusioncim_plugin.sweep import parse_sweep
    from fusioncim_plugin.sweep.runner import clear_caches, run_sweep

    spec = parse_sweep(SWEEP)
    n = len(spec.points())
    assert n == 1000, n
    out = Path(a.out or tempfile.mkdtemp(prefix="bench_sweep_"))
    print(f"{n} points, {len({(p['N_IP_MACROS'], p['N_OP_MACROS'], p['GLB_BYTES']) for p in spec.points()})} "
          f"architectures, {a.jobs} worker processes, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}; results in {out}", flush=True)

    clear_caches()
    t = time.perf_counter()
    cached = run_sweep(spec, out / "cached", jobs=a.jobs, progress=sys.stderr.isatty())
    t_cached = time.perf_counter() - t
    print(f"cached:   {t_cached:7.1f} s total for {cached.ran} points; "
          f"{cached.per_point_s * 1e3:6.1f} ms/point of worker time; "
          f"{cached.arch_loads} arch instantiations, {cached.memo_hits} memo hits, "
          f"{cached.errors} rejected points", flush=True)

    # uncached: the same points (or every k-th one), every cache cleared before each point
    step = max(1, round(n / max(1, a.uncached_points)))
    sub = dict(SWEEP, name="bench_uncached")
    doc = parse_sweep(sub)
    if step > 1:
        pts = doc.points()[::step]
        keep = [{k: p[k] for k in SWEEP["axes"]} for p in pts]
        doc = parse_sweep({"name": "bench_uncached", "fixed": SWEEP["fixed"], "points": keep})
    clear_caches()
    t = time.perf_counter()
    plain = run_sweep(doc, out / "uncached", jobs=a.jobs, cache=False,
                      progress=sys.stderr.isatty())
    t_plain = time.perf_counter() - t
    print(f"uncached: {t_plain:7.1f} s total for {plain.ran} points; "
          f"{plain.per_point_s * 1e3:6.1f} ms/point of worker time; "
          f"{plain.arch_loads} arch instantiations", flush=True)

    import csv

    def rows(p):
        with open(p, newline="") as f:
            return {tuple(list(r.values())[:13]): r for r in csv.DictReader(f)}

    a_rows, b_rows = rows(cached.path), rows(plain.path)
    same = all(a_rows[k] == v for k, v in b_rows.items())
    print(f"caching speed-up per point: {plain.per_point_s / cached.per_point_s:.1f}x "
          f"({plain.per_point_s * 1e3:.1f} -> {cached.per_point_s * 1e3:.1f} ms); "
          f"uncached estimate for all {n} points: {t_plain * n / plain.ran:.0f} s "
          f"vs {t_cached:.0f} s cached")
    print(f"identical results with and without caching ({len(b_rows)} points compared): "
          f"{'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
