"""The evidence JSON of an Azure confidential VM (Confidential Containers' ``az-snp-vtpm`` / ``az-tdx-vtpm``,
kbs-protocol.md §1.4), decoded into its byte parts; parses nothing inside them (:mod:`verifier.evidence.azure_hcl`,
:mod:`verifier.evidence.tpm` do) and verifies nothing.

```
az-snp-vtpm: {"version": 1|2, "tpm_quote": {"signature": hex, "message": hex, "pcrs": [24 x hex]},
              "hcl_report": base64url, "vcek": base64url}
az-tdx-vtpm: {"version": 1|2, "tpm_quote": {...}, "hcl_report": base64url, "td_quote": base64url}
```

``pcrs`` may be empty (a quote shipped without its PCR values: the PCR digest then cannot be checked, and no PCR
is a claim). Keyward also reads two optional members (azure-cvm.md §7): ``ak_cert`` (base64url of the AK
certificate's DER, or of the NV 0x01C101D0 image: DER + zero padding) and ``ak_intermediates`` (base64url DER of
its issuing CAs, issuer of the leaf first). base64url may keep or drop its ``=`` padding; hex is either case. Any
other member, a wrong type, a version other than 1 or 2, or the other platform's hardware member is
``azure.evidence.malformed``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Final, Literal

from verifier import limits
from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.azure_hcl import strict_json

AzureKind = Literal["snp", "tdx"]
EVIDENCE_VERSIONS: Final = (1, 2)
#: Largest evidence JSON accepted (an HCL report, a TD quote, three certificates, 24 PCRs, in text).
MAX_EVIDENCE_JSON_BYTES: Final = limits.MAX_AZURE_EVIDENCE_JSON_BYTES
MAX_AK_INTERMEDIATES: Final = limits.MAX_AZURE_AK_INTERMEDIATES
_HARDWARE: Final = {"snp": "vcek", "tdx": "td_quote"}
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


@dataclass(frozen=True, slots=True)
class AzureEvidence:
    """The decoded parts of an Azure CVM evidence JSON."""

    kind: AzureKind
    version: int
    hcl_report: bytes
    tpm_attest: bytes
    tpm_signature: bytes
    #: The SHA-256 PCR values in index order (all 24), or none.
    pcrs: tuple[bytes, ...]
    #: SNP: the VCEK (DER). TDX: None.
    vcek: bytes | None
    #: TDX: the TD quote. SNP: None.
    td_quote: bytes | None
    ak_cert: bytes | None
    ak_intermediates: tuple[bytes, ...]


def _malformed(message: str, actual: object = None) -> EvidenceMalformed:
    return EvidenceMalformed(Code.AZURE_EVIDENCE_MALFORMED, message, actual=actual)


def decode_b64url(value: object, what: str) -> bytes:
    """base64url with or without ``=`` padding (``azure.evidence.malformed``)."""
    if not isinstance(value, str) or not _B64URL.fullmatch(value):
        raise _malformed(f"{what} is not base64url")
    text = value.rstrip("=")
    if len(text) % 4 == 1 or (len(value) != len(text) and len(value) % 4):
        raise _malformed(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise _malformed(f"{what} is not base64url") from e


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise _malformed(f"{what} is not hex")
    return bytes.fromhex(value)


def _object(value: Any, known: set[str], required: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _malformed(f"{what} is not a JSON object")
    unknown, missing = set(value) - known, required - set(value)
    if unknown or missing:
        raise _malformed(
            f"{what} members are not the expected ones",
            actual=f"unknown: {sorted(unknown)}, missing: {sorted(missing)}",
        )
    return value


def parse_azure_evidence(data: bytes, kind: AzureKind) -> AzureEvidence:
    """Decode an ``az-snp-vtpm`` (``kind = "snp"``) or ``az-tdx-vtpm`` (``"tdx"``) evidence JSON."""
    if len(data) > MAX_EVIDENCE_JSON_BYTES:
        raise _malformed("evidence JSON is too large", actual=len(data))
    hardware = _HARDWARE[kind]
    doc = _object(
        strict_json(data, Code.AZURE_EVIDENCE_MALFORMED, "evidence"),
        {"version", "tpm_quote", "hcl_report", hardware, "ak_cert", "ak_intermediates"},
        {"version", "tpm_quote", "hcl_report", hardware},
        "evidence",
    )
    version = doc["version"]
    if type(version) is not int or version not in EVIDENCE_VERSIONS:
        raise EvidenceMalformed(
            Code.AZURE_EVIDENCE_MALFORMED, "unsupported evidence version", expected="1 | 2", actual=version
        )
    quote = _object(doc["tpm_quote"], {"signature", "message", "pcrs"}, {"signature", "message", "pcrs"}, "tpm_quote")
    pcrs = quote["pcrs"]
    if not isinstance(pcrs, list) or len(pcrs) > 32:
        raise _malformed("tpm_quote.pcrs is not a list of PCR values")
    intermediates = doc.get("ak_intermediates", [])
    if not isinstance(intermediates, list) or len(intermediates) > MAX_AK_INTERMEDIATES:
        raise _malformed(f"ak_intermediates is not a list of at most {MAX_AK_INTERMEDIATES} certificates")
    hardware_bytes = decode_b64url(doc[hardware], hardware)
    return AzureEvidence(
        kind=kind,
        version=version,
        hcl_report=decode_b64url(doc["hcl_report"], "hcl_report"),
        tpm_attest=_hex(quote["message"], "tpm_quote.message"),
        tpm_signature=_hex(quote["signature"], "tpm_quote.signature"),
        pcrs=tuple(_hex(p, f"tpm_quote.pcrs[{i}]") for i, p in enumerate(pcrs)),
        vcek=hardware_bytes if kind == "snp" else None,
        td_quote=hardware_bytes if kind == "tdx" else None,
        ak_cert=decode_b64url(doc["ak_cert"], "ak_cert") if "ak_cert" in doc else None,
        ak_intermediates=tuple(decode_b64url(c, f"ak_intermediates[{i}]") for i, c in enumerate(intermediates)),
    )


__all__ = ["AzureEvidence", "AzureKind", "decode_b64url", "parse_azure_evidence"]
