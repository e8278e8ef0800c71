"""Pattern-aware online softmax (FusionCIM idea 3): rescale counting for KV-block visiting
orders, real SmolLM2 score traces, a fitted synthetic model for long contexts.

numpy only at run time; ``capture`` needs torch/transformers (imported inside ``main``).
"""
from .exact import online_softmax, softmax_reference, threshold_rescales
from .policies import ORDER_POLICIES, get_policy, register_policy
from .profile import RescaleProfile, rescale_profile
from .rescale import TileContext, TraceCounts, count_rescales, count_trace

__all__ = [
    "ORDER_POLICIES", "RescaleProfile", "TileContext", "TraceCounts", "count_rescales",
    "count_trace", "get_policy", "online_softmax", "register_policy", "rescale_profile",
    "softmax_reference", "threshold_rescales",
]
