"""Workloads: LLaMA-3 attention (and the rest of the layer) as shapes and closed forms.

Inputs: a model name from ``MODELS``, a phase (``prefill`` or ``decode``), the sequence
length and the batch size. Outputs: a validated :class:`Workload` with the attention
shapes (GQA), the closed-form MAC counts every design must reproduce, and the
``jinja_parse_data`` that instantiates ``workloads/attention.yaml`` in AccelForge.

Causal masking: in prefill, query row m attends to keys 0..m, so each of QK^T and PV does
E * L(L+1)/2 useful MACs per query head (about half of the L^2 E of the full square).
Decode: one new query row per sequence attends to all ``seq_len`` cached keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator


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


MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in [
        ModelConfig(name="llama3-8b", layers=32, hidden=4096, q_heads=32, kv_heads=8,
                    head_dim=128, ffn=14336,
                    source="Meta-Llama-3-8B config.json (PAPER.md table)"),
        ModelConfig(name="llama3-70b", layers=80, hidden=8192, q_heads=64, kv_heads=8,
                    head_dim=128, ffn=28672,
                    source="Meta-Llama-3-70B config.json (PAPER.md table)"),
    ]
}


class Workload(BaseModel):
    """One layer of a model in one phase; ``evaluate`` reports per layer and per model."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description=f"one of {sorted(MODELS)}")
    phase: Literal["prefill", "decode"] = "prefill"
    seq_len: PositiveInt = Field(4096, description="prompt length (prefill) or KV-cache length (decode)")
    batch: PositiveInt = 1
    causal: bool = True

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        if v not in MODELS:
            raise ValueError(f"unknown model {v!r}; allowed: {', '.join(sorted(MODELS))}")
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
        return MODELS[self.model]

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
