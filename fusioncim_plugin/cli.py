"""The `fusioncim` command line.

  fusioncim evaluate --design fusioncim --model llama3-8b --phase prefill --seq-len 4096 [--json]
  fusioncim compare  --model llama3-8b --phase prefill --seq-len 4096 [--json]
  fusioncim reproduce [--out results/]
  fusioncim softmax-stats | trace capture          (fusioncim_plugin/softmax/cli.py)
  fusioncim sweep sweep.yaml | pareto results.csv  (fusioncim_plugin/sweep/)
  fusioncim map | stock                            (below; mapper.py, stock.py)
  fusioncim referee                                (fusioncim_plugin/referee.py)

Bad input (unknown model/design, non-positive sizes, malformed specs) prints one line
naming the field and what is allowed, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from pydantic import ValidationError


SUBCOMMAND_MODULES = [".softmax.cli", ".sweep", ".referee", ".linear_referee"]


def _overrides(items: list[str]) -> dict:
    out = {}
    for it in items or []:
        if "=" not in it:
            raise ValueError(f"--set {it!r}: expected NAME=VALUE, e.g. --set N_IP_MACROS=16")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def _workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="llama3-8b",
                   help="a built-in model (models/: llama3-8b, llama3-70b, llama3.1-8b, "
                        "llama3.1-70b, llama3.1-405b, llama3.2-1b, llama3.2-3b) or a path to "
                        "a Hugging Face style config.json / YAML")
    p.add_argument("--phase", default="prefill", help="prefill | decode")
    p.add_argument("--seq-len", default="4096", help="tokens (prefill) / KV-cache length (decode)")
    p.add_argument("--batch", default="1")
    p.add_argument("--no-causal", action="store_true", help="prefill without causal mask")
    p.add_argument("--softmax-order", default="default",
                   help="KV-block order: natural | sink_local | adaptive | diagonal_first | "
                        "oracle | none "
                        "(default: the design's own)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override an arch-spec variable (repeatable), e.g. GLB_BYTES=4194304")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _preset_args(p)


def _preset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, help="named set-up applied under --set: "
                   "paper (16 Hybrid Engines, 1 MB buffer, 400 MHz, FP16 Taylor-exp softmax)")
    p.add_argument("--metric", default="edp", choices=("edp", "energy", "latency"),
                   help="what each design's block-size search minimizes (default edp)")


def _workload(a):
    from .workload import Workload

    return Workload(model=a.model, phase=a.phase, seq_len=a.seq_len, batch=a.batch,
                    causal=not a.no_causal)


def _order(a):
    return None if a.softmax_order == "none" else a.softmax_order


def _fmt_result(r) -> str:
    a, L = r.attention, r.layer
    lines = [
        f"{r.design} on {r.model} {r.phase}, seq_len {r.seq_len}, batch {r.batch}"
        f"{' (causal)' if r.causal and r.phase == 'prefill' else ''}; "
        f"softmax order {r.softmax_order}"
        + (f"; preset {r.preset}" if r.preset else ""),
        "chosen by the search (best " + r.metric + "): "
        + ", ".join(f"{k} {v}" for k, v in r.params.items()),
        "",
        "attention, one layer:",
        f"  energy            {a.energy_j:.4e} J",
    ]
    for k, v in sorted(a.energy_by_category_j.items(), key=lambda kv: -kv[1]):
        lines.append(f"    {k:<16}{v:.4e} J  ({100 * v / a.energy_j:5.1f} %)")
    lines += [
        f"  latency           {a.latency_s:.4e} s  ({a.cycles:.4e} cycles)",
        "    bounds          " + ", ".join(f"{k} {v:.3e} s" for k, v in r.latency_bounds_s.items()),
        f"  MACs              {a.macs:.4e} useful, {a.macs_executed:.4e} executed",
        f"  throughput        {a.tops:.3f} TOPS",
        f"  efficiency        {a.tops_per_w:.2f} TOPS/W",
        f"  DRAM traffic      {a.dram_bytes:.4e} B",
        f"  buffer traffic    {a.buffer_bytes:.4e} B",
        f"  CIM array writes  {a.cim_write_bytes:.4e} B",
        f"  rescale events    {r.rescale_events:.4e}",
        f"  area              {r.area_mm2['total']:.4f} mm^2 ("
        + ", ".join(f"{k} {v:.3f}" for k, v in r.area_mm2.items() if k != "total") + ")",
        "",
        "whole layer (attention + projections + FFN):",
        f"  energy {L.energy_j:.4e} J, latency {L.latency_s:.4e} s, "
        f"{L.tops:.3f} TOPS, {L.tops_per_w:.2f} TOPS/W",
        f"whole model ({r.model}): energy {r.model_total.energy_j:.4e} J, "
        f"latency {r.model_total.latency_s:.4e} s",
    ]
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines)


def cmd_evaluate(a) -> int:
    from .evaluation import evaluate

    r = evaluate(a.design, _workload(a), softmax_order=_order(a), overrides=_overrides(a.set),
                 arch=a.arch, metric=a.metric, preset=a.preset, traces=a.traces)
    print(json.dumps(r.model_dump(), indent=2) if a.json else _fmt_result(r))
    return 0


def cmd_compare(a) -> int:
    from .report import compare, format_compare

    rs = compare(_workload(a), overrides=_overrides(a.set), softmax_order=_order(a),
                 metric=a.metric, preset=a.preset, arch=a.arch,
                 baseline_arch=a.baseline_arch, iso_area=a.iso_area)
    if a.json:
        print(json.dumps([r.model_dump() for r in rs], indent=2))
    else:
        print(format_compare(rs))
    return 0


def cmd_reproduce(a) -> int:
    import time

    from .report import reproduce

    t = time.time()
    out = reproduce(a.out, progress=not a.quiet, preset=a.preset, metric=a.metric,
                    arch=a.arch, baseline_arch=a.baseline_arch)
    print((out / "summary.md").read_text())
    print(f"wrote {out}/results.csv, results.json, summary.md and PNG plots "
          f"in {time.time() - t:.1f} s")
    return 0


def _arch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=None, help="arch spec (path or arch_specs/ stem) for "
                   "the FusionCIM designs (fusioncim, hybrid-qo, hybrid) instead of "
                   "fusioncim.yaml, e.g. one that plugs in your own macro")
    p.add_argument("--baseline-arch", default=None, help="arch spec for the IP-CIM "
                   "baselines instead of ipcim_baseline.yaml")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hwcomponents-fusioncim")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """--version, looked up only when asked for (importlib.metadata is slow to import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kw):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"fusioncim {_version()}")
        parser.exit()


# ----------------------------------------------------------- map and stock (mapper.py, stock.py)
def _shape(a):
    from .workload import Workload

    return Workload(model=a.model, phase=a.phase, seq_len=a.seq_len, batch=a.batch,
                    causal=False)


def cmd_map(a) -> int:
    import gc
    from pathlib import Path

    import accelforge  # noqa: F401

    from .mapper import format_result, run_mapper

    if a.owns_process:
        # AccelForge's imports (sympy, pandas, numba) live as long as this process: keep
        # them out of the cyclic collector's way, or it re-scans them through the mapper's
        # allocations (about 0.8 s of an 8B/4K map; results unchanged). Only when this is
        # the `fusioncim` program: unfreezing afterwards would cost as much again.
        gc.freeze()
    r = run_mapper(_shape(a), design=a.design, metric=a.metric,
                   overrides=_overrides(a.set), kv_heads=a.kv_heads, group=a.group,
                   jobs=a.jobs, arch=a.arch)
    if a.out:
        Path(a.out).write_text(r.looptree)
    if a.json:
        print(json.dumps(r.as_dict(), indent=2))
        return 0
    print(format_result(r))
    if a.out:
        print(f"\nbest mapping (LoopTree YAML) written to {a.out}")
    else:
        print("\nbest mapping (LoopTree YAML):\n" + r.looptree)
    return 0


def cmd_stock(a) -> int:
    from dataclasses import asdict

    from .stock import STOCK_MACROS, compare_stock, format_stock, stock_names

    wl = _shape(a)
    macros = [m.strip() for m in a.macros.split(",") if m.strip()] if a.macros else STOCK_MACROS
    known = stock_names()
    for m in macros:
        if m not in known:
            raise ValueError(f"macros: unknown stock macro {m!r}; allowed: {', '.join(known)}")
    rows = compare_stock(wl, macros)
    if a.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(format_stock(wl, rows))
    return 0


def _map_stock_parsers(subparsers) -> None:
    def shape(p):
        p.add_argument("--model", default="llama3-8b",
                       help="a built-in model or a config.json / YAML path (see evaluate)")
        p.add_argument("--phase", default="prefill", help="prefill | decode")
        p.add_argument("--seq-len", default="4096", help="tokens (prefill) / KV-cache length")
        p.add_argument("--batch", default="1")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    m = subparsers.add_parser(
        "map", help="run AccelForge's fusion-aware mapper on a design's arch spec "
                    "(one layer's attention, non-causal) beside the hand-written LoopTree")
    m.add_argument("--design", default="fusioncim",
                   help="a design on the fusioncim arch spec: fusioncim, hybrid-qo, hybrid")
    m.add_argument("--arch", default=None,
                   help="use this arch spec (path or arch_specs/ stem) instead of the "
                        "design's, e.g. one that plugs in your own macro")
    shape(m)
    m.add_argument("--metric", default="energy", help="energy | latency | edp")
    m.add_argument("--out", default=None, help="write the best mapping (LoopTree YAML) here")
    m.add_argument("--kv-heads", type=int, default=None,
                   help="map only this many KV heads (reduces the shape; default: all)")
    m.add_argument("--group", type=int, default=None,
                   help="map only this many query heads per KV head (default: all)")
    m.add_argument("--jobs", type=int, default=1,
                   help="mapper processes (default 1: deterministic; with more, ties "
                        "between equally good mappings may resolve differently)")
    m.add_argument("--set", action="append", metavar="NAME=VALUE",
                   help="override an arch-spec variable (repeatable)")
    m.set_defaults(func=cmd_map)

    s = subparsers.add_parser(
        "stock", help="the same attention workload on AccelForge's stock CIM macro examples "
                      "and on FusionCIM: one table")
    shape(s)
    s.add_argument("--macros", default=None, help="comma-separated stock examples (default: "
                   "sinangil_jssc_2021,wang_vlsi_2022,jia_jssc_2020,colonnade_jssc_2021)")
    s.set_defaults(func=cmd_stock)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusioncim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action=_VersionAction)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("evaluate", help="evaluate one design on one workload")
    e.add_argument("--design", default="fusioncim", help="one of: fusioncim, hybrid-qo, "
                   "hybrid, ipcim-fused, trancim-like, dcim")
    e.add_argument("--arch", default=None, help="use this AccelForge arch spec (path or "
                   "arch_specs/ stem) instead of the design's own, e.g. to plug in a macro")
    e.add_argument("--traces", default=None, metavar="DIR_OR_FILE",
                   help="attention traces for the rescale counts (default: the shipped "
                        "SmolLM2 set, see data/traces/README.md)")
    _workload_args(e)
    e.set_defaults(func=cmd_evaluate)
    c = sub.add_parser("compare", help="all designs on one workload, relative to FusionCIM")
    _workload_args(c)
    _arch_args(c)
    c.add_argument("--iso-area", action="store_true", help="give the IP-CIM baselines as "
                   "many IP-CIM macros as fit in FusionCIM's CIM area (arrays, OP-CIM "
                   "lanes and staging) instead of its macro count")
    c.set_defaults(func=cmd_compare)
    r = sub.add_parser("reproduce", help="the paper-style evaluation: CSV, JSON, plots, summary")
    r.add_argument("--out", default="results", help="output directory (created)")
    _arch_args(r)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    _preset_args(r)
    r.set_defaults(preset="paper")
    r.set_defaults(func=cmd_reproduce)
    _map_stock_parsers(sub)
    # Subcommands that live beside their feature: each module has register(subparsers).
    import importlib

    for mod in SUBCOMMAND_MODULES:
        importlib.import_module(mod, __package__).register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from .arch import SpecError

    args = build_parser().parse_args(argv)
    args.owns_process = argv is None  # run as the `fusioncim` program, not from Python
    try:
        return args.func(args) or 0
    except ValidationError as e:
        for err in e.errors():
            field = ".".join(str(x) for x in err["loc"]) or "input"
            msg = err["msg"].removeprefix("Value error, ")
            print(f"error: {field.replace('_', '-')}: {msg}", file=sys.stderr)
        return 2
    except (SpecError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file named on the command line that cannot be read/written
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not bad input: still one line (FUSIONCIM_DEBUG=1: raise)
        import os

        if os.environ.get("FUSIONCIM_DEBUG"):
            raise
        msg = " ".join(str(e).split())
        print(f"error: internal error ({type(e).__name__}: {msg}); please report it "
              f"(FUSIONCIM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
