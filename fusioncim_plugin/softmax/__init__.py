"""Pattern-aware online softmax (FusionCIM idea 3): rescale counting for KV-block visiting
orders, real attention traces of any model (SmolLM2, Gemma-3 with sliding windows), one
fitted synthetic model per model for long contexts.

numpy only at run time; ``capture`` needs torch/transformers (imported inside ``main``).
"""
# Names resolve on first use, so that `fusioncim --help` and the CLI's other commands
# do not import numpy through this package.
_WHERE = {
    "online_softmax": "exact", "softmax_reference": "exact", "threshold_rescales": "exact",
    "ORDER_POLICIES": "policies", "get_policy": "policies", "register_policy": "policies",
    "RescaleProfile": "profile", "rescale_profile": "profile",
    "TileContext": "rescale", "TraceCounts": "rescale", "count_rescales": "rescale",
    "count_trace": "rescale",
}


def __getattr__(name):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(name)


__all__ = [
    "ORDER_POLICIES", "RescaleProfile", "TileContext", "TraceCounts", "count_rescales",
    "count_trace", "get_policy", "online_softmax", "register_policy", "rescale_profile",
    "softmax_reference", "threshold_rescales",
]
