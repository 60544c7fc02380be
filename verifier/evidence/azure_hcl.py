"""The Azure HCL report (vTPM NV index 0x01400001), the TD report in its hardware slot and the runtime claims it
carries (azure-cvm.md §3, §3.1, §5). Parses bytes into frozen dataclasses; verifies nothing.

HCL report (little-endian). Nothing but the hardware report and the runtime claims is signed: the header and the
IGVM request data only locate bytes, and every field of them is checked strictly so that a lie is rejected:

| off   | size | field              | rule here                                                            |
|-------|------|--------------------|----------------------------------------------------------------------|
| 0x000 |    4 | Signature          | ``HCLA``                                                             |
| 0x004 |    4 | Version            | 1 or 2                                                               |
| 0x008 |    4 | ReportSize         | == 0x4D4 + VariableDataSize (what every real report holds)           |
| 0x00C |    4 | RequestType        | 2 (AkCertRequest)                                                    |
| 0x010 |    4 | Status             | 0                                                                    |
| 0x014 |   12 | Reserved           | zero                                                                 |
| 0x020 | 1184 | hardware report    | SNP ATTESTATION_REPORT, or TDREPORT_STRUCT (1024) + 160 zero bytes   |
| 0x4C0 |    4 | DataSize           | == 20 + VariableDataSize                                             |
| 0x4C4 |    4 | Version            | 1                                                                    |
| 0x4C8 |    4 | ReportType         | 2 (SNP) or 4 (TDX), and the evidence type's                          |
| 0x4CC |    4 | ReportDataHashType | 1 (SHA-256); 2/3 (SHA-384/512) are refused (nothing signs this field)|
| 0x4D0 |    4 | VariableDataSize   | <= 4 KiB                                                             |
| 0x4D4 |  var | runtime claims     | UTF-8 JSON, hashed as the bytes stored                               |
| ...   |      | padding            | zero to the end (NV size 2600 or 2048)                               |

TDREPORT_STRUCT (offsets in the 1024-byte structure): REPORTTYPE 0x000 (type 0x81, subtype 0, version 0 or 1,
reserved 0), reserved 0x004-0x00F, CPUSVN 0x010, TEE_TCB_INFO_HASH 0x020, TEE_INFO_HASH 0x050, REPORTDATA 0x080,
reserved 0x0C0-0x0DF, MAC 0x0E0, TEE_TCB_INFO 0x100 (VALID, TEE_TCB_SVN 0x108, MRSEAM 0x118, MRSIGNERSEAM 0x148,
ATTRIBUTES 0x178, TEE_TCB_SVN2 0x180, reserved to 0x1EF), reserved 0x1EF-0x1FF, TDINFO 0x200 (ATTRIBUTES, XFAM
0x208, MRTD 0x210, MRCONFIGID 0x240, MROWNER 0x270, MROWNERCONFIG 0x2A0, RTMR0-3 0x2D0/0x300/0x330/0x360,
SERVTD_HASH 0x390, reserved 0x3C0-0x3FF). Every reserved range must be zero.

Runtime claims: one JSON object without duplicate keys; ``keys`` holds exactly one JWK ``kid = HCLAkPub`` (RSA,
2048-bit modulus, e = 65537); ``vm-configuration`` is an object whose ``secure-boot``, ``tpm-enabled`` and
``console-enabled`` are booleans; ``user-data``, when present, is 128 hex digits (64 bytes).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal

from cryptography.hazmat.primitives.asymmetric import rsa

from verifier import limits
from verifier.errors import Code, EvidenceMalformed

HCL_SIGNATURE: Final = b"HCLA"
HCL_HEADER = struct.Struct("<4sIIII12s")
assert HCL_HEADER.size == 0x20
HARDWARE_SLOT_OFFSET: Final = 0x20
HARDWARE_SLOT_SIZE: Final = 1184
IGVM_OFFSET: Final = HARDWARE_SLOT_OFFSET + HARDWARE_SLOT_SIZE
IGVM_REQUEST = struct.Struct("<IIIII")
assert IGVM_OFFSET == 0x4C0
assert IGVM_REQUEST.size == 20
CLAIMS_OFFSET: Final = IGVM_OFFSET + IGVM_REQUEST.size
assert CLAIMS_OFFSET == 0x4D4
#: Limits of azure-cvm.md §9 step 1.
MAX_HCL_BYTES: Final = limits.MAX_AZURE_HCL_BYTES
MAX_CLAIMS_BYTES: Final = limits.MAX_AZURE_CLAIMS_BYTES

HCL_VERSIONS: Final = (1, 2)
REQUEST_TYPE_AK_CERT: Final = 2
IGVM_VERSION: Final = 1
REPORT_TYPE_SNP: Final = 2
REPORT_TYPE_TDX: Final = 4
HASH_TYPE_SHA256: Final = 1

TD_REPORT_SIZE: Final = 1024
TD_REPORT_TYPE: Final = 0x81

HardwareKind = Literal["snp", "tdx"]
_REPORT_TYPES: Final[Mapping[int, HardwareKind]] = MappingProxyType({REPORT_TYPE_SNP: "snp", REPORT_TYPE_TDX: "tdx"})


@dataclass(frozen=True, slots=True)
class HclReport:
    """A parsed HCL report. ``hardware_report``: the SNP report (1184 bytes) or the TDREPORT (1024 bytes)."""

    version: int
    report_size: int
    request_type: int
    kind: HardwareKind
    hash_type: int
    hardware_report: bytes
    runtime_claims: bytes


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def parse_hcl_report(data: bytes, expected: HardwareKind | None = None) -> HclReport:
    """Parse an HCL report; ``expected`` is the evidence type's hardware (``azure.hcl.report_type_mismatch``).

    Raises:
        EvidenceMalformed: ``azure.hcl.*`` for every rule of the table above.
    """
    if len(data) > MAX_HCL_BYTES:
        raise EvidenceMalformed(
            Code.AZURE_HCL_TOO_LARGE, "HCL report is too large", expected=f"<= {MAX_HCL_BYTES}", actual=len(data)
        )
    if len(data) < CLAIMS_OFFSET:
        raise EvidenceMalformed(
            Code.AZURE_HCL_TRUNCATED,
            "HCL report ends before its runtime claims",
            expected=CLAIMS_OFFSET,
            actual=len(data),
        )
    magic, version, report_size, request_type, status, reserved = HCL_HEADER.unpack_from(data, 0)
    if magic != HCL_SIGNATURE:
        raise EvidenceMalformed(
            Code.AZURE_HCL_SIGNATURE_INVALID, "HCL report does not start with HCLA", expected="HCLA", actual=magic.hex()
        )
    if version not in HCL_VERSIONS:
        raise EvidenceMalformed(
            Code.AZURE_HCL_UNSUPPORTED_VERSION, "unsupported HCL report version", expected="1 | 2", actual=version
        )
    if request_type != REQUEST_TYPE_AK_CERT:
        raise EvidenceMalformed(
            Code.AZURE_HCL_REQUEST_TYPE_INVALID,
            "HCL report request type is not AkCertRequest",
            expected=REQUEST_TYPE_AK_CERT,
            actual=request_type,
        )
    if status != 0 or any(reserved):
        raise EvidenceMalformed(Code.AZURE_HCL_RESERVED_NONZERO, "HCL header status or reserved bytes are not zero")
    data_size, igvm_version, report_type, hash_type, var_size = IGVM_REQUEST.unpack_from(data, IGVM_OFFSET)
    if igvm_version != IGVM_VERSION:
        raise EvidenceMalformed(
            Code.AZURE_HCL_UNSUPPORTED_VERSION,
            "unsupported IGVM request data version",
            expected=IGVM_VERSION,
            actual=igvm_version,
        )
    kind = _REPORT_TYPES.get(report_type)
    if kind is None or (expected is not None and kind != expected):
        raise EvidenceMalformed(
            Code.AZURE_HCL_REPORT_TYPE_MISMATCH,
            "HCL report type is not the evidence type's",
            expected=expected or "2 (SNP) | 4 (TDX)",
            actual=kind or report_type,
        )
    if hash_type != HASH_TYPE_SHA256:
        raise EvidenceMalformed(
            Code.AZURE_HCL_UNSUPPORTED_HASH_TYPE,
            "runtime claims hash type is not SHA-256",
            expected=HASH_TYPE_SHA256,
            actual=hash_type,
        )
    if var_size > MAX_CLAIMS_BYTES:
        raise EvidenceMalformed(
            Code.AZURE_HCL_TOO_LARGE, "runtime claims are too large", expected=f"<= {MAX_CLAIMS_BYTES}", actual=var_size
        )
    end = CLAIMS_OFFSET + var_size
    if end > len(data):
        raise EvidenceMalformed(
            Code.AZURE_HCL_TRUNCATED, "HCL report ends inside its runtime claims", expected=end, actual=len(data)
        )
    if data_size != IGVM_REQUEST.size + var_size or report_size != end:
        raise EvidenceMalformed(
            Code.AZURE_HCL_HEADER_INCONSISTENT,
            "HCL ReportSize / DataSize disagree with VariableDataSize",
            expected=f"ReportSize {end}, DataSize {IGVM_REQUEST.size + var_size}",
            actual=f"ReportSize {report_size}, DataSize {data_size}",
        )
    if any(data[end:]):
        raise EvidenceMalformed(Code.AZURE_HCL_PADDING_NONZERO, "bytes after the runtime claims are not zero")
    slot = data[HARDWARE_SLOT_OFFSET:IGVM_OFFSET]
    if kind == "tdx":
        if any(slot[TD_REPORT_SIZE:]):
            raise EvidenceMalformed(Code.AZURE_HCL_PADDING_NONZERO, "bytes after the TD report are not zero")
        slot = slot[:TD_REPORT_SIZE]
    return HclReport(version, report_size, request_type, kind, hash_type, slot, data[CLAIMS_OFFSET:end])


# ----------------------------------------------------------------------------------------------------------
# TDREPORT_STRUCT


@dataclass(frozen=True, slots=True)
class TdReport:
    """A TDREPORT_STRUCT. Field names follow :class:`~verifier.evidence.tdx.TdReportBody` where the TD quote body
    carries the same field (``seamattributes`` is TEE_TCB_INFO.ATTRIBUTES, ``tdattributes`` TDINFO.ATTRIBUTES)."""

    raw: bytes
    report_type_version: int
    cpusvn: bytes
    reportdata: bytes
    mac: bytes
    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seamattributes: bytes
    tee_tcb_svn2: bytes
    tdattributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    servtd_hash: bytes


#: Reserved ranges of TDREPORT_STRUCT (start, end), all must be zero.
_TD_RESERVED: Final = ((0x003, 0x010), (0x0C0, 0x0E0), (0x190, 0x200), (0x3C0, 0x400))


def parse_td_report(data: bytes) -> TdReport:
    """Parse the 1024-byte TDREPORT_STRUCT of a TDX HCL report (``azure.td_report.malformed``)."""
    if len(data) != TD_REPORT_SIZE:
        raise EvidenceMalformed(
            Code.AZURE_TD_REPORT_MALFORMED, "TD report is not 1024 bytes", expected=TD_REPORT_SIZE, actual=len(data)
        )
    if data[0] != TD_REPORT_TYPE or data[1] != 0 or data[2] not in (0, 1):
        raise EvidenceMalformed(
            Code.AZURE_TD_REPORT_MALFORMED,
            "TD report REPORTTYPE is not TDX (0x81, subtype 0, version 0 or 1)",
            expected="81 00 00|01",
            actual=data[:3].hex(),
        )
    for start, end in _TD_RESERVED:
        if any(data[start:end]):
            raise EvidenceMalformed(
                Code.AZURE_TD_REPORT_MALFORMED, f"TD report reserved bytes {start:#x}..{end:#x} are not zero"
            )

    def f(offset: int, size: int) -> bytes:
        return data[offset : offset + size]

    return TdReport(
        raw=data,
        report_type_version=data[2],
        cpusvn=f(0x010, 16),
        reportdata=f(0x080, 64),
        mac=f(0x0E0, 32),
        tee_tcb_svn=f(0x108, 16),
        mrseam=f(0x118, 48),
        mrsignerseam=f(0x148, 48),
        seamattributes=f(0x178, 8),
        tee_tcb_svn2=f(0x180, 16),
        tdattributes=f(0x200, 8),
        xfam=f(0x208, 8),
        mrtd=f(0x210, 48),
        mrconfigid=f(0x240, 48),
        mrowner=f(0x270, 48),
        mrownerconfig=f(0x2A0, 48),
        rtmr0=f(0x2D0, 48),
        rtmr1=f(0x300, 48),
        rtmr2=f(0x330, 48),
        rtmr3=f(0x360, 48),
        servtd_hash=f(0x390, 48),
    )


# ----------------------------------------------------------------------------------------------------------
# Runtime claims

AK_KID: Final = "HCLAkPub"
RSA_EXPONENT: Final = 65537
RSA_MODULUS_BITS: Final = 2048
USER_DATA_SIZE: Final = 64
#: The ``vm-configuration`` members every real claims document has, all booleans.
VM_CONFIGURATION_FLAGS: Final = ("console-enabled", "secure-boot", "tpm-enabled")
_HEX128 = re.compile(r"[0-9A-Fa-f]{128}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class RuntimeClaims:
    """The runtime claims: their exact bytes (what REPORT_DATA hashes), the AK and what the VM says of itself."""

    raw: bytes
    ak: rsa.RSAPublicKey
    #: ``vm-configuration`` as the JSON object it is (flags, ``vmUniqueId``, ...).
    vm_configuration: Mapping[str, Any]
    #: ``user-data`` (64 bytes), None in the 2023 format that has none.
    user_data: bytes | None
    #: The ``kid`` of every key in ``keys``, in order.
    key_ids: tuple[str, ...]


def _claims_error(message: str, actual: object = None) -> EvidenceMalformed:
    return EvidenceMalformed(Code.AZURE_CLAIMS_MALFORMED, message, actual=actual)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise _claims_error("runtime claims repeat a key", actual=key)
        doc[key] = value
    return doc


def _reject_constant(name: str) -> None:
    raise _claims_error("runtime claims hold a non-JSON number", actual=name)


def strict_json(raw: bytes, error: Code, what: str) -> Any:
    """UTF-8 JSON with no duplicate keys and no NaN/Infinity; ``error`` for anything else."""
    try:
        text = raw.decode("utf-8")
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except EvidenceMalformed as e:
        raise EvidenceMalformed(error, f"{what}: {e.message}", actual=e.actual) from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise EvidenceMalformed(error, f"{what} is not UTF-8 JSON: {type(e).__name__}") from e


def b64url_unpadded(text: object, what: str, code: Code) -> bytes:
    """base64url without padding (JWK members)."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise EvidenceMalformed(code, f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise EvidenceMalformed(code, f"{what} is not base64url") from e


def _ak_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    if jwk.get("kty") != "RSA":
        raise EvidenceMalformed(Code.AZURE_CLAIMS_AK_INVALID, "HCLAkPub is not an RSA key", actual=jwk.get("kty"))
    n_bytes = b64url_unpadded(jwk.get("n"), "HCLAkPub n", Code.AZURE_CLAIMS_AK_INVALID)
    e_bytes = b64url_unpadded(jwk.get("e"), "HCLAkPub e", Code.AZURE_CLAIMS_AK_INVALID)
    n, e = int.from_bytes(n_bytes, "big"), int.from_bytes(e_bytes, "big")
    if n.bit_length() != RSA_MODULUS_BITS or e != RSA_EXPONENT or n_bytes[0] == 0 or e_bytes[0] == 0:
        raise EvidenceMalformed(
            Code.AZURE_CLAIMS_AK_INVALID,
            "HCLAkPub is not RSA-2048 with e = 65537 (minimal encoding)",
            expected="2048-bit n, e = 65537",
            actual=f"{n.bit_length()}-bit n, e = {e}",
        )
    if n % 2 == 0:
        raise EvidenceMalformed(Code.AZURE_CLAIMS_AK_INVALID, "HCLAkPub modulus is even")
    return rsa.RSAPublicNumbers(e, n).public_key()


def parse_runtime_claims(raw: bytes) -> RuntimeClaims:
    """Parse the runtime claims (``azure.claims.malformed``; ``azure.claims.ak_missing`` / ``ak_invalid``)."""
    if len(raw) > MAX_CLAIMS_BYTES:
        raise _claims_error("runtime claims are too large", actual=len(raw))
    doc = strict_json(raw, Code.AZURE_CLAIMS_MALFORMED, "runtime claims")
    if not isinstance(doc, dict):
        raise _claims_error("runtime claims are not a JSON object")
    keys = doc.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise _claims_error("runtime claims 'keys' is not a list of JWKs")
    kids = tuple(k.get("kid") for k in keys)
    if not all(isinstance(k, str) for k in kids):
        raise _claims_error("a runtime claims key has no string 'kid'")
    aks = [k for k in keys if k.get("kid") == AK_KID]
    if len(aks) != 1:
        raise EvidenceMalformed(
            Code.AZURE_CLAIMS_AK_MISSING, "runtime claims must hold exactly one HCLAkPub", expected=1, actual=len(aks)
        )
    ak = _ak_key(aks[0])
    config = doc.get("vm-configuration")
    if not isinstance(config, dict):
        raise _claims_error("runtime claims 'vm-configuration' is not an object")
    for flag in VM_CONFIGURATION_FLAGS:
        if not isinstance(config.get(flag), bool):
            raise _claims_error(f"vm-configuration '{flag}' is not a boolean", actual=config.get(flag))
    user_data: bytes | None = None
    if "user-data" in doc:
        text = doc["user-data"]
        if not isinstance(text, str) or not _HEX128.fullmatch(text):
            raise _claims_error("runtime claims 'user-data' is not 128 hex digits")
        user_data = bytes.fromhex(text)
    return RuntimeClaims(raw, ak, MappingProxyType(dict(config)), user_data, tuple(str(k) for k in kids))


__all__ = [
    "HclReport",
    "RuntimeClaims",
    "TdReport",
    "parse_hcl_report",
    "parse_runtime_claims",
    "parse_td_report",
]
