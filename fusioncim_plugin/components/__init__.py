"""hwcomponents models of FusionCIM's components.

Every number comes from the sourced YAML tables in ``energy_tables/`` (loaded by
``fusioncim_plugin.tables``). The plugin module ``hwcomponents_fusioncim`` re-exports
``__all__`` so that ``component_class: IPCIMMacro`` etc. resolve in AccelForge specs.
"""

from fusioncim_plugin.components.dram import DRAM
from fusioncim_plugin.components.global_buffer import GlobalBufferSRAM
from fusioncim_plugin.components.ipcim_macro import IPCIMMacro
from fusioncim_plugin.components.opcim_macro import OPCIMMacro
from fusioncim_plugin.components.softmax_unit import SoftmaxUnit
from fusioncim_plugin.components.staging_buffer import StagingSRAM

__all__ = ["IPCIMMacro", "OPCIMMacro", "SoftmaxUnit", "GlobalBufferSRAM", "DRAM", "StagingSRAM"]
