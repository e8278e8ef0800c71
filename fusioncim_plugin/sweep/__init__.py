"""Design-space sweeps: a YAML of parameter axes -> one CSV row per point, in parallel
(local processes, or a Dask cluster), resumable, with per-process caching; and Pareto
fronts of the results.

    fusioncim sweep examples/sweeps/ip_op_macros.yaml --out results/ [--jobs N]
                    [--scheduler tcp://host:8786]
    fusioncim pareto results/ip_op_macros.csv --x latency_s --y energy_j --color area_mm2

    from fusioncim_plugin.sweep import run_sweep
    report = run_sweep("examples/sweeps/ip_op_macros.yaml", "results/", jobs=2)

See docs/sweeps.md for the file format and the output columns.
"""

from __future__ import annotations

import sys

__all__ = ["SweepError", "SweepSpec", "arch_variables", "load_sweep", "parse_sweep",
           "run_sweep", "pareto_front", "pareto_plot", "register"]


def __getattr__(name):
    # lazily, so that registering the subcommands does not import pydantic/yaml/jinja2
    if name in ("SweepError", "SweepSpec", "arch_variables", "load_sweep", "parse_sweep"):
        from . import spec

        return getattr(spec, name)
    if name in ("run_sweep", "SweepReport", "SweepAborted", "OUTPUT_COLUMNS", "read_results"):
        from . import runner

        return getattr(runner, name)
    if name in ("pareto_front", "pareto_plot"):
        from . import pareto

        return getattr(pareto, name)
    raise AttributeError(name)


def _kv(items: list[str] | None, flag: str) -> dict[str, str]:
    from .spec import SweepError

    out = {}
    for it in items or []:
        if "=" not in it:
            raise SweepError(f"{flag} {it!r}: expected COLUMN=VALUE, e.g. {flag} seq_len=4096")
        k, v = it.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def cmd_sweep(a) -> int:
    from .runner import SweepAborted, results_path, run_sweep
    from .spec import load_sweep, parse_sweep

    spec = load_sweep(a.file)
    if a.arch or a.baseline_arch:  # plugged-in specs: validated, results in their own file
        from pathlib import Path

        spec = parse_sweep(spec.model_dump(by_alias=True, exclude_none=True)
                           | {"arch": a.arch or spec.arch,
                              "baseline_arch": a.baseline_arch or spec.baseline_arch},
                           default_name=spec.name)
        spec.name = "_".join([spec.name] + [Path(x).stem for x in (a.arch, a.baseline_arch) if x])
    if a.dry_run:
        print(f"{a.file}: valid; {len(spec.points())} points; inputs "
              f"{', '.join(spec.input_columns)}; results file {results_path(spec, a.out)}")
        return 0
    try:
        rep = run_sweep(spec, a.out, jobs=a.jobs, scheduler=a.scheduler,
                        progress=not a.quiet, cache=not a.no_cache, chunk_size=a.chunk_size,
                        retry_errors=a.retry_errors, parquet=a.parquet)
    except SweepAborted as e:
        print(f"error: {e}", file=sys.stderr)
        return 130 if str(e).startswith("interrupted") else 1
    print(rep.summary())
    if rep.parquet:
        print(f"also wrote {rep.parquet}")
    return 0


def cmd_pareto(a) -> int:
    from .pareto import format_front, pareto_plot

    maximize = ("x" in (a.maximize or []), "y" in (a.maximize or []))
    front, rows, png, notes = pareto_plot(a.results, a.x, a.y, a.color, a.out,
                                          where=_kv(a.where, "--where"), maximize=maximize)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"Pareto front: {len(front)} of {len(rows)} points "
          f"({'max' if maximize[0] else 'min'} {a.x}, {'max' if maximize[1] else 'min'} {a.y})")
    print(format_front(front, rows, a.x, a.y, a.color))
    print(f"wrote {png}")
    return 0


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "sweep", help="run a design-space sweep from a YAML file (parallel, resumable)",
        description="Run every point of a sweep file; one CSV row per point. Points "
                    "already in the results file are skipped (rerun to resume).")
    s.add_argument("file", help="sweep YAML (axes / points / fixed; see docs/sweeps.md)")
    s.add_argument("--arch", default=None, help="arch spec for the FusionCIM designs instead "
                   "of fusioncim.yaml (e.g. a plugged-in macro); results go to <name>_<spec>.csv")
    s.add_argument("--baseline-arch", default=None,
                   help="arch spec for the IP-CIM baselines instead of ipcim_baseline.yaml")
    s.add_argument("--out", default="results",
                   help="directory for <name>.csv, or a .csv path (default: results/)")
    s.add_argument("--jobs", "-j", type=int, default=None,
                   help="local worker processes (default: all CPUs; 1 = no subprocesses)")
    s.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786 "
                        "(needs the `dask` extra)")
    s.add_argument("--no-cache", action="store_true",
                   help="clear the arch / rescale-profile / point caches before every point")
    s.add_argument("--chunk-size", type=int, default=None,
                   help="max points per work unit (points of one arch share a unit)")
    s.add_argument("--retry-errors", action="store_true",
                   help="re-run points whose row has an error")
    s.add_argument("--parquet", action="store_true",
                   help="also write <name>.parquet (needs pyarrow)")
    s.add_argument("--dry-run", action="store_true",
                   help="validate the file and print the number of points")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser(
        "pareto", help="plot the Pareto front of sweep results (PNG) and print its points")
    p.add_argument("results", help="a results CSV of `fusioncim sweep`")
    p.add_argument("--x", default="latency_s", help="column on the x axis (default latency_s)")
    p.add_argument("--y", default="energy_j", help="column on the y axis (default energy_j)")
    p.add_argument("--color", help="column for the colour scale, e.g. area_mm2")
    p.add_argument("--out", help="PNG path (default: <results>_pareto.png)")
    p.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                   help="keep only rows with this value (repeatable), e.g. seq_len=4096")
    p.add_argument("--maximize", action="append", choices=("x", "y"),
                   help="maximise that axis instead of minimising it (e.g. tops_per_w)")
    p.set_defaults(func=cmd_pareto)
