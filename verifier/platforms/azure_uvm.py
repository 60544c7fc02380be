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

The signer's certificate path and did:x509 issuer (steps 2 and 4) are checked by
:mod:`verifier.platforms.azure_uvm_signer`. Not done here: comparing the measurement with a report, SVN minimums,
revocation (Microsoft publishes CRLs for the intermediate; no CRL is consulted), the RFC 3161 countersignature in
the unprotected ``timestamp`` header (unsigned by the COSE signature; ignored). Pure: ``now`` and the trust store
are arguments.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from verifier.errors import Code, EvidenceMalformed, UsageError, VerificationFailed
from verifier.platforms.azure_uvm_signer import (
    UVM_EKU,
    anchor_path,
    check_issuer,
    check_path,
    load_chain,
)
from verifier.trust import cose
from verifier.trust.cbor import Tag
from verifier.trust.chains import cert_window
from verifier.trust.store import TrustStore

#: Manifest key of the pinned "Microsoft Supply Chain RSA Root CA 2022".
MICROSOFT_SUPPLY_CHAIN_ROOT: Final = "microsoft.supply_chain_root_2022"
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
    chain = load_chain(msg.x5chain)
    path = anchor_path(chain, msg.x5chain, pinned.certificate, pinned.der)
    path_ders = [*msg.x5chain, pinned.der][: len(path)]
    check_path(path, msg.x5chain[0], msg.protected.get(cose.HEADER_X5T, msg.unprotected.get(cose.HEADER_X5T)))

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
    check_issuer(issuer, path, path_ders, pinned.der, eku)

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
