"""Pareto fronts of sweep results: which points no other point beats on both metrics."""

from __future__ import annotations

import math
from pathlib import Path

from .runner import read_results
from .spec import BASE_PARAMS, SweepError

WORKLOAD_COLUMNS = ("model", "phase", "seq_len", "batch", "causal")

_NAMES = {
    "energy_j": "energy, whole model", "latency_s": "latency, whole model",
    "edp_j_s": "energy-delay product, whole model", "tops": "throughput, whole model",
    "tops_per_w": "efficiency, whole model", "area_mm2": "chip area",
    "dram_bytes": "DRAM traffic, whole model", "buffer_bytes": "buffer traffic, whole model",
    "cim_write_bytes": "CIM array writes, whole model", "macs": "MACs, whole model",
}
_UNITS = [("_tops_per_w", "TOPS/W"), ("tops_per_w", "TOPS/W"), ("_tops", "TOPS"),
          ("tops", "TOPS"), ("_mm2", "mm²"), ("_j_s", "J·s"), ("_j", "J"), ("_s", "s"),
          ("_bytes", "B"), ("macs", "MACs"), ("macs_executed", "MACs")]


def label(col: str) -> str:
    """Axis label with the unit taken from the column name, e.g. 'chip area [mm²]'."""
    unit = next((u for suf, u in _UNITS if col.endswith(suf)), None)
    if col in _NAMES:
        name = _NAMES[col]
    else:
        name = col
        for suf, _ in _UNITS:
            if col.endswith(suf) and suf.startswith("_") and col != suf[1:]:
                name = col[: -len(suf)]
                break
        name = name.replace("attn_", "attention ").replace("layer_", "one layer, ")
        name = name.replace("_", " ")
    return f"{name} [{unit}]" if unit else name


def pareto_front(xs, ys, maximize: tuple[bool, bool] = (False, False)) -> list[int]:
    """Indices of the non-dominated points (minimising x and y unless ``maximize``),
    ordered by x. A point is dominated if another is no worse in both and better in one;
    of identical points the first is kept."""
    sx = -1 if maximize[0] else 1
    sy = -1 if maximize[1] else 1
    order = sorted(range(len(xs)), key=lambda i: (sx * xs[i], sy * ys[i], i))
    front, best = [], math.inf
    for i in order:
        if sy * ys[i] < best:
            front.append(i)
            best = sy * ys[i]
    return front


def _num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) \
        else None


def load_points(csv_path, x: str, y: str, color: str | None = None,
                where: dict[str, str] | None = None) -> list[dict]:
    """Result rows usable for a front: no error, numeric finite x and y, matching
    ``where`` (column -> CSV text)."""
    path = Path(csv_path)
    if not path.exists():
        raise SweepError(f"results file {str(path)!r} not found")
    rows = read_results(path)
    if not rows:
        raise SweepError(f"{path}: no result rows")
    cols = list(rows[0])
    numeric = [c for c in cols if any(_num(r[c]) is not None for r in rows)]
    for flag, c in (("--x", x), ("--y", y), ("--color", color)):
        if c is not None and c not in numeric:
            raise SweepError(f"{flag} {c!r}: not a numeric column of {path.name}; "
                             f"numeric columns: {', '.join(numeric)}")
    for k, v in (where or {}).items():
        if k not in cols:
            raise SweepError(f"--where {k}: no such column; columns: {', '.join(cols)}")
        rows = [r for r in rows if ("" if r[k] is None else str(r[k])) == v]
    rows = [r for r in rows if not r.get("error") and _num(r[x]) is not None
            and _num(r[y]) is not None]
    if not rows:
        raise SweepError(f"{path}: no rows with numeric {x} and {y} (after --where, "
                         f"without error rows)")
    return rows


def _varying(rows: list[dict]) -> list[str]:
    cols = [c for c in rows[0] if c in BASE_PARAMS or c.isupper()]
    return [c for c in cols if len({str(r[c]) for r in rows}) > 1]


def pareto_plot(csv_path, x: str = "latency_s", y: str = "energy_j", color: str | None = None,
                out=None, where: dict[str, str] | None = None,
                maximize: tuple[bool, bool] = (False, False), title: str | None = None):
    """Plot all points and the Pareto front to PNG ``out``; returns (front rows, rows,
    png path, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = load_points(csv_path, x, y, color, where)
    xs = [float(r[x]) for r in rows]
    ys = [float(r[y]) for r in rows]
    idx = pareto_front(xs, ys, maximize)
    front = [rows[i] for i in idx]
    notes = []
    mixed = {}
    for c in WORKLOAD_COLUMNS:
        vals = sorted({r[c] for r in rows if c in r}, key=lambda v: (isinstance(v, str), v))
        if len(vals) > 1:
            mixed[c] = [str(v) for v in vals]
    if mixed:
        c, vals = next(iter(mixed.items()))
        spans = "; ".join(f"{k}: {', '.join(v)}" for k, v in mixed.items())
        notes.append(f"the points span several workloads ({spans}); a front across "
                     f"workloads compares different jobs: filter with --where {c}={vals[0]}")

    out = Path(out) if out else Path(csv_path).with_name(Path(csv_path).stem + "_pareto.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=130)
    on_front = set(idx)
    rest = [i for i in range(len(rows)) if i not in on_front]
    if color:
        cs = [_num(r[color]) for r in rows]
        cs = [math.nan if c is None else c for c in cs]
        sc = ax.scatter(xs, ys, c=cs, cmap="viridis", s=22, alpha=0.85,
                        label=f"design points ({len(rows)})", zorder=2)
        fig.colorbar(sc, ax=ax, label=label(color))
    else:
        ax.scatter([xs[i] for i in rest], [ys[i] for i in rest], s=20, color="0.6",
                   alpha=0.8, label=f"dominated points ({len(rest)})", zorder=2)
    fx, fy = [xs[i] for i in idx], [ys[i] for i in idx]
    ax.plot(fx, fy, drawstyle="steps-post", color="crimson", lw=1.4, zorder=3)
    ax.scatter(fx, fy, s=60, facecolors="none" if color else "crimson",
               edgecolors="crimson", linewidths=1.6, zorder=4,
               label=f"Pareto front ({len(idx)} points)")
    for axis, vals, set_scale in ((0, xs, ax.set_xscale), (1, ys, ax.set_yscale)):
        pos = [v for v in vals if v > 0]
        if len(pos) == len(vals) and max(pos) / min(pos) > 30:
            set_scale("log")
    ax.set_xlabel(label(x) + (" (higher is better)" if maximize[0] else ""))
    ax.set_ylabel(label(y) + (" (higher is better)" if maximize[1] else ""))
    goal = " & ".join(("maximise " if m else "minimise ") + c for c, m in zip((x, y), maximize))
    sub = ", ".join(f"{k}={v}" for k, v in (where or {}).items())
    ax.set_title(title or f"Pareto front of {Path(csv_path).name}: {goal}"
                 + (f"\n({sub})" if sub else ""), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return front, rows, out, notes


def format_front(front: list[dict], rows: list[dict], x: str, y: str,
                 color: str | None = None) -> str:
    cols = [c for c in _varying(rows) if c not in (x, y, color)] + [x, y] \
        + ([color] if color and color not in (x, y) else [])

    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}"
        return "" if v is None else str(v)

    table = [cols] + [[fmt(r[c]) for c in cols] for r in front]
    w = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(s.rjust(w[i]) for i, s in enumerate(row)) for row in table]
    lines.insert(1, "  ".join("-" * n for n in w))
    return "\n".join(lines)
