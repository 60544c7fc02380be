"""OCSP responses (RFC 6960) as NVIDIA's services sign them: one certificate's status from a signed basic
response, by its issuer or a responder the issuer delegated to, within a freshness bound (nvidia-gpu.md §3).

Pure: the response bytes, the certificates, the policy and ``now`` are arguments. The worker fetches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509

OcspStatus = Literal["good", "revoked", "unknown"]


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


def cert_id_key(cert: x509.Certificate, issuer: x509.Certificate) -> str:
    """The cache key of ``cert``'s status: ``"sha384:<issuer name hash>:<issuer key hash>:<serial hex>"``."""
    raise NotImplementedError


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for one certificate (CertID hash SHA-384), with a nonce extension when given."""
    raise NotImplementedError


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
    status is returned, for the caller to reject with its own reason and claims."""
    raise NotImplementedError
