"""A SIMULATED HGX board in protected-PCIe (PPCIe) mode: 8 Hopper GPUs and 4 NVSwitches (LS10) whose reports agree
on the topology (nvidia-gpu.md §7), each with its own nonce, chain, RIMs and OCSP responses.

SIMULATION ONLY; keys and certificates come from :class:`verifier.simulation.nvidia_pki.NvidiaPki`. Shapes mirror
the real PPCIe sets M1 and M2:

* every GPU: PROTECTED_PCIE_STATUS 0xAA, FEATURE_FLAG 2 (PPCIE), project G520/0200/885 (M1's values), and one
  SWITCH_PDI entry per NVLink port (18): the DEVICE_PDI of the switch that port reaches, **byte-reversed**; a
  port the caller marks unconnected reads 8 zero bytes;
* every switch: DEVICE_PDI = its PDI (the tail of its BROM serial), SWITCH_GPU_PDIS = the 8 GPUs' PDIs (the tails of
  their BROM serials, as on M1/M2) in GPU order, then one GPU slot byte per switch port
  (:func:`verifier.simulation.nvidia_options.switch_port_slots`), POSITION_ID = its index.

Items: GPUs are devices 0..7, switches 8..11 (:meth:`HgxEvidence.items`). Defects (:class:`HgxDefect`) each break
one relation on one device; everything else stays byte-identical.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from verifier.errors import Code
from verifier.simulation.amd_options import sim_bytes
from verifier.simulation.nvidia_options import (
    FEATURE_MPT,
    FEATURE_PPCIE,
    HGX_BOARD_ID,
    HGX_CHIP_SKU,
    HGX_DRIVER_VERSION,
    HGX_GPUS,
    HGX_PROJECT,
    HGX_PROJECT_SKU,
    HGX_SWITCHES,
    HGX_VBIOS_VERSION,
    GpuOptions,
    SwitchOptions,
    gpu_port_switches,
    switch_port_slots,
)
from verifier.simulation.nvidia_pki import NvidiaEvidence, NvidiaPki, SwitchEvidence, default_nvidia_pki
from verifier.simulation.nvidia_report_builder import STATUS_DISABLED, STATUS_ENABLED

HGX_DEVICES: Final = HGX_GPUS + HGX_SWITCHES
#: The devices the defects hit (indices within their kind).
DEFECT_GPU: Final = 3
DEFECT_SWITCH: Final = 2
DEFECT_LISTED_GPU: Final = 5
NOT_PPCIE_GPU: Final = 6


class HgxDefect(StrEnum):
    """One broken PPCIe relation (§7). After "Reject:", why an exact verifier refuses the set."""

    GPU_SWITCH_PDI_WRONG = "gpu_switch_pdi_wrong"
    """GPU :data:`DEFECT_GPU`'s port 0 lists a PDI that is no switch's (byte-reversed like the others).
    Reject: the GPU's switch PDIs are not exactly the 4 switches' PDIs."""
    GPU_SWITCH_PDI_NOT_REVERSED = "gpu_switch_pdi_not_reversed"
    """GPU :data:`DEFECT_GPU` lists its switches' PDIs in the switch's own byte order (not reversed).
    Reject: a verifier comparing the reversed values finds none of the switches."""
    SWITCH_GPU_LIST_DIFFERS = "switch_gpu_list_differs"
    """Switch :data:`DEFECT_SWITCH` lists another PDI in place of GPU :data:`DEFECT_LISTED_GPU`'s.
    Reject: the switches' GPU lists are not identical."""
    GPU_NOT_PPCIE = "gpu_not_ppcie"
    """GPU :data:`NOT_PPCIE_GPU` is not in PPCIe mode: PROTECTED_PCIE_STATUS 0x55 and FEATURE_FLAG 1 (MPT), the
    pair a GPU outside PPCIe mode reports. Reject (policy require_ppcie): not protected PCIe."""


EXPECTED_HGX_CODES: Final[Mapping[HgxDefect, Code]] = {
    HgxDefect.GPU_SWITCH_PDI_WRONG: Code.NVIDIA_TOPOLOGY_MISMATCH,
    HgxDefect.GPU_SWITCH_PDI_NOT_REVERSED: Code.NVIDIA_TOPOLOGY_MISMATCH,
    HgxDefect.SWITCH_GPU_LIST_DIFFERS: Code.NVIDIA_TOPOLOGY_MISMATCH,
    HgxDefect.GPU_NOT_PPCIE: Code.NVIDIA_POLICY_PPCIE_REQUIRED,
}
#: Which device each defect changes: ("gpu" | "switch", index within its kind).
DEFECT_TARGET: Final[Mapping[HgxDefect, tuple[str, int]]] = {
    HgxDefect.GPU_SWITCH_PDI_WRONG: ("gpu", DEFECT_GPU),
    HgxDefect.GPU_SWITCH_PDI_NOT_REVERSED: ("gpu", DEFECT_GPU),
    HgxDefect.SWITCH_GPU_LIST_DIFFERS: ("switch", DEFECT_SWITCH),
    HgxDefect.GPU_NOT_PPCIE: ("gpu", NOT_PPCIE_GPU),
}


@dataclass(frozen=True, slots=True)
class HgxEvidence:
    """The 8 GPUs' and 4 switches' evidence of one simulated HGX board."""

    gpus: tuple[NvidiaEvidence, ...]
    switches: tuple[SwitchEvidence, ...]
    defect: HgxDefect | None

    @property
    def devices(self) -> tuple[NvidiaEvidence | SwitchEvidence, ...]:
        """GPUs 0..7 then switches 0..3: device index i is ``devices[i]``."""
        return (*self.gpus, *self.switches)

    def items(self, *, carry_collateral: bool = False) -> list[dict[str, object]]:
        """The 12 ``nvidia-gpu`` evidence items, device indices 0..11 (GPUs, then switches)."""
        return [d.evidence_item(i, carry_collateral=carry_collateral) for i, d in enumerate(self.devices)]


def reversed_pdi(pdi: bytes) -> bytes:
    """A switch PDI as a GPU's SWITCH_PDI lists it: byte-reversed relative to the switch's DEVICE_PDI."""
    return pdi[::-1]


def build_hgx(
    nonces: Sequence[bytes],
    *,
    defect: HgxDefect | None = None,
    unconnected: Collection[tuple[int, int]] = (),
    pki: NvidiaPki | None = None,
) -> HgxEvidence:
    """The board's evidence: ``nonces[i]`` is device i's request nonce (GPUs 0..7, switches 8..11; 32 bytes each).
    ``unconnected``: (gpu, gpu port) links that are down: the GPU reports zero for the port, the switch 0xFF for
    its end. ``defect``: one :class:`HgxDefect`. Raises ValueError for a wrong number or size of nonces or a
    link outside the board."""
    if len(nonces) != HGX_DEVICES or any(len(n) != 32 for n in nonces):
        raise ValueError(f"build_hgx needs {HGX_DEVICES} nonces of 32 bytes (GPUs 0..7, switches 8..11)")
    if any(not (0 <= g < HGX_GPUS and 0 <= p < len(gpu_port_switches(0))) for g, p in unconnected):
        raise ValueError("unconnected links are (gpu 0..7, port 0..17)")
    pki = pki or default_nvidia_pki()
    switch_pdis = [pki.switch_pdi(s) for s in range(HGX_SWITCHES)]
    gpu_pdis = tuple(pki.gpu_pdi(g) for g in range(HGX_GPUS))
    gpus = []
    for g in range(HGX_GPUS):
        ports = [
            bytes(8) if (g, p) in unconnected else reversed_pdi(switch_pdis[s])
            for p, s in enumerate(gpu_port_switches(g))
        ]
        ppcie, feature = STATUS_ENABLED, FEATURE_PPCIE
        if g == DEFECT_GPU and defect is HgxDefect.GPU_SWITCH_PDI_WRONG:
            ports[0] = reversed_pdi(sim_bytes("nvidia/hgx/foreign-switch-pdi", 8))
        elif g == DEFECT_GPU and defect is HgxDefect.GPU_SWITCH_PDI_NOT_REVERSED:
            ports = [p if not any(p) else reversed_pdi(p) for p in ports]
        elif g == NOT_PPCIE_GPU and defect is HgxDefect.GPU_NOT_PPCIE:
            ppcie, feature = STATUS_DISABLED, FEATURE_MPT
        options = GpuOptions(
            device_index=g,
            nonce=nonces[g],
            responder_nonce=sim_bytes(f"nvidia/hgx/responder-nonce/{g}", 32),
            driver_version=HGX_DRIVER_VERSION,
            vbios_version=HGX_VBIOS_VERSION,
            project=HGX_PROJECT,
            project_sku=HGX_PROJECT_SKU,
            chip_sku=HGX_CHIP_SKU,
            board_id=HGX_BOARD_ID,
            protected_pcie_status=ppcie,
            switch_pdis=tuple(ports),
            feature_flag=feature,
        )
        gpus.append(pki.build(options))
    switches = []
    for s in range(HGX_SWITCHES):
        listed = gpu_pdis
        if s == DEFECT_SWITCH and defect is HgxDefect.SWITCH_GPU_LIST_DIFFERS:
            other = sim_bytes("nvidia/hgx/foreign-gpu-pdi", 8)
            listed = tuple(other if i == DEFECT_LISTED_GPU else p for i, p in enumerate(gpu_pdis))
        options_s = SwitchOptions(
            device_index=s,
            nonce=nonces[HGX_GPUS + s],
            responder_nonce=sim_bytes(f"nvidia/hgx/responder-nonce/{HGX_GPUS + s}", 32),
            gpu_pdis=listed,
            port_gpu_slots=switch_port_slots(s, unconnected),
        )
        switches.append(pki.build_switch(options_s))
    return HgxEvidence(gpus=tuple(gpus), switches=tuple(switches), defect=defect)


__all__ = [
    "DEFECT_GPU",
    "DEFECT_LISTED_GPU",
    "DEFECT_SWITCH",
    "DEFECT_TARGET",
    "EXPECTED_HGX_CODES",
    "HGX_DEVICES",
    "NOT_PPCIE_GPU",
    "HgxDefect",
    "HgxEvidence",
    "build_hgx",
    "reversed_pdi",
]
