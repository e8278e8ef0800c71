"""PNG plots of a reproduce run (rows as written to results.csv)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .evaluation import CATEGORIES as CATS  # noqa: E402


def _sel(rows, **kw):
    return [r for r in rows if all(r[k] == v for k, v in kw.items())]


def all_plots(rows: list[dict], out: Path) -> list[Path]:
    paths = []
    designs = list(dict.fromkeys(r["design"] for r in rows))
    for model in dict.fromkeys(r["model"] for r in rows):
        for phase in ("prefill", "decode"):
            sub = _sel(rows, model=model, phase=phase)
            if sub:
                paths += [breakdown(sub, designs, out), saving_speedup(sub, designs, out),
                          traffic(sub, designs, out), tops_per_w(sub, designs, out)]
    return paths


def _tag(sub):
    return f"{sub[0]['model']}_{sub[0]['phase']}"


def breakdown(sub, designs, out: Path) -> Path:
    L = 4096 if any(r["seq_len"] == 4096 for r in sub) else sub[0]["seq_len"]
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    bottoms = [0.0] * len(designs)
    for cat in CATS:
        vals = [next(r for r in sub if r["design"] == d and r["seq_len"] == L)
                .get(f"energy_{cat}_j", 0.0) * 1e3 for d in designs]
        if any(vals):
            ax.bar(designs, vals, bottom=bottoms, label=cat)
            bottoms = [b + v for b, v in zip(bottoms, vals)]
    ax.set_ylabel("attention energy per layer (mJ)")
    ax.set_title(f"Energy breakdown, {sub[0]['model']} {sub[0]['phase']}, seq_len {L}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    plt.setp(ax.get_xticklabels(), rotation=15)
    fig.tight_layout()
    p = out / f"energy_breakdown_{_tag(sub)}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def _ratio_plot(ax, sub, designs, key, ylabel):
    Ls = sorted({r["seq_len"] for r in sub})
    ref = {r["seq_len"]: r[key] for r in sub if r["design"] == "fusioncim"}
    for d in designs:
        if d == "fusioncim":
            continue
        by = {r["seq_len"]: r[key] for r in sub if r["design"] == d}
        ax.plot(Ls, [by[L] / ref[L] if ref[L] else float("nan") for L in Ls], marker="o", label=d)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _ratio_pair(sub, designs, out: Path, name: str, title: str, panels, log: bool) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, ylabel) in zip(axes, panels):
        _ratio_plot(ax, sub, designs, key, ylabel)
        lo, hi = ax.get_ylim()
        if log and lo > 0 and hi / lo > 10:  # log only where the ratios span decades
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title}, attention, {sub[0]['model']} {sub[0]['phase']}")
    fig.tight_layout()
    p = out / f"{name}_{_tag(sub)}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def saving_speedup(sub, designs, out: Path) -> Path:
    return _ratio_pair(sub, designs, out, "saving_speedup", "FusionCIM vs other designs",
                       [("best_energy_j", "energy saving of FusionCIM (x), least-energy blocks"),
                        ("best_latency_s", "speedup of FusionCIM (x), least-latency blocks")],
                       log=False)


def traffic(sub, designs, out: Path) -> Path:
    return _ratio_pair(sub, designs, out, "traffic", "Traffic reduction",
                       [("dram_bytes", "DRAM traffic / FusionCIM's (x)"),
                        ("buffer_bytes", "on-chip buffer traffic / FusionCIM's (x)")], log=True)


def tops_per_w(sub, designs, out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    Ls = sorted({r["seq_len"] for r in sub})
    for d in designs:
        by = {r["seq_len"]: r for r in sub if r["design"] == d}
        line, = ax.plot(Ls, [by[L]["tops_per_w"] for L in Ls], marker="o", label=f"{d} (attention)")
        ax.plot(Ls, [by[L]["layer_tops_per_w"] for L in Ls], ls="--", color=line.get_color(),
                label=f"{d} (whole layer)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("energy efficiency (TOPS/W, 1 MAC = 2 ops)")
    ax.set_title(f"TOPS/W, {sub[0]['model']} {sub[0]['phase']}")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out / f"tops_per_w_{_tag(sub)}.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p
