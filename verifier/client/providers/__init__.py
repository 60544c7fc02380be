"""Evidence providers: configfs-tsm (Linux TDX / SEV-SNP guests), the confidential ACI SKR sidecar, Azure
confidential VMs (the vTPM's HCL report and quote), the simulated
platform for development, and NVIDIA GPUs through NVML (added to a CPU provider with :class:`CpuWithGpus`). Each
turns a :class:`Binding` into evidence items for the API."""

from verifier.client.providers.aci_skr import AciSkrProvider
from verifier.client.providers.azure_cvm import AzureCvmProvider, Endorsements
from verifier.client.providers.base import Binding, EvidenceItem, EvidenceProvider
from verifier.client.providers.configfs_tsm import ConfigfsTsmProvider, TsmFs
from verifier.client.providers.nvml import CpuWithGpus, Nvml, NvmlGpuProvider
from verifier.client.providers.simulated import SimulatedProvider

__all__ = [
    "AciSkrProvider",
    "AzureCvmProvider",
    "Binding",
    "ConfigfsTsmProvider",
    "CpuWithGpus",
    "Endorsements",
    "EvidenceItem",
    "EvidenceProvider",
    "Nvml",
    "NvmlGpuProvider",
    "SimulatedProvider",
    "TsmFs",
]
