"""NVIDIA GPU / NVSwitch verification (nvidia-gpu.md §2-§4, §7): one device's report + certificate chain + RIMs +
OCSP responses + policy -> an :class:`~verifier.platforms.evaluation.Evaluation` with every failed check as its own
reason and the claims of §6. Pure: the trust store, the collateral (RIM XML, DER OCSP responses) and ``now`` are
arguments; the worker fetches them (RIM ids from :func:`rim_ids`, OCSP targets from :func:`ocsp_targets` /
:func:`rim_ocsp_targets`).

:func:`evaluate_device` runs, keeping going where a later check still tells something:

1. Device chain (§3): exactly 5 certificates; the supplied 5th equals the pinned NVIDIA Device Identity CA byte
   for byte, but only the pinned one is trusted; each certificate issued (name and ECDSA P-384/SHA-384 signature)
   by the next; certs 1..3 CA with keyCertSign and pathLen respected; the leaf digitalSignature and not a CA;
   every certificate valid at ``now``.
2. FWID (§3): the report's opaque FWID equals the leaf's (Hopper / NVSwitch ``2.23.133.5.4.1``: the digest that
   ends the extension; Blackwell ``2.23.133.5.4.1.1``: ``fwids[0]`` of the TcbInfo-like SEQUENCE), required by
   policy (:func:`verifier.appraisal.nvidia.fwid_required`).
3. Report signature (§2): ECDSA P-384 / SHA-384 over ``report.signed`` with the leaf key, raw r‖s as DER. Zero
   bytes after the signature are refused unless the policy allows them (P3).
4. Request nonce == ``policy.expected_nonce`` (constant time); not checked when the policy names none.
5. RIMs (§4): each candidate verified (:func:`verifier.trust.nvidia_rim.verify_rim`), then chosen per role by
   its version and product; driver and VBIOS indices must not conflict; measurements compared
   (:func:`verifier.appraisal.nvidia.compare_measurements`).
6. OCSP (§3): device certs 1..3 and each chosen RIM's signing chain; missing responses are a reason when the
   policy requires OCSP, and a claim otherwise (never silent). Device levels at or above a failed chain link (link
   i: certificate i not issued by i+1; levels of certificates 1..i, e.g. all three under a forged root) are not
   known to chain to the pinned root: their OCSP is ``not_checked`` (a response could only be checked against
   untrusted issuers) and adds no reason, the chain failure being the reason.
7. Policy on the signed fields (:func:`verifier.appraisal.nvidia.policy_reasons`).

:func:`check_topology` is the protected-PCIe (8 GPUs + 4 NVSwitches) cross-check of §7.
"""

from __future__ import annotations

import functools
import hmac
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from threading import Lock
from typing import Final, Literal, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import ExtensionOID, NameOID

from verifier import limits
from verifier.appraisal.nvidia import (
    MeasuredRows,
    MeasurementPlan,
    NvidiaPolicy,
    conflict_reasons,
    fwid_required,
    is_driver_version,
    is_vbios_version,
    measured_rows,
    measurement_plan,
    msr35_skipped,
    policy_reasons,
)
from verifier.errors import Code, EvidenceMalformed, KeywardError, Reason, VerificationFailed
from verifier.evidence.nvidia import (
    GpuReport,
    decode_report_bytes,
    parse_device_chain,
    parse_gpu_report,
)
from verifier.platforms.evaluation import Evaluation, unverified
from verifier.trust import der
from verifier.trust.chains import ContentCache, load_strict_certificate
from verifier.trust.nvidia_rim import VerifiedRim, verify_rim
from verifier.trust.ocsp import OcspPolicy, OcspResult, OcspStatus, cert_id_key, check_ocsp
from verifier.trust.store import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT, TrustStore

PLATFORM_NVIDIA: Final = "nvidia-gpu"
DeviceKind = Literal["gpu", "switch"]
Role = Literal["driver", "vbios", "bios"]

#: Certificates in a device chain (§3: NVIDIA requires exactly 5, root included).
CHAIN_LENGTH: Final = 5
#: FWID extensions of the leaf (§3).
OID_FWID_HOPPER: Final = x509.ObjectIdentifier("2.23.133.5.4.1")
OID_FWID_BLACKWELL: Final = x509.ObjectIdentifier("2.23.133.5.4.1.1")
#: DER content of the sha384 object identifier 2.16.840.1.101.3.4.2.2.
_OID_SHA384: Final = bytes.fromhex("608648016503040202")
_FWID_SIZE: Final = 48
#: Context tag [6] (constructed) of the TcbInfo-like SEQUENCE: ``fwids``.
_TAG_FWIDS: Final = 0xA6
#: GPU_INFO (opaque type 4, uint64 little-endian) -> architecture (§2 table).
_GPU_INFO_ARCH: Final = {0x180: "HOPPER", 0x1A0: "BLACKWELL"}
#: Leaf certificate CN prefix -> architecture (§3).
_LEAF_ARCH: Final = (("GH100 ", "HOPPER"), ("GB100 ", "BLACKWELL"), ("LS_10 ", "LS10"))
#: RIM product (SoftwareIdentity/@name) per architecture; Blackwell uses CHIP_INFO (GB100 when absent, §4).
_PRODUCT: Final = {"HOPPER": "GH100", "BLACKWELL": "GB100", "LS10": "LS10"}
#: FEATURE_FLAG -> mode (§2 table).
_MODES: Final = {0: "SPT", 1: "MPT", 2: "PPCIE"}
_SWITCH_BIOS_PREFIX: Final = "NV_SWITCH_BIOS_5612_0002_890_"  # LS10 constants of the C++ SDK (§4)
_ECDSA_SHA384: Final = ec.ECDSA(hashes.SHA384())
_OCSP_HASHES: Final = (hashes.SHA1, hashes.SHA256, hashes.SHA384, hashes.SHA512)


# ----------------------------------------------------------------------------------------------------------
# Device identity from the signed report


def device_kind(report: GpuReport) -> DeviceKind:
    """``gpu`` (opaque GPU_INFO, no SWITCH_GPU_PDIS) or ``switch`` (an LS10 NVSwitch: SWITCH_GPU_PDIS, no GPU_INFO).
    Raises ``nvidia.report.opaque_malformed`` for a report that is neither."""
    opaque = report.response.opaque
    if opaque.gpu_info is not None and opaque.switch_gpu_pdis is None:
        return "gpu"
    if opaque.gpu_info is None and opaque.switch_gpu_pdis is not None:
        return "switch"
    raise EvidenceMalformed(
        Code.NVIDIA_REPORT_OPAQUE_MALFORMED,
        "report is neither a GPU's (GPU_INFO) nor an NVSwitch's (SWITCH_GPU_PDIS)",
    )


def _leaf_architecture(chain: Sequence[x509.Certificate] | None) -> str | None:
    if not chain:
        return None
    cn = _cn(chain[0].subject)
    return next((arch for prefix, arch in _LEAF_ARCH if cn.startswith(prefix)), None)


def architecture(report: GpuReport, chain: Sequence[x509.Certificate] | None) -> str:
    """``HOPPER`` / ``BLACKWELL`` (from the signed GPU_INFO, else the leaf CN) or ``LS10`` (NVSwitch). When both
    the report and the chain say, they must agree (``nvidia.chain.untrusted``); neither knowing raises
    ``nvidia.report.unsupported``."""
    return _architecture(report, _leaf_architecture(chain))


def _architecture(report: GpuReport, from_chain: str | None) -> str:
    """:func:`architecture` with the leaf's (:func:`_leaf_architecture`) already read."""
    if device_kind(report) == "switch":
        from_report: str | None = "LS10"
    else:
        info = report.response.opaque.gpu_info or b""
        from_report = _GPU_INFO_ARCH.get(int.from_bytes(info, "little"))
    if from_report is not None and from_chain is not None and from_report != from_chain:
        raise VerificationFailed(
            Code.NVIDIA_CHAIN_UNTRUSTED,
            "the device certificate is for another architecture than the report",
            expected=from_report,
            actual=from_chain,
        )
    arch = from_report or from_chain
    if arch is None:
        raise EvidenceMalformed(Code.NVIDIA_REPORT_UNSUPPORTED, "unknown GPU architecture (GPU_INFO)")
    return arch


@dataclass(frozen=True, slots=True)
class RimIds:
    """The RIM ids of one device (§4 "Which RIMs"): a GPU's driver + VBIOS RIM, an NVSwitch's BIOS RIM only."""

    driver: str | None
    firmware: str


@functools.lru_cache(maxsize=1024)
def _id_part(value: str | None, what: str) -> str:
    if not value or not all(c.isascii() and (c.isalnum() or c in "._-") for c in value):
        raise EvidenceMalformed(
            Code.NVIDIA_REPORT_OPAQUE_MALFORMED, f"report {what} is absent or unusable in a RIM id", actual=value
        )
    return value


def rim_ids(report: GpuReport) -> RimIds:
    """RIM ids from the SIGNED opaque data (never NVML's strings). Hopper ``NV_GPU_DRIVER_GH100_<driver>``,
    Blackwell ``NV_GPU_CC_DRIVER_<CHIP_INFO|GB100>_<driver>``, VBIOS ``NV_GPU_VBIOS_<project>_<sku>_<chip sku>_<vbios
    without dots, upper-case>``, NVSwitch ``NV_SWITCH_BIOS_5612_0002_890_<bios without dots>``."""
    opaque = report.response.opaque
    arch = architecture(report, None)
    version = _id_part(opaque.vbios_version, "VBIOS version").replace(".", "").upper()
    if arch == "LS10":
        return RimIds(None, _SWITCH_BIOS_PREFIX + version)
    driver = _id_part(opaque.driver_version, "driver version")
    if arch == "BLACKWELL":
        chip = _id_part(opaque.chip_info or "GB100", "CHIP_INFO")
        driver_id = f"NV_GPU_CC_DRIVER_{chip}_{driver}"
    else:
        driver_id = f"NV_GPU_DRIVER_GH100_{driver}"
    project = _id_part(opaque.project, "PROJECT")
    sku = _id_part(opaque.project_sku, "PROJECT_SKU")
    chip_sku = _id_part(opaque.chip_sku, "CHIP_SKU")
    return RimIds(driver_id, f"NV_GPU_VBIOS_{project}_{sku}_{chip_sku}_{version}")


def _rim_product(report: GpuReport, arch: str) -> str:
    if arch == "BLACKWELL" and report.response.opaque.chip_info:
        return report.response.opaque.chip_info
    return _PRODUCT[arch]


# ----------------------------------------------------------------------------------------------------------
# Certificates


@functools.lru_cache(maxsize=4096)
def _utc_text(when: datetime) -> str:
    """``2026-01-15T12:00:00Z`` of an aware datetime (memoised: the same few certificate and OCSP dates come back on
    every call; equal instants are equal keys, so the text is of the instant in UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if len(attrs) == 1 else ""


def _load_chain(chain_der: Sequence[bytes]) -> tuple[x509.Certificate, ...]:
    certs = []
    for i, d in enumerate(chain_der):
        try:
            certs.append(load_strict_certificate(d))
        except ValueError as e:
            raise EvidenceMalformed(Code.NVIDIA_CHAIN_MALFORMED, f"device certificate {i} is not X.509") from e
    return tuple(certs)


def _path(certs: Sequence[x509.Certificate], trust: TrustStore) -> tuple[x509.Certificate, ...]:
    """The supplied chain with its 5th certificate replaced by the pinned root (raises unless exactly 5)."""
    if len(certs) != CHAIN_LENGTH:
        raise VerificationFailed(
            Code.NVIDIA_CHAIN_UNTRUSTED, "device chain is not 5 certificates", expected=CHAIN_LENGTH, actual=len(certs)
        )
    return (*certs[:-1], trust.root(NVIDIA_DEVICE_ROOT).certificate)


def ocsp_targets(
    chain_der: Sequence[bytes], trust: TrustStore
) -> tuple[tuple[x509.Certificate, x509.Certificate], ...]:
    """(certificate, issuer) for device certs 1..3 (BROM, Provisioner ICA, Identity); the issuer of cert 3 is the
    pinned root. Raises ``nvidia.chain.malformed`` / ``nvidia.chain.untrusted`` for a chain of the wrong shape."""
    path = _path(_load_chain(chain_der), trust)
    return tuple((path[i], path[i + 1]) for i in range(1, CHAIN_LENGTH - 1))


def rim_ocsp_targets(rim: VerifiedRim, trust: TrustStore) -> tuple[tuple[x509.Certificate, x509.Certificate], ...]:
    """(L4, L3), (L3, L2), (L2, pinned CoRIM root) of a verified RIM's signing chain."""
    path = (*rim.signer_chain, trust.root(NVIDIA_RIM_ROOT).certificate)
    return tuple((path[i], path[i + 1]) for i in range(len(path) - 1))


@dataclass(slots=True)
class _Checks:
    """What :func:`evaluate_device` found, check by check."""

    reasons: list[Reason] = field(default_factory=list)
    claims: dict[str, object] = field(default_factory=dict)

    def fail(self, code: Code, message: str, expected: object = None, actual: object = None) -> None:
        self.reasons.append(
            Reason(code, message, None if expected is None else str(expected), None if actual is None else str(actual))
        )

    def error(self, e: KeywardError, prefix: str = "") -> None:
        r = e.to_reason()
        self.reasons.append(Reason(r.code, f"{prefix}{r.message}", r.expected, r.actual))


def _check_link(cert: x509.Certificate, issuer: x509.Certificate, i: int) -> str | None:
    """Why ``cert`` (chain position ``i``) is not issued by ``issuer``, or None."""
    if cert.issuer != issuer.subject:
        return f"certificate {i} names issuer {cert.issuer.rfc4514_string()}, not {issuer.subject.rfc4514_string()}"
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        return f"issuer of certificate {i} has no P-384 key"
    if not isinstance(cert.signature_hash_algorithm, hashes.SHA384):
        return f"certificate {i} is not signed with ECDSA-SHA384"
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, _ECDSA_SHA384)
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return f"certificate {i}'s signature does not verify with its issuer's key"
    return None


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        value = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except x509.ExtensionNotFound:
        return None
    return value if isinstance(value, x509.BasicConstraints) else None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        value = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value
    except x509.ExtensionNotFound:
        return None
    return value if isinstance(value, x509.KeyUsage) else None


@dataclass(frozen=True, slots=True)
class _ChainShape:
    """Step 1 up to the dates, for one chain under one trust store: what does not depend on ``now``. ``path`` (the
    chain with the pinned root as 5th) is None when the chain is not 5 certificates."""

    path: tuple[x509.Certificate, ...] | None
    reasons: tuple[Reason, ...]
    ok: bool
    windows: tuple[tuple[datetime, datetime], ...]  # (notBefore, notAfter) of each certificate of ``path``
    #: The highest ``i`` whose link (certificate ``i`` issued by ``i + 1``, the 5th being the pinned root) fails,
    #: -1 when none does: certificates 0..i are not known to chain to the pinned root, so OCSP is not checked for
    #: them (their responses could only be checked against untrusted issuers).
    last_failed_link: int = -1


def _chain_shape(certs: Sequence[x509.Certificate], trust: TrustStore) -> _ChainShape:
    """Step 1 but the validity dates: pinned root, links, CA flags and key usages. Never raises."""
    checks = _Checks()
    ok = True
    try:
        path = _path(certs, trust)
    except KeywardError as e:
        checks.error(e)
        return _ChainShape(None, tuple(checks.reasons), False, ())
    pinned_der = trust.root(NVIDIA_DEVICE_ROOT).der
    if certs[-1].public_bytes(Encoding.DER) != pinned_der:
        checks.fail(
            Code.NVIDIA_CHAIN_UNTRUSTED,
            "the chain's root is not the pinned NVIDIA Device Identity CA",
            trust.root(NVIDIA_DEVICE_ROOT).sha256,
            certs[-1].subject.rfc4514_string(),
        )
        ok = False
    last_failed_link = -1
    for i in range(CHAIN_LENGTH - 1):
        problem = _check_link(path[i], path[i + 1], i)
        if problem is not None:
            checks.fail(Code.NVIDIA_CHAIN_UNTRUSTED, problem)
            ok = False
            last_failed_link = i
    try:
        for i, cert in enumerate(path):
            bc, ku = _basic_constraints(cert), _key_usage(cert)
            if i == 0:
                if (bc is not None and bc.ca) or ku is None or not ku.digital_signature:
                    checks.fail(
                        Code.NVIDIA_CHAIN_EXTENSIONS_INVALID,
                        "the leaf must be an end entity with keyUsage digitalSignature",
                    )
                    ok = False
                continue
            if bc is None or not bc.ca or ku is None or not ku.key_cert_sign:
                checks.fail(Code.NVIDIA_CHAIN_EXTENSIONS_INVALID, f"certificate {i} is not a CA with keyCertSign")
                ok = False
            elif bc.path_length is not None and bc.path_length < i - 1:
                checks.fail(
                    Code.NVIDIA_CHAIN_EXTENSIONS_INVALID,
                    f"certificate {i}'s pathLenConstraint is exceeded",
                    f">= {i - 1}",
                    bc.path_length,
                )
                ok = False
    except ValueError as e:  # an unparsable or duplicate extension
        checks.fail(Code.NVIDIA_CHAIN_EXTENSIONS_INVALID, f"device certificate extensions do not parse: {e}")
        ok = False
    return _ChainShape(
        path,
        tuple(checks.reasons),
        ok,
        tuple((c.not_valid_before_utc, c.not_valid_after_utc) for c in path),
        last_failed_link,
    )


def _check_chain(shape: _ChainShape, now: datetime, checks: _Checks) -> bool:
    """Step 1: the shape's reasons, then each certificate's validity at ``now``; True when the chain is trusted."""
    checks.reasons.extend(shape.reasons)
    if shape.path is None:
        checks.claims["chain"] = {"status": "invalid", "earliest_expiry": None}
        return False
    expired = False
    for i, (cert, (not_before, not_after)) in enumerate(zip(shape.path, shape.windows, strict=True)):
        if not not_before <= now <= not_after:
            checks.fail(
                Code.NVIDIA_CHAIN_EXPIRED,
                f"device certificate {i} ({_cn(cert.subject)}) is not valid at the decision time",
                f"{not_before.isoformat()} .. {not_after.isoformat()}",
                now.isoformat(),
            )
            expired = True
    earliest = min(not_after for _, not_after in shape.windows)
    ok = shape.ok
    status = "valid" if ok and not expired else ("expired" if ok else "invalid")
    checks.claims["chain"] = {"status": status, "earliest_expiry": _utc_text(earliest)}
    return ok and not expired


# ----------------------------------------------------------------------------------------------------------
# FWID (§3)


def _sha384_fwid(data: bytes, start: int, end: int) -> bytes:
    """``SEQUENCE { OID sha384, OCTET STRING(48) }`` filling ``data[start:end]`` -> the digest."""
    tag, vs, ve = der.read_tlv(data, start, end)
    if tag != der.TAG_SEQUENCE or ve != end:
        raise der.DerError("FWID is not one SEQUENCE")
    parts = der.children(data, vs, ve)
    if len(parts) != 2 or parts[0][0] != der.TAG_OID or parts[1][0] != der.TAG_OCTET_STRING:
        raise der.DerError("FWID is not {OID, OCTET STRING}")
    if data[parts[0][1] : parts[0][2]] != _OID_SHA384 or parts[1][2] - parts[1][1] != _FWID_SIZE:
        raise der.DerError("FWID is not a SHA-384 digest")
    return data[parts[1][1] : parts[1][2]]


def hopper_fwid(value: bytes) -> bytes:
    """Extension 2.23.133.5.4.1: ``SEQUENCE { INTEGER, SubjectPublicKeyInfo, SEQUENCE { sha384, OCTET STRING(48) } }``;
    the FWID is that last digest, i.e. the extension's last 48 bytes (as NVIDIA reads it), checked structurally."""
    tag, vs, ve = der.read_tlv(value, 0, len(value))
    if tag != der.TAG_SEQUENCE or ve != len(value):
        raise der.DerError("FWID extension is not one SEQUENCE")
    parts = der.elements(value, vs, ve)
    if len(parts) != 3 or parts[0][0] != der.TAG_INTEGER or parts[1][0] != der.TAG_SEQUENCE:
        raise der.DerError("FWID extension is not {INTEGER, SubjectPublicKeyInfo, FWID}")
    fwid = _sha384_fwid(value, parts[2][1], ve)
    if fwid != value[-_FWID_SIZE:]:  # cannot differ once parsed; kept as the statement of NVIDIA's rule
        raise der.DerError("FWID is not the extension's last 48 bytes")
    return fwid


def blackwell_fwid(value: bytes) -> bytes:
    """Extension 2.23.133.5.4.1.1, a DICE TcbInfo-like ``SEQUENCE`` of context-tagged fields in increasing tag order
    ([0] vendor, [1] model, ... [6] fwids ...); the FWID is the SHA-384 digest of ``fwids[0]``."""
    tag, vs, ve = der.read_tlv(value, 0, len(value))
    if tag != der.TAG_SEQUENCE or ve != len(value):
        raise der.DerError("TcbInfo extension is not one SEQUENCE")
    last = -1
    fwids: tuple[int, int] | None = None
    for ftag, fs, fe in der.children(value, vs, ve):
        number = ftag & 0x1F
        if ftag & 0xC0 != 0x80 or number <= last:
            raise der.DerError("TcbInfo fields are not context-tagged in increasing order")
        last = number
        if ftag == _TAG_FWIDS:
            fwids = (fs, fe)
    if fwids is None:
        raise der.DerError("TcbInfo has no fwids")
    entries = der.elements(value, *fwids)
    if not entries:
        raise der.DerError("TcbInfo fwids is empty")
    first_end = entries[0][3]
    return _sha384_fwid(value, entries[0][1], first_end)


def leaf_fwid(leaf: x509.Certificate, arch: str) -> bytes | None:
    """The leaf's FWID for ``arch`` (Blackwell: 2.23.133.5.4.1.1, else 2.23.133.5.4.1), None when it has no such
    extension. Raises ``nvidia.chain.extensions_invalid`` when it does not parse."""
    oid = OID_FWID_BLACKWELL if arch == "BLACKWELL" else OID_FWID_HOPPER
    try:
        ext = leaf.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as e:
        raise VerificationFailed(Code.NVIDIA_CHAIN_EXTENSIONS_INVALID, "leaf extensions do not parse") from e
    if not isinstance(ext, x509.UnrecognizedExtension):
        raise VerificationFailed(Code.NVIDIA_CHAIN_EXTENSIONS_INVALID, "leaf FWID extension has an unexpected type")
    try:
        return blackwell_fwid(ext.value) if arch == "BLACKWELL" else hopper_fwid(ext.value)
    except der.DerError as e:
        raise VerificationFailed(
            Code.NVIDIA_CHAIN_EXTENSIONS_INVALID, f"leaf FWID extension {oid.dotted_string}: {e}"
        ) from e


def _check_fwid(
    report: GpuReport,
    leaf: x509.Certificate,
    arch: str,
    policy: NvidiaPolicy,
    checks: _Checks,
    cached: tuple[NvidiaVerificationCache, bytes] | None = None,
) -> bool | None:
    """Step 2: True/False when compared, None when not (no FWID in the report and not required). ``cached``: the
    cache and the leaf's DER."""
    reported = report.response.opaque.fwid
    checks.claims["fwid"] = None if reported is None else reported.hex()
    try:
        certified = leaf_fwid(leaf, arch) if cached is None else cached[0].leaf_fwid(cached[1], leaf, arch)
    except KeywardError as e:
        checks.error(e)
        return False
    if reported is None or certified is None:
        if fwid_required(report, policy):
            checks.fail(
                Code.NVIDIA_FWID_MISSING,
                "policy requires an FWID binding, but the " + ("report" if reported is None else "leaf") + " has none",
            )
            return False
        return None
    if not hmac.compare_digest(reported, certified):
        checks.fail(
            Code.NVIDIA_FWID_MISMATCH,
            "the report's FWID is not the leaf certificate's",
            certified.hex(),
            reported.hex(),
        )
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# Report signature and nonce (§2)


def _p384_key(leaf: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        return None
    return key


def report_signature_ok(report: GpuReport, leaf: x509.Certificate) -> bool:
    """ECDSA P-384 / SHA-384 over ``report.signed`` with the leaf's key (raw r‖s as DER). Never raises."""
    return _signature_ok(report, _p384_key(leaf))


def _signature_ok(report: GpuReport, key: ec.EllipticCurvePublicKey | None) -> bool:
    if key is None:
        return False
    try:
        key.verify(encode_dss_signature(report.signature_r, report.signature_s), report.signed, _ECDSA_SHA384)
    except (InvalidSignature, ValueError):
        return False
    return True


# ----------------------------------------------------------------------------------------------------------
# RIMs (§4)


@dataclass(frozen=True, slots=True)
class _Candidate:
    rim: VerifiedRim
    role: Role


def _role(rim: VerifiedRim) -> Role | None:
    """A verified RIM's role from its own content: an NVSwitch BIOS (edition SWITCH / product LS10), a VBIOS
    (five hex bytes) or a driver (dotted decimal) version."""
    if rim.edition == "SWITCH" or rim.name == "LS10":
        return "bios"
    if is_vbios_version(rim.colloquial_version):
        return "vbios"
    if is_driver_version(rim.colloquial_version):
        return "driver"
    return None


def _rim_claim(rim: VerifiedRim, rim_id: str | None) -> dict[str, object]:
    return {
        "id": rim_id,
        "version": rim.colloquial_version,
        "product": rim.name,
        "sha256": rim.sha256,
        "signer_not_after": _utc_text(rim.not_after),
    }


def _select_rims(
    report: GpuReport,
    kind: DeviceKind,
    arch: str,
    rims: Sequence[bytes],
    policy: NvidiaPolicy,
    trust: TrustStore,
    now: datetime,
    checks: _Checks,
    cache: NvidiaVerificationCache | None = None,
) -> dict[Role, VerifiedRim]:
    """Verify every candidate, then choose one RIM per role whose version and product are this device's. A role
    with candidates but no match: ``nvidia.rim.mismatch`` per candidate; none at all: ``nvidia.rim.missing`` when
    required. Two different matching RIMs for one role (pitfall P6) are refused as ambiguous."""
    opaque = report.response.opaque
    try:
        ids: RimIds | None = rim_ids(report)
    except KeywardError as e:
        checks.error(e)
        ids = None
    product = _rim_product(report, arch)
    wanted: dict[Role, tuple[str | None, str | None]] = (
        {"bios": (None if ids is None else ids.firmware, opaque.vbios_version)}
        if kind == "switch"
        else {
            "driver": (None if ids is None else ids.driver, opaque.driver_version),
            "vbios": (None if ids is None else ids.firmware, opaque.vbios_version),
        }
    )
    candidates: list[_Candidate] = []
    for i, xml in enumerate(rims):
        try:
            if cache is None:
                rim = verify_rim(xml, trust, now)
                role = _role(rim)
            else:
                rim, role = cache.verified_rim(xml, trust, now)
        except KeywardError as e:
            checks.error(e, f"RIM {i}: ")
            continue
        if role not in wanted:
            checks.fail(
                Code.NVIDIA_RIM_MISMATCH,
                f"RIM {i} is not a RIM this {kind} uses",
                " | ".join(wanted),
                f"{rim.name} {rim.colloquial_version}",
            )
            continue
        candidates.append(_Candidate(rim, role))
    chosen: dict[Role, VerifiedRim] = {}
    claims: dict[str, object] = {}
    for role, (rim_id, version) in wanted.items():
        of_role = [c.rim for c in candidates if c.role == role]
        matching = [
            r
            for r in of_role
            if version is not None and r.colloquial_version.upper() == version.upper() and r.name == product
        ]
        distinct = {r.sha256: r for r in matching}
        if len(distinct) > 1:
            checks.fail(
                Code.NVIDIA_RIM_MISMATCH,
                f"several different {role} RIMs for {rim_id}",
                "one",
                ", ".join(sorted(distinct)),
            )
        elif distinct:
            chosen[role] = next(iter(distinct.values()))
            claims[role] = _rim_claim(chosen[role], rim_id)
        elif of_role:
            for r in of_role:
                checks.fail(
                    Code.NVIDIA_RIM_MISMATCH,
                    f"the {role} RIM is for another version or product",
                    f"{product} {version}",
                    f"{r.name} {r.colloquial_version}",
                )
        elif policy.require_rims:
            checks.fail(Code.NVIDIA_RIM_MISSING, f"no {role} RIM", rim_id, "none")
        if role not in claims:
            claims[role] = {"id": rim_id, "status": "missing"}
    checks.claims["rims"] = claims
    return chosen


# ----------------------------------------------------------------------------------------------------------
# OCSP (§3)


def _cert_id_matches(single: x509_ocsp.OCSPSingleResponse, cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    algorithm = single.hash_algorithm
    if not isinstance(algorithm, _OCSP_HASHES):
        return False
    request = x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm).build()
    return (
        single.serial_number == request.serial_number
        and hmac.compare_digest(single.issuer_name_hash, request.issuer_name_hash)
        and hmac.compare_digest(single.issuer_key_hash, request.issuer_key_hash)
    )


def _responses_by_target(
    targets: Sequence[tuple[x509.Certificate, x509.Certificate]],
    ocsp: Sequence[bytes] | Mapping[str, bytes],
    cache: NvidiaVerificationCache | None = None,
) -> list[bytes | None]:
    """The response for each target: by ``cert_id_key`` from a mapping, by matching CertID from a sequence (a
    response that does not load or matches nothing is ignored: its target stays missing)."""
    if not ocsp:
        return [None] * len(targets)
    if cache is not None:
        return cache.responses_by_target(targets, ocsp)
    return _match_responses(targets, ocsp)


def _match_responses(
    targets: Sequence[tuple[x509.Certificate, x509.Certificate]], ocsp: Sequence[bytes] | Mapping[str, bytes]
) -> list[bytes | None]:
    if isinstance(ocsp, Mapping):
        return [ocsp.get(cert_id_key(cert, issuer)) for cert, issuer in targets]
    found: list[bytes | None] = [None] * len(targets)
    for response in ocsp:
        try:
            loaded = x509_ocsp.load_der_ocsp_response(response)
            if loaded.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
                continue
            singles = list(loaded.responses)
        except ValueError:
            continue
        for i, (cert, issuer) in enumerate(targets):
            if found[i] is None and any(_cert_id_matches(s, cert, issuer) for s in singles):
                found[i] = response
    return found


class _OcspTarget(NamedTuple):
    """One OCSP check of an evaluation: the level's label, the certificate and its issuer, the response that
    answers it (None: none does), and whether it is checked at all (not when the certificate is not known to chain
    to the pinned root). ``subject``: the certificate's RFC 4514 subject where the entry needs it without a
    verified response (missing, not checked), else None."""

    level: str
    cert: x509.Certificate
    issuer: x509.Certificate
    response: bytes | None
    checked: bool
    subject: str | None
    cache_key: tuple[bytes, bytes, bytes] | None = None  # response, cert and issuer DER: the cache's OCSP key


def _ocsp_targets(
    shape: _ChainShape,
    chosen: Mapping[Role, VerifiedRim],
    ocsp: Sequence[bytes] | Mapping[str, bytes],
    trust: TrustStore,
    cache: NvidiaVerificationCache | None = None,
) -> tuple[_OcspTarget, ...]:
    """Step 6's targets: device certs 1..3 (issuer of cert 3: the pinned root), then each chosen RIM's signing
    chain, each with its response. Device levels at or above a failed chain link are not checked
    (:attr:`_ChainShape.last_failed_link`)."""
    labelled: list[tuple[str, x509.Certificate, x509.Certificate, bool]] = []
    if shape.path is not None:
        path = shape.path
        labelled += [
            (f"device-L{CHAIN_LENGTH - i}", path[i], path[i + 1], i > shape.last_failed_link)
            for i in range(1, CHAIN_LENGTH - 1)
        ]
    for role, rim in chosen.items():
        targets = rim_ocsp_targets(rim, trust)
        labelled += [(f"{role}-rim-L{4 - j}", cert, issuer, True) for j, (cert, issuer) in enumerate(targets)]
    responses = _responses_by_target([(c, i) for _, c, i, _ in labelled], ocsp, cache)
    return tuple(
        _OcspTarget(
            level,
            cert,
            issuer,
            response if checked else None,
            checked,
            cert.subject.rfc4514_string() if response is None or not checked else None,
        )
        for (level, cert, issuer, checked), response in zip(labelled, responses, strict=True)
    )


def _check_ocsp_targets(
    targets: tuple[_OcspTarget, ...],
    policy: NvidiaPolicy,
    now: datetime,
    checks: _Checks,
    cache: NvidiaVerificationCache | None = None,
) -> None:
    """Step 6: every checked target's response verified, its status judged; unchecked ones only reported. With a
    cache, each response's stored acceptance answers while it holds (:meth:`_CachedOcsp.answer`)."""
    entries: list[dict[str, object]] = []
    known = None if cache is None else cache.known_answers(targets)
    used: list[_CachedOcsp | None] = [None] * len(targets)
    learnt = False  # an acceptance that ``known`` lacks
    for k, (level, cert, issuer, response, checked, known_subject, key) in enumerate(targets):
        if not checked:
            entries.append({"level": level, "subject": known_subject, "status": "not_checked"})
            continue
        if response is None:
            entries.append({"level": level, "subject": known_subject, "status": "missing"})
            if policy.require_ocsp:
                checks.fail(Code.NVIDIA_OCSP_MISSING, f"no OCSP response for {level} ({known_subject})")
            continue
        try:
            stored = known[k] if known is not None else None
            if stored is None and cache is not None and key is not None:
                stored = cache.cached_ocsp(key, cert, issuer, now, policy.ocsp)
                learnt = True
            used[k] = stored
            answer = None if stored is None else stored.answer(now, policy.ocsp)
            if stored is None or answer is None:  # uncached, or the acceptance does not hold: the full check says why
                result = check_ocsp(response, cert, issuer, now, policy.ocsp)
                status, age = result.status, result.age_seconds
                next_update = None if result.next_update is None else _utc_text(result.next_update)
            else:
                result, next_update = stored.result, stored.next_update_text
                status, age = answer
        except KeywardError as e:
            checks.error(e, f"OCSP {level}: ")
            entries.append({"level": level, "subject": cert.subject.rfc4514_string(), "status": "invalid"})
            continue
        subject = result.subject  # cert.subject.rfc4514_string()
        entries.append(
            {
                "level": level,
                "subject": subject,
                "status": status,
                "revocation_reason": result.revocation_reason,
                "age_seconds": age,
                "responder": result.responder,
                "next_update": next_update,
            }
        )
        if status == "revoked":
            checks.fail(
                Code.NVIDIA_OCSP_REVOKED,
                f"{level} ({subject}) is revoked",
                "good",
                result.revocation_reason or "revoked",
            )
        elif status == "unknown":
            checks.fail(
                Code.NVIDIA_OCSP_UNKNOWN, f"the OCSP responder does not know {level} ({subject})", "good", "unknown"
            )
    checks.claims["ocsp"] = entries
    if cache is not None and (known is None or learnt):
        cache.remember_answers(targets, tuple(used))


# ----------------------------------------------------------------------------------------------------------
# Verification cache


@dataclass(frozen=True, slots=True)
class _DeviceChain:
    """A device chain's certificates, loaded, its shape under one trust store (step 1 but the dates), and what the
    claims read from it: the leaf's architecture (its CN), ``ueid`` (leaf serial) and ``hwmodel`` (CN of cert 1)."""

    certs: tuple[x509.Certificate, ...]
    shape: _ChainShape
    leaf_architecture: str | None
    ueid: str | None
    hwmodel: str | None


def _device_chain(certs: tuple[x509.Certificate, ...], trust: TrustStore) -> _DeviceChain:
    return _DeviceChain(
        certs,
        _chain_shape(certs, trust),
        _leaf_architecture(certs),
        str(certs[0].serial_number) if certs else None,
        _cn(certs[1].subject) if len(certs) > 1 else None,
    )


@dataclass(frozen=True, slots=True)
class _CachedRim:
    """A RIM that verified once, and the window in which every certificate of its chain (pinned root included) is
    valid: inside it :func:`verify_rim` gives this same value, outside it fails on the dates."""

    rim: VerifiedRim
    not_before: datetime
    not_after: datetime
    role: Role | None  # :func:`_role`


@dataclass(frozen=True, slots=True)
class _CachedOcsp:
    """A response that :func:`check_ocsp` accepted once for one (certificate, issuer), with what its answer at
    another ``now`` or under another policy depends on: the validity of each certificate the response carries (it
    decides which responder is chosen) at the time it was accepted, thisUpdate / nextUpdate, and whether the status
    is a revocation (certificateHold turns "good" only when the policy allows holds)."""

    result: OcspResult
    carried: tuple[tuple[datetime, datetime], ...]
    carried_valid: tuple[bool, ...]
    revoked: bool
    #: When every carried certificate was valid: the window in which they all still are (the responder choice
    #: is unchanged exactly inside it); None otherwise (each is compared).
    steady: tuple[datetime, datetime] | None
    next_update_text: str | None  # the claim's text of ``result.next_update``

    def answer(self, now: datetime, policy: OcspPolicy) -> tuple[OcspStatus, int] | None:
        """(status, age in seconds) at ``now`` under ``policy``, or None when :func:`check_ocsp` must run again
        (another responder would be chosen, or the response is not fresh)."""
        steady = self.steady
        if steady is not None:
            if not steady[0] <= now <= steady[1]:
                return None
        elif not all(_within(w, now) == v for w, v in zip(self.carried, self.carried_valid, strict=True)):
            return None
        r = self.result
        if not _ocsp_fresh(r, now, policy):
            return None
        status = r.status
        if self.revoked:
            hold = r.revocation_reason == x509.ReasonFlags.certificate_hold.name
            status = "good" if hold and policy.allow_hold else "revoked"
        return status, int((now - r.this_update).total_seconds())


def _cached_ocsp(result: OcspResult, response: bytes, now: datetime) -> _CachedOcsp:
    carried = tuple(
        (c.not_valid_before_utc, c.not_valid_after_utc) for c in x509_ocsp.load_der_ocsp_response(response).certificates
    )
    valid = tuple(_within(w, now) for w in carried)
    steady = None
    if all(valid):
        steady = (max((w[0] for w in carried), default=_EVER[0]), min((w[1] for w in carried), default=_EVER[1]))
    next_update = None if result.next_update is None else _utc_text(result.next_update)
    return _CachedOcsp(result, carried, valid, result.revocation_time is not None, steady, next_update)


_EVER: Final = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


def _within(window: tuple[datetime, datetime], now: datetime) -> bool:
    return window[0] <= now <= window[1]


def _ocsp_fresh(result: OcspResult, now: datetime, policy: OcspPolicy) -> bool:
    """Whether :func:`check_ocsp`'s freshness rule (step 4) passes: ``this_update <= now <= next_update + grace``,
    no nextUpdate only under ``max_age``, and ``now - this_update <= max_age`` when set."""
    if now < result.this_update:
        return False
    if result.next_update is None:
        if policy.max_age is None:
            return False
    elif now > result.next_update + policy.grace:
        return False
    return policy.max_age is None or now - result.this_update <= policy.max_age


class NvidiaVerificationCache:
    """Process-wide, thread-safe, bounded (LRU) memo of what an NVIDIA evaluation computes from bytes and the trust
    store alone; whatever depends on ``now`` or on the policy is checked again on every use.

    * device chains, by the chain DER and the trust store's fingerprint: the certificates, step 1 but the dates
      (links, pinned root, CA flags) and the claims read from the chain; the validity windows are compared with
      ``now`` each time;
    * leaf public keys and leaf FWIDs, by the leaf DER (and the architecture);
    * verified RIMs (and their role), by the RIM bytes themselves (a bytes object hashes once; an equal copy is
      compared in full) and the trust store's fingerprint: used only while ``now`` is inside every signing
      certificate's validity; outside it the RIM is verified again (and fails exactly as uncached);
    * measurement plans, by the two RIMs' SHA-256; measurement rows, by the identity of the report's blocks tuple
      and of the plan, and the NVDEC0 status (the parser shares the blocks of equal records);
    * OCSP targets (certificate, issuer, matching response, cache key, checked or not), by the trust store, device
      certificates 1..3, each chosen RIM's role and SHA-256, and the supplied responses;
    * OCSP responses accepted for a (certificate, issuer), by the response, certificate and issuer DER (and, per
      targets tuple, by its identity): used only while the responder choice is unchanged and the response is
      fresh at ``now`` under the policy, the status re-read under the policy (certificateHold) and the age
      recomputed; otherwise checked again;
    * which supplied response answers which certificate, by all of their bytes (:meth:`responses_by_target`).

    Memos by identity hold the objects whose ids they use, so no other object can take those ids meanwhile.
    Failures are never stored: a RIM or response that fails is verified again on every use. Step results that
    are stored as they are (a chain's shape, an FWID) are pure functions of the key, a failure included.
    """

    def __init__(self, max_entries: int = limits.VERIFICATION_CACHE_ENTRIES) -> None:
        self.chains: ContentCache[_DeviceChain] = ContentCache(max_entries)
        self.leaf_keys: ContentCache[tuple[ec.EllipticCurvePublicKey | None]] = ContentCache(max_entries)
        self.fwids: ContentCache[tuple[bytes | None]] = ContentCache(max_entries)
        self.rims: ContentCache[_CachedRim] = ContentCache(max_entries)
        self.ocsp: ContentCache[_CachedOcsp] = ContentCache(max_entries)
        self.matches: ContentCache[tuple[int | None, ...]] = ContentCache(max_entries)
        self.plans: ContentCache[MeasurementPlan] = ContentCache(max_entries)
        self.targets: ContentCache[tuple[_OcspTarget, ...]] = ContentCache(max_entries)
        #: DER of certificate objects the entries above hold, by identity (each entry keeps its certificate alive,
        #: so no other object can have its id while it is there): re-encoding costs more than a verification step.
        self._ders: OrderedDict[int, tuple[x509.Certificate, bytes]] = OrderedDict()
        self._ders_max = max_entries
        self._ders_lock = Lock()
        #: Measurement rows by the identity of the report's blocks tuple and of the plan (the parser memoises
        #: blocks by content, so later reports of a device carry the same tuple); each entry holds both objects.
        self._measured: OrderedDict[tuple[int, int, bool], tuple[object, MeasurementPlan, MeasuredRows]] = OrderedDict()
        self._measured_lock = Lock()
        #: The OCSP acceptances used for a targets tuple (from :meth:`ocsp_targets`), by its identity.
        self._answers: OrderedDict[int, tuple[tuple[_OcspTarget, ...], tuple[_CachedOcsp | None, ...]]] = OrderedDict()
        self._answers_lock = Lock()

    def der(self, cert: x509.Certificate) -> bytes:
        """``cert.public_bytes(DER)``, remembered for the certificate object (first in, first out)."""
        hit = self._ders.get(id(cert))  # one atomic read; writers hold the lock
        if hit is not None and hit[0] is cert:
            return hit[1]
        value = cert.public_bytes(Encoding.DER)
        with self._ders_lock:
            self._ders[id(cert)] = (cert, value)
            if len(self._ders) > self._ders_max:
                self._ders.popitem(last=False)
        return value

    def measured(self, report: GpuReport, plan: MeasurementPlan) -> MeasuredRows:
        """:func:`~verifier.appraisal.nvidia.measured_rows`, a pure function of the report's blocks, its NVDEC0
        status and the plan: remembered for the blocks and plan objects (first in, first out). The entry keeps both
        alive, so while it is there no other object can have their ids."""
        blocks = report.response.blocks
        key = (id(blocks), id(plan), msr35_skipped(report))
        hit = self._measured.get(key)  # one atomic read; writers hold the lock
        if hit is not None and hit[0] is blocks and hit[1] is plan:
            return hit[2]
        value = measured_rows(report, plan)
        with self._measured_lock:
            self._measured[key] = (blocks, plan, value)
            if len(self._measured) > self._ders_max:
                self._measured.popitem(last=False)
        return value

    def chain(self, chain_der: Sequence[bytes], trust: TrustStore) -> _DeviceChain:
        """The loaded chain and its shape (raises ``nvidia.chain.malformed`` like :func:`_load_chain`)."""

        return self.chains.get_or_compute(
            (trust.fingerprint, *chain_der), lambda: _device_chain(_load_chain(chain_der), trust)
        )

    def leaf_key(self, leaf_der: bytes, leaf: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
        return self.leaf_keys.get_or_compute((leaf_der,), lambda: (_p384_key(leaf),))[0]

    def leaf_fwid(self, leaf_der: bytes, leaf: x509.Certificate, arch: str) -> bytes | None:
        return self.fwids.get_or_compute((leaf_der, arch.encode()), lambda: (leaf_fwid(leaf, arch),))[0]

    def verify_rim(self, xml: bytes, trust: TrustStore, now: datetime) -> VerifiedRim:
        """:func:`verify_rim`, the signature and chain links verified once per RIM and trust store."""
        return self.verified_rim(xml, trust, now)[0]

    def verified_rim(self, xml: bytes, trust: TrustStore, now: datetime) -> tuple[VerifiedRim, Role | None]:
        """:meth:`verify_rim` and the RIM's role (:func:`_role`, read once)."""

        def compute() -> _CachedRim:
            rim = verify_rim(xml, trust, now)
            certs = (*rim.signer_chain, trust.root(NVIDIA_RIM_ROOT).certificate)
            return _CachedRim(
                rim,
                max(c.not_valid_before_utc for c in certs),
                min(c.not_valid_after_utc for c in certs),
                _role(rim),
            )

        # Keyed by the bytes themselves (a bytes object hashes once in its life; equal keys compare in full).
        cached = self.rims.get_or_compute((trust.fingerprint, xml if type(xml) is bytes else bytes(xml)), compute)
        if cached.not_before <= now <= cached.not_after:
            return cached.rim, cached.role
        rim = verify_rim(xml, trust, now)  # outside the window: the uncached check says exactly why
        return rim, _role(rim)

    def check_ocsp(
        self, response: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime, policy: OcspPolicy
    ) -> OcspResult:
        """:func:`check_ocsp` (without a nonce), the response's signature and responder verified once."""
        r, status, age = self.ocsp_status((response, self.der(cert), self.der(issuer)), cert, issuer, now, policy)
        return OcspResult(
            subject=r.subject,
            serial=r.serial,
            status=status,
            revocation_reason=r.revocation_reason,
            revocation_time=r.revocation_time,
            this_update=r.this_update,
            next_update=r.next_update,
            produced_at=r.produced_at,
            responder=r.responder,
            nonce_matches=r.nonce_matches,
            age_seconds=age,
        )

    def ocsp_status(
        self,
        key: tuple[bytes, bytes, bytes],
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        policy: OcspPolicy,
    ) -> tuple[OcspResult, OcspStatus, int]:
        """:meth:`check_ocsp` as ``(result, status, age_seconds)``: ``status`` and ``age_seconds`` are the answer's
        at ``now`` under ``policy``; take every other field from ``result`` (whose own status and age may be those
        of the time it was stored). ``key``: (response, certificate DER, issuer DER)."""
        cached = self.cached_ocsp(key, cert, issuer, now, policy)
        answer = cached.answer(now, policy)
        if answer is None:
            result = check_ocsp(key[0], cert, issuer, now, policy)  # the uncached check says exactly why
            return result, result.status, result.age_seconds
        return cached.result, answer[0], answer[1]

    def cached_ocsp(
        self,
        key: tuple[bytes, bytes, bytes],
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        policy: OcspPolicy,
    ) -> _CachedOcsp:
        """The stored acceptance of ``key`` (response, certificate DER, issuer DER), checking it first if there is
        none (raises as :func:`check_ocsp` does)."""
        response = key[0]
        return self.ocsp.get_or_compute(
            key, lambda: _cached_ocsp(check_ocsp(response, cert, issuer, now, policy), response, now)
        )

    def known_answers(self, targets: tuple[_OcspTarget, ...]) -> tuple[_CachedOcsp | None, ...] | None:
        """The stored acceptances :func:`_check_ocsp_targets` last used for this targets object (by identity; the
        entry holds it), one per target (None where there was none), or None."""
        hit = self._answers.get(id(targets))  # one atomic read; writers hold the lock
        return hit[1] if hit is not None and hit[0] is targets else None

    def remember_answers(self, targets: tuple[_OcspTarget, ...], answers: tuple[_CachedOcsp | None, ...]) -> None:
        with self._answers_lock:
            self._answers[id(targets)] = (targets, answers)
            if len(self._answers) > self._ders_max:
                self._answers.popitem(last=False)

    def measurement_plan(self, driver_rim: VerifiedRim | None, vbios_rim: VerifiedRim | None) -> MeasurementPlan:
        """:func:`~verifier.appraisal.nvidia.measurement_plan`, once per pair of RIMs (keyed by their SHA-256: the
        plan is read from the RIM bytes alone)."""
        key = (
            b"" if driver_rim is None else driver_rim.sha256.encode(),
            b"" if vbios_rim is None else vbios_rim.sha256.encode(),
        )
        return self.plans.get_or_compute(key, lambda: measurement_plan(driver_rim, vbios_rim))

    def ocsp_targets(
        self,
        shape: _ChainShape,
        chain_der: Sequence[bytes],
        chosen: Mapping[Role, VerifiedRim],
        ocsp: Sequence[bytes] | Mapping[str, bytes],
        trust: TrustStore,
    ) -> tuple[_OcspTarget, ...]:
        """:func:`_ocsp_targets` with each target's cache key, memoised by what decides them: the trust store, device
        certs 1..3 (with the pinned root they are the device targets; ``shape`` is theirs), each chosen RIM's role
        and SHA-256 (its signing chain), and the supplied responses (and their keys)."""
        if isinstance(ocsp, Mapping):
            items = sorted(ocsp.items())
            names, responses = [k.encode() for k, _ in items], [r for _, r in items]
        else:
            names, responses = [], list(ocsp)
        device = () if shape.path is None else chain_der[1 : CHAIN_LENGTH - 1]
        rims = [part for role, rim in chosen.items() for part in (role.encode(), rim.sha256.encode())]
        key = (
            trust.fingerprint,
            b"-" if shape.path is None else b"%d" % shape.last_failed_link,  # with it: 0 or 3 device certificates
            *device,
            b"%d" % len(rims),
            *rims,
            b"%d" % len(names),
            *names,
            *responses,
        )

        def compute() -> tuple[_OcspTarget, ...]:
            return tuple(
                t if t.response is None else t._replace(cache_key=(t.response, self.der(t.cert), self.der(t.issuer)))
                for t in _ocsp_targets(shape, chosen, ocsp, trust)
            )

        return self.targets.get_or_compute(key, compute)

    def responses_by_target(
        self, targets: Sequence[tuple[x509.Certificate, x509.Certificate]], ocsp: Sequence[bytes] | Mapping[str, bytes]
    ) -> list[bytes | None]:
        """:func:`_match_responses`, memoised by the targets' and the responses' bytes (and keys)."""
        if isinstance(ocsp, Mapping):
            items = sorted(ocsp.items())
            responses = [r for _, r in items]
            names = tuple(k.encode() for k, _ in items)
        else:
            responses, names = list(ocsp), ()
        target_der = tuple(self.der(c) for pair in targets for c in pair)
        key = (
            len(target_der).to_bytes(4, "big"),
            *target_der,
            len(names).to_bytes(4, "big"),
            *names,
            *responses,
        )

        def compute() -> tuple[int | None, ...]:
            found = _match_responses(targets, ocsp)
            return tuple(None if r is None else _index_of(responses, r) for r in found)

        return [None if i is None else responses[i] for i in self.matches.get_or_compute(key, compute)]


def _index_of(responses: Sequence[bytes], response: bytes) -> int:
    return next(i for i, r in enumerate(responses) if r is response or r == response)


# ----------------------------------------------------------------------------------------------------------
# Evaluation


def report_claims(report: GpuReport) -> dict[str, object]:
    """The report's own fields (unverified until the evaluation says so)."""
    opaque = report.response.opaque
    switch_pdis = opaque.switch_pdis
    return {
        "driver_version": opaque.driver_version,
        "vbios_version": opaque.vbios_version,
        "project": opaque.project,
        "project_sku": opaque.project_sku,
        "chip_sku": opaque.chip_sku,
        "chip_info": opaque.chip_info,
        "request_nonce": report.nonce.hex(),
        "mode": None
        if opaque.feature_flag is None
        else _MODES.get(opaque.feature_flag, f"unknown({opaque.feature_flag})"),
        "protected_pcie": None if opaque.protected_pcie_status is None else opaque.protected_pcie_status == 0xAA,
        "nvdec0_status": None if opaque.nvdec0_status is None else f"0x{opaque.nvdec0_status:02x}",
        "switch_pdis": None if switch_pdis is None else [p.hex() for p in switch_pdis],
        "switch_gpu_pdis": None if opaque.switch_gpu_pdis is None else [p.hex() for p in opaque.switch_gpu_pdis],
        "fwid": None if opaque.fwid is None else opaque.fwid.hex(),
    }


def evaluate_device(
    report: GpuReport,
    chain_der: Sequence[bytes],
    rims: Sequence[bytes],
    ocsp: Sequence[bytes] | Mapping[str, bytes],
    policy: NvidiaPolicy,
    trust: TrustStore,
    now: datetime,
    *,
    cache: NvidiaVerificationCache | None = None,
) -> Evaluation:
    """Verify and appraise one device (module docstring, steps 1-7). Never raises for bad input: every failure is
    a reason of the returned :class:`Evaluation`; ``verified`` says whether the report is genuine, fresh and bound
    (chain, FWID, signature, nonce), ``accepted`` whether nothing at all failed. ``cache``: a process-wide
    :class:`NvidiaVerificationCache`; the evaluation is the same with or without it."""
    checks = _Checks(claims=report_claims(report))
    claims = checks.claims
    try:
        trust.root(NVIDIA_DEVICE_ROOT)
        trust.root(NVIDIA_RIM_ROOT)
        kind = device_kind(report)
        chain = _device_chain(_load_chain(chain_der), trust) if cache is None else cache.chain(chain_der, trust)
        certs = chain.certs
        if not certs:
            raise EvidenceMalformed(Code.NVIDIA_CHAIN_MALFORMED, "no device certificate")
        arch = _architecture(report, chain.leaf_architecture)
    except KeywardError as e:
        return unverified(PLATFORM_NVIDIA, claims, e, trust)
    claims.update(device_kind=kind, architecture=arch, ueid=chain.ueid, hwmodel=chain.hwmodel)

    shape = chain.shape
    chain_ok = _check_chain(shape, now, checks)  # 1
    fwid_ok = _check_fwid(report, certs[0], arch, policy, checks, None if cache is None else (cache, chain_der[0]))  # 2
    claims["fwid_match"] = fwid_ok
    leaf_key = _p384_key(certs[0]) if cache is None else cache.leaf_key(chain_der[0], certs[0])
    signature_ok = _signature_ok(report, leaf_key)  # 3
    claims["signature_verified"] = signature_ok
    if not signature_ok:
        checks.fail(Code.NVIDIA_REPORT_SIGNATURE_INVALID, "the report signature does not verify with the leaf key")
    trailing_ok = not report.trailing or policy.allow_trailing_zeros
    if not trailing_ok:
        checks.fail(Code.NVIDIA_REPORT_TRAILING_DATA, "zero bytes after the report signature", 0, len(report.trailing))
    nonce_ok: bool | None = None  # 4
    if policy.expected_nonce is not None:
        nonce_ok = hmac.compare_digest(report.nonce, policy.expected_nonce)
        if not nonce_ok:
            checks.fail(
                Code.NVIDIA_NONCE_MISMATCH,
                "the SPDM request nonce is not this device's binding",
                policy.expected_nonce.hex(),
                report.nonce.hex(),
            )
    claims["nonce_match"] = "not_checked" if nonce_ok is None else nonce_ok

    chosen = _select_rims(report, kind, arch, rims, policy, trust, now, checks, cache)  # 5
    driver_rim = chosen.get("driver")
    firmware_rim = chosen.get("bios" if kind == "switch" else "vbios")
    plan = (
        measurement_plan(driver_rim, firmware_rim)
        if cache is None
        else cache.measurement_plan(driver_rim, firmware_rim)
    )
    conflicts = plan.conflicts
    checks.reasons.extend(conflict_reasons(conflicts))
    measured = measured_rows(report, plan) if cache is None else cache.measured(report, plan)
    mismatches = measured.reasons
    checks.reasons.extend(mismatches)
    complete = firmware_rim is not None and (kind == "switch" or driver_rim is not None)
    claims["measres"] = "unavailable" if not complete else ("fail" if mismatches or conflicts else "success")
    claims["msr35_skipped"] = msr35_skipped(report)
    claims["index_conflicts"] = list(conflicts)
    claims["measurements"] = measured.claims()
    if driver_rim is not None:
        claims["oemid"] = driver_rim.firmware_manufacturer_id

    if not ocsp and not policy.require_ocsp:  # 6
        claims["ocsp"] = "skipped"
    else:
        targets = (
            _ocsp_targets(shape, chosen, ocsp, trust)
            if cache is None
            else cache.ocsp_targets(shape, chain_der, chosen, ocsp, trust)
        )
        _check_ocsp_targets(targets, policy, now, checks, cache)

    checks.reasons.extend(policy_reasons(report, arch, kind, policy))  # 7

    verified = chain_ok and signature_ok and fwid_ok is not False and nonce_ok is not False and trailing_ok
    return Evaluation(
        platform=PLATFORM_NVIDIA,
        verified=verified,
        accepted=verified and not checks.reasons,
        tcb_status=None,
        advisory_ids=(),
        claims=claims,
        reasons=tuple(checks.reasons),
        collateral={
            "rims": {role: {"sha256": rim.sha256, "tag_id": rim.tag_id} for role, rim in chosen.items()},
            "ocsp_responses": len(ocsp),
        },
        simulated=trust.simulated,
    )


def evaluate_gpu_report(
    report_bytes: bytes,
    chain_pem: bytes,
    rims: Sequence[bytes],
    ocsp: Sequence[bytes] | Mapping[str, bytes],
    policy: NvidiaPolicy,
    trust: TrustStore,
    now: datetime,
    *,
    cache: NvidiaVerificationCache | None = None,
) -> Evaluation:
    """Parse the report (raw or hex) and the PEM chain, then :func:`evaluate_device`. Never raises for bad input."""
    try:
        report = parse_gpu_report(decode_report_bytes(report_bytes))
    except KeywardError as e:
        return unverified(PLATFORM_NVIDIA, {}, e, trust)
    try:
        chain = parse_device_chain(chain_pem)
    except KeywardError as e:
        return unverified(PLATFORM_NVIDIA, report_claims(report), e, trust)
    return evaluate_device(report, chain, rims, ocsp, policy, trust, now, cache=cache)


# ----------------------------------------------------------------------------------------------------------
# Protected PCIe topology (§7)

PPCIE_GPUS: Final = 8
PPCIE_SWITCHES: Final = 4


def _topology(message: str, expected: object, actual: object) -> Reason:
    return Reason(Code.NVIDIA_TOPOLOGY_MISMATCH, message, str(expected), str(actual))


def _hexes(values: object) -> str:
    if isinstance(values, set | frozenset | list | tuple):
        return ", ".join(sorted(v.hex() for v in values if isinstance(v, bytes)))
    return str(values)


def check_topology(gpus: Sequence[GpuReport], switches: Sequence[GpuReport]) -> tuple[Reason, ...]:
    """Protected PCIe (§7): 8 GPUs and 4 NVSwitches; the switches' DEVICE_PDIs are distinct; every GPU's non-zero
    SWITCH_PDI entries, byte-reversed, are exactly the set of the switches' DEVICE_PDIs; each switch lists 8 unique
    GPU PDIs, the same set on every switch (the order differs between switches on real systems). Reports must be
    verified first; this only cross-checks them."""
    reasons: list[Reason] = []
    if len(gpus) != PPCIE_GPUS or len(switches) != PPCIE_SWITCHES:
        reasons.append(
            _topology(
                "protected PCIe needs 8 GPUs and 4 NVSwitches",
                f"{PPCIE_GPUS} GPUs, {PPCIE_SWITCHES} NVSwitches",
                f"{len(gpus)} GPUs, {len(switches)} NVSwitches",
            )
        )
    device_pdis: list[bytes] = []
    for i, switch in enumerate(switches):
        own = switch.response.opaque.switch_pdis
        if own is None or len(own) != 1:
            reasons.append(
                _topology(f"NVSwitch {i} does not report exactly one DEVICE_PDI", 1, 0 if own is None else len(own))
            )
        else:
            device_pdis.append(own[0])
    want = set(device_pdis)
    if len(want) != len(device_pdis):
        reasons.append(_topology("two NVSwitches report the same DEVICE_PDI", "distinct", _hexes(device_pdis)))
    for i, gpu in enumerate(gpus):
        got = {p[::-1] for p in gpu.response.opaque.switch_pdis or () if any(p)}
        if got != want:
            reasons.append(
                _topology(f"GPU {i}'s NVLink switch PDIs are not the NVSwitches' PDIs", _hexes(want), _hexes(got))
            )
    lists: list[frozenset[bytes]] = []
    for i, switch in enumerate(switches):
        gpu_pdis = switch.response.opaque.switch_gpu_pdis
        if gpu_pdis is None or len(set(gpu_pdis)) != len(gpu_pdis):
            reasons.append(
                _topology(f"NVSwitch {i}'s GPU PDIs are absent or not unique", "unique", _hexes(gpu_pdis or ()))
            )
        else:
            lists.append(frozenset(gpu_pdis))
    for i, listed in enumerate(lists[1:], start=1):
        if listed != lists[0]:
            reasons.append(
                _topology(f"NVSwitch {i} lists other GPU PDIs than NVSwitch 0", _hexes(lists[0]), _hexes(listed))
            )
    return tuple(reasons)
