"""What can vary in simulated NVIDIA GPU evidence (:mod:`verifier.simulation.nvidia_pki`): the genuine
:class:`GpuOptions` and the :class:`Defect` catalogue, one defect at a time, with the stable code an exact verifier
must answer each with (:func:`expected_code`). SIMULATION ONLY; no keys or certificates here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from verifier.errors import Code
from verifier.simulation.amd_options import sim_bytes
from verifier.simulation.nvidia_report_builder import GPU_BLOCKS, STATUS_DISABLED

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
#: The RIM index (0-based, SPDM block index - 1) :attr:`Defect.MEASUREMENT_CHANGED` changes by default: index 9,
#: the VBIOS index real GPUs fail most (pitfall P7).
DEFAULT_CHANGED_INDEX: Final = 9


@dataclass(frozen=True, slots=True)
class GpuOptions:
    """Genuine variations of one simulated Hopper GPU's evidence. Defaults: the H100 PCIe of vector N1 (driver
    550.90.07, VBIOS 96.00.9F.00.01, 1010/0200/882, NVDEC0 disabled, PPCIe off) with a newer driver's trailing
    TLVs (18 unconnected switch PDIs, OPAQUE_DATA_VERSION 1, FEATURE_FLAG SPT); set those to None to leave them out.

    ``device_index`` picks the GPU: each index has its own BROM and attestation keys, PDI and FWID.
    ``measurements`` overrides runtime values (SPDM block index, 1-based -> 48 bytes); the others come from
    :meth:`verifier.simulation.nvidia_pki.NvidiaPki.default_measurements`. ``fwid`` None: this GPU's FWID.
    ``boot`` names the boot: the leaf (attestation key) is minted per boot, the BROM is per GPU.
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
    protected_pcie_status: int = STATUS_DISABLED
    switch_pdis: tuple[bytes, ...] | None = (bytes(8),) * NVLINK_PORTS
    opaque_data_version: int | None = 1
    feature_flag: int | None = FEATURE_SPT

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
    """One runtime value (RIM index :data:`DEFAULT_CHANGED_INDEX`, block index + 1) differs from the RIM.
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


def defect_applies(defect: Defect, options: GpuOptions) -> bool:
    """Whether ``defect`` can be injected into evidence built with ``options`` without being a no-op."""
    return not (
        (defect in (Defect.FWID_MISSING, Defect.FWID_MISMATCH, Defect.LEAF_FWID_EXTENSION_MISSING))
        and not options.include_fwid
    )


__all__ = [
    "DEFAULT_CHANGED_INDEX",
    "EXPECTED_CODES",
    "FEATURE_MPT",
    "FEATURE_PPCIE",
    "FEATURE_SPT",
    "PARSER_DEFECTS",
    "Defect",
    "GpuOptions",
    "defect_applies",
    "expected_code",
]
