"""OCSP responses (RFC 6960) as NVIDIA's services sign them: one certificate's status from a signed basic
response, by its issuer or a responder the issuer delegated to, within a freshness bound (nvidia-gpu.md §3).

:func:`check_ocsp` does, in order (each failure its own code):

1. **Parse** (``nvidia.ocsp.malformed``): at most ``limits.MAX_OCSP_RESPONSE_BYTES``; a DER ``OCSPResponse`` with
   status ``successful`` and a basic response; no critical extension but the nonce.
2. **Which certificate** (``nvidia.ocsp.wrong_certificate``): exactly one ``SingleResponse``, whose CertID is
   ``cert``'s, computed with the response's own hash algorithm (SHA-1, SHA-256, SHA-384 or SHA-512): the hash of
   ``issuer``'s subject, the hash of ``issuer``'s public key bits, ``cert``'s serial; and ``cert`` names ``issuer``.
3. **Who signed** (``nvidia.ocsp.signature_invalid``): the ResponderID (by name or by SHA-1 key hash) names either
   ``issuer`` itself, or a certificate carried in the response that ``issuer`` signed (name and ECDSA signature),
   with extended key usage id-kp-OCSPSigning, digitalSignature if it has key usage, valid at ``now``. The response
   signature (ECDSA with SHA-256/384/512: NVIDIA's PKI is all EC P-384) verifies under that certificate's key.
4. **Fresh** (``nvidia.ocsp.stale``, :class:`OcspPolicy`): ``thisUpdate <= now``; ``now <= nextUpdate + grace``;
   with ``max_age`` set, ``now - thisUpdate <= max_age`` too. A response without nextUpdate is accepted only under
   ``max_age``.
5. **Nonce**: with ``nonce`` given and a nonce echoed, :attr:`OcspResult.nonce_matches` says whether they are equal
   (compared in constant time). Not an error here: cached responses (keyed by CertID) carry no nonce, and the caller
   reports the claim.
6. **Status**: good / revoked / unknown are *returned*, for the caller to reject with its own reasons and claims.
   ``certificateHold`` is "revoked" unless ``policy.allow_hold``; then "good" with revocation_reason
   ``"certificate_hold"`` (reported, never silent).

:func:`ocsp_request` builds what the worker posts; :func:`cert_id_key` is the cache key of a certificate's status.
Pure: the response bytes, the certificates, the policy and ``now`` are arguments. The worker fetches.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, SignatureAlgorithmOID

from verifier import limits
from verifier.errors import Code, CollateralError
from verifier.trust.chains import load_strict_certificate, signature_verifies
from verifier.trust.der import TAG_BIT_STRING, TAG_SEQUENCE, DerError, children, read_tlv

OcspStatus = Literal["good", "revoked", "unknown"]

#: CertID hash algorithms accepted in a response (hashlib names by cryptography's names).
_CERT_ID_HASHES: Final = {"sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}
_SIGNATURE_ALGORITHMS: Final = frozenset(
    {
        SignatureAlgorithmOID.ECDSA_WITH_SHA256,
        SignatureAlgorithmOID.ECDSA_WITH_SHA384,
        SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    }
)
_STRONG_HASHES: Final = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


@dataclass(frozen=True, slots=True)
class OcspPolicy:
    """How fresh a response must be. Online (default): ``this_update <= now <= next_update + grace``. Air-gapped:
    ``max_age`` set, and a response is also refused once ``now - this_update > max_age``."""

    grace: timedelta = timedelta(0)
    max_age: timedelta | None = None
    allow_hold: bool = False  # certificateHold passes (reported) only when set


@dataclass(frozen=True, slots=True)
class OcspResult:
    """A verified response's answer for one certificate."""

    subject: str  # RFC 4514 subject of the checked certificate
    serial: int
    status: OcspStatus  # certificateHold with allow_hold: "good", with revocation_reason "certificate_hold"
    revocation_reason: str | None
    revocation_time: datetime | None
    this_update: datetime
    next_update: datetime | None
    produced_at: datetime
    responder: str  # RFC 4514 subject of the responder certificate (or of the issuer when it signs itself)
    nonce_matches: bool | None  # None: no nonce asked for or none echoed
    age_seconds: int  # now - this_update


def _public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING's bits (no unused-bits octet): what CertID and ResponderID byKey hash."""
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    tag, start, end = read_tlv(spki, 0, len(spki))
    fields = children(spki, start, end)
    if tag != TAG_SEQUENCE or len(fields) != 2 or fields[1][0] != TAG_BIT_STRING:
        raise DerError("SubjectPublicKeyInfo is not SEQUENCE { AlgorithmIdentifier, BIT STRING }")
    _, bits_start, bits_end = fields[1]
    if bits_end == bits_start or spki[bits_start] != 0:
        raise DerError("subjectPublicKey has unused bits")
    return spki[bits_start + 1 : bits_end]


def _cert_id(issuer: x509.Certificate, algorithm: str) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of certificates ``issuer`` issued, with hashlib ``algorithm``."""
    name_hash = hashlib.new(algorithm, issuer.subject.public_bytes()).digest()
    return name_hash, hashlib.new(algorithm, _public_key_bits(issuer)).digest()


def cert_id_key(cert: x509.Certificate, issuer: x509.Certificate) -> str:
    """The cache key of ``cert``'s status: ``"sha384:<issuer name hash>:<issuer key hash>:<serial hex>"``.

    Hashes in lower-case hex; the serial in lower-case hex without leading zeros. Raises ``ValueError`` (a
    :class:`~verifier.trust.der.DerError`) only for an ``issuer`` whose key ``cryptography`` cannot encode."""
    name_hash, key_hash = _cert_id(issuer, "sha384")
    return f"sha384:{name_hash.hex()}:{key_hash.hex()}:{cert.serial_number:x}"


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for one certificate (CertID hash SHA-384), with a nonce extension when given."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA384())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


# -- check_ocsp -------------------------------------------------------------------------------------------------


def _error(
    code: Code, message: str, *, expected: object | None = None, actual: object | None = None
) -> CollateralError:
    return CollateralError(code, message, expected=expected, actual=actual)


@dataclass(frozen=True, slots=True)
class _Parsed:
    """Every field of a basic response the checks read, pulled out while parse errors are still ``malformed``."""

    single: ocsp.OCSPSingleResponse
    cert_id_hash: str
    signature_algorithm: x509.ObjectIdentifier
    signature_hash: hashes.HashAlgorithm | None
    signature: bytes
    tbs: bytes
    responder_name: x509.Name | None
    responder_key_hash: bytes | None
    certificates: tuple[x509.Certificate, ...]
    produced_at: datetime
    this_update: datetime
    next_update: datetime | None
    nonce: bytes | None


def _parse(response: bytes) -> _Parsed:
    if len(response) > limits.MAX_OCSP_RESPONSE_BYTES:
        raise _error(
            Code.NVIDIA_OCSP_MALFORMED,
            "OCSP response larger than the limit",
            expected=f"<= {limits.MAX_OCSP_RESPONSE_BYTES} bytes",
            actual=len(response),
        )
    try:
        parsed = ocsp.load_der_ocsp_response(response)
        if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _error(
                Code.NVIDIA_OCSP_MALFORMED,
                "OCSP response status is not successful",
                expected="successful",
                actual=parsed.response_status.name.lower(),
            )
        singles = list(parsed.responses)
        if len(singles) != 1:
            raise _error(
                Code.NVIDIA_OCSP_WRONG_CERTIFICATE,
                "OCSP response does not answer exactly one certificate",
                expected=1,
                actual=len(singles),
            )
        single = singles[0]
        nonce = None
        for extension in parsed.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                nonce = extension.value.nonce
            elif extension.critical:
                raise _error(Code.NVIDIA_OCSP_MALFORMED, "OCSP response has an unknown critical extension")
        if any(extension.critical for extension in parsed.single_extensions):
            raise _error(Code.NVIDIA_OCSP_MALFORMED, "OCSP single response has a critical extension")
        return _Parsed(
            single=single,
            cert_id_hash=single.hash_algorithm.name,
            signature_algorithm=parsed.signature_algorithm_oid,
            signature_hash=parsed.signature_hash_algorithm,
            signature=parsed.signature,
            tbs=parsed.tbs_response_bytes,
            responder_name=parsed.responder_name,
            responder_key_hash=parsed.responder_key_hash,
            # every carried certificate parsed through now: names, extensions and keys are otherwise read lazily
            certificates=tuple(load_strict_certificate(c.public_bytes(Encoding.DER)) for c in parsed.certificates),
            produced_at=parsed.produced_at_utc,
            this_update=single.this_update_utc,
            next_update=single.next_update_utc,
            nonce=nonce,
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise _error(Code.NVIDIA_OCSP_MALFORMED, f"not a DER basic OCSP response: {e}") from e


def _check_cert_id(parsed: _Parsed, cert: x509.Certificate, issuer: x509.Certificate) -> None:
    algorithm = _CERT_ID_HASHES.get(parsed.cert_id_hash)
    if algorithm is None:
        raise _error(Code.NVIDIA_OCSP_MALFORMED, "CertID hash algorithm not accepted", actual=parsed.cert_id_hash)
    single = parsed.single
    try:
        name_hash, key_hash = _cert_id(issuer, algorithm)
    except ValueError as e:
        raise _error(Code.NVIDIA_OCSP_WRONG_CERTIFICATE, "the issuer's key cannot be hashed for a CertID") from e
    if cert.issuer != issuer.subject:
        raise _error(
            Code.NVIDIA_OCSP_WRONG_CERTIFICATE,
            "the checked certificate does not name this issuer",
            expected=issuer.subject.rfc4514_string(),
            actual=cert.issuer.rfc4514_string(),
        )
    if single.serial_number != cert.serial_number:
        raise _error(
            Code.NVIDIA_OCSP_WRONG_CERTIFICATE,
            "OCSP response is for another serial number",
            expected=f"{cert.serial_number:x}",
            actual=f"{single.serial_number:x}",
        )
    if not (
        hmac.compare_digest(single.issuer_name_hash, name_hash)
        and hmac.compare_digest(single.issuer_key_hash, key_hash)
    ):
        raise _error(
            Code.NVIDIA_OCSP_WRONG_CERTIFICATE,
            "OCSP response is for a certificate of another issuer",
            expected=f"{name_hash.hex()}:{key_hash.hex()}",
            actual=f"{single.issuer_name_hash.hex()}:{single.issuer_key_hash.hex()}",
        )


def _names_responder(parsed: _Parsed, candidate: x509.Certificate) -> bool:
    if parsed.responder_name is not None:
        return candidate.subject == parsed.responder_name
    if parsed.responder_key_hash is None:
        return False
    try:
        bits = _public_key_bits(candidate)
    except ValueError:
        return False
    return hmac.compare_digest(hashlib.sha1(bits).digest(), parsed.responder_key_hash)  # noqa: S324 - RFC 6960 KeyHash


def _signature_invalid(
    message: str, *, expected: object | None = None, actual: object | None = None
) -> CollateralError:
    return _error(Code.NVIDIA_OCSP_SIGNATURE_INVALID, message, expected=expected, actual=actual)


def _check_delegate(responder: x509.Certificate, issuer: x509.Certificate, now: datetime) -> None:
    """``responder`` is a responder ``issuer`` delegated to: issued by it, EKU OCSPSigning, valid at ``now``."""
    subject = responder.subject.rfc4514_string()
    if responder.issuer != issuer.subject or not signature_verifies(responder, issuer):
        raise _signature_invalid(f"responder {subject} is not issued by the checked certificate's issuer")
    try:
        eku = responder.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    except x509.ExtensionNotFound as e:
        raise _signature_invalid(f"responder {subject} has no extended key usage OCSPSigning") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise _signature_invalid(f"responder {subject}: extensions do not parse") from e
    if not isinstance(eku, x509.ExtendedKeyUsage) or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
        raise _signature_invalid(f"responder {subject} has no extended key usage OCSPSigning")
    try:
        usage = responder.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise _signature_invalid(f"responder {subject} lacks key usage digitalSignature")
    if not responder.not_valid_before_utc <= now <= responder.not_valid_after_utc:
        raise _signature_invalid(
            f"responder {subject} is outside its validity",
            expected=f"{responder.not_valid_before_utc.isoformat()}..{responder.not_valid_after_utc.isoformat()}",
            actual=now.isoformat(),
        )


def _responder(parsed: _Parsed, issuer: x509.Certificate, now: datetime) -> x509.Certificate:
    """The certificate whose key signed the response: ``issuer`` itself or a delegate it issued (checked)."""
    if _names_responder(parsed, issuer):
        return issuer
    named = [candidate for candidate in parsed.certificates if _names_responder(parsed, candidate)]
    if not named:
        raise _signature_invalid("OCSP responder is neither the issuer nor a certificate carried in the response")
    for candidate in named[:-1]:  # several certificates with the responder's name or key: the first good one
        try:
            _check_delegate(candidate, issuer, now)
        except CollateralError:
            continue
        return candidate
    _check_delegate(named[-1], issuer, now)
    return named[-1]


def _check_signature(parsed: _Parsed, responder: x509.Certificate) -> None:
    try:
        key = responder.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        raise _signature_invalid("the responder's key does not load") from e
    algorithm = parsed.signature_hash
    if (
        not isinstance(key, ec.EllipticCurvePublicKey)
        or parsed.signature_algorithm not in _SIGNATURE_ALGORITHMS
        or not isinstance(algorithm, _STRONG_HASHES)
    ):
        raise _signature_invalid(
            "OCSP response is not signed with ECDSA and SHA-256/384/512",
            actual=parsed.signature_algorithm.dotted_string,
        )
    try:
        key.verify(parsed.signature, parsed.tbs, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError) as e:
        raise _signature_invalid(
            f"OCSP response signature does not verify under {responder.subject.rfc4514_string()}"
        ) from e


def _check_fresh(parsed: _Parsed, now: datetime, policy: OcspPolicy) -> None:
    if now < parsed.this_update:
        raise _error(
            Code.NVIDIA_OCSP_STALE,
            "OCSP response thisUpdate is in the future",
            expected=f"<= {now.isoformat()}",
            actual=parsed.this_update.isoformat(),
        )
    if parsed.next_update is None:
        if policy.max_age is None:
            raise _error(Code.NVIDIA_OCSP_STALE, "OCSP response has no nextUpdate and the policy sets no max_age")
    elif now > parsed.next_update + policy.grace:
        raise _error(
            Code.NVIDIA_OCSP_STALE,
            "OCSP response is past nextUpdate (+ grace)",
            expected=f"<= {(parsed.next_update + policy.grace).isoformat()}",
            actual=now.isoformat(),
        )
    if policy.max_age is not None and now - parsed.this_update > policy.max_age:
        raise _error(
            Code.NVIDIA_OCSP_STALE,
            "OCSP response is older than the policy's max_age",
            expected=f"<= {policy.max_age}",
            actual=str(now - parsed.this_update),
        )


def check_ocsp(
    response: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    now: datetime,
    policy: OcspPolicy,
    *,
    nonce: bytes | None = None,
) -> OcspResult:
    """Verify ``response`` for ``cert`` (issued by the already-verified ``issuer``) at ``now``. Raises
    ``nvidia.ocsp.malformed`` / ``signature_invalid`` / ``wrong_certificate`` / ``stale``; a revoked or unknown
    status is returned, for the caller to reject with its own reason and claims. Steps in the module docstring."""
    parsed = _parse(response)  # (1)
    _check_cert_id(parsed, cert, issuer)  # (2)
    responder = _responder(parsed, issuer, now)  # (3)
    _check_signature(parsed, responder)
    _check_fresh(parsed, now, policy)  # (4)
    nonce_matches = None  # (5)
    if nonce is not None and parsed.nonce is not None:
        nonce_matches = hmac.compare_digest(nonce, parsed.nonce)
    single = parsed.single  # (6)
    status: OcspStatus
    reason: str | None = None
    revoked_at: datetime | None = None
    if single.certificate_status == ocsp.OCSPCertStatus.GOOD:
        status = "good"
    elif single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        flag = single.revocation_reason
        reason = None if flag is None else flag.name
        revoked_at = single.revocation_time_utc
        status = "good" if flag == x509.ReasonFlags.certificate_hold and policy.allow_hold else "revoked"
    else:
        status = "unknown"
    return OcspResult(
        subject=cert.subject.rfc4514_string(),
        serial=cert.serial_number,
        status=status,
        revocation_reason=reason,
        revocation_time=revoked_at,
        this_update=parsed.this_update,
        next_update=parsed.next_update,
        produced_at=parsed.produced_at,
        responder=responder.subject.rfc4514_string(),
        nonce_matches=nonce_matches,
        age_seconds=int((now - parsed.this_update).total_seconds()),
    )
