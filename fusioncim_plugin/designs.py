"""Designs: an arch spec + a mapping + the dataflow that counts its actions.

Each entry names the AccelForge arch spec (``arch_specs/``), the LoopTree mapping
(``mappings/``) it evaluates, the closed-form dataflow in :mod:`fusioncim_plugin.dataflow`,
and the default online-softmax KV-block order (None: the design does not run fused
online softmax, so no rescale is charged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import baselines, dataflow


@dataclass(frozen=True)
class Design:
    name: str
    arch: str
    mapping: str
    dataflow: Callable
    softmax_order: str | None
    description: str
    overrides: tuple = ()  # arch-spec variables this design fixes
    reference: str = ""


DESIGNS: dict[str, Design] = {
    d.name: d
    for d in [
        Design("ipcim-unfused", "ipcim_baseline", "unfused_kv_stationary",
               baselines.unfused_kv_stationary, None,
               "prior SOTA CIM, unfused: K/V stationary in IP-CIM, S buffered (DRAM if it "
               "does not fit), separate softmax pass",
               reference="TranCIM, Tu et al., JSSC 2023 (dataflow style; our substrate)"),
        Design("ipcim-fused", "ipcim_baseline", "fused_kv_stationary",
               baselines.fused_kv_stationary, "natural",
               "IP-CIM with fused online softmax, KV-stationary: K/V re-written per Q "
               "tile, K read transposed, O accumulated in the buffer",
               reference="FlashAttention-style tiling on an IP-CIM substrate (MulTCIM-like "
                         "macros, Tu et al., ISSCC 2023 / JSSC 2024)"),
        Design("hybrid", "fusioncim", "hybrid_k_stationary", baselines.hybrid_k_stationary,
               "natural",
               "ablation 1: hybrid IP/OP-CIM pipeline only (K stationary in IP-CIM, O in "
               "OP-CIM), natural KV order", overrides=(("IP_STATIONARY", "K"),)),
        Design("hybrid-qo", "fusioncim", "qo_stationary", dataflow.qo_stationary, "natural",
               "ablation 2: + QO-stationary (Q in IP-CIM, O in OP-CIM), natural KV order"),
        Design("fusioncim", "fusioncim", "qo_stationary", dataflow.qo_stationary,
               "adaptive",
               "FusionCIM: + pattern-aware online softmax (adaptive KV-block order)",
               reference="Xuan et al., arXiv 2604.25317 (2026)"),
    ]
}
BASELINES = ("ipcim-unfused", "ipcim-fused")


def design_arch(design: str, arch: str | None = None,
                baseline_arch: str | None = None) -> str | None:
    """The arch spec ``design`` runs on when a caller plugs in its own: ``arch`` replaces
    FusionCIM's spec (the designs on ``fusioncim``), ``baseline_arch`` the IP-CIM
    baselines' (None: the design's own)."""
    return (arch if get_design(design).arch == "fusioncim" else baseline_arch) or None


def get_design(name: str) -> Design:
    if name not in DESIGNS:
        raise ValueError(f"unknown design {name!r}; allowed: {', '.join(DESIGNS)}")
    return DESIGNS[name]
