"""What can vary in simulated NVIDIA GPU evidence (:mod:`verifier.simulation.nvidia_pki`): the genuine
:class:`GpuOptions` and the :class:`Defect` catalogue, one defect at a time, with the stable code an exact verifier
must answer each with (:func:`expected_code`). SIMULATION ONLY; no keys or certificates here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final, Literal

from verifier.errors import Code
from verifier.simulation.amd_options import sim_bytes
from verifier.simulation.nvidia_report_builder import (
    GPU_BLOCKS,
    STATUS_DISABLED,
    STATUS_ENABLED,
    SWITCH_BLOCKS,
    SWITCH_GPUS,
    SWITCH_PORTS,
    UNUSED_PORT,
)

#: Values of the real H100 PCIe report N1 (nvidia-gpu.md; shared vectors PROVENANCE "N1").
DEFAULT_DRIVER_VERSION: Final = "550.90.07"
DEFAULT_VBIOS_VERSION: Final = "96.00.9F.00.01"
DEFAULT_PROJECT: Final = "1010"
DEFAULT_PROJECT_SKU: Final = "0200"
DEFAULT_CHIP_SKU: Final = "882"
DEFAULT_BOARD_ID: Final = 0x3B1
#: H100 NVLink ports: a GPU's SWITCH_PDI lists one 8-byte PDI per port (zero: unconnected).
NVLINK_PORTS: Final = 18
FEATURE_SPT: Final = 0
FEATURE_MPT: Final = 1
FEATURE_PPCIE: Final = 2
#: Values of the real B200 reports (M3): HGX B200 G525/0220/886, CHIP_INFO GB100, SYS_ENABLE_STATUS 0x0707.
BLACKWELL_DRIVER_VERSION: Final = "590.48.01"
BLACKWELL_VBIOS_VERSION: Final = "97.00.D9.00.35"
BLACKWELL_PROJECT: Final = "G525"
BLACKWELL_PROJECT_SKU: Final = "0220"
BLACKWELL_CHIP_SKU: Final = "886"
BLACKWELL_BOARD_ID: Final = 0x66F
BLACKWELL_CHIP_INFO: Final = "GB100"
BLACKWELL_SYS_ENABLE_STATUS: Final = 0x0707
#: Values of the real HGX H100 PPCIe set (M1): G520/0200/885, driver 590.12, VBIOS 96.00.A5.00.01.
HGX_DRIVER_VERSION: Final = "590.12"
HGX_VBIOS_VERSION: Final = "96.00.A5.00.01"
HGX_PROJECT: Final = "G520"
HGX_PROJECT_SKU: Final = "0200"
HGX_CHIP_SKU: Final = "885"
HGX_BOARD_ID: Final = 0x437
#: Values of the real NVSwitch report S1: LS10 BIOS 96.10.55.00.01, FLOORSWEPT_PORTS 0x00EC, LOCK_SWITCH_STATUS 1,
#: and its per-index measurement counts (26 entries, as S1 carries them).
DEFAULT_SWITCH_BIOS_VERSION: Final = "96.10.55.00.01"
DEFAULT_FLOORSWEPT_PORTS: Final = 0x00EC
DEFAULT_LOCK_SWITCH_STATUS: Final = 1
LS10_MSRSCNT: Final = (1, 4, 1, 1, 1, 0, 1, 0, 110, 1, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
Architecture = Literal["HOPPER", "BLACKWELL"]
#: The HGX board: 8 GPUs, 4 NVSwitches. GPU g's NVLink port p reaches switch ``(HGX_PORT_PATTERN[p] + g) % 4``;
#: the pattern is GPU 0's of the real M1 set (5, 4, 5, 4 links to its four switches).
HGX_GPUS: Final = 8
HGX_SWITCHES: Final = 4
HGX_PORT_PATTERN: Final = (0, 0, 1, 1, 0, 0, 2, 2, 1, 1, 0, 2, 3, 3, 2, 2, 3, 3)


def gpu_port_switches(gpu: int) -> tuple[int, ...]:
    """The switch each of GPU ``gpu``'s :data:`NVLINK_PORTS` ports reaches on the simulated HGX board."""
    return tuple((s + gpu) % HGX_SWITCHES for s in HGX_PORT_PATTERN)


def switch_port_slots(switch: int, unconnected: Collection[tuple[int, int]] = ()) -> bytes:
    """SWITCH_GPU_PDIS' port bytes of switch ``switch`` on the simulated HGX board: its ports, from port 0, take
    GPU 0's links to it in GPU port order, then GPU 1's, …; each holds the GPU's slot (0..7). A link listed in
    ``unconnected`` as (gpu, gpu port) keeps its port but reads :data:`UNUSED_PORT`, like every port after the
    last link."""
    slots = bytearray([UNUSED_PORT]) * SWITCH_PORTS
    port = 0
    for gpu in range(HGX_GPUS):
        for gpu_port, target in enumerate(gpu_port_switches(gpu)):
            if target == switch:
                if (gpu, gpu_port) not in unconnected:
                    slots[port] = gpu
                port += 1
    return bytes(slots)


#: The RIM index (0-based, SPDM block index - 1) :attr:`Defect.MEASUREMENT_CHANGED` changes by default: index 9,
#: the VBIOS index real GPUs fail most (pitfall P7).
DEFAULT_CHANGED_INDEX: Final = 9
#: The RIM index :attr:`Defect.MEASUREMENT_CHANGED` changes on a Blackwell GPU: the B200 RIMs do not cover index 9
#: (a changed value there would only be "not in RIM"), so the VBIOS index 8 next to it.
BLACKWELL_CHANGED_INDEX: Final = 8


@dataclass(frozen=True, slots=True)
class GpuOptions:
    """Genuine variations of one simulated Hopper GPU's evidence. Defaults: the H100 PCIe of vector N1 (driver
    550.90.07, VBIOS 96.00.9F.00.01, 1010/0200/882, NVDEC0 disabled, PPCIe off) with a newer driver's trailing
    TLVs (18 unconnected switch PDIs, OPAQUE_DATA_VERSION 1, FEATURE_FLAG SPT); set those to None to leave them out.

    ``device_index`` picks the GPU: each index has its own BROM and attestation keys, PDI and FWID.
    ``measurements`` overrides runtime values (SPDM block index, 1-based -> 48 bytes); the others come from
    :meth:`verifier.simulation.nvidia_pki.NvidiaPki.default_measurements`. ``fwid`` None: this GPU's FWID.
    ``boot`` names the boot: the leaf (attestation key) is minted per boot, the BROM is per GPU.
    ``architecture`` "BLACKWELL" builds a GB100 GPU (GB100 chain and FWID extension, Blackwell opaque TLVs with
    ``sys_enable_status`` and ``chip_info``, ``NV_GPU_CC_DRIVER_<chip_info>_…`` driver RIM): start from
    :func:`blackwell_options`, which sets the B200 values. ``protected_pcie_status`` None leaves the TLV out
    (Blackwell reports have none); ``sys_enable_status`` and ``chip_info`` are Blackwell-only.
    """

    device_index: int = 0
    boot: int = 0
    nonce: bytes = sim_bytes("nvidia/nonce", 32)
    responder_nonce: bytes = sim_bytes("nvidia/responder-nonce", 32)
    driver_version: str = DEFAULT_DRIVER_VERSION
    vbios_version: str = DEFAULT_VBIOS_VERSION
    project: str = DEFAULT_PROJECT
    project_sku: str = DEFAULT_PROJECT_SKU
    chip_sku: str = DEFAULT_CHIP_SKU
    board_id: int = DEFAULT_BOARD_ID
    measurements: Mapping[int, bytes] | None = None
    fwid: bytes | None = None
    include_fwid: bool = True
    nvdec0_status: int = STATUS_DISABLED
    protected_pcie_status: int | None = STATUS_DISABLED
    switch_pdis: tuple[bytes, ...] | None = (bytes(8),) * NVLINK_PORTS
    opaque_data_version: int | None = 1
    feature_flag: int | None = FEATURE_SPT
    architecture: Architecture = "HOPPER"
    sys_enable_status: int = BLACKWELL_SYS_ENABLE_STATUS
    chip_info: str = BLACKWELL_CHIP_INFO

    def check(self) -> None:
        """Raise ValueError for options no genuine GPU produces (use a :class:`Defect` instead)."""
        if not 0 <= self.device_index < 256:
            raise ValueError("device_index must be in 0..255")
        if len(self.nonce) != 32 or len(self.responder_nonce) != 32:
            raise ValueError("nonces are 32 bytes")
        if self.fwid is not None and len(self.fwid) != 48:
            raise ValueError("fwid is 48 bytes")
        if self.measurements is not None and any(
            not 1 <= i <= GPU_BLOCKS or len(v) != 48 for i, v in self.measurements.items()
        ):
            raise ValueError(f"measurements: block indices 1..{GPU_BLOCKS}, 48-byte values")
        if self.switch_pdis is not None and any(len(p) != 8 for p in self.switch_pdis):
            raise ValueError("switch PDIs are 8 bytes each")
        if self.architecture == "BLACKWELL" and (self.opaque_data_version is None or self.feature_flag is None):
            raise ValueError("Blackwell reports always carry OPAQUE_DATA_VERSION and FEATURE_FLAG")


def blackwell_options(**changes: object) -> GpuOptions:
    """:class:`GpuOptions` of the real B200 (M3: G525/0220/886, driver 590.48.01, VBIOS 97.00.D9.00.35, NVDEC0
    enabled, no PPCIe or switch fields, FEATURE_FLAG MPT) with ``changes`` applied."""
    base = GpuOptions(
        architecture="BLACKWELL",
        driver_version=BLACKWELL_DRIVER_VERSION,
        vbios_version=BLACKWELL_VBIOS_VERSION,
        project=BLACKWELL_PROJECT,
        project_sku=BLACKWELL_PROJECT_SKU,
        chip_sku=BLACKWELL_CHIP_SKU,
        board_id=BLACKWELL_BOARD_ID,
        nvdec0_status=STATUS_ENABLED,
        protected_pcie_status=None,
        switch_pdis=None,
        feature_flag=FEATURE_MPT,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SwitchOptions:
    """Genuine variations of one simulated NVSwitch (LS10). Defaults: the real S1 report's fields (BIOS
    96.10.55.00.01, FLOORSWEPT_PORTS 0x00EC, LOCK_SWITCH_STATUS 1, its measurement counts).

    ``device_index`` picks the switch (its BROM and attestation keys, PDI and FWID); ``pdi`` None: this switch's
    PDI (:meth:`verifier.simulation.nvidia_pki.NvidiaPki.switch_pdi`). ``gpu_pdis`` None: the PDIs of simulated GPUs
    0..7 (:meth:`~verifier.simulation.nvidia_pki.NvidiaPki.gpu_pdi`); ``port_gpu_slots`` None: this switch's
    ports on the simulated HGX board (:func:`switch_port_slots`).
    ``position_id`` None: ``device_index``. ``measurements``: SPDM block index 1..31 -> 48 bytes.
    """

    device_index: int = 0
    boot: int = 0
    nonce: bytes = sim_bytes("nvidia/nonce", 32)
    responder_nonce: bytes = sim_bytes("nvidia/switch-responder-nonce", 32)
    bios_version: str = DEFAULT_SWITCH_BIOS_VERSION
    pdi: bytes | None = None
    gpu_pdis: tuple[bytes, ...] | None = None
    port_gpu_slots: bytes | None = None
    floorswept_ports: int = DEFAULT_FLOORSWEPT_PORTS
    position_id: int | None = None
    lock_switch_status: int = DEFAULT_LOCK_SWITCH_STATUS
    msrscnt: tuple[int, ...] = LS10_MSRSCNT
    measurements: Mapping[int, bytes] | None = None
    fwid: bytes | None = None

    def check(self) -> None:
        """Raise ValueError for options no genuine NVSwitch produces."""
        if not 0 <= self.device_index < 256:
            raise ValueError("device_index must be in 0..255")
        if len(self.nonce) != 32 or len(self.responder_nonce) != 32:
            raise ValueError("nonces are 32 bytes")
        if self.fwid is not None and len(self.fwid) != 48:
            raise ValueError("fwid is 48 bytes")
        if self.pdi is not None and len(self.pdi) != 8:
            raise ValueError("a switch PDI is 8 bytes")
        if self.gpu_pdis is not None and (len(self.gpu_pdis) != SWITCH_GPUS or any(len(p) != 8 for p in self.gpu_pdis)):
            raise ValueError(f"a switch lists {SWITCH_GPUS} GPU PDIs of 8 bytes each")
        if self.port_gpu_slots is not None and len(self.port_gpu_slots) != SWITCH_PORTS:
            raise ValueError(f"a switch has {SWITCH_PORTS} port slots (bytes)")
        if self.measurements is not None and any(
            not 1 <= i <= SWITCH_BLOCKS or len(v) != 48 for i, v in self.measurements.items()
        ):
            raise ValueError(f"measurements: block indices 1..{SWITCH_BLOCKS}, 48-byte values")


class Defect(StrEnum):
    """One injected defect: each makes exactly one check of nvidia-gpu.md §2-§4 fail (or, for the OCSP ones, one
    revocation answer). After "Reject:", why an exact verifier refuses it; :func:`expected_code` gives the code."""

    WRONG_ROOT = "wrong_root"
    """The whole device chain (root, Identity, ICA, BROM, leaf) is a forger's twin: NVIDIA's names, other keys.
    Reject: the supplied root is not the pinned one and cert 3 does not verify under it."""
    LEAF_WRONG_BROM = "leaf_wrong_brom"
    """The leaf names this GPU's BROM as issuer but is signed by another GPU's BROM key.
    Reject: the link leaf -> BROM does not verify."""
    FWID_MISMATCH = "fwid_mismatch"
    """The leaf's FWID extension (2.23.133.5.4.1) carries another FWID than the report's opaque FWID.
    Reject: FWID binding (§3)."""
    FWID_MISSING = "fwid_missing"
    """The report carries no FWID TLV (the leaf still does) although OPAQUE_DATA_VERSION is 1 and the driver 550+.
    Reject: policy requires the FWID (default rule, §3)."""
    LEAF_FWID_EXTENSION_MISSING = "leaf_fwid_extension_missing"
    """The leaf has no FWID extension; the report has an FWID. Reject: the FWID cannot be bound."""
    REPORT_SIGNATURE_BAD = "report_signature_bad"
    """The report is signed by a P-384 key other than the leaf's. Reject: ECDSA over the signed bytes fails."""
    WRONG_NONCE = "wrong_nonce"
    """The report's request nonce is another 32 bytes than ``options.nonce`` (:attr:`NvidiaEvidence.nonce`).
    Reject: request nonce != the expected binding."""
    MEASUREMENT_CHANGED = "measurement_changed"
    """One runtime value (RIM index :data:`DEFAULT_CHANGED_INDEX`, block index + 1; Blackwell:
    :data:`BLACKWELL_CHANGED_INDEX`) differs from the RIM.
    Reject: measurement mismatch at that index."""
    DRIVER_VERSION_CHANGED = "driver_version_changed"
    """The report's signed driver version is another one; the driver RIM supplied is for ``options``' version.
    Reject: the RIM is for another version."""
    RIM_TAMPERED = "rim_tampered"
    """One Hash value of the driver RIM was changed after signing. Reject: DigestValue does not match."""
    RIM_UNSIGNED = "rim_unsigned"
    """The driver RIM has no Signature element. Reject: unsigned RIM."""
    RIM_WRONG_KEY = "rim_wrong_key"
    """The driver RIM is signed by another key; KeyInfo carries the genuine L4 chain.
    Reject: SignatureValue does not verify under the L4 key."""
    RIM_WRONG_ROOT = "rim_wrong_root"
    """The driver RIM is validly signed by a forger's L4 whose chain (NVIDIA's names) ends in a forged CoRIM root.
    Reject: the RIM chain does not reach the pinned root."""
    RIM_DOCTYPE = "rim_doctype"
    """The (validly signed) driver RIM starts with a DOCTYPE declaring an external entity. Reject: DTDs refused."""
    RIM_SIGNER_EXPIRED = "rim_signer_expired"
    """The driver RIM's L4 signer expired one day before ``now``. Reject: RIM chain outside its validity."""
    DEVICE_CERT_REVOKED = "device_cert_revoked"
    """The OCSP response for the BROM (cert 1) says revoked (keyCompromise). Reject: revoked."""
    DEVICE_CERT_HOLD = "device_cert_hold"
    """The OCSP response for the BROM says revoked with reason certificateHold. Reject unless holds are allowed."""
    RIM_SIGNER_REVOKED = "rim_signer_revoked"
    """The OCSP response for the driver RIM's L4 signer says revoked. Reject: revoked."""
    OCSP_STALE = "ocsp_stale"
    """The BROM's OCSP response has nextUpdate one day before ``now``. Reject: stale OCSP response."""
    OCSP_UNKNOWN = "ocsp_unknown"
    """The BROM's OCSP response says unknown. Reject: unknown status."""
    OCSP_NOT_DELEGATED = "ocsp_not_delegated"
    """The BROM's OCSP response is signed by a responder certificate of the right CA without the OCSPSigning EKU.
    Reject: the responder is not delegated."""
    TRAILING_BYTES = "trailing_bytes"
    """One non-zero byte after the signature. Reject: trailing data (the parser refuses it)."""
    TRAILING_ZERO_BYTE = "trailing_zero_byte"
    """One zero byte after the signature (trustee's real CoCo report, P3). Reject unless allow_trailing_zeros."""
    TRUNCATED = "truncated"
    """The report's last byte is missing. Reject: truncated (the parser refuses it)."""


_C = Code
EXPECTED_CODES: Final[Mapping[Defect, Code]] = {
    Defect.WRONG_ROOT: _C.NVIDIA_CHAIN_UNTRUSTED,
    Defect.LEAF_WRONG_BROM: _C.NVIDIA_CHAIN_UNTRUSTED,
    Defect.FWID_MISMATCH: _C.NVIDIA_FWID_MISMATCH,
    Defect.FWID_MISSING: _C.NVIDIA_FWID_MISSING,
    Defect.LEAF_FWID_EXTENSION_MISSING: _C.NVIDIA_FWID_MISSING,
    Defect.REPORT_SIGNATURE_BAD: _C.NVIDIA_REPORT_SIGNATURE_INVALID,
    Defect.WRONG_NONCE: _C.NVIDIA_NONCE_MISMATCH,
    Defect.MEASUREMENT_CHANGED: _C.NVIDIA_MEASUREMENT_MISMATCH,
    Defect.DRIVER_VERSION_CHANGED: _C.NVIDIA_RIM_MISMATCH,
    Defect.RIM_TAMPERED: _C.NVIDIA_RIM_SIGNATURE_INVALID,
    Defect.RIM_UNSIGNED: _C.NVIDIA_RIM_UNSIGNED,
    Defect.RIM_WRONG_KEY: _C.NVIDIA_RIM_SIGNATURE_INVALID,
    Defect.RIM_WRONG_ROOT: _C.NVIDIA_RIM_CHAIN_UNTRUSTED,
    Defect.RIM_DOCTYPE: _C.NVIDIA_RIM_MALFORMED,
    Defect.RIM_SIGNER_EXPIRED: _C.NVIDIA_RIM_CHAIN_EXPIRED,
    Defect.DEVICE_CERT_REVOKED: _C.NVIDIA_OCSP_REVOKED,
    Defect.DEVICE_CERT_HOLD: _C.NVIDIA_OCSP_REVOKED,
    Defect.RIM_SIGNER_REVOKED: _C.NVIDIA_OCSP_REVOKED,
    Defect.OCSP_STALE: _C.NVIDIA_OCSP_STALE,
    Defect.OCSP_UNKNOWN: _C.NVIDIA_OCSP_UNKNOWN,
    Defect.OCSP_NOT_DELEGATED: _C.NVIDIA_OCSP_SIGNATURE_INVALID,
    Defect.TRAILING_BYTES: _C.NVIDIA_REPORT_TRAILING_DATA,
    Defect.TRAILING_ZERO_BYTE: _C.NVIDIA_REPORT_TRAILING_DATA,
    Defect.TRUNCATED: _C.NVIDIA_REPORT_TRUNCATED,
}
#: Defects the evidence parser itself refuses (the rest parse and fail verification or appraisal).
PARSER_DEFECTS: Final = frozenset({Defect.TRAILING_BYTES, Defect.TRUNCATED})


def expected_code(defect: Defect) -> Code:
    """The code an exact verifier (default NVIDIA policy: RIMs and OCSP required) answers ``defect`` with."""
    return EXPECTED_CODES[defect]


_FWID_DEFECTS: Final = frozenset((Defect.FWID_MISSING, Defect.FWID_MISMATCH, Defect.LEAF_FWID_EXTENSION_MISSING))
#: Defects that have no meaning for an NVSwitch: its report carries no FWID and no driver version.
NOT_FOR_SWITCHES: Final = _FWID_DEFECTS | {Defect.DRIVER_VERSION_CHANGED}


def defect_applies(defect: Defect, options: GpuOptions | SwitchOptions) -> bool:
    """Whether ``defect`` can be injected into evidence built with ``options`` without being a no-op. On an
    NVSwitch the RIM defects hit its BIOS RIM (on a GPU: the driver RIM)."""
    if isinstance(options, SwitchOptions):
        return defect not in NOT_FOR_SWITCHES
    return not (defect in _FWID_DEFECTS and not options.include_fwid)


__all__ = [
    "BLACKWELL_CHANGED_INDEX",
    "BLACKWELL_CHIP_INFO",
    "BLACKWELL_DRIVER_VERSION",
    "BLACKWELL_VBIOS_VERSION",
    "DEFAULT_CHANGED_INDEX",
    "DEFAULT_SWITCH_BIOS_VERSION",
    "EXPECTED_CODES",
    "FEATURE_MPT",
    "FEATURE_PPCIE",
    "FEATURE_SPT",
    "HGX_BOARD_ID",
    "HGX_CHIP_SKU",
    "HGX_DRIVER_VERSION",
    "HGX_GPUS",
    "HGX_PORT_PATTERN",
    "HGX_PROJECT",
    "HGX_PROJECT_SKU",
    "HGX_SWITCHES",
    "HGX_VBIOS_VERSION",
    "LS10_MSRSCNT",
    "NOT_FOR_SWITCHES",
    "PARSER_DEFECTS",
    "Architecture",
    "Defect",
    "GpuOptions",
    "SwitchOptions",
    "blackwell_options",
    "defect_applies",
    "expected_code",
    "gpu_port_switches",
    "switch_port_slots",
]
