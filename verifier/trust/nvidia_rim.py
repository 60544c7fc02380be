"""NVIDIA Reference Integrity Manifests (RIMs): signed SWID tags (ISO/IEC 19770-2) with an enveloped XML-DSig,
verified over the exact canonicalised bytes with their signing chain to the pinned NVIDIA CoRIM signing Root CA
(nvidia-gpu.md §4).

Pure: the RIM bytes, the trust store and ``now`` are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from verifier.trust.store import TrustStore


@dataclass(frozen=True, slots=True)
class RimMeasurement:
    """One ``Payload/Resource type="Measurement"`` entry. ``index`` is the RIM's 0-based index: SPDM measurement
    block ``index + 1``."""

    index: int
    active: bool
    alternatives: tuple[bytes, ...]  # Hash0 .. Hash<n-1>, each ``size`` bytes
    size: int
    name: str


@dataclass(frozen=True, slots=True)
class VerifiedRim:
    """A RIM whose signature and signing chain verified at ``now``; every field read from the verified tree."""

    tag_id: str  # SoftwareIdentity/@tagId
    name: str  # SoftwareIdentity/@name: the product, "GH100" / "GB100" / "LS10"
    version: str  # SoftwareIdentity/@version
    colloquial_version: str  # Meta/@colloquialVersion: the driver version or the dotted VBIOS version
    product: str | None  # Meta/@product
    edition: str | None  # Meta/@edition: "GPU" / "SWITCH"
    firmware_manufacturer_id: str | None  # Meta/@rim:FirmwareManufacturerId ("5703": the claim ``oemid``)
    measurements: tuple[RimMeasurement, ...]
    signer_chain: tuple[x509.Certificate, ...]  # as embedded, L4 signer first, the embedded root left out
    sha256: str  # hex SHA-256 of the exact RIM bytes (RIM ids are not content: pin by hash, nvidia-gpu.md P6)
    not_after: datetime  # the earliest notAfter of the signing chain


def verify_rim(xml: bytes, trust: TrustStore, now: datetime) -> VerifiedRim:
    """Parse (defused), verify the XML-DSig and the signing chain at ``now``, then read the verified tree."""
    raise NotImplementedError
