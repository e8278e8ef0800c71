"""CLI: ``softmax-stats`` and ``trace capture`` (registered into the main ``fusioncim``
argparse CLI by ``register(subparsers)``; also runnable as
``python -m fusioncim_plugin.softmax.cli …``)."""
from __future__ import annotations

import argparse
import json
import sys


def register(subparsers) -> None:
    """Add ``softmax-stats`` and ``trace {capture}`` to an argparse subparsers object.
    Each sets ``func`` (call ``args.func(args)``; returns an exit code)."""
    p = subparsers.add_parser(
        "softmax-stats",
        help="online-softmax rescale statistics of attention traces",
        description="Per trace, order and block size: mean rescales per row and per "
                    "query tile (block_q = block_kv), and where row maxima land; or "
                    "(--synthetic) the fitted long-context model's prediction.")
    p.add_argument("--orders", default=",".join(SUMMARY_ORDERS),
                   help="comma-separated order policies (default: the five built-ins)")
    p.add_argument("--blocks", default="16,32,64",
                   help="block sizes, positive multiples of 16 (default 16,32,64)")
    p.add_argument("--seq-len", type=int, default=None, help="only traces of this length")
    p.add_argument("--traces", default=None, metavar="DIR_OR_FILE",
                   help="trace file or folder (default: every trace in data/traces)")
    p.add_argument("--synthetic", action="store_true",
                   help="print the synthetic long-context model's prediction at --seq-len")
    p.add_argument("--fit", default="smollm2", choices=["smollm2", "gemma3"],
                   help="with --synthetic: whose fitted model (default smollm2, the one "
                        "evaluate uses)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_stats)

    t = subparsers.add_parser("trace", help="attention-trace tools")
    ts = t.add_subparsers(dest="trace_cmd", required=True)
    from . import capture

    c = ts.add_parser("capture",
                      help="capture attention-score block maxima of a model (needs "
                           "torch/transformers/gguf; see data/traces/README.md)",
                      description=capture.__doc__.split("\n")[0])
    capture.add_arguments(c)
    c.set_defaults(func=_capture)


def _capture(args) -> int:
    from .capture import run

    return run(args)


SUMMARY_ORDERS = ("natural", "sink_local", "adaptive", "diagonal_first", "oracle")


def stats(orders, blocks, seq_len=None, traces=None) -> dict:
    """``{trace_file: {"seq_len", "heads", "orders": {order: {block: {...}}},
    "landing": {block: {...}}}}``; built-in orders use the all-head summary, other
    orders are computed from the stored heads."""
    from . import traces as tr

    out = {}
    files = tr.find_traces(traces) if traces is not None else tr.shipped_traces()
    for path in files:
        if seq_len and tr.load_meta(path)["seq_len"] != seq_len:
            continue
        t = tr.load_trace(path)
        summ = t.meta.get("summary", {})
        ent = {"seq_len": t.seq_len, "text": t.meta.get("text_source"),
               "model": t.meta.get("model"), "layer_windows": t.meta.get("layer_windows"),
               "summary_heads": t.meta.get("n_layers", 0) * t.meta.get("n_heads", 0),
               "stored_heads": int(len(t.rank_heads)), "orders": {}, "landing": {}}
        for b in blocks:
            key = f"landing/{b}"
            ent["landing"][str(b)] = summ.get(key) or tr.landing_fractions(
                t.block_max(b), b)
        for o in orders:
            ent["orders"][o] = {}
            for b in blocks:
                key = f"prefill/{o}/{b}/{b}"
                if key in summ:
                    row, tile, nv = summ[key]
                    how = "all-heads"
                else:
                    row, tile, nv = tr.count_heads(t.block_max(b), t.windows, b, b, o)
                    how = "stored-heads"
                ent["orders"][o][str(b)] = {"row_rescales_per_row": round(row, 4),
                                            "tile_rescales_per_tile": round(tile, 4),
                                            "n_kv_blocks_per_tile": round(nv, 2),
                                            "heads": how}
        out[path.name] = ent
    return out


def _blocks(text: str) -> list[int]:
    """``--blocks`` → ints; anything but positive multiples of 16 → ValueError."""
    out = []
    for b in (x.strip() for x in text.split(",") if x.strip()):
        if not b.isdigit() or int(b) <= 0 or int(b) % 16:
            raise ValueError(f"--blocks {b!r}: block sizes must be positive multiples of 16 "
                             "(the traces' base block), e.g. --blocks 16,32,64")
        out.append(int(b))
    if not out:
        raise ValueError("--blocks: give at least one block size (a multiple of 16), "
                         "e.g. --blocks 32")
    return out


def synthetic_stats(orders, blocks, seq_len: int, fit: str = "smollm2") -> dict:
    """``{order: {block: {"row_rescales_per_row", "tile_rescales_per_tile",
    "n_kv_blocks_per_tile", "source"}}}`` of a fitted synthetic model (prefill, causal,
    block_q = block_kv). SmolLM2's comes from :func:`rescale_profile` (what ``evaluate``
    uses); another model's is sampled from its fit."""
    from . import synthetic as sy
    from . import traces as tr
    from .profile import rescale_profile

    out = {}
    for o in orders:
        out[o] = {}
        for b in blocks:
            if fit == "smollm2":
                p = rescale_profile(o, seq_len, b, b, source="synthetic")
                row, tile, nv, src = (p.row_rescales_per_row, p.tile_rescales_per_tile,
                                      p.n_kv_blocks_per_tile, p.source)
            else:
                name = sy.fit_file(fit)
                row, tile, nv = sy.synthetic_counts(o, seq_len, b, b, "prefill",
                                                    heads=sy.load_fit(tr.data_dir() / name))
                src = f"synthetic:{name}[sampled]"
            out[o][str(b)] = {"row_rescales_per_row": round(row, 4),
                              "tile_rescales_per_tile": round(tile, 4),
                              "n_kv_blocks_per_tile": round(nv, 2), "source": src}
    return out


def _stats(args) -> int:
    from .policies import ORDER_POLICIES

    orders = [o for o in args.orders.split(",") if o]
    bad = [o for o in orders if o not in ORDER_POLICIES]
    if bad:
        raise ValueError(f"--orders: unknown order(s) {', '.join(bad)}; known: "
                         f"{', '.join(sorted(ORDER_POLICIES))}")
    blocks = _blocks(args.blocks)
    if args.synthetic:
        if not args.seq_len or args.seq_len <= 0:
            raise ValueError("--synthetic needs --seq-len N (tokens, positive), "
                             "e.g. --seq-len 32768")
        res = synthetic_stats(orders, blocks, args.seq_len, args.fit)
        if args.json:
            print(json.dumps(res, indent=1))
            return 0
        src = next(iter(next(iter(res.values())).values()))["source"]
        print(f"synthetic long-context model ({args.fit}), prefill, causal, "
              f"{args.seq_len} tokens, block_q = block_kv ({src})")
        print(f"  {'order':<15}" + "".join(f"   B={b:<3} row  tile " for b in blocks))
        for o, per in res.items():
            print(f"  {o:<15}" + "".join(
                f"   {per[str(b)]['row_rescales_per_row']:7.3f} "
                f"{per[str(b)]['tile_rescales_per_tile']:6.2f}" for b in blocks))
        print("  (row: mean rescales per query row; tile: mean O-tile rescale events per "
              "query tile)")
        return 0
    res = stats(orders, blocks, args.seq_len, args.traces)
    if not res:
        raise ValueError(f"--seq-len {args.seq_len}: no trace of that length in "
                         f"{args.traces or 'data/traces'}")
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    for name, ent in res.items():
        wins = sorted({w for w in ent["layer_windows"] or [] if w})
        print(f"{name}  ({ent['model']}; L={ent['seq_len']}, text={ent['text']}"
              f"{', sliding window ' + '/'.join(map(str, wins)) + ' keys' if wins else ''}"
              f"; built-in orders over {ent['summary_heads']} heads, others over "
              f"{ent['stored_heads']} stored)")
        print(f"  {'order':<15}" + "".join(f"   B={b:<3} row  tile " for b in blocks))
        for o, per in ent["orders"].items():
            cells = "".join(f"   {per[str(b)]['row_rescales_per_row']:7.3f} "
                            f"{per[str(b)]['tile_rescales_per_tile']:6.2f}" for b in blocks)
            print(f"  {o:<15}{cells}")
        print("  row max lands in (sink / diagonal / local 1-4 blocks back / elsewhere)")
        for b in blocks:
            land = ent["landing"][str(b)]
            print(f"    B={b:<3} " + "  ".join(
                f"{k}={land[k]:.3f}" for k in ("sink", "diagonal", "local", "elsewhere")))
        print()
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fusioncim_plugin.softmax.cli")
    sub = p.add_subparsers(dest="cmd", required=True)
    register(sub)
    a = p.parse_args(argv)
    try:
        return a.func(a)
    except ValueError as e:  # bad input, unreadable trace, capture error: one line
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
