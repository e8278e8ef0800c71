"""Workloads: LLaMA-3 attention (and the rest of the layer) as shapes and closed forms.

Inputs: a model name from ``MODELS`` (the configs in ``models/``) or a path to a
Hugging Face style ``config.json`` / small YAML, a phase (``prefill`` or ``decode``), the sequence
length and the batch size. Outputs: a validated :class:`Workload` with the attention
shapes (GQA), the closed-form MAC counts every design must reproduce, and the
``jinja_parse_data`` that instantiates ``workloads/attention.yaml`` in AccelForge.

Causal masking: in prefill, query row m attends to keys 0..m, so each of QK^T and PV does
E * L(L+1)/2 useful MACs per query head (about half of the L^2 E of the full square).
Decode: one new query row per sequence attends to all ``seq_len`` cached keys.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, ValidationError,
                      field_validator)


class ModelConfig(BaseModel):
    """Transformer shapes from the model's official config."""

    model_config = ConfigDict(frozen=True)
    name: str
    layers: PositiveInt
    hidden: PositiveInt
    q_heads: PositiveInt
    kv_heads: PositiveInt
    head_dim: PositiveInt
    ffn: PositiveInt
    source: str


# Fields a model config must give: ours (small YAML) or the Hugging Face config.json names.
CONFIG_FIELDS = {"layers": "num_hidden_layers", "hidden": "hidden_size",
                 "q_heads": "num_attention_heads", "kv_heads": "num_key_value_heads",
                 "head_dim": "head_dim", "ffn": "intermediate_size"}


def load_model_config(path, name: str | None = None) -> ModelConfig:
    """A :class:`ModelConfig` from a Hugging Face style ``config.json`` or a small YAML
    with our field names (``layers, hidden, q_heads, kv_heads, head_dim, ffn``).
    ``head_dim`` defaults to hidden / q_heads, as in Hugging Face's LlamaConfig; every
    other field is required (ValueError naming it)."""
    import json
    from pathlib import Path

    import yaml

    p = Path(path)
    try:
        text = p.read_text()
        doc = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        raise ValueError(f"model config {str(p)!r} not found") from None
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"model config {p.name}: not valid "
                         f"{'JSON' if p.suffix == '.json' else 'YAML'}: "
                         f"{' '.join(str(e).split())}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"model config {p.name}: expected a mapping of fields")
    out = {}
    for ours, hf in CONFIG_FIELDS.items():
        v = doc.get(ours, doc.get(hf))
        if v is None and ours == "head_dim":
            q, h = doc.get("q_heads", doc.get("num_attention_heads")), \
                doc.get("hidden", doc.get("hidden_size"))
            v = h // q if isinstance(h, int) and isinstance(q, int) and q else None
        if v is None:
            raise ValueError(f"model config {p.name}: missing field {hf!r} (or {ours!r}); "
                             f"needed: {', '.join(CONFIG_FIELDS.values())}")
        out[ours] = v
    try:
        cfg = ModelConfig(name=name or doc.get("name") or p.stem, **out,
                          source=str(doc.get("_source") or doc.get("source") or p.name))
    except ValidationError as e:
        err = e.errors()[0]
        f = str(err["loc"][0])
        raise ValueError(f"model config {p.name}: {CONFIG_FIELDS.get(f, f)} = "
                         f"{err.get('input')!r}: {err['msg']}") from None
    if cfg.q_heads % cfg.kv_heads:
        raise ValueError(f"model config {p.name}: num_attention_heads {cfg.q_heads} is not a "
                         f"multiple of num_key_value_heads {cfg.kv_heads} (GQA groups)")
    return cfg


def _shipped_models() -> dict[str, ModelConfig]:
    from ._data import data_dir

    return {p.stem: load_model_config(p) for p in sorted(data_dir("models").glob("*.json"))}


# Built-in names: the configs in models/ (official Hugging Face config.json shape fields).
MODELS: dict[str, ModelConfig] = _shipped_models()


def get_model(name: str) -> ModelConfig:
    """A built-in model name, or a path to a config file (.json / .yaml / .yml)."""
    if name in MODELS:
        return MODELS[name]
    if str(name).endswith((".json", ".yaml", ".yml")):
        return _model_from_file(str(name))
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(sorted(MODELS))} or a "
                     f"path to a Hugging Face style config.json / a YAML with "
                     f"{', '.join(CONFIG_FIELDS)}")


@functools.lru_cache(maxsize=64)
def _model_from_file(path: str) -> ModelConfig:
    return load_model_config(path)


class Workload(BaseModel):
    """One layer of a model in one phase; ``evaluate`` reports per layer and per model."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="a name in MODELS or a path to a model config file")
    phase: Literal["prefill", "decode"] = "prefill"
    seq_len: PositiveInt = Field(4096, description="prompt length (prefill) or KV-cache length (decode)")
    batch: PositiveInt = 1
    causal: bool = True

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        get_model(v)  # a built-in name or a readable, complete config file
        return v

    @field_validator("seq_len", "batch", mode="before")
    @classmethod
    def _strict_int(cls, v):
        # Reject 4096.5, "4k", True; accept 4096 and "4096" (from the CLI).
        if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
            raise ValueError("must be a positive integer")
        return v

    # ----- shapes -----------------------------------------------------------------
    @property
    def cfg(self) -> ModelConfig:
        return get_model(self.model)

    @property
    def group(self) -> int:
        """Query heads per KV head (GQA)."""
        return self.cfg.q_heads // self.cfg.kv_heads

    @property
    def n_queries(self) -> int:
        """Query rows per head and sequence."""
        return self.seq_len if self.phase == "prefill" else 1

    @property
    def tokens(self) -> int:
        """Tokens that pass through the linear layers (all sequences of the batch)."""
        return self.batch * self.n_queries

    @property
    def is_causal_square(self) -> bool:
        return self.phase == "prefill" and self.causal

    def visible_keys(self, row: int) -> int:
        """Keys query row ``row`` (0-based) attends to."""
        if self.phase == "decode":
            return self.seq_len
        return row + 1 if self.causal else self.seq_len

    # ----- closed forms -----------------------------------------------------------
    def attention_macs(self) -> int:
        """Useful MACs of QK^T plus PV for one layer (masked products excluded)."""
        c = self.cfg
        if self.is_causal_square:
            pairs = self.seq_len * (self.seq_len + 1) // 2
        else:
            pairs = self.n_queries * self.seq_len
        return 2 * self.batch * c.q_heads * pairs * c.head_dim

    def score_elements(self) -> int:
        """Elements of S (= of P) that the softmax unit processes for one layer."""
        c = self.cfg
        pairs = (self.seq_len * (self.seq_len + 1) // 2 if self.is_causal_square
                 else self.n_queries * self.seq_len)
        return self.batch * c.q_heads * pairs

    def linear_weights(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each weight matrix of one layer: Q/K/V/O projections and the
        SwiGLU FFN (gate, up, down)."""
        c = self.cfg
        q, kv = c.q_heads * c.head_dim, c.kv_heads * c.head_dim
        return {"Wq": (c.hidden, q), "Wk": (c.hidden, kv), "Wv": (c.hidden, kv),
                "Wo": (q, c.hidden), "W_gate": (c.hidden, c.ffn),
                "W_up": (c.hidden, c.ffn), "W_down": (c.ffn, c.hidden)}

    def linear_macs(self) -> int:
        return self.tokens * sum(i * o for i, o in self.linear_weights().values())

    def jinja_parse_data(self) -> dict:
        """Parameters of workloads/attention.yaml and layer.yaml for AccelForge (full
        square: AccelForge's analytical model cannot express the causal mask)."""
        c = self.cfg
        return {"BATCH": self.batch, "N_KV_HEADS": c.kv_heads, "GROUP": self.group,
                "N_QUERIES": self.n_queries, "N_KEYS": self.seq_len, "HEAD_DIM": c.head_dim,
                "HIDDEN": c.hidden, "FFN": c.ffn}
