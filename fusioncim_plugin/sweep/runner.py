"""Running a sweep: local worker processes or a Dask cluster, per-process caches, and a
resumable CSV with one row per point.

Work unit: a *chunk* of points that share one instantiated architecture (same arch spec
and effective overrides), so the expensive AccelForge/hwcomponents instantiation
(``load_arch``, ~0.1 s) happens once per chunk and the points of the chunk reuse it.
Within a worker process three caches persist across chunks:

* ``load_arch``'s lru_cache (arch spec + overrides -> costed components);
* ``softmax.rescale_profile``'s cache (order, seq_len, Br, Bc, phase -> rescale counts;
  0.1-0.5 s per profile on the synthetic model), shared by every arch with the same Br/Bc;
* a memo of whole points: inputs that differ only in what cannot change the result
  (an override equal to the spec default, a softmax order on a design that does not fuse
  softmax, "default" vs the design's own order) reuse the first result.

``cache=False`` clears all three before every point and bypasses the on-disk spec cache
(``fusioncim_plugin.spec_cache``), for measuring what they save.

Durability: only the parent process writes the CSV. Each finished chunk's rows are
appended and flushed at once, so Ctrl-C or a killed worker loses no finished point;
a torn last line (the parent itself killed mid-write) is dropped on resume. Points whose
input tuple is already in the file are skipped. When every point is present the file is
rewritten (atomically) in the sweep's point order, so a resumed run ends byte-identical
to an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation import CATEGORIES
from .spec import BASE_PARAMS, SweepError, SweepSpec, arch_variables, cell, load_sweep, \
    parse_sweep, point_key


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")


_CAT_COLUMNS = {c: f"attn_energy_{_slug(c)}_j" for c in CATEGORIES}
# Unprefixed = the whole model (all layers, attention + projections + FFN); layer_* = one
# layer; attn_* = one layer's attention core. tops = 1e12 ops/s; tops_per_w = 1e12 ops/J.
OUTPUT_COLUMNS = [
    "energy_j", "latency_s", "edp_j_s", "tops", "tops_per_w", "area_mm2",
    "dram_bytes", "buffer_bytes", "cim_write_bytes", "macs",
    "layer_energy_j", "layer_latency_s", "layer_tops", "layer_tops_per_w",
    "attn_energy_j", "attn_latency_s", "attn_tops", "attn_tops_per_w", "attn_dram_bytes",
    "attn_buffer_bytes", "attn_cim_write_bytes", "attn_macs", "attn_macs_executed",
    "attn_compute_bound_s", "attn_dram_bound_s", "attn_buffer_bound_s",
    *_CAT_COLUMNS.values(), "attn_energy_other_j",
    "rescale_events", "block_q", "block_kv", "softmax_order_used", "error",
]


class SweepAborted(RuntimeError):
    """The sweep stopped early (Ctrl-C, a dead worker, a bug); finished points are saved."""


# ============================================================== worker side (any process)

_MEMO: dict = {}  # point memo, insertion-ordered; bounded (oldest dropped first)
MEMO_SIZE = 20_000


def clear_caches() -> None:
    """Drop every per-process cache the sweep relies on."""
    from ..arch import _load_arch

    _load_arch.cache_clear()
    _MEMO.clear()
    try:
        from ..softmax import rescale_profile
    except ImportError:
        return
    if hasattr(rescale_profile, "cache_clear"):
        rescale_profile.cache_clear()


def arch_of(p: dict, d) -> str:
    """The arch spec point ``p`` runs design ``d`` on (the sweep's --arch / --baseline-arch,
    else the design's own)."""
    from ..designs import design_arch

    return design_arch(d.name, p.get("_arch"), p.get("_baseline_arch")) or d.arch


def _effective(p: dict, arch_cols: list[str]):
    """(design, arch spec, user overrides minus spec defaults, merged overrides)."""
    from ..designs import get_design

    d = get_design(p["design"])
    spec_vars = arch_variables(arch_of(p, d))
    fixed_by_design = dict(d.overrides)
    user = {}
    for k in arch_cols:
        v = p.get(k)
        if v is None:
            continue
        var = spec_vars.get(k)
        if (var is not None and k not in fixed_by_design and type(v) is type(var.default)
                and v == var.default):
            continue  # = the spec default: same arch as not setting it
        user[k] = v
    return d, user, fixed_by_design | user


def arch_group(p: dict, arch_cols: list[str]) -> tuple:
    """Points with equal groups instantiate the same architecture."""
    d, _, merged = _effective(p, arch_cols)
    return (arch_of(p, d), tuple(sorted(merged.items(), key=lambda kv: kv[0])))


def _one_line(e: BaseException) -> str:
    return re.sub(r"\s+", " ", f"{type(e).__name__}: {e}").strip()[:500]


def _outputs(r, area_m2: float) -> dict:
    m, L, a = r.model_total, r.layer, r.attention
    out = {
        "energy_j": m.energy_j, "latency_s": m.latency_s,
        "edp_j_s": m.energy_j * m.latency_s, "tops": m.tops, "tops_per_w": m.tops_per_w,
        "area_mm2": area_m2 * 1e6, "dram_bytes": m.dram_bytes,
        "buffer_bytes": m.buffer_bytes, "cim_write_bytes": m.cim_write_bytes,
        "macs": m.macs,
        "layer_energy_j": L.energy_j, "layer_latency_s": L.latency_s, "layer_tops": L.tops,
        "layer_tops_per_w": L.tops_per_w,
        "attn_energy_j": a.energy_j, "attn_latency_s": a.latency_s, "attn_tops": a.tops,
        "attn_tops_per_w": a.tops_per_w, "attn_dram_bytes": a.dram_bytes,
        "attn_buffer_bytes": a.buffer_bytes, "attn_cim_write_bytes": a.cim_write_bytes,
        "attn_macs": a.macs, "attn_macs_executed": a.macs_executed,
        "attn_compute_bound_s": r.latency_bounds_s.get("compute"),
        "attn_dram_bound_s": r.latency_bounds_s.get("dram"),
        "attn_buffer_bound_s": r.latency_bounds_s.get("buffer"),
        "rescale_events": r.rescale_events, "block_q": r.block_q, "block_kv": r.block_kv,
        "softmax_order_used": r.softmax_order or "none", "error": None,
    }
    other = 0.0
    for c, col in _CAT_COLUMNS.items():
        out[col] = 0.0
    for c, v in a.energy_by_category_j.items():
        if c in _CAT_COLUMNS:
            out[_CAT_COLUMNS[c]] += v
        else:
            other += v
    out["attn_energy_other_j"] = other
    return out


def evaluate_point(p: dict, arch_cols: list[str], *, memo: bool = True) -> tuple[dict, bool]:
    """Evaluate one point; returns ({output column: value}, memo hit?). A point the model
    rejects (SpecError / ValueError / arithmetic) gets its message in ``error``; any
    other exception is a bug and propagates."""
    from ..arch import load_arch
    from ..evaluation import evaluate
    from ..workload import Workload

    key = None
    try:
        d, user, merged = _effective(p, arch_cols)
        order = None if p["softmax_order"] == "none" else p["softmax_order"]
        resolved = None if d.softmax_order is None else (
            d.softmax_order if order == "default" else order)
        wl_fields = {k: p[k] for k in ("model", "phase", "seq_len", "batch", "causal")}
        arch = arch_of(p, d)
        key = (d.name, tuple(wl_fields.values()), resolved, arch,
               tuple(sorted(merged.items(), key=lambda kv: kv[0])))
        if memo and key in _MEMO:
            return dict(_MEMO[key]), True
        r = evaluate(d.name, Workload(**wl_fields), softmax_order=resolved, overrides=user,
                     arch=arch)
        out = _outputs(r, load_arch(arch, merged).area)
    except (ValueError, ArithmeticError) as e:  # SpecError and ValidationError included
        out = {c: None for c in OUTPUT_COLUMNS}
        out["error"] = _one_line(e)
    if memo and key is not None:
        _MEMO[key] = dict(out)
        if len(_MEMO) > MEMO_SIZE:
            del _MEMO[next(iter(_MEMO))]
    return out, False


def run_chunk(points: list[dict], arch_cols: list[str], cache: bool = True):
    """Evaluate a chunk; returns (rows, stats). Runs in a worker (or in-process).
    ``cache=False``: every cache is cleared before every point."""
    import contextlib

    from .. import spec_cache
    from ..arch import _load_arch

    t0 = time.perf_counter()
    rows, hits, loads = [], 0, 0
    for p in points:
        if not cache:
            clear_caches()
        m0 = _load_arch.cache_info().misses
        with contextlib.nullcontext() if cache else spec_cache.disabled():  # on-disk too
            out, hit = evaluate_point(p, arch_cols, memo=cache)
        hits += hit
        loads += _load_arch.cache_info().misses - m0
        rows.append({**p, **out})
    stats = {"points": len(points), "memo_hits": hits, "arch_loads": loads,
             "seconds": time.perf_counter() - t0, "pid": os.getpid()}
    return rows, stats


def _worker_init() -> None:
    # Workers ignore Ctrl-C: the parent handles it (and keeps every finished chunk).
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


# ================================================================== results file (parent)

def results_path(spec: SweepSpec, out) -> Path:
    """``out`` ending in .csv is the file; otherwise a directory holding <name>.csv."""
    out = Path(out)
    return out if out.suffix == ".csv" else out / f"{spec.name}.csv"


def _read_rows(path: Path, columns: list[str]) -> list[dict]:
    """Rows of an existing results file (dropping a torn last line); checks the header."""
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):  # killed mid-write: drop the torn last line
        raw = raw[: raw.rfind(b"\n") + 1]
        path.write_bytes(raw)
    if not raw.strip():
        return []
    lines = raw.decode().splitlines()
    header = next(csv.reader([lines[0]]))
    if header != columns:
        missing = [c for c in columns if c not in header]
        extra = [c for c in header if c not in columns]
        raise SweepError(
            f"{path}: holds results of a different sweep layout (columns missing: "
            f"{missing or '-'}; unexpected: {extra or '-'}); choose another --out or "
            f"delete the file")
    return [r for r in csv.DictReader(lines) if None not in r and len(r) == len(columns)]


def _write_all(path: Path, columns: list[str], rows: list[dict]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ================================================================================ runner

@dataclass
class SweepReport:
    path: Path
    total: int  # points in the sweep
    skipped: int  # already in the results file
    ran: int  # evaluated now
    errors: int  # rows of this sweep with an error (model rejected the point)
    wall_s: float
    worker_s: float  # sum over chunks of evaluation time (CPU-ish seconds)
    arch_loads: int
    memo_hits: int
    workers: int  # distinct worker processes used
    parquet: Path | None = None
    chunks: int = 0
    stats: list[dict] = field(default_factory=list, repr=False)

    @property
    def per_point_s(self) -> float:
        """Mean worker seconds per evaluated point."""
        return self.worker_s / self.ran if self.ran else 0.0

    def summary(self) -> str:
        s = (f"{self.ran} points evaluated in {self.wall_s:.1f} s wall "
             f"({self.per_point_s * 1e3:.1f} ms/point of worker time, {self.workers} "
             f"worker process(es), {self.arch_loads} arch instantiations, "
             f"{self.memo_hits} memo hits); {self.skipped} already present; "
             f"results: {self.path}")
        if self.errors:
            s += (f"\n{self.errors} point(s) were rejected by the model (see the `error` "
                  f"column; rerun with --retry-errors after a fix)")
        return s


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _chunks(points: list[dict], arch_cols: list[str], chunk_size: int) -> list[list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for p in points:
        try:
            g = arch_group(p, arch_cols)
        except Exception:
            g = ("?",)
        groups[g].append(p)
    out = []
    for ps in groups.values():
        # points sharing a rescale profile (order, seq_len, phase) next to each other
        ps.sort(key=lambda p: (p["phase"], p["seq_len"], str(p["softmax_order"])))
        out += [ps[i:i + chunk_size] for i in range(0, len(ps), chunk_size)]
    return out


def run_sweep(spec, out="results", *, jobs: int | None = None, scheduler: str | None = None,
              progress: bool = True, cache: bool = True, chunk_size: int | None = None,
              retry_errors: bool = False, parquet: bool = False,
              connect_timeout_s: float = 20.0) -> SweepReport:
    """Run (or resume) sweep ``spec`` (a SweepSpec, a YAML path or a dict) into
    ``out`` (a directory -> <out>/<name>.csv, or a .csv path).

    ``jobs``: local worker processes (default: the CPUs available; 1 = in this process).
    ``scheduler``: a Dask scheduler address (``tcp://host:port``); then the cluster's
    workers run the chunks and ``jobs`` is ignored.
    """
    if isinstance(spec, dict):
        spec = parse_sweep(spec)
    elif not isinstance(spec, SweepSpec):
        spec = load_sweep(spec)
    if jobs is not None and jobs < 1:
        raise SweepError(f"--jobs must be >= 1, got {jobs}")
    if chunk_size is not None and chunk_size < 1:
        raise SweepError(f"--chunk-size must be >= 1, got {chunk_size}")
    if parquet:
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise SweepError("--parquet needs pyarrow, which is not installed (install it, "
                             "or drop --parquet: the CSV has the same data)")
    arch_cols = spec.arch_params
    in_cols = spec.input_columns
    columns = in_cols + OUTPUT_COLUMNS
    path = results_path(spec, out)
    path.parent.mkdir(parents=True, exist_ok=True)

    existing = _read_rows(path, columns) if path.exists() else []
    if retry_errors and any(r["error"] for r in existing):
        existing = [r for r in existing if not r["error"]]
        _write_all(path, columns, existing)
    if not existing:
        _write_all(path, columns, [])
    done = {tuple(r[c] for c in in_cols) for r in existing}
    points = spec.points()
    todo = [p for p in points if point_key(p, in_cols) not in done]
    n_workers = 1 if scheduler is None and (jobs or _cpu_count()) == 1 else (jobs or _cpu_count())
    if chunk_size is None:
        chunk_size = max(1, min(32, math.ceil(len(todo) / (4 * max(n_workers, 1)))))
    chunks = _chunks(todo, arch_cols, chunk_size)

    local_pool = bool(chunks) and scheduler is None and n_workers > 1 and len(chunks) > 1
    n_workers = min(n_workers, len(chunks)) if local_pool else n_workers
    pool = _make_pool(n_workers) if local_pool else None  # before tqdm starts its thread
    report = SweepReport(path=path, total=len(points), skipped=len(points) - len(todo),
                         ran=0, errors=0, wall_s=0.0, worker_s=0.0, arch_loads=0,
                         memo_hits=0, workers=0, chunks=len(chunks))
    t0 = time.perf_counter()
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(points), initial=report.skipped, unit="pt", desc=spec.name,
                   file=sys.stderr, dynamic_ncols=True)
    else:  # no tqdm object at all: it would start a monitor thread (see _make_pool)
        bar = _NoBar()
    pids = set()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n", extrasaction="ignore")

        def record(rows, st):
            writer.writerows({c: cell(r.get(c)) if c in in_cols else r.get(c)
                              for c in columns} for r in rows)
            f.flush()
            report.ran += st["points"]
            report.worker_s += st["seconds"]
            report.arch_loads += st["arch_loads"]
            report.memo_hits += st["memo_hits"]
            report.stats.append(st)
            pids.add(st["pid"])
            bar.update(st["points"])

        try:
            if not chunks:
                pass
            elif scheduler is not None:
                _run_dask(scheduler, chunks, arch_cols, cache, record, connect_timeout_s)
            elif pool is not None:
                _run_pool(pool, n_workers, chunks, arch_cols, cache, record)
            else:  # in this process: record point by point (Ctrl-C loses nothing)
                for ch in chunks:
                    for p in ch:
                        record(*run_chunk([p], arch_cols, cache))
        except KeyboardInterrupt:
            raise SweepAborted(f"interrupted: {report.skipped + report.ran} of {len(points)} "
                               f"points are saved in {path}; rerun the same command to "
                               f"resume") from None
        except (SweepAborted, SweepError):
            raise
        except Exception as e:  # a dead worker, a bug: keep what is saved, say so
            raise SweepAborted(f"{_one_line(e)}; {report.skipped + report.ran} of "
                               f"{len(points)} points are saved in {path}; rerun the same "
                               f"command to resume") from e
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
    report.wall_s = time.perf_counter() - t0
    report.workers = len(pids)

    # complete: rewrite in point order (rows of other sweeps sharing the file go last)
    rows = _read_rows(path, columns)
    by_key = {tuple(r[c] for c in in_cols): r for r in rows}
    ordered = [by_key.pop(point_key(p, in_cols)) for p in points
               if point_key(p, in_cols) in by_key]
    _write_all(path, columns, ordered + list(by_key.values()))
    report.errors = sum(1 for r in ordered if r["error"])
    if parquet:
        report.parquet = write_parquet(path)
    return report


def _make_pool(n: int):
    """A process pool of ``n`` workers. A single-threaded parent forks them (they start
    warm, with AccelForge imported and the parent's caches); a multi-threaded one (e.g. a
    Dask client or a GUI loop is running) uses a forkserver that preloads AccelForge, as
    forking a threaded process can deadlock."""
    import multiprocessing as mp
    import threading
    from concurrent.futures import ProcessPoolExecutor

    if threading.active_count() == 1 and "fork" in mp.get_all_start_methods():
        ctx = mp.get_context("fork")
    else:
        ctx = mp.get_context("forkserver")
        try:
            ctx.set_forkserver_preload(["fusioncim_plugin.sweep._preload"])
        except Exception:
            pass
    ex = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_worker_init)
    ex.submit(os.getpid).result()  # fork (all workers, for "fork") now, before tqdm's thread
    return ex


def _run_pool(ex, n: int, chunks, arch_cols, cache, record) -> None:
    from concurrent.futures import FIRST_COMPLETED, as_completed, wait

    try:
        # at most 2 chunks queued per worker: a Ctrl-C finds little queued work to cancel
        it = iter(chunks)
        pending = set()
        for ch in it:
            pending.add(ex.submit(run_chunk, ch, arch_cols, cache))
            if len(pending) >= 2 * n:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                record(*fut.result())
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(ex.submit(run_chunk, nxt, arch_cols, cache))
    except KeyboardInterrupt:
        # Workers ignore SIGINT: let the chunks already running finish and save them;
        # a second Ctrl-C drops them and stops the workers at once.
        running = [f for f in pending if not f.cancel()]
        if running:
            print(f"\ninterrupted: saving the {len(running)} chunk(s) in progress "
                  f"(Ctrl-C again to drop them)", file=sys.stderr, flush=True)
            try:
                for fut in as_completed(running):
                    if fut.exception() is None:
                        record(*fut.result())
            except KeyboardInterrupt:
                for proc in list(getattr(ex, "_processes", {}).values()):
                    proc.terminate()  # our own workers
        raise
    finally:  # a dead worker raises BrokenProcessPool from fut.result(): run_sweep reports
        ex.shutdown(wait=False, cancel_futures=True)


def _run_dask(address: str, chunks, arch_cols, cache, record, timeout_s: float) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise SweepError("--scheduler needs Dask: pip install 'hwcomponents-fusioncim[dask]' "
                         "(or dask[distributed])") from None
    try:
        client = Client(address, timeout=f"{timeout_s}s")
    except Exception as e:  # OSError, TimeoutError, a malformed address, ...
        raise SweepError(f"--scheduler {address}: cannot connect ({_one_line(e)})") from None
    futures = []
    try:
        futures = [client.submit(run_chunk, ch, arch_cols, cache, pure=False)
                   for ch in chunks]
        for fut in as_completed(futures):
            record(*fut.result())
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
        client.close()


def write_parquet(path: Path) -> Path:
    """<results>.parquet beside the CSV (needs pyarrow; numeric columns typed)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq
    except ImportError:
        raise SweepError("--parquet needs pyarrow, which is not installed (the CSV is "
                         "written regardless)") from None
    table: pa.Table = pacsv.read_csv(path)
    out = path.with_suffix(".parquet")
    pq.write_table(table, out)
    return out


def read_results(path) -> list[dict]:
    """Rows of a results CSV with numbers parsed (empty cell -> None)."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append({k: _parse(v) for k, v in r.items()})
    return rows


def _parse(v: str):
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


__all__ = ["OUTPUT_COLUMNS", "SweepAborted", "SweepReport", "clear_caches", "evaluate_point",
           "read_results", "results_path", "run_chunk", "run_sweep", "BASE_PARAMS"]
