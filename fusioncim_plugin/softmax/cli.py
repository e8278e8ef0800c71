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
        help="online-softmax rescale statistics of the shipped attention traces",
        description="Per trace, order and block size: mean rescales per row and per "
                    "query tile (block_q = block_kv), and where row maxima land.")
    p.add_argument("--orders", default="natural,sink_local,adaptive,oracle",
                   help="comma-separated order policies (default: the four built-ins)")
    p.add_argument("--blocks", default="16,32,64", help="block sizes (default 16,32,64)")
    p.add_argument("--seq-len", type=int, default=None, help="only traces of this length")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_stats)

    t = subparsers.add_parser("trace", help="attention-trace tools")
    ts = t.add_subparsers(dest="trace_cmd", required=True)
    from . import capture

    c = ts.add_parser("capture",
                      help="capture SmolLM2 block maxima (needs torch/transformers; "
                           "see data/traces/README.md)",
                      description=capture.__doc__.split("\n")[0])
    capture.add_arguments(c)
    c.set_defaults(func=_capture)


def _capture(args) -> int:
    from .capture import run

    return run(args)


def stats(orders, blocks, seq_len=None) -> dict:
    """``{trace_file: {"seq_len", "heads", "orders": {order: {block: {...}}},
    "landing": {block: {...}}}}``; built-in orders use the all-head summary, other
    orders are computed from the stored heads."""
    from . import traces as tr
    from .rescale import count_trace

    out = {}
    for path in tr.shipped_traces():
        t = tr.load_trace(path)
        if seq_len and t.seq_len != seq_len:
            continue
        summ = t.meta.get("summary", {})
        ent = {"seq_len": t.seq_len, "text": t.meta.get("text_source"),
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
                    c = count_trace(t.block_max(b), b, b, o)
                    row, tile, nv = (c.row_rescales_per_row, c.tile_rescales_per_tile,
                                     c.n_kv_blocks_per_tile)
                    how = "stored-heads"
                ent["orders"][o][str(b)] = {"row_rescales_per_row": round(row, 4),
                                            "tile_rescales_per_tile": round(tile, 4),
                                            "n_kv_blocks_per_tile": round(nv, 2),
                                            "heads": how}
        out[path.name] = ent
    return out


def _stats(args) -> int:
    from .policies import ORDER_POLICIES

    orders = [o for o in args.orders.split(",") if o]
    bad = [o for o in orders if o not in ORDER_POLICIES]
    if bad:
        print(f"unknown order(s) {bad}; known: {', '.join(sorted(ORDER_POLICIES))}",
              file=sys.stderr)
        return 2
    blocks = [int(b) for b in args.blocks.split(",") if b]
    res = stats(orders, blocks, args.seq_len)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    for name, ent in res.items():
        print(f"{name}  (L={ent['seq_len']}, text={ent['text']}; built-in orders over "
              f"{ent['summary_heads']} heads, others over {ent['stored_heads']} stored)")
        print(f"  {'order':<12}" + "".join(f"   B={b:<3} row  tile " for b in blocks))
        for o, per in ent["orders"].items():
            cells = "".join(f"   {per[str(b)]['row_rescales_per_row']:7.3f} "
                            f"{per[str(b)]['tile_rescales_per_tile']:6.2f}" for b in blocks)
            print(f"  {o:<12}{cells}")
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
    return a.func(a)


if __name__ == "__main__":
    sys.exit(main())
