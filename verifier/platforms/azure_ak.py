"""The AK certificate of an Azure vTPM (azure-cvm.md §7, §9 step 8): Azure's statement that an attestation key
belongs to an Azure confidential VM's vTPM. Pure: the certificate bytes, the trust store and ``now`` are arguments.

``verify_ak_certificate(nv, intermediates, trust, now, expected_key)``, in order, one stable code per failure:

1. The certificate is one DER certificate, or the NV 0x01C101D0 image (that DER followed by zero padding)
   -> ``azure.ak_cert.malformed`` (also for an intermediate that is not a DER certificate).
2. Its key is RSA and equals ``expected_key`` (HCLAkPub from the signed runtime claims; never a key the attester
   names) -> ``azure.ak_cert.key_mismatch``.
3. The leaf says it is an AK: extendedKeyUsage holds tcg-kp-AIKCertificate (2.23.133.8.3), it is not a CA
   -> ``azure.ak_cert.untrusted``.
4. A path leaf -> intermediates (those carried, then the pinned ``Global Virtual TPM CA - 03``) -> the pinned
   ``Azure Virtual TPM Root Certificate Authority 2023``: each issuer's subject is the next issuer name, is a CA
   (basicConstraints cA) -> ``azure.ak_cert.untrusted``; each signature verifies
   -> ``azure.ak_cert.signature_invalid``. Nothing is fetched (no AIA).
5. Every certificate of the path is valid at ``now`` -> ``azure.ak_cert.expired`` / ``azure.ak_cert.not_yet_valid``.

Not done: revocation (Azure publishes no CRL for these CAs in the evidence), the certificate policy OID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from verifier import limits
from verifier.errors import Code, EvidenceMalformed, VerificationFailed
from verifier.trust.chains import cert_window, is_ca, load_strict_certificate
from verifier.trust.store import AZURE_VTPM_CA_03, AZURE_VTPM_ROOT, TrustStore

#: tcg-kp-AIKCertificate: the EKU of a TPM attestation-key certificate.
AIK_CERTIFICATE_EKU: Final = "2.23.133.8.3"
#: Longest path leaf -> root (the 2026 hierarchy has two intermediates).
MAX_PATH: Final = 4
MAX_AK_CERT_BYTES: Final = limits.MAX_AZURE_AK_CERT_BYTES


@dataclass(frozen=True, slots=True)
class AkCertificate:
    """An AK certificate that verified: what the claims report of it."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    #: Subjects of the path above the leaf, ending with the pinned root.
    path: tuple[str, ...]


def _malformed(message: str) -> EvidenceMalformed:
    return EvidenceMalformed(Code.AZURE_AK_CERT_MALFORMED, message)


def _der_length(data: bytes) -> int:
    """The length of the DER SEQUENCE at the start of ``data`` (header included)."""
    if len(data) < 2 or data[0] != 0x30:
        raise _malformed("AK certificate is not a DER SEQUENCE")
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 2 or len(data) < 2 + count:
        raise _malformed("AK certificate has an unsupported DER length")
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _load(der: bytes, what: str) -> x509.Certificate:
    try:
        return load_strict_certificate(der)
    except ValueError as e:
        raise _malformed(f"{what} is not a DER X.509 certificate") from e


def ak_certificate_der(nv: bytes) -> bytes:
    """The DER certificate of an AK certificate or its NV image (the rest must be zero)."""
    if len(nv) > MAX_AK_CERT_BYTES:
        raise _malformed("AK certificate is larger than its NV index")
    end = _der_length(nv)
    if end > len(nv) or any(nv[end:]):
        raise _malformed("AK certificate NV image is not one DER certificate followed by zeros")
    return nv[:end]


def ak_pub_sha256(key: rsa.RSAPublicKey) -> str:
    """SHA-256 of the AK's SubjectPublicKeyInfo (DER), hex: how claims name the AK."""
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _ekus(cert: x509.Certificate) -> frozenset[str]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(oid.dotted_string for oid in eku)


def _path(leaf: x509.Certificate, pool: Sequence[x509.Certificate], root: x509.Certificate) -> list[x509.Certificate]:
    path = [leaf]
    current = leaf
    for _ in range(MAX_PATH):
        if current.issuer == root.subject:
            if not _signed_by(current, root):
                raise VerificationFailed(
                    Code.AZURE_AK_CERT_SIGNATURE_INVALID,
                    f"{current.subject.rfc4514_string()} does not verify under the pinned Azure vTPM root",
                )
            return [*path, root]
        issuers = [c for c in pool if c.subject == current.issuer and c not in path]
        if not issuers:
            raise VerificationFailed(
                Code.AZURE_AK_CERT_UNTRUSTED,
                "the AK certificate does not chain to the pinned Azure vTPM root",
                expected=root.subject.rfc4514_string(),
                actual=current.issuer.rfc4514_string(),
            )
        issuer = next((c for c in issuers if _signed_by(current, c)), None)
        if issuer is None:
            raise VerificationFailed(
                Code.AZURE_AK_CERT_SIGNATURE_INVALID,
                f"{current.subject.rfc4514_string()} does not verify under its issuer",
            )
        if not is_ca(issuer):
            raise VerificationFailed(
                Code.AZURE_AK_CERT_UNTRUSTED, f"{issuer.subject.rfc4514_string()} is not a CA", actual="cA false"
            )
        path.append(issuer)
        current = issuer
    raise VerificationFailed(Code.AZURE_AK_CERT_UNTRUSTED, "the AK certificate path is too long", expected=MAX_PATH)


def verify_ak_certificate(
    nv: bytes,
    intermediates: Sequence[bytes],
    trust: TrustStore,
    now: datetime,
    expected_key: rsa.RSAPublicKey | None,
) -> AkCertificate:
    """Verify an AK certificate (steps 1-5 above); ``expected_key`` None checks the chain alone (no HCL report)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    # 1. One DER certificate (the NV image's padding zero); the carried intermediates parse.
    leaf = _load(ak_certificate_der(nv), "AK certificate")
    carried = [_load(der, f"AK intermediate {i}") for i, der in enumerate(intermediates)]
    # 2. The key is HCLAkPub.
    key = leaf.public_key()
    if expected_key is not None and (
        not isinstance(key, rsa.RSAPublicKey) or key.public_numbers() != expected_key.public_numbers()
    ):
        raise VerificationFailed(
            Code.AZURE_AK_CERT_KEY_MISMATCH,
            "the AK certificate's key is not HCLAkPub",
            expected=ak_pub_sha256(expected_key),
            actual=ak_pub_sha256(key) if isinstance(key, rsa.RSAPublicKey) else type(key).__name__,
        )
    # 3. It is an AK certificate.
    if AIK_CERTIFICATE_EKU not in _ekus(leaf) or is_ca(leaf):
        raise VerificationFailed(
            Code.AZURE_AK_CERT_UNTRUSTED,
            "the AK certificate lacks tcg-kp-AIKCertificate or is a CA",
            expected=AIK_CERTIFICATE_EKU,
            actual=", ".join(sorted(_ekus(leaf))) or "no EKU",
        )
    # 4. The path to the pinned root (carried intermediates first, then the pinned CA - 03).
    root = trust.root(AZURE_VTPM_ROOT).certificate
    pool = [*carried, *((trust.roots[AZURE_VTPM_CA_03].certificate,) if AZURE_VTPM_CA_03 in trust.roots else ())]
    path = _path(leaf, pool, root)
    # 5. Validity of every certificate at `now`.
    for cert in path:
        cert_window(
            cert,
            f"AK chain certificate {cert.subject.rfc4514_string()}",
            Code.AZURE_AK_CERT_EXPIRED,
            Code.AZURE_AK_CERT_NOT_YET_VALID,
            VerificationFailed,
        ).check(now)
    return AkCertificate(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        path=tuple(c.subject.rfc4514_string() for c in path[1:]),
    )


__all__ = ["AkCertificate", "ak_certificate_der", "ak_pub_sha256", "verify_ak_certificate"]
