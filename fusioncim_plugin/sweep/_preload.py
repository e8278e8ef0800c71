"""Imported once by the sweep's forkserver, so forked workers start with AccelForge,
hwcomponents and the model already imported (saves ~1 s per worker)."""

import accelforge  # noqa: F401

from .. import arch, designs, evaluation, workload  # noqa: F401
from . import runner, spec  # noqa: F401

try:  # the softmax package (rescale profiles and their data) is optional here
    from .. import softmax  # noqa: F401
except Exception:  # pragma: no cover
    pass
