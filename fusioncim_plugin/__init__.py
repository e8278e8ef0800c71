"""fusioncim_plugin: FusionCIM (arXiv 2604.25317) on AccelForge + hwcomponents.

    from fusioncim_plugin import evaluate, Workload
    r = evaluate("fusioncim", Workload(model="llama3-8b", phase="prefill", seq_len=4096))
    r.attention.energy_j, r.attention.latency_s, r.attention.tops_per_w

Names are imported lazily so that light entry points (e.g. the trace capture, which
runs in a torch environment) do not pull in AccelForge.
"""

__all__ = ["evaluate", "Result", "Workload", "MODELS", "DESIGNS", "load_arch"]


def __getattr__(name):
    if name in ("evaluate", "Result"):
        from . import evaluation

        return getattr(evaluation, name)
    if name in ("Workload", "MODELS"):
        from . import workload

        return getattr(workload, name)
    if name == "DESIGNS":
        from .designs import DESIGNS

        return DESIGNS
    if name == "load_arch":
        from .arch import load_arch

        return load_arch
    raise AttributeError(name)
