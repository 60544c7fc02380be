"""The signer of an Azure UVM endorsement (azure_uvm.py steps 2 and 4): the COSE x5chain as a certificate path to
the pinned Microsoft root, and the did:x509 issuer resolved against that path.

Every failure is one of the ``azure.uvm.*`` codes of :mod:`verifier.platforms.azure_uvm`. Validity windows, the
COSE signature and the payload are checked there, not here. Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.x509.oid import ExtensionOID

from verifier.errors import Code, EvidenceMalformed, VerificationFailed

#: Leaf EKU Microsoft uses for ACI utility-VM endorsements (the did:x509 issuer's ``eku`` predicate).
UVM_EKU: Final = "1.3.6.1.4.1.311.76.59.1.2"

_OID = re.compile(r"[0-9]+(\.[0-9]+)+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_DID_HASHES: Final = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
#: x5t hash algorithms (COSE algorithm ids, RFC 9054).
_X5T_HASHES: Final = {-16: hashlib.sha256, -43: hashlib.sha384, -44: hashlib.sha512}
#: Critical extensions this verifier processes; any other critical extension rejects the chain (RFC 5280 §4.2).
_HANDLED_CRITICAL: Final = frozenset(
    {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE}
)


def _malformed(message: str) -> EvidenceMalformed:
    return EvidenceMalformed(Code.AZURE_UVM_COSE_MALFORMED, message)


def _untrusted(message: str, *, expected: object = None, actual: object = None) -> VerificationFailed:
    return VerificationFailed(Code.AZURE_UVM_CHAIN_UNTRUSTED, message, expected=expected, actual=actual)


def load_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
    chain = []
    for i, der in enumerate(ders):
        try:
            cert = x509.load_der_x509_certificate(der)
            # cryptography parses names, extensions and keys lazily: touch them all here so a malformed field
            # fails now, with this code, rather than as a stray ValueError in a later step.
            _ = (cert.subject, cert.issuer, cert.extensions, cert.not_valid_before_utc, cert.not_valid_after_utc)
            _ = (cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.public_key())
            chain.append(cert)
        except Exception as e:
            # Deliberately broad: on untrusted DER cryptography's lazy parsers raise ValueError, TypeError,
            # InvalidVersion, DuplicateExtension, UnsupportedGeneralNameType, UnsupportedAlgorithm (all seen
            # when fuzzing); each means "not a certificate we can check".
            raise EvidenceMalformed(
                Code.AZURE_UVM_CHAIN_MALFORMED, f"x5chain[{i}] is not a DER X.509 certificate"
            ) from e
    return chain


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _leaf_ekus(cert: x509.Certificate) -> frozenset[str]:
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    return frozenset(oid.dotted_string for oid in eku)


def _check_extensions(cert: x509.Certificate, what: str) -> None:
    try:
        extensions = cert.extensions
    except ValueError as e:  # duplicate or undecodable extension
        raise EvidenceMalformed(Code.AZURE_UVM_CHAIN_MALFORMED, f"{what} has malformed extensions") from e
    for ext in extensions:
        if ext.critical and ext.oid not in _HANDLED_CRITICAL:
            raise _untrusted(f"{what} has an unhandled critical extension", actual=ext.oid.dotted_string)


def anchor_path(
    chain: list[x509.Certificate], ders: Sequence[bytes], root: x509.Certificate, root_der: bytes
) -> list[x509.Certificate]:
    """The path leaf..root: the chain if it ends at the pinned root (byte-equal), or chain + root."""
    if ders[-1] == root_der:
        return chain
    if root_der in ders:
        raise _untrusted("the pinned root appears inside the x5chain, not at its end")
    last = chain[-1]
    if last.issuer == root.subject and _signed_by(last, root):
        return [*chain, root]
    raise _untrusted(
        "x5chain does not end at the pinned Microsoft root",
        expected=hashlib.sha256(root_der).hexdigest(),
        actual=hashlib.sha256(ders[-1]).hexdigest(),
    )


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def check_path(path: list[x509.Certificate], leaf_der: bytes, x5t: object) -> None:
    """Step 2 on the anchored path (leaf first, pinned root last)."""
    for i, cert in enumerate(path):
        _check_extensions(cert, f"certificate {i}")
    leaf = path[0]
    bc = _basic_constraints(leaf)
    if bc is not None and bc.ca:
        raise _untrusted("the signing (leaf) certificate is a CA certificate")
    ku = _key_usage(leaf)
    if ku is not None and not ku.digital_signature:
        raise _untrusted("the signing (leaf) certificate's keyUsage lacks digitalSignature")
    for i in range(1, len(path)):
        cert, issuer = path[i - 1], path[i]
        if cert.issuer != issuer.subject:
            raise _untrusted(
                f"certificate {i - 1} is not issued by certificate {i}",
                expected=issuer.subject.rfc4514_string(),
                actual=cert.issuer.rfc4514_string(),
            )
        ibc = _basic_constraints(issuer)
        if ibc is None or not ibc.ca:
            raise _untrusted(f"issuer certificate {i} is not a CA")
        iku = _key_usage(issuer)
        if iku is not None and not iku.key_cert_sign:
            raise _untrusted(f"issuer certificate {i} may not sign certificates (keyUsage)")
        intermediates_below = i - 1  # CA certificates strictly between this issuer and the leaf
        if ibc.path_length is not None and intermediates_below > ibc.path_length:
            raise _untrusted(f"issuer certificate {i} pathLenConstraint exceeded", expected=ibc.path_length)
    root = path[-1]
    if root.issuer != root.subject or not _signed_by(root, root):
        raise VerificationFailed(Code.AZURE_UVM_CHAIN_SIGNATURE_INVALID, "pinned root is not validly self-signed")
    for i in range(1, len(path)):
        if not _signed_by(path[i - 1], path[i]):
            raise VerificationFailed(
                Code.AZURE_UVM_CHAIN_SIGNATURE_INVALID, f"certificate {i - 1} signature does not verify under {i}"
            )
    if x5t is not None:
        if not isinstance(x5t, list) or len(x5t) != 2:
            raise _malformed("x5t is not [alg, hash]")
        hash_alg, digest = x5t
        hasher = _X5T_HASHES.get(hash_alg) if isinstance(hash_alg, int) else None
        if hasher is None:
            raise EvidenceMalformed(
                Code.AZURE_UVM_ALGORITHM_UNSUPPORTED, "x5t hash algorithm unsupported", actual=hash_alg
            )
        if hasher(leaf_der).digest() != digest:
            raise _untrusted("x5t does not match the x5chain leaf")


@dataclass(frozen=True, slots=True)
class _DidX509:
    hash_name: str
    fingerprint: bytes
    ekus: tuple[str, ...]


def _parse_did_x509(did: str) -> _DidX509:
    """did:x509 (microsoft/did-x509 specification.md, method version 0), ``eku`` predicates only."""
    parts = did.split("::")
    head = parts[0].split(":")
    if len(head) != 5 or head[0] != "did" or head[1] != "x509" or head[2] != "0":
        raise VerificationFailed(Code.AZURE_UVM_ISSUER_MISMATCH, "issuer is not a did:x509 (version 0)", actual=did)
    hash_name, fp_text = head[3], head[4]
    if hash_name not in _DID_HASHES or not _B64URL.fullmatch(fp_text):
        raise VerificationFailed(Code.AZURE_UVM_ISSUER_MISMATCH, "did:x509 CA fingerprint is malformed", actual=did)
    fingerprint = base64.urlsafe_b64decode(fp_text + "=" * (-len(fp_text) % 4))
    if len(fingerprint) != _DID_HASHES[hash_name]().digest_size:
        raise VerificationFailed(Code.AZURE_UVM_ISSUER_MISMATCH, "did:x509 CA fingerprint has the wrong size")
    predicates = parts[1:]
    if not predicates:
        raise VerificationFailed(Code.AZURE_UVM_ISSUER_MISMATCH, "did:x509 has no predicate", actual=did)
    ekus = []
    for predicate in predicates:
        name, _, value = predicate.partition(":")
        if name != "eku" or not _OID.fullmatch(value):
            raise VerificationFailed(
                Code.AZURE_UVM_ISSUER_MISMATCH, "did:x509 predicate unsupported (only eku:<oid>)", actual=predicate
            )
        ekus.append(value)
    return _DidX509(hash_name, fingerprint, tuple(ekus))


def expected_issuer(root_der: bytes, eku: str = UVM_EKU) -> str:
    """The did:x509 naming ``root_der`` (SHA-256) and ``eku``: the only issuer :func:`verify_uvm_endorsement` takes."""
    fp = base64.urlsafe_b64encode(hashlib.sha256(root_der).digest()).rstrip(b"=").decode()
    return f"did:x509:0:sha256:{fp}::eku:{eku}"


def check_issuer(issuer: str, path: list[x509.Certificate], path_ders: list[bytes], root_der: bytes, eku: str) -> None:
    """Step 4: did:x509 resolution against the validated path, then the exact expected issuer."""
    did = _parse_did_x509(issuer)
    hasher = _DID_HASHES[did.hash_name]
    if not any(hasher(der).digest() == did.fingerprint for der in path_ders[1:]):
        raise VerificationFailed(
            Code.AZURE_UVM_ISSUER_MISMATCH,
            "did:x509 CA fingerprint names no CA certificate of the chain",
            actual=issuer,
        )
    leaf_ekus = _leaf_ekus(path[0])
    for want in did.ekus:
        if want not in leaf_ekus:
            raise VerificationFailed(
                Code.AZURE_UVM_EKU_MISSING,
                "the signing certificate lacks the EKU the issuer names",
                expected=want,
                actual=",".join(sorted(leaf_ekus)) or "no extendedKeyUsage",
            )
    want_issuer = expected_issuer(root_der, eku)
    if issuer != want_issuer:
        raise VerificationFailed(
            Code.AZURE_UVM_ISSUER_MISMATCH, "issuer is not the expected UVM signer", expected=want_issuer, actual=issuer
        )
