"""verifier.trust.ocsp over NVIDIA's seven real OCSP responses (tests/vectors/nvidia/ocsp/, PROVENANCE-rim-ocsp.md)
and over small responses built here with cryptography's OCSPResponseBuilder under a throwaway CA (revoked, unknown,
hold, delegation, freshness and nonce cases NVIDIA's vectors do not have).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Final

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verifier import limits
from verifier.errors import Code, CollateralError, KeywardError
from verifier.trust.nvidia_rim import verify_rim
from verifier.trust.ocsp import OcspPolicy, cert_id_key, check_ocsp, ocsp_request
from verifier.trust.store import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT, TrustStore, load_trust_store

VECTORS: Final = Path(__file__).resolve().parents[2] / "vectors" / "nvidia"
DEVICE_NOW: Final = datetime(2025, 8, 21, 12, tzinfo=UTC)
RIM_NOW: Final = datetime(2025, 10, 24, 12, tzinfo=UTC)
ONLINE: Final = OcspPolicy()


@cache
def _trust() -> TrustStore:
    return load_trust_store()


@cache
def _device_chain() -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates((VECTORS / "hopperCertChain.pem").read_bytes()))


@cache
def _rim_chain(name: str) -> tuple[x509.Certificate, ...]:
    return verify_rim((VECTORS / "rim" / name).read_bytes(), _trust(), RIM_NOW).signer_chain


def _response(name: str) -> bytes:
    return (VECTORS / "ocsp" / f"{name}.ocsp.der").read_bytes()


def _pair(name: str) -> tuple[x509.Certificate, x509.Certificate, datetime]:
    """(certificate, issuer, pinned now) of each real response."""
    device = _device_chain()
    driver = _rim_chain("NV_GPU_DRIVER_GH100_550.90.07.xml")
    vbios = _rim_chain("NV_GPU_VBIOS_1010_0200_882_96009F0001.xml")
    rim_root = _trust().root(NVIDIA_RIM_ROOT).certificate
    pairs = {
        "test_gpu_certificate_l2": (device[3], _trust().root(NVIDIA_DEVICE_ROOT).certificate, DEVICE_NOW),
        "test_gpu_certificate_l3": (device[2], device[3], DEVICE_NOW),
        "test_gpu_certificate_l4": (device[1], device[2], DEVICE_NOW),
        "test_gpu_rim_l2": (driver[2], rim_root, RIM_NOW),
        "test_gpu_driver_rim_l3": (driver[1], driver[2], RIM_NOW),
        "test_gpu_driver_rim_l4": (driver[0], driver[1], RIM_NOW),
        "test_gpu_vbios_l4": (vbios[0], vbios[1], RIM_NOW),
    }
    return pairs[name]


REAL: Final = (
    "test_gpu_certificate_l2",
    "test_gpu_certificate_l3",
    "test_gpu_certificate_l4",
    "test_gpu_rim_l2",
    "test_gpu_driver_rim_l3",
    "test_gpu_driver_rim_l4",
    "test_gpu_vbios_l4",
)


def _code(response: bytes, cert: x509.Certificate, issuer: x509.Certificate, now: datetime, **kw: object) -> Code:
    policy = kw.pop("policy", ONLINE)
    assert isinstance(policy, OcspPolicy)
    with pytest.raises(KeywardError) as info:
        check_ocsp(response, cert, issuer, now, policy)
    assert isinstance(info.value, CollateralError)
    return info.value.code


# -- NVIDIA's real responses --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_check_ocsp_real_responses_good(name: str) -> None:
    cert, issuer, now = _pair(name)
    result = check_ocsp(_response(name), cert, issuer, now, ONLINE)
    assert result.status == "good"
    assert result.serial == cert.serial_number
    assert result.subject == cert.subject.rfc4514_string()
    assert "NVIDIA OCSP Responder" in result.responder
    assert result.nonce_matches is None
    assert result.next_update == result.this_update + timedelta(hours=24)
    assert 0 <= result.age_seconds < 6 * 3600


@pytest.mark.parametrize("name", REAL)
def test_check_ocsp_real_responses_stale_after_next_update(name: str) -> None:
    cert, issuer, now = _pair(name)
    after = check_ocsp(_response(name), cert, issuer, now, ONLINE).next_update
    assert after is not None
    late = after + timedelta(seconds=1)
    assert _code(_response(name), cert, issuer, late) is Code.NVIDIA_OCSP_STALE
    # a grace of a minute covers one second; a max age of one hour does not cover 24 h
    assert check_ocsp(_response(name), cert, issuer, late, OcspPolicy(grace=timedelta(minutes=1))).status == "good"
    aged = OcspPolicy(grace=timedelta(days=1), max_age=timedelta(hours=1))
    assert _code(_response(name), cert, issuer, late, policy=aged) is Code.NVIDIA_OCSP_STALE


def test_check_ocsp_real_response_before_this_update_stale() -> None:
    cert, issuer, _ = _pair("test_gpu_certificate_l4")
    early = datetime(2025, 8, 21, 6, tzinfo=UTC)
    assert _code(_response("test_gpu_certificate_l4"), cert, issuer, early) is Code.NVIDIA_OCSP_STALE


def test_check_ocsp_real_response_for_another_certificate() -> None:
    # the L3 response checked for the L4 certificate (BROM) under its own issuer
    cert, issuer, now = _pair("test_gpu_certificate_l4")
    assert _code(_response("test_gpu_certificate_l3"), cert, issuer, now) is Code.NVIDIA_OCSP_WRONG_CERTIFICATE


def test_check_ocsp_real_response_same_serial_other_issuer() -> None:
    # the driver RIM L4's response checked for the VBIOS RIM L4 (same issuer L3, other serial)
    cert, issuer, now = _pair("test_gpu_vbios_l4")
    assert _code(_response("test_gpu_driver_rim_l4"), cert, issuer, now) is Code.NVIDIA_OCSP_WRONG_CERTIFICATE


def test_check_ocsp_real_response_tampered_next_update() -> None:
    data = _response("test_gpu_certificate_l4")
    assert data.count(b"20250822064707Z") == 1
    tampered = data.replace(b"20250822064707Z", b"20260822064707Z")
    cert, issuer, now = _pair("test_gpu_certificate_l4")
    assert _code(tampered, cert, issuer, now) is Code.NVIDIA_OCSP_SIGNATURE_INVALID


def test_check_ocsp_real_response_tampered_signature() -> None:
    data = bytearray(_response("test_gpu_rim_l2"))
    data[-1] ^= 0x01
    cert, issuer, now = _pair("test_gpu_rim_l2")
    assert _code(bytes(data), cert, issuer, now) in (Code.NVIDIA_OCSP_SIGNATURE_INVALID, Code.NVIDIA_OCSP_MALFORMED)


@pytest.mark.parametrize("position", [0, 1, 5, 100, 400])
def test_check_ocsp_real_response_flipped_byte_rejected(position: int) -> None:
    data = bytearray(_response("test_gpu_certificate_l3"))
    data[position] ^= 0x40
    cert, issuer, now = _pair("test_gpu_certificate_l3")
    assert _code(bytes(data), cert, issuer, now) in (
        Code.NVIDIA_OCSP_MALFORMED,
        Code.NVIDIA_OCSP_SIGNATURE_INVALID,
        Code.NVIDIA_OCSP_WRONG_CERTIFICATE,
    )


def test_check_ocsp_real_response_under_another_issuer() -> None:
    # the CertID hashes the issuer: the L2 response checked with the Provisioner ICA as issuer matches nothing
    cert, _, now = _pair("test_gpu_certificate_l2")
    other_issuer = _device_chain()[2]
    assert _code(_response("test_gpu_certificate_l2"), cert, other_issuer, now) is Code.NVIDIA_OCSP_WRONG_CERTIFICATE


def test_cert_id_key_matches_the_real_responses_cert_id() -> None:
    cert, issuer, _ = _pair("test_gpu_certificate_l4")
    single = ocsp.load_der_ocsp_response(_response("test_gpu_certificate_l4"))
    key = cert_id_key(cert, issuer)
    assert key == (f"sha384:{single.issuer_name_hash.hex()}:{single.issuer_key_hash.hex()}:{single.serial_number:x}")


def test_ocsp_request_sha384_cert_id_and_nonce() -> None:
    cert, issuer, _ = _pair("test_gpu_driver_rim_l4")
    request = ocsp.load_der_ocsp_request(ocsp_request(cert, issuer, b"\x07" * 32))
    assert isinstance(request.hash_algorithm, hashes.SHA384)
    assert cert_id_key(cert, issuer) == (
        f"sha384:{request.issuer_name_hash.hex()}:{request.issuer_key_hash.hex()}:{request.serial_number:x}"
    )
    nonce = request.extensions.get_extension_for_class(x509.OCSPNonce).value
    assert nonce.nonce == b"\x07" * 32
    plain = ocsp.load_der_ocsp_request(ocsp_request(cert, issuer))
    assert len(plain.extensions) == 0


# -- built responses under a throwaway CA -------------------------------------------------------------------------

T0: Final = datetime(2025, 3, 1, tzinfo=UTC)
NOW: Final = T0 + timedelta(hours=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    eku: bool = False,
    not_after: datetime = T0 + timedelta(days=365),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - timedelta(days=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
    return builder.sign(issuer_key, hashes.SHA384())


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    leaf: x509.Certificate
    responder_key: ec.EllipticCurvePrivateKey
    responder: x509.Certificate


@cache
def _ca() -> Ca:
    key, responder_key = _key(), _key()
    cert = _cert("Throwaway CA", key, "Throwaway CA", key, ca=True)
    leaf = _cert("Throwaway leaf", _key(), "Throwaway CA", key)
    responder = _cert("Throwaway OCSP", responder_key, "Throwaway CA", key, eku=True)
    return Ca(key, cert, leaf, responder_key, responder)


def _build(
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    reason: x509.ReasonFlags | None = None,
    this_update: datetime = T0,
    next_update: datetime | None = T0 + timedelta(days=1),
    delegate: bool = True,
    responder: x509.Certificate | None = None,
    signing_key: ec.EllipticCurvePrivateKey | None = None,
    cert: x509.Certificate | None = None,
    by_name: bool = False,
    nonce: bytes | None = None,
    cert_id_hash: hashes.HashAlgorithm | None = None,
) -> bytes:
    ca = _ca()
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    signer_cert = responder or (ca.responder if delegate else ca.cert)
    key = signing_key or (ca.responder_key if (delegate or responder) else ca.key)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert or ca.leaf,
            issuer=ca.cert,
            algorithm=cert_id_hash or hashes.SHA384(),
            cert_status=status,
            this_update=this_update,
            next_update=next_update,
            revocation_time=T0 - timedelta(days=1) if revoked else None,
            revocation_reason=reason if revoked else None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME if by_name else ocsp.OCSPResponderEncoding.HASH, signer_cert)
    )
    if signer_cert is not ca.cert:
        builder = builder.certificates([signer_cert])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


def _check(response: bytes, policy: OcspPolicy = ONLINE, *, nonce: bytes | None = None, now: datetime = NOW) -> str:
    ca = _ca()
    return check_ocsp(response, ca.leaf, ca.cert, now, policy, nonce=nonce).status


def _fails(response: bytes, policy: OcspPolicy = ONLINE, *, now: datetime = NOW) -> Code:
    ca = _ca()
    return _code(response, ca.leaf, ca.cert, now, policy=policy)


def test_check_ocsp_signed_by_the_issuer_itself() -> None:
    ca = _ca()
    result = check_ocsp(_build(delegate=False), ca.leaf, ca.cert, NOW, ONLINE)
    assert result.status == "good"
    assert result.responder == ca.cert.subject.rfc4514_string()


def test_check_ocsp_delegated_responder_by_name() -> None:
    ca = _ca()
    result = check_ocsp(_build(by_name=True), ca.leaf, ca.cert, NOW, ONLINE)
    assert result.responder == ca.responder.subject.rfc4514_string()


@pytest.mark.parametrize(
    "algorithm",
    [hashes.SHA1(), hashes.SHA256(), hashes.SHA512()],  # noqa: S303, ids=["sha1", "sha256", "sha512"]
)
# SHA-1 CertIDs are what OpenSSL (NVIDIA's C++ SDK) asks for: they must be matched, not refused
def test_check_ocsp_cert_id_in_other_hash_algorithms(algorithm: hashes.HashAlgorithm) -> None:
    assert _check(_build(cert_id_hash=algorithm)) == "good"


def test_check_ocsp_revoked() -> None:
    ca = _ca()
    result = check_ocsp(
        _build(status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.key_compromise),
        ca.leaf,
        ca.cert,
        NOW,
        ONLINE,
    )
    assert result.status == "revoked"
    assert result.revocation_reason == "key_compromise"
    assert result.revocation_time == T0 - timedelta(days=1)


def test_check_ocsp_unknown() -> None:
    assert _check(_build(status=ocsp.OCSPCertStatus.UNKNOWN)) == "unknown"


def test_check_ocsp_hold_is_revoked_by_default() -> None:
    response = _build(status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.certificate_hold)
    assert _check(response) == "revoked"


def test_check_ocsp_hold_allowed_is_good_and_reported() -> None:
    ca = _ca()
    response = _build(status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.certificate_hold)
    result = check_ocsp(response, ca.leaf, ca.cert, NOW, OcspPolicy(allow_hold=True))
    assert result.status == "good"
    assert result.revocation_reason == "certificate_hold"


def test_check_ocsp_allow_hold_does_not_waive_revocation() -> None:
    response = _build(status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.superseded)
    assert _check(response, OcspPolicy(allow_hold=True)) == "revoked"


def test_check_ocsp_nonce_echo() -> None:
    ca = _ca()
    response = _build(nonce=b"n" * 32)
    assert check_ocsp(response, ca.leaf, ca.cert, NOW, ONLINE, nonce=b"n" * 32).nonce_matches is True
    assert check_ocsp(response, ca.leaf, ca.cert, NOW, ONLINE, nonce=b"m" * 32).nonce_matches is False
    assert check_ocsp(response, ca.leaf, ca.cert, NOW, ONLINE).nonce_matches is None
    assert check_ocsp(_build(), ca.leaf, ca.cert, NOW, ONLINE, nonce=b"n" * 32).nonce_matches is None


def _from_stranger() -> bytes:
    """Signed by a responder with EKU OCSPSigning that another CA issued under the same name."""
    key = _key()
    stranger = _cert("Throwaway OCSP", key, "Throwaway CA", _key(), eku=True)
    return _build(responder=stranger, signing_key=key)


def _impostor(*, delegate: bool) -> bytes:
    """Signed with another key by a certificate named like the real signer (ResponderID by name), while the
    response carries the real responder certificate (or none: the issuer signs itself)."""
    ca = _ca()
    key = _key()
    name = "Throwaway OCSP" if delegate else "Throwaway CA"
    fake = _cert(name, key, "Throwaway CA", key, eku=True)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            ca.leaf, ca.cert, hashes.SHA384(), ocsp.OCSPCertStatus.GOOD, T0, T0 + timedelta(days=1), None, None
        )
        .responder_id(ocsp.OCSPResponderEncoding.NAME, fake)
    )
    if delegate:
        builder = builder.certificates([ca.responder])
    return builder.sign(key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


_SIGNATURE_DEFECTS: Final[dict[str, Callable[[], bytes]]] = {
    "responder-without-eku": lambda: _build(responder=_cert("No EKU", _ca().responder_key, "Throwaway CA", _ca().key)),
    "responder-of-another-ca": _from_stranger,
    "responder-expired": lambda: _build(
        responder=_cert("Old OCSP", _ca().responder_key, "Throwaway CA", _ca().key, eku=True, not_after=T0)
    ),
    "signed-by-another-key": lambda: _impostor(delegate=True),
    "issuer-signature-by-another-key": lambda: _impostor(delegate=False),
}


@pytest.mark.parametrize("case", sorted(_SIGNATURE_DEFECTS))
def test_check_ocsp_signature_defects(case: str) -> None:
    assert _fails(_SIGNATURE_DEFECTS[case]()) is Code.NVIDIA_OCSP_SIGNATURE_INVALID


def test_check_ocsp_responder_not_carried() -> None:
    ca = _ca()
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            ca.leaf, ca.cert, hashes.SHA384(), ocsp.OCSPCertStatus.GOOD, T0, T0 + timedelta(days=1), None, None
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca.responder)
    )
    response = builder.sign(ca.responder_key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)
    assert _fails(response) is Code.NVIDIA_OCSP_SIGNATURE_INVALID


def test_check_ocsp_other_serial() -> None:
    other = _cert("Other leaf", _key(), "Throwaway CA", _ca().key)
    assert _fails(_build(cert=other)) is Code.NVIDIA_OCSP_WRONG_CERTIFICATE


#: (now, whether the response has a nextUpdate, policy)
_FRESHNESS: Final[dict[str, tuple[datetime, bool, OcspPolicy]]] = {
    "after-next-update": (T0 + timedelta(days=1, seconds=1), True, ONLINE),
    "before-this-update": (T0 - timedelta(seconds=1), True, ONLINE),
    "over-max-age": (T0 + timedelta(hours=2), True, OcspPolicy(max_age=timedelta(hours=1))),
    "no-next-update-online": (NOW, False, ONLINE),
}


@pytest.mark.parametrize("case", sorted(_FRESHNESS))
def test_check_ocsp_stale(case: str) -> None:
    now, has_next_update, policy = _FRESHNESS[case]
    response = _build() if has_next_update else _build(next_update=None)
    assert _fails(response, policy, now=now) is Code.NVIDIA_OCSP_STALE


def test_check_ocsp_no_next_update_within_max_age() -> None:
    assert _check(_build(next_update=None), OcspPolicy(max_age=timedelta(hours=2))) == "good"


def test_check_ocsp_within_grace() -> None:
    late = T0 + timedelta(days=1, minutes=5)
    assert _check(_build(), OcspPolicy(grace=timedelta(minutes=10)), now=late) == "good"


@pytest.mark.parametrize(
    "status",
    [ocsp.OCSPResponseStatus.TRY_LATER, ocsp.OCSPResponseStatus.UNAUTHORIZED, ocsp.OCSPResponseStatus.INTERNAL_ERROR],
)
def test_check_ocsp_unsuccessful_status_malformed(status: ocsp.OCSPResponseStatus) -> None:
    response = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
    assert _fails(response) is Code.NVIDIA_OCSP_MALFORMED


@pytest.mark.parametrize(
    "data",
    [b"", b"\x30\x00", b"not der", b"\x30\x03\x0a\x01\x00", b"\x30" + b"\x84\xff\xff\xff\xff"],
    ids=["empty", "empty-sequence", "text", "status-only", "huge-length"],
)
def test_check_ocsp_garbage_malformed(data: bytes) -> None:
    assert _fails(data) is Code.NVIDIA_OCSP_MALFORMED


def test_check_ocsp_oversize_malformed() -> None:
    assert _fails(_build() + b"\x00" * limits.MAX_OCSP_RESPONSE_BYTES) is Code.NVIDIA_OCSP_MALFORMED


def test_check_ocsp_trailing_bytes_malformed() -> None:
    assert _fails(_build() + b"\x00") is Code.NVIDIA_OCSP_MALFORMED


def test_check_ocsp_age_seconds() -> None:
    ca = _ca()
    result = check_ocsp(_build(), ca.leaf, ca.cert, NOW, ONLINE)
    assert result.age_seconds == 3600
    assert hashlib.sha384(ca.cert.subject.public_bytes()).hexdigest() in cert_id_key(ca.leaf, ca.cert)
