"""Certificate, CRL and raw-signature helpers shared by the platform verifiers.

Thin wrappers over ``cryptography`` that turn its exceptions into Keyward errors with caller-chosen codes.
Vendor PKIs (Intel PCK, AMD ARK/ASK) are fixed-shape chains, so links are checked one by one with
``verify_directly_issued_by`` plus explicit name, CA-flag, validity and revocation checks, rather than WebPKI
path building. Pure: time is an argument.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from verifier import limits
from verifier.errors import Code, KeywardError

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_P256 = ec.SECP256R1()

T = TypeVar("T")


def p256_key_from_raw(xy: bytes) -> ec.EllipticCurvePublicKey:
    """Load a raw 64-byte ``x||y`` P-256 point. Raises ValueError if it is not a point on the curve."""
    return ec.EllipticCurvePublicKey.from_encoded_point(_P256, b"\x04" + xy)


def verify_p256_raw(key: ec.EllipticCurvePublicKey, signature: bytes, message: bytes) -> bool:
    """Verify a raw ``r||s`` (2 x 32 bytes, big-endian) ECDSA-P256-SHA256 signature. Never raises."""
    if len(signature) != 64:
        return False
    der = raw_to_der_signature(signature)
    try:
        key.verify(der, message, _ECDSA_SHA256)
    except InvalidSignature:
        return False
    return True


def _der_uint(x: bytes) -> bytes:
    x = x.lstrip(b"\x00") or b"\x00"
    if x[0] & 0x80:
        x = b"\x00" + x
    return b"\x02" + bytes((len(x),)) + x


def raw_to_der_signature(signature: bytes) -> bytes:
    """DER ``ECDSA-Sig-Value`` for a raw 64-byte ``r||s`` (the same bytes ``encode_dss_signature`` makes)."""
    body = _der_uint(signature[:32]) + _der_uint(signature[32:])
    return b"\x30" + bytes((len(body),)) + body


def common_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if len(attrs) == 1 else ""


_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True iff ``issuer``'s subject names ``cert``'s issuer and its key verifies ``cert``'s signature."""
    return cert.issuer == issuer.subject and signature_verifies(cert, issuer)


def signature_verifies(cert: x509.Certificate, issuer: x509.Certificate, tbs: bytes | None = None) -> bool:
    """True iff ``issuer``'s key verifies ``cert``'s signature (names are the caller's check).

    ECDSA links are checked directly over the TBS bytes (the same check as ``verify_directly_issued_by``,
    without its per-call overhead); ``tbs``, when the caller has cut it from the DER as received
    (:mod:`verifier.trust.der`), saves ``cryptography`` re-encoding it. Anything else (RSA-PSS) goes through
    ``verify_directly_issued_by``.
    """
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(algorithm, _STRONG_HASHES):
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes if tbs is None else tbs, ec.ECDSA(algorithm))
        else:
            cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def crl_signed_by(
    crl: x509.CertificateRevocationList, key: ec.EllipticCurvePublicKey, tbs: bytes | None = None
) -> bool:
    """True iff ``key`` verifies the ECDSA signature of ``crl`` (SHA-256/384/512 only); ``tbs`` as above."""
    algorithm = crl.signature_hash_algorithm
    if not isinstance(algorithm, _STRONG_HASHES):
        return False
    try:
        key.verify(crl.signature, crl.tbs_certlist_bytes if tbs is None else tbs, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    try:
        bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return isinstance(bc, x509.BasicConstraints) and bc.ca


def load_strict_certificate(der: bytes) -> x509.Certificate:
    """A DER certificate with every field a verifier reads parsed now (cryptography parses names, extensions, the
    key and the signature algorithm lazily, so a damaged field would otherwise raise deep inside a check). Raises
    ``ValueError`` for any of them (hostile chains: NVIDIA devices and RIMs)."""
    try:
        cert = x509.load_der_x509_certificate(der)
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        list(cert.extensions)
        cert.public_key()
        cert.signature_hash_algorithm  # noqa: B018 - parsed for its error
        cert.not_valid_before_utc  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
    except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm) as e:
        raise ValueError(f"not a well-formed X.509 certificate: {e}") from e
    return cert


def load_der_certificate(der: bytes, code: Code, what: str, error: type[KeywardError]) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as e:
        raise error(code, f"{what} is not a valid X.509 certificate") from e


@dataclass(frozen=True, slots=True)
class Window:
    """A validity interval of one piece of evidence or collateral, with the codes for either side of it."""

    what: str
    not_before: datetime
    not_after: datetime
    expired: Code
    not_yet_valid: Code
    error: type[KeywardError]

    def check(self, now: datetime) -> None:
        if now > self.not_after:
            raise self.error(
                self.expired,
                f"{self.what} expired",
                expected=f"<= {self.not_after.isoformat()}",
                actual=now.isoformat(),
            )
        if now < self.not_before:
            raise self.error(
                self.not_yet_valid,
                f"{self.what} is not yet valid",
                expected=f">= {self.not_before.isoformat()}",
                actual=now.isoformat(),
            )


def cert_window(
    cert: x509.Certificate, what: str, expired: Code, not_yet_valid: Code, error: type[KeywardError]
) -> Window:
    return Window(what, cert.not_valid_before_utc, cert.not_valid_after_utc, expired, not_yet_valid, error)


CacheKey = tuple[bytes, ...]


class ContentCache(Generic[T]):
    """A bounded LRU memo of *pure* results keyed by every input except time.

    Keys are tuples of the inputs' bytes themselves (or of their SHA-256 where the caller already has it):
    equality on the full bytes, so no collision can alias two inputs.

    Only successful results are stored; anything time-dependent is re-checked by the caller on every use.
    """

    def __init__(self, max_entries: int = limits.VERIFICATION_CACHE_ENTRIES) -> None:
        self._data: OrderedDict[CacheKey, T] = OrderedDict()
        self._max = max_entries
        self._lock = Lock()

    def get_or_compute(self, key: CacheKey, compute: Callable[[], T]) -> T:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
                return hit
        value = compute()
        with self._lock:
            self._data[key] = value
            if len(self._data) > self._max:
                self._data.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._data)
