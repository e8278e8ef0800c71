"""hwcomponents plugin entry point.

hwcomponents finds component models by importing every installed top-level module whose
name starts with ``hwcomponents_`` and collecting the ComponentModel subclasses in it
(see hwcomponents/find_models.py). Re-exporting our models here makes
``component_class: IPCIMMacro`` resolve from any AccelForge arch spec.
"""

from fusioncim_plugin.components import *  # noqa: F401,F403
from fusioncim_plugin.components import __all__  # noqa: F401
