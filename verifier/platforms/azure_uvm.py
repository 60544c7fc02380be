"""Microsoft's COSE_Sign1 endorsement of the Azure confidential-container utility VM (amd-snp.md §7).

In confidential ACI the SNP report's MEASUREMENT is Microsoft's utility VM (UVM), not the customer's container.
Microsoft endorses each UVM with a COSE_Sign1 "reference info" document (``body.uvm_reference_info.bin``)
whose payload names the launch measurement. :func:`verify_uvm_endorsement` checks that document and returns
the endorsed measurement; comparing it with the report (and deciding which SVNs are acceptable) is appraisal.

Steps, each failing with one stable code (the document is attacker-supplied transport; only the pinned root
``microsoft.supply_chain_root_2022`` is trusted):

1. Size <= :data:`MAX_UVM_ENDORSEMENT_BYTES`; strict CBOR; COSE_Sign1 shape (:mod:`verifier.trust.cose`);
   protected ``iss`` and ``feed`` text headers present; ``signingtime`` (when present) is ``Tag(1, int)``.
   -> ``azure.uvm.cose_malformed``. The ``alg`` must be one COSE verifies (PS256/384/512, ES256/384/512)
   -> ``azure.uvm.algorithm_unsupported``.
2. x5chain (protected, leaf first, at most :data:`~verifier.trust.cose.MAX_X5CHAIN_CERTS`) parses as DER X.509
   -> ``azure.uvm.chain_malformed``. Its last certificate is **byte-identical** (DER) to the pinned root, or is
   issued directly by it (RFC 9360 allows omitting the trust anchor; the pinned root is then appended)
   -> ``azure.uvm.chain_untrusted``. Every link: issuer DN == issuer's subject DN, issuer is a CA
   (basicConstraints cA, keyCertSign when keyUsage is present, pathLenConstraint honoured), no unhandled
   critical extension, leaf is not a CA and may sign (digitalSignature when keyUsage is present), x5t (when
   present) names the leaf -> ``azure.uvm.chain_untrusted``; each signature (including the root's
   self-signature) by ``verify_directly_issued_by`` (PKCS#1 v1.5 or PSS as the certificate says)
   -> ``azure.uvm.chain_signature_invalid``.
3. Validity of every certificate at the check time -> ``azure.uvm.expired`` / ``azure.uvm.not_yet_valid``.
   The check time is ``now`` (default), or with ``validity_at="signing_time"`` the signed ``signingtime``
   header (which must then be present and not after ``now``). Microsoft issues one-year leaves, so real
   endorsements fail at ``now`` a year after signing; Microsoft's own verifiers skip leaf expiry (CCF #5884).
4. ``iss`` is a did:x509 (method version 0, fingerprint sha256/384/512 in base64url, ``eku`` predicates only)
   whose CA fingerprint is a non-leaf certificate of the validated path -> ``azure.uvm.issuer_mismatch``; every
   ``eku`` predicate is in the leaf's extendedKeyUsage -> ``azure.uvm.eku_missing``; and ``iss`` equals exactly
   ``did:x509:0:sha256:<base64url(SHA-256(pinned root))>::eku:<eku>`` -> ``azure.uvm.issuer_mismatch``.
5. ``feed`` equals the expected feed (``ContainerPlat-AMD-UVM``) -> ``azure.uvm.feed_mismatch``.
6. The COSE signature verifies with the leaf key -> ``azure.uvm.signature_invalid``.
7. Content type (when present) is ``application/json``; the payload is a UTF-8 JSON object without duplicate
   keys, ``x-ms-sevsnpvm-launchmeasurement`` is 96 hex digits and ``x-ms-sevsnpvm-guestsvn`` a decimal string
   (or integer) in 0..2^32-1 -> ``azure.uvm.payload_invalid``.

Not done here: comparing the measurement with a report, SVN minimums, revocation (Microsoft publishes CRLs
for the intermediate; no CRL is consulted), the RFC 3161 countersignature in the unprotected ``timestamp``
header (unsigned by the COSE signature; ignored). Pure: ``now`` and the trust store are arguments.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

from verifier.errors import Code, EvidenceMalformed, UsageError, VerificationFailed
from verifier.trust import cose
from verifier.trust.cbor import Tag
from verifier.trust.chains import cert_window
from verifier.trust.store import TrustStore

#: Manifest key of the pinned "Microsoft Supply Chain RSA Root CA 2022".
MICROSOFT_SUPPLY_CHAIN_ROOT: Final = "microsoft.supply_chain_root_2022"
#: Leaf EKU Microsoft uses for ACI utility-VM endorsements (the did:x509 issuer's ``eku`` predicate).
UVM_EKU: Final = "1.3.6.1.4.1.311.76.59.1.2"
#: Feed of ACI utility-VM endorsements on AMD SEV-SNP.
UVM_FEED: Final = "ContainerPlat-AMD-UVM"
#: Largest endorsement accepted (the real one is 10,864 bytes, half of it the unprotected RFC 3161 token).
MAX_UVM_ENDORSEMENT_BYTES: Final = 64 * 1024

PAYLOAD_MEASUREMENT: Final = "x-ms-sevsnpvm-launchmeasurement"
PAYLOAD_GUEST_SVN: Final = "x-ms-sevsnpvm-guestsvn"
HEADER_ISSUER: Final = "iss"
HEADER_FEED: Final = "feed"
HEADER_SIGNING_TIME: Final = "signingtime"
CONTENT_TYPE_JSON: Final = "application/json"

_MAX_GUEST_SVN: Final = 2**32 - 1
_EPOCH_TAG: Final = 1
_HEX_MEASUREMENT = re.compile(r"[0-9a-fA-F]{96}")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,9}")
_OID = re.compile(r"[0-9]+(\.[0-9]+)+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_DID_HASHES: Final = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
#: x5t hash algorithms (COSE algorithm ids, RFC 9054).
_X5T_HASHES: Final = {-16: hashlib.sha256, -43: hashlib.sha384, -44: hashlib.sha512}
#: Critical extensions this verifier processes; any other critical extension rejects the chain (RFC 5280 §4.2).
_HANDLED_CRITICAL: Final = frozenset(
    {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE}
)

ValidityAt = Literal["now", "signing_time"]


@dataclass(frozen=True, slots=True)
class UvmEndorsement:
    """A verified UVM endorsement: what Microsoft says the UVM measures, and who said it."""

    launch_measurement: bytes  # 48 bytes, compare with the SNP report MEASUREMENT (0x90)
    guest_svn: int
    feed: str
    issuer: str  # the did:x509 string, verified against the chain
    signer_subject: str  # RFC 4514 subject of the signing (leaf) certificate
    simulated: bool
    signing_time: datetime | None  # the signed ``signingtime`` header, if present
    validated_at: datetime  # the instant certificate validity was checked at


def _malformed(message: str) -> EvidenceMalformed:
    return EvidenceMalformed(Code.AZURE_UVM_COSE_MALFORMED, message)


def _untrusted(message: str, *, expected: object = None, actual: object = None) -> VerificationFailed:
    return VerificationFailed(Code.AZURE_UVM_CHAIN_UNTRUSTED, message, expected=expected, actual=actual)


def _parse(cose_bytes: bytes) -> cose.CoseSign1:
    if len(cose_bytes) > MAX_UVM_ENDORSEMENT_BYTES:
        raise EvidenceMalformed(
            Code.AZURE_UVM_COSE_MALFORMED,
            "UVM endorsement is too large",
            expected=f"<= {MAX_UVM_ENDORSEMENT_BYTES} bytes",
            actual=len(cose_bytes),
        )
    try:
        msg = cose.parse_cose_sign1(cose_bytes, understood=(HEADER_ISSUER, HEADER_FEED, HEADER_SIGNING_TIME))
    except ValueError as e:
        raise _malformed(f"UVM endorsement is not a valid COSE_Sign1: {e}") from e
    if msg.alg not in cose.ALGORITHMS:
        raise EvidenceMalformed(
            Code.AZURE_UVM_ALGORITHM_UNSUPPORTED,
            "COSE algorithm is not supported",
            expected=sorted(cose.ALGORITHMS),
            actual=msg.alg,
        )
    if not msg.x5chain:
        raise _malformed("protected header has no x5chain (label 33)")
    return msg


def _text_header(msg: cose.CoseSign1, label: str) -> str:
    value = msg.protected.get(label)
    if not isinstance(value, str):
        raise _malformed(f"protected header {label!r} is missing or not a text string")
    return value


def _signing_time(msg: cose.CoseSign1) -> datetime | None:
    value = msg.protected.get(HEADER_SIGNING_TIME)
    if value is None:
        return None
    if (
        not isinstance(value, Tag)
        or value.tag != _EPOCH_TAG
        or not isinstance(value.value, int)
        or isinstance(value.value, bool)
    ):
        raise _malformed("signingtime header is not an epoch date (tag 1, integer)")
    try:
        return datetime.fromtimestamp(value.value, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise _malformed("signingtime header is out of range") from e


def _load_chain(ders: Sequence[bytes]) -> list[x509.Certificate]:
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


def _anchor_path(
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


def _check_path(path: list[x509.Certificate], leaf_der: bytes, x5t: object) -> None:
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


def _check_issuer(issuer: str, path: list[x509.Certificate], path_ders: list[bytes], root_der: bytes, eku: str) -> None:
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


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate JSON key {key!r}")
        out[key] = value
    return out


def _parse_payload(msg: cose.CoseSign1) -> tuple[bytes, int]:
    def invalid(message: str, actual: object = None) -> VerificationFailed:
        return VerificationFailed(Code.AZURE_UVM_PAYLOAD_INVALID, message, actual=actual)

    content_type = msg.protected.get(cose.HEADER_CONTENT_TYPE)
    if content_type is not None and content_type != CONTENT_TYPE_JSON:
        raise invalid("payload content type is not application/json", content_type)
    try:
        doc = json.loads(msg.payload.decode("utf-8"), object_pairs_hook=_reject_duplicate_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise VerificationFailed(Code.AZURE_UVM_PAYLOAD_INVALID, f"payload is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise invalid("payload is not a JSON object")
    measurement = doc.get(PAYLOAD_MEASUREMENT)
    if not isinstance(measurement, str) or not _HEX_MEASUREMENT.fullmatch(measurement):
        raise invalid(f"{PAYLOAD_MEASUREMENT} is not 96 hex digits", measurement)
    svn = doc.get(PAYLOAD_GUEST_SVN)
    if isinstance(svn, str) and _DECIMAL.fullmatch(svn):
        guest_svn = int(svn)
    elif isinstance(svn, int) and not isinstance(svn, bool):
        guest_svn = svn
    else:
        raise invalid(f"{PAYLOAD_GUEST_SVN} is not a decimal number", svn)
    if not 0 <= guest_svn <= _MAX_GUEST_SVN:
        raise invalid(f"{PAYLOAD_GUEST_SVN} is out of range", guest_svn)
    return bytes.fromhex(measurement), guest_svn


def verify_uvm_endorsement(
    cose_bytes: bytes,
    trust: TrustStore,
    now: datetime,
    *,
    feed: str = UVM_FEED,
    eku: str = UVM_EKU,
    validity_at: ValidityAt = "now",
) -> UvmEndorsement:
    """Verify a UVM reference-info COSE_Sign1 (steps 1-7 of the module docstring) and return what it endorses."""
    if now.tzinfo is None:
        raise UsageError(Code.USAGE_INVALID, "verification time must be timezone-aware")
    # 1. Shape.
    msg = _parse(cose_bytes)
    issuer = _text_header(msg, HEADER_ISSUER)
    got_feed = _text_header(msg, HEADER_FEED)
    signing_time = _signing_time(msg)

    # 2. Chain to the pinned root.
    pinned = trust.root(MICROSOFT_SUPPLY_CHAIN_ROOT)
    chain = _load_chain(msg.x5chain)
    path = _anchor_path(chain, msg.x5chain, pinned.certificate, pinned.der)
    path_ders = [*msg.x5chain, pinned.der][: len(path)]
    _check_path(path, msg.x5chain[0], msg.protected.get(cose.HEADER_X5T, msg.unprotected.get(cose.HEADER_X5T)))

    # 3. Validity.
    if validity_at == "signing_time":
        if signing_time is None:
            raise _malformed("validity at signing time was requested but the endorsement has no signingtime")
        if signing_time > now:
            raise VerificationFailed(
                Code.AZURE_UVM_NOT_YET_VALID,
                "signingtime is in the future",
                expected=f"<= {now.isoformat()}",
                actual=signing_time.isoformat(),
            )
        at = signing_time
    else:
        at = now
    for i, cert in enumerate(path):
        what = "signing certificate" if i == 0 else f"certificate {i} ({cert.subject.rfc4514_string()})"
        cert_window(cert, what, Code.AZURE_UVM_EXPIRED, Code.AZURE_UVM_NOT_YET_VALID, VerificationFailed).check(at)

    # 4. Issuer (did:x509) and leaf EKU.
    _check_issuer(issuer, path, path_ders, pinned.der, eku)

    # 5. Feed.
    if got_feed != feed:
        raise VerificationFailed(
            Code.AZURE_UVM_FEED_MISMATCH, "endorsement feed differs", expected=feed, actual=got_feed
        )

    # 6. COSE signature by the leaf key.
    key = path[0].public_key()
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise EvidenceMalformed(Code.AZURE_UVM_ALGORITHM_UNSUPPORTED, "signing key is neither RSA nor EC")
    try:
        cose.verify_cose_sign1(msg, key)
    except cose.UnsupportedCoseAlgorithm as e:
        raise EvidenceMalformed(Code.AZURE_UVM_ALGORITHM_UNSUPPORTED, str(e)) from e
    except InvalidSignature as e:
        raise VerificationFailed(Code.AZURE_UVM_SIGNATURE_INVALID, "COSE_Sign1 signature does not verify") from e

    # 7. Payload.
    measurement, guest_svn = _parse_payload(msg)
    return UvmEndorsement(
        launch_measurement=measurement,
        guest_svn=guest_svn,
        feed=got_feed,
        issuer=issuer,
        signer_subject=path[0].subject.rfc4514_string(),
        simulated=trust.simulated,
        signing_time=signing_time,
        validated_at=at,
    )
