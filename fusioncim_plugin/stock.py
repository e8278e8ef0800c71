"""AccelForge's stock compute-in-memory macro examples on our attention workload (the
`fusioncim stock` command, and `fusioncim map`, are defined in cli.py).

  fusioncim map   --design fusioncim --model llama3-8b --phase prefill --seq-len 4096
                  [--arch SPEC] [--metric energy|latency|edp] [--out mapping.yaml] [--kv-heads N]
                  [--group N] [--jobs N] [--set NAME=VALUE] [--json]
  fusioncim stock --model llama3-8b --phase prefill --seq-len 4096 [--macros a,b] [--json]

Stock macros: the arch specs in AccelForge's ``examples/arches/compute_in_memory`` (read
from the installed accelforge package through its own ``_load_spec.get_spec``, with the
dummy main memory the stock notebooks add), run unfused the way the stock examples run
a DNN layer: each matrix product is one Einsum mapped by AccelForge's mapper (the stock
EDP objective) with a stationary "weight" in the array - K for QK^T and V for PV, the
convention of AccelForge's own attention workload (examples/workloads/attention_decode) -
and the other operand streamed as the "input". S is written to and P read from the
dummy main memory, which costs nothing, and no softmax runs: these are macro-only
figures. FusionCIM runs the same shape (non-causal) through our ``evaluate``; its table
rows give the whole attention (DRAM, buffer, CIM, softmax) and its CIM macros alone.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

# basic_analog is left out: AccelForge's mapper always rejects it on this multi-rank
# workload ("a spatial loop above a temporal loop above a storage node"); README.
STOCK_MACROS = ("sinangil_jssc_2021", "wang_vlsi_2022", "jia_jssc_2020",
                "colonnade_jssc_2021")
# Categories of evaluate()'s energy breakdown that are spent inside the CIM macros.
MACRO_CATEGORIES = ("IP-CIM compute", "IP-CIM write", "OP-CIM compute", "OP-CIM array",
                    "rescale")


def cim_examples_dir() -> Path:
    """``examples/arches/compute_in_memory`` of the installed accelforge package."""
    from accelforge.examples import EXAMPLES_DIR

    return Path(EXAMPLES_DIR) / "arches" / "compute_in_memory"


@functools.lru_cache(maxsize=1)
def _get_spec_fn():
    path = cim_examples_dir() / "_load_spec.py"
    spec = importlib.util.spec_from_file_location("_accelforge_cim_load_spec", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.get_spec


def stock_names() -> list[str]:
    return sorted(p.stem for p in cim_examples_dir().glob("*.yaml") if not p.stem.startswith("_"))


def stock_workload(wl):
    """Our attention shape as two independent Einsums with KV as the stationary weight."""
    import accelforge as af

    d = wl.jinja_parse_data()
    return af.Workload.model_validate(dict(
        rank_sizes=dict(B=d["BATCH"], H=d["N_KV_HEADS"], G=d["GROUP"], M=d["N_QUERIES"],
                        P=d["N_KEYS"], E=d["HEAD_DIM"], F=d["HEAD_DIM"]),
        bits_per_value={"All": 8},  # INT8 operands, as workloads/attention.yaml (DATA_BITS)
        einsums=[
            dict(einsum="S[b, h, g, m, p] = Q[b, h, g, m, e] * K[b, h, p, e]",
                 renames=dict(input="Q", weight="K", output="S")),
            dict(einsum="O[b, h, g, m, f] = P[b, h, g, m, p] * V[b, h, p, E: f]",
                 renames=dict(input="P", weight="V", output="O")),
        ]))


def stock_spec(name: str, wl):
    """The stock example ``name`` (as its notebook loads it) with our attention workload."""
    known = stock_names()
    if name not in known:
        raise ValueError(f"macros: unknown stock macro {name!r}; allowed: {', '.join(known)}")
    spec = _get_spec_fn()(name, add_dummy_main_memory=True)
    spec.workload = stock_workload(wl)
    return spec


@dataclass
class Row:
    name: str
    energy_j: float | None
    latency_s: float | None
    macs: float | None
    tops_per_w: float | None
    tops: float | None
    wall_s: float
    scope: str
    error: str | None = None


def _first_sentence(e: Exception) -> str:
    text = " ".join(str(e).split())
    for stop in (". ", "Mapping:"):
        if stop in text:
            text = text[: text.index(stop) + 1]
    if len(text) > 160:
        text = text[:159] + "..."
    return f"{type(e).__name__}: {text}"


def run_stock(name: str, wl) -> Row:
    """Map the attention workload on one stock macro (one macro, dummy main memory)."""
    from .mapper import af_jobs, scratch_dir

    t0 = time.perf_counter()
    try:
        spec = stock_spec(name, wl)
        with scratch_dir(), af_jobs(1):
            m = spec.map_workload_to_arch(print_progress=False)
        e, lat, macs = float(m.energy()), float(m.latency()), float(m.n_computes())
    except ValueError as exc:
        if str(exc).startswith("macros:"):
            raise
        return Row(name, None, None, None, None, None, time.perf_counter() - t0,
                   "stock macro", error=_first_sentence(exc))
    except Exception as exc:  # the mapper's own failures are reported in the table
        return Row(name, None, None, None, None, None, time.perf_counter() - t0,
                   "stock macro", error=_first_sentence(exc))
    return Row(name, e, lat, macs, 2 * macs / e / 1e12, 2 * macs / lat / 1e12,
               time.perf_counter() - t0, "stock macro (1 macro, unfused, no DRAM/softmax)")


def fusioncim_rows(wl) -> list[Row]:
    """FusionCIM on the same (non-causal) shape through our evaluate()."""
    from .evaluation import evaluate
    from .workload import Workload

    wl = Workload(**(wl.model_dump() | {"causal": False}))
    t0 = time.perf_counter()
    r = evaluate("fusioncim", wl)
    wall = time.perf_counter() - t0
    a = r.attention
    macro_e = sum(a.energy_by_category_j.get(c, 0.0) for c in MACRO_CATEGORIES)
    macro_t = r.latency_bounds_s["compute"]
    return [
        Row("fusioncim", a.energy_j, a.latency_s, a.macs, a.tops_per_w, a.tops, wall,
            "FusionCIM whole attention (DRAM+buffer+CIM+softmax), 8 IP + 16 OP macros"),
        Row("fusioncim: CIM macros only", macro_e, macro_t, a.macs, 2 * a.macs / macro_e / 1e12,
            2 * a.macs / macro_t / 1e12, wall,
            "FusionCIM's IP/OP-CIM energy (compute, array writes, read-out, rescale); "
            "compute-bound latency"),
    ]


def compare_stock(wl, macros=STOCK_MACROS) -> list[Row]:
    return fusioncim_rows(wl) + [run_stock(m, wl) for m in macros]


def format_stock(wl, rows: list[Row]) -> str:
    d = wl.jinja_parse_data()
    lines = [
        f"{wl.model} {wl.phase}, seq_len {wl.seq_len}, batch {wl.batch}: one layer's "
        f"attention, NON-causal (AccelForge cannot express the mask), INT8; rank sizes "
        f"B={d['BATCH']} H={d['N_KV_HEADS']} G={d['GROUP']} M={d['N_QUERIES']} "
        f"P={d['N_KEYS']} E=F={d['HEAD_DIM']}",
        "",
        f"{'design / stock macro':<30}{'energy [J]':>13}{'latency [s]':>13}{'TOPS/W':>10}"
        f"{'TOPS':>10}{'wall [s]':>10}",
    ]
    for r in rows:
        if r.error:
            lines.append(f"{r.name:<30}{'(mapper error: ' + r.error + ')'}")
            continue
        lines.append(f"{r.name:<30}{r.energy_j:>13.4e}{r.latency_s:>13.4e}"
                     f"{r.tops_per_w:>10.2f}{r.tops:>10.3f}{r.wall_s:>10.1f}")
    lines += [
        "",
        "TOPS/W = 2 x MACs / energy, TOPS = 2 x MACs / latency (1 MAC = 2 ops).",
        "Stock macros: AccelForge examples/arches/compute_in_memory via its _load_spec.get_spec"
        "(add_dummy_main_memory=True), one macro, mapper objective EDP as in the stock "
        "notebooks; QK^T and PV unfused with K / V as the stationary weight; S/P traffic to "
        "the dummy main memory is free and no softmax runs, so these are macro-only figures "
        "- compare them with the 'CIM macros only' row. Analog macros (sinangil, wang, jia) "
        "slice INT8 operands to their native precision.",
    ]
    return "\n".join(lines)

