"""Designs: an arch spec + a mapping + the dataflow that counts its actions.

Each entry names the AccelForge arch spec (``arch_specs/``), the LoopTree mapping
(``mappings/``) it evaluates, the closed-form dataflow in :mod:`fusioncim_plugin.dataflow`
or :mod:`fusioncim_plugin.baselines`, the values of its free parameters that
``evaluate`` searches (``space``), the design's fixed dataflow options (``options``,
e.g. how K is transposed) and the default online-softmax KV-block order (None: the
design does not run fused online softmax, so no rescale is charged).
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
    space: Callable | None = None  # (arch, workload) -> {param: candidate values}
    options: tuple = ()  # fixed keyword arguments of the dataflow


DESIGNS: dict[str, Design] = {
    d.name: d
    for d in [
        Design("dcim", "ipcim_baseline", "unfused_kv_stationary",
               baselines.unfused_kv_stationary, None,
               "ordinary digital CIM: QK^T, softmax and PV as separate operators; K and V "
               "written into the arrays as weights (K through the buffer's transpose "
               "stage); S and P through the buffer, to DRAM for what does not fit",
               reference="the paper's 'ordinary DCIM' baseline (Xuan et al., arXiv "
                         "2604.25317, 2026); our substrate",
               space=baselines.unfused_space, options=(("transpose", "buffer"),)),
        Design("trancim-like", "ipcim_baseline", "unfused_kv_stationary",
               baselines.unfused_kv_stationary, None,
               "TranCIM-like KV-stationary: K/V written into the arrays and rewritten per Q "
               "tile, K through the macro's bitline-transpose path; exact two-pass softmax "
               "over the tile's S in the buffer",
               reference="TranCIM, Tu et al., JSSC 2023 (bitline-transpose CIM); the "
                         "paper's 'TranCIM-like' baseline",
               space=baselines.trancim_space, options=(("transpose", "bitline"),)),
        Design("ipcim-fused", "ipcim_baseline", "fused_kv_stationary",
               baselines.fused_kv_stationary, "natural",
               "IP-CIM with fused online softmax, KV-stationary: K/V re-written per Q "
               "tile (K through the bitline-transpose path), O accumulated in the buffer",
               reference="FlashAttention-style tiling on an IP-CIM substrate (MulTCIM-like "
                         "macros, Tu et al., ISSCC 2023 / JSSC 2024; TranCIM's transpose)",
               space=baselines.fused_space, options=(("transpose", "bitline"),)),
        Design("hybrid", "fusioncim", "hybrid_k_stationary", baselines.hybrid_k_stationary,
               "natural",
               "ablation 1: hybrid IP/OP-CIM pipeline only (K stationary in IP-CIM, "
               "bitline-transpose write; O in OP-CIM), natural KV order",
               overrides=(("IP_STATIONARY", "K"),), space=baselines.hybrid_space,
               options=(("transpose", "bitline"),)),
        Design("hybrid-qo", "fusioncim", "qo_stationary", dataflow.qo_stationary, "natural",
               "ablation 2: + QO-stationary (Q in IP-CIM, O in OP-CIM), natural KV order",
               space=dataflow.qo_space),
        Design("fusioncim", "fusioncim", "qo_stationary", dataflow.qo_stationary,
               "adaptive",
               "FusionCIM: + pattern-aware online softmax (adaptive KV-block order)",
               reference="Xuan et al., arXiv 2604.25317 (2026)", space=dataflow.qo_space),
    ]
}
# The paper's two rebuilt baselines and our stronger fused one.
BASELINES = ("dcim", "trancim-like", "ipcim-fused")
# Former names still accepted.
ALIASES = {"ipcim-unfused": "dcim"}


def design_arch(design: str, arch: str | None = None,
                baseline_arch: str | None = None) -> str | None:
    """The arch spec ``design`` runs on when a caller plugs in its own: ``arch`` replaces
    FusionCIM's spec (the designs on ``fusioncim``), ``baseline_arch`` the IP-CIM
    baselines' (None: the design's own)."""
    return (arch if get_design(design).arch == "fusioncim" else baseline_arch) or None


def get_design(name: str) -> Design:
    name = ALIASES.get(name, name)
    if name not in DESIGNS:
        raise ValueError(f"unknown design {name!r}; allowed: {', '.join(DESIGNS)}")
    return DESIGNS[name]
