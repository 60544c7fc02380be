"""The evidence item: one typed value from the API request to the decision.

The API validates a request's items as :class:`EvidenceItem` (``verifier.api.enclave.EvidenceIn`` is this type
with the API's input checks) and stores ``model_dump(exclude_none=True)``; the worker validates the stored JSON
back into the same type with :func:`stored_item`, once per decision, and decodes its base64 fields with the one
decoder, :func:`b64`. What each platform's item needs, how it is parsed and evaluated is the platform registry's
(:mod:`verifier.platforms.registry`).

Pure: no I/O, no clock. Nothing here parses a quote or report.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from verifier import limits
from verifier.collateral.documents import CollateralCache
from verifier.errors import Code, EvidenceMalformed
from verifier.keywrap.enclave import MAX_NVIDIA_DEVICES
from verifier.platforms.amd_snp import SnpVerificationCache
from verifier.platforms.intel_dcap import IntelVerificationCache
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache
from verifier.trust.store import TrustStore

#: The evidence types the registry has an entry for (:data:`verifier.platforms.registry.PLATFORMS` checks it names
#: exactly these). API schemas use this type; nothing else spells the names out.
PlatformName = Literal["intel-tdx", "intel-sgx", "amd-sev-snp", "nvidia-gpu", "azure-sev-snp-vtpm", "azure-tdx-vtpm"]
PLATFORM_NAMES: tuple[str, ...] = get_args(PlatformName)


class EvidenceItem(BaseModel):
    """One piece of evidence. Every string is length-limited (verifier.limits; the whole request body is too)."""

    model_config = ConfigDict(frozen=True)

    type: PlatformName
    evidence: str = Field(
        description="base64 of the quote / report (Azure CVMs: of the az-snp-vtpm / az-tdx-vtpm evidence JSON)",
        max_length=limits.MAX_HEX_EVIDENCE_CHARS,
    )
    collateral: str | None = Field(
        None,
        description="Intel (and Azure TDX CVMs): QuoteCollateralV3 JSON text",
        max_length=limits.MAX_COLLATERAL_JSON_CHARS,
    )
    vcek: str | None = Field(None, description="AMD: base64 DER of the VCEK/VLEK", max_length=limits.MAX_VCEK_B64_CHARS)
    runtime_data: str | None = Field(
        None,
        description="AMD confidential ACI SKR binding: base64 of the runtime-data JSON {nonce, keys}; "
        "REPORT_DATA = SHA-256(runtime data) || 32 zero bytes",
        max_length=limits.MAX_RUNTIME_DATA_B64_CHARS,
    )
    cert_table: str | None = Field(
        None, description="AMD: base64 extended-report certificate table", max_length=limits.MAX_CERT_TABLE_B64_CHARS
    )
    crl: str | None = Field(
        None,
        description="AMD (and Azure SEV-SNP CVMs): base64 DER CRL of the report's chain from KDS (else the worker "
        "fetches it)",
        max_length=limits.MAX_CRL_B64_CHARS,
    )
    uvm_endorsement: str | None = Field(
        None,
        description="AMD confidential ACI: base64 of Microsoft's UVM endorsement (COSE_Sign1, the container group's "
        "reference-info), vouching for the utility VM's launch measurement",
        max_length=limits.MAX_UVM_ENDORSEMENT_B64_CHARS,
    )
    certs: str | None = Field(
        None,
        description="NVIDIA: base64 of the device certificate chain as NVML returns it (concatenated PEM, leaf "
        "first, five certificates)",
        max_length=limits.MAX_NVIDIA_CHAIN_B64_CHARS,
    )
    rims: list[Annotated[str, Field(max_length=limits.MAX_NVIDIA_RIM_B64_CHARS)]] | None = Field(
        None,
        max_length=limits.MAX_NVIDIA_ITEM_RIMS,
        description="NVIDIA: base64 of RIMs (signed SWID XML) the enclave brings; else the worker fetches them",
    )
    ocsp: list[Annotated[str, Field(max_length=limits.MAX_OCSP_RESPONSE_B64_CHARS)]] | None = Field(
        None,
        max_length=limits.MAX_NVIDIA_ITEM_OCSP,
        description="NVIDIA: base64 DER OCSP responses the enclave brings (device and RIM signing chains); else the "
        "worker fetches them",
    )
    device_index: int | None = Field(
        None,
        ge=0,
        lt=MAX_NVIDIA_DEVICES,
        description="NVIDIA: this device's index among the attestation's NVIDIA devices (GPUs and NVSwitches, "
        "0-based, each once); its SPDM nonce must be SHA-256('keyward/nvidia-gpu-nonce/v1' || nonce || key "
        "thumbprint || uint8(device_index))",
    )


def stored_item(raw: object) -> EvidenceItem:
    """A stored evidence item (the JSON the API stored) as the :class:`EvidenceItem` it was. An unknown type is
    ``attestation.evidence_type_unsupported``; anything else that does not validate is
    ``attestation.evidence_malformed``."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    if isinstance(raw, dict) and kind not in PLATFORM_NAMES:
        raise EvidenceMalformed(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            f"unsupported evidence type {kind!r}",
            expected=" | ".join(PLATFORM_NAMES),
            actual=str(kind),
        )
    try:
        return EvidenceItem.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "item"
        raise EvidenceMalformed(Code.ATTESTATION_EVIDENCE_MALFORMED, f"evidence item {where}: {first['msg']}") from e


def b64(value: str, what: str) -> bytes:
    """Standard base64 of an item field; ``attestation.evidence_malformed`` when it is not. The one decoder."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise EvidenceMalformed(Code.ATTESTATION_EVIDENCE_MALFORMED, f"{what} is not base64") from e


def optional_b64(value: str | None, what: str) -> bytes | None:
    """:func:`b64` of a field the item may leave out (absent or empty: None)."""
    return b64(value, what) if value else None


@dataclass(frozen=True, slots=True)
class Verifying:
    """What verifying a parsed item needs besides its documents and policy: the pinned roots, the decision time and
    the process's verification and collateral caches."""

    trust: TrustStore
    now: datetime
    intel_cache: IntelVerificationCache | None = None
    snp_cache: SnpVerificationCache | None = None
    nvidia_cache: NvidiaVerificationCache | None = None
    collateral_cache: CollateralCache | None = None
