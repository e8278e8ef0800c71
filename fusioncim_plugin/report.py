"""Comparisons and the paper-style evaluation.

``compare``: every design on one workload, relative to FusionCIM.
``reproduce``: LLaMA-3-8B/70B x prefill/decode x sequence lengths x designs; writes
results.csv / results.json, PNG plots, and summary.md that puts our headline figures
beside the paper's (3.86x energy saving, 1.98x speedup vs prior SOTA CIM, 29.4 TOPS/W).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from .designs import BASELINES, DESIGNS, design_arch
from .evaluation import Result, evaluate
from .workload import Workload

PAPER = {"energy_saving": 3.86, "speedup": 1.98, "system_tops_per_w": 29.4}
# One named assumption changed at a time (see README, "Assumptions").
SENSITIVITY = [
    ("default", {}),
    ("OP-CIM accumulates in the array, bit-serially (OPCIM_CIRCUIT=in_array)",
     {"OPCIM_CIRCUIT": "in_array"}),
    ("OP-CIM read-modify-writes per product (OPCIM_CIRCUIT=rmw_per_product)",
     {"OPCIM_CIRCUIT": "rmw_per_product"}),
    ("OP-CIM with one MAC lane per column (OPCIM_LANES=128)", {"OPCIM_LANES": 128}),
    ("4x buffer bandwidth (GLB_BANKS=16)", {"GLB_BANKS": 16}),
]
EXPLANATION = [
    "* **Energy.** An OP-CIM MAC forms a distinct INT8 product per stored accumulator "
    "(no adder tree to share it) and adds it in a near-memory lane (default circuit, "
    "README 'OP-CIM accumulation'): ~4x an IP-CIM MAC, and the lanes (8 per macro) make "
    "PV, not QK^T, set FusionCIM's pace; the leakage over that longer latency and PV "
    "outweigh its data-movement savings at short context. The saving grows with context: the unfused baseline must re-fetch "
    "K/V from DRAM for every block of query rows whose S fits the buffer, so its DRAM "
    "traffic grows ~L^2 (the 'up to' figure is at 32K). The paper's OP-CIM circuit must "
    "amortize the accumulator write-back; the sensitivity rows show what that is worth. "
    "We do not set a value that would match the paper.",
    "* **Speedup.** At 4K tokens our speedup over both baselines (about 2x) is the paper's "
    "1.98x: the KV-stationary baselines stall on every K block written into the arrays "
    "and broadcast each Q row once per KV block, the unfused one also sweeps S twice "
    "through the buffer. The 'up to' figure is at 32K against the unfused baseline, "
    "whose K/V re-fetches make it DRAM- and buffer-bound; the paper's grid may stop "
    "short of that regime.",
    "* **System-level TOPS/W.** Our whole-layer figure runs the projections and FFN on "
    "the same 28 nm IP-CIM macros (36.5 TOPS/W peak: ReDCIM, processor level) with DRAM "
    "weight traffic, the buffer and leakage; the paper's 29.4 TOPS/W implies a more "
    "efficient macro and/or more on-chip weight reuse than we assume.",
    "* **Ablation.** hybrid (ablation 1) is paced like ipcim-fused (K block re-writes, one "
    "Q-row broadcast per KV block) and costs more energy (OP-CIM accumulator updates); "
    "QO-stationary (hybrid-qo) removes the K re-writes and the transpose pass and halves "
    "the latency; the pattern-aware order (fusioncim) removes rescales, a share of energy "
    "below 1 % in our model because an event costs one in-place pass over the O tile.",
]
PREFILL_LENS = [512, 1024, 2048, 4096, 8192, 16384, 32768]
DECODE_LENS = PREFILL_LENS + [131072]


def compare(wl: Workload, overrides: dict | None = None, designs: list[str] | None = None,
            softmax_order: str | None = "default", arch: str | None = None,
            baseline_arch: str | None = None) -> list[Result]:
    """Every design on ``wl``; ``softmax_order`` as in evaluate() (designs that do not
    fuse online softmax ignore it); ``arch`` / ``baseline_arch`` as in
    designs.design_arch (e.g. a spec that plugs in your own macro)."""
    from tqdm import tqdm

    # a progress bar only on a terminal (tqdm's disable=None), e.g. at long contexts
    return [evaluate(d, wl, overrides=overrides, softmax_order=softmax_order,
                     arch=design_arch(d, arch, baseline_arch))
            for d in tqdm(designs or list(DESIGNS), desc="compare", unit="design",
                          disable=None, leave=False)]


def format_compare(results: list[Result]) -> str:
    ref = next(r for r in results if r.design == "fusioncim")
    hdr = (f"{'design':<15}{'energy (J)':>12}{'x':>7}{'latency (s)':>13}{'x':>7}"
           f"{'TOPS/W':>9}{'DRAM (B)':>11}{'x':>7}{'buffer (B)':>12}{'x':>7}"
           f"{'CIM wr (B)':>12}{'x':>10}")
    r0 = results[0]
    lines = [f"attention of one layer, {r0.model} {r0.phase}, seq_len {r0.seq_len}, "
             f"batch {r0.batch}; 'x' = design / fusioncim", hdr, "-" * len(hdr)]

    def ratio(a, b):
        return f"{a / b:7.2f}" if b else "    inf" if a else "   1.00"

    for r in results:
        a, f = r.attention, ref.attention
        lines.append(
            f"{r.design:<15}{a.energy_j:12.3e}{ratio(a.energy_j, f.energy_j)}"
            f"{a.latency_s:13.3e}{ratio(a.latency_s, f.latency_s)}{a.tops_per_w:9.2f}"
            f"{a.dram_bytes:11.3e}{ratio(a.dram_bytes, f.dram_bytes)}"
            f"{a.buffer_bytes:12.3e}{ratio(a.buffer_bytes, f.buffer_bytes)}"
            f"{a.cim_write_bytes:12.3e}{ratio(a.cim_write_bytes, f.cim_write_bytes):>10}")
    lines.append("")
    lines.append(f"whole layer (attention + projections + FFN), TOPS/W: " + ", ".join(
        f"{r.design} {r.layer.tops_per_w:.2f}" for r in results))
    for r in results:
        for n in r.notes:
            lines.append(f"note ({r.design}): {n}")
    return "\n".join(lines)


def grid() -> list[Workload]:
    out = []
    for model in ("llama3-8b", "llama3-70b"):
        out += [Workload(model=model, phase="prefill", seq_len=L) for L in PREFILL_LENS]
        out += [Workload(model=model, phase="decode", seq_len=L) for L in DECODE_LENS]
    return out


def _row(r: Result) -> dict:
    a, lay = r.attention, r.layer
    row = {"design": r.design, "model": r.model, "phase": r.phase, "seq_len": r.seq_len,
           "batch": r.batch, "softmax_order": r.softmax_order or "",
           "energy_j": a.energy_j, "latency_s": a.latency_s, "tops": a.tops,
           "tops_per_w": a.tops_per_w, "macs": a.macs, "dram_bytes": a.dram_bytes,
           "buffer_bytes": a.buffer_bytes, "cim_write_bytes": a.cim_write_bytes,
           "rescale_events": r.rescale_events, "layer_energy_j": lay.energy_j,
           "layer_latency_s": lay.latency_s, "layer_tops_per_w": lay.tops_per_w}
    row.update({f"energy_{k}_j": v for k, v in a.energy_by_category_j.items()})
    return row


def output_dir(out: str | Path) -> Path:
    """``out`` created and writable, or ValueError naming it and the fix."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file; give a directory (it will hold "
                         f"results.csv, results.json, summary.md and the PNG plots)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".fusioncim-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {str(out)!r}: cannot write there ({e.strerror or e}); "
                         f"choose a writable directory") from None
    return out


def reproduce(out: str | Path = "results", progress: bool = True, arch: str | None = None,
              baseline_arch: str | None = None) -> Path:
    from tqdm import tqdm

    from .arch import arch_path

    for a in (arch, baseline_arch):
        if a:
            arch_path(a)  # before any work: SpecError naming it
    out = output_dir(out)
    jobs = [(d, wl) for wl in grid() for d in DESIGNS]
    # progress bar only on a terminal (tqdm's disable=None)
    results = [evaluate(d, wl, arch=design_arch(d, arch, baseline_arch))
               for d, wl in tqdm(jobs, desc="reproduce", unit="eval",
                                 disable=None if progress else True)]
    rows = [_row(r) for r in results]
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in rows[0], k))
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, restval=0.0)
        w.writeheader()
        w.writerows(rows)
    (out / "results.json").write_text(json.dumps([r.model_dump() for r in results], indent=1))
    from . import plots

    plots.all_plots(rows, out)
    (out / "summary.md").write_text(summary(rows))
    return out


def headline(rows: list[dict]) -> dict:
    """Max energy saving / speedup of FusionCIM over the prior-SOTA baselines on the grid,
    and FusionCIM's system-level (whole layer) TOPS/W range."""
    idx = {(r["design"], r["model"], r["phase"], r["seq_len"]): r for r in rows}
    best = {"energy_saving": (0, None), "speedup": (0, None)}
    for (d, m, ph, L), r in idx.items():
        if d not in BASELINES:
            continue
        f = idx[("fusioncim", m, ph, L)]
        for k, v in (("energy_saving", r["energy_j"] / f["energy_j"]),
                     ("speedup", r["latency_s"] / f["latency_s"])):
            if v > best[k][0]:
                best[k] = (v, f"{d}, {m} {ph} L={L}")
    sys_tpw = [r["layer_tops_per_w"] for r in rows if r["design"] == "fusioncim"]
    attn_tpw = [r["tops_per_w"] for r in rows if r["design"] == "fusioncim"]
    return {"energy_saving": best["energy_saving"], "speedup": best["speedup"],
            "system_tops_per_w": (max(sys_tpw), min(sys_tpw)),
            "attention_tops_per_w": (max(attn_tpw), min(attn_tpw))}


def summary(rows: list[dict]) -> str:
    h = headline(rows)

    def gap(ours, paper):
        return f"{100 * (ours - paper) / paper:+.0f} %"

    es, sp = h["energy_saving"], h["speedup"]
    lines = [
        "# FusionCIM reproduction summary", "",
        "Attention core of one layer unless stated; grid: LLaMA-3-8B/70B, prefill "
        f"{PREFILL_LENS[0]}-{PREFILL_LENS[-1]}, decode {DECODE_LENS[0]}-{DECODE_LENS[-1]} tokens; "
        f"prior SOTA = {', '.join(BASELINES)}.", "",
        "| figure | paper | ours | gap | where |", "|---|---|---|---|---|",
        f"| energy saving vs prior SOTA CIM (up to) | {PAPER['energy_saving']}x | {es[0]:.2f}x | "
        f"{gap(es[0], PAPER['energy_saving'])} | {es[1]} |",
        f"| speedup vs prior SOTA CIM (up to) | {PAPER['speedup']}x | {sp[0]:.2f}x | "
        f"{gap(sp[0], PAPER['speedup'])} | {sp[1]} |",
        f"| system-level TOPS/W (whole layer, max over grid) | {PAPER['system_tops_per_w']} | "
        f"{h['system_tops_per_w'][0]:.2f} | {gap(h['system_tops_per_w'][0], PAPER['system_tops_per_w'])} "
        f"| min over grid {h['system_tops_per_w'][1]:.2f} |",
        f"| attention TOPS/W (max over grid) | - | {h['attention_tops_per_w'][0]:.2f} | - | "
        f"min {h['attention_tops_per_w'][1]:.2f} |",
        "",
        "No constant was tuned to these figures: every energy comes from energy_tables/ "
        "(sources there) and every size from arch_specs/fusioncim.yaml.", "",
        "## Ablation (8B prefill 4096, attention energy, J)", "",
        "| design | energy (J) | latency (s) | DRAM (B) | rescale share |", "|---|---|---|---|---|",
    ]
    for d in DESIGNS:
        r = next(x for x in rows if x["design"] == d and x["model"] == "llama3-8b"
                 and x["phase"] == "prefill" and x["seq_len"] == 4096)
        share = r.get("energy_rescale_j", 0.0) / r["energy_j"]
        lines.append(f"| {d} | {r['energy_j']:.3e} | {r['latency_s']:.3e} | "
                     f"{r['dram_bytes']:.3e} | {100 * share:.1f} % |")
    lines += ["", "## Where the gaps come from", "",
              "Energy saving and speedup of FusionCIM over each prior-SOTA baseline, LLaMA-3-8B "
              "prefill, when one named assumption changes (everything else default):", "",
              "| setting | L | E(unfused)/E(FusionCIM) | E(fused)/E(FusionCIM) | "
              "T(unfused)/T(FusionCIM) | T(fused)/T(FusionCIM) |", "|---|---|---|---|---|---|"]
    for label, ov in SENSITIVITY:
        for L in (4096, 32768):
            wl = Workload(model="llama3-8b", phase="prefill", seq_len=L)
            f, u, k = (evaluate(d, wl, overrides=ov).attention
                       for d in ("fusioncim",) + BASELINES)
            lines.append(f"| {label} | {L} | {u.energy_j / f.energy_j:.2f}x | "
                         f"{k.energy_j / f.energy_j:.2f}x | {u.latency_s / f.latency_s:.2f}x | "
                         f"{k.latency_s / f.latency_s:.2f}x |")
    lines += ["", *EXPLANATION, "", "Plots: energy_breakdown_*.png, saving_speedup_*.png, "
              "traffic_*.png, tops_per_w_*.png in this folder."]
    return "\n".join(lines) + "\n"
