"""NVIDIA Reference Integrity Manifests (RIMs): signed SWID tags (ISO/IEC 19770-2) with an enveloped XML-DSig,
verified over the exact canonicalised bytes with their signing chain to the pinned NVIDIA CoRIM signing Root CA
(nvidia-gpu.md §4).

:func:`verify_rim` does, in order (each step's failure is its own code):

1. **Parse, defused.** At most ``limits.MAX_NVIDIA_RIM_BYTES`` (``nvidia.rim.too_large``). The bytes are read as
   UTF-8 whatever the XML declaration says, by an lxml parser that resolves no entity, loads no DTD, touches no
   network and keeps libxml2's tree limits (``huge_tree`` off). Any ``<!DOCTYPE`` or ``<!ENTITY`` (so any internal
   subset, entity declaration or external entity) is refused before parsing and again on the parsed tree; so are
   processing instructions anywhere, unexpanded entity references, nesting deeper than
   ``limits.MAX_NVIDIA_RIM_DEPTH``, and a root that is not a SWID ``SoftwareIdentity`` (all ``nvidia.rim.malformed``).
   Comments are kept by the parser and, as both C14N algorithms below say, left out of what is digested.
2. **Shape of the signature** (wrapping attacks: ``nvidia.rim.signature_invalid``; none: ``nvidia.rim.unsigned``).
   Exactly one ``ds:Signature`` in the whole document, a child of the root, holding exactly ``SignedInfo``,
   ``SignatureValue``, ``KeyInfo``. ``SignedInfo`` holds exactly ``CanonicalizationMethod`` (C14N 1.1 or inclusive
   C14N 1.0, without comments), ``SignatureMethod`` ecdsa-sha384 and one ``Reference URI=""`` whose transforms are
   exactly enveloped-signature then C14N 1.1/1.0 and whose ``DigestMethod`` is sha384. Any other algorithm, URI,
   attribute, transform (XPath, XSLT, exclusive C14N, with-comments) or extra element is refused. ``xml:id`` and
   ``xml:base`` attributes, the only places where C14N 1.1 and 1.0 differ on a whole document, are refused too, so
   lxml's inclusive C14N 1.0 computes exactly what a C14N 1.1 signer signed.
3. **Digest and signature** (``nvidia.rim.signature_invalid``), on a copy of the tree: SHA-384 of the C14N of the
   document with the ``Signature`` element removed (its tail text kept, as the enveloped-signature transform says)
   equals ``DigestValue``; ECDSA P-384/SHA-384 over the C14N of ``SignedInfo`` with ``SignatureValue`` (raw
   ``r||s``, 96 bytes) verifies under the key of the first ``X509Certificate``.
4. **Signing chain** (``nvidia.rim.chain_untrusted`` / ``nvidia.rim.chain_expired``): ``KeyInfo/X509Data`` holds
   exactly four certificates, L4 signer, L3, L2 CA and the CoRIM root; the embedded root must be byte-identical to the
   pinned ``NVIDIA_RIM_ROOT`` and is then dropped: trust comes from the pinned copy only. L4 -> L3 -> L2 -> pinned
   root, each link ECDSA P-384/SHA-384 and issuer name = subject; L3 and L2 are CAs with keyCertSign and a path
   length that allows the chain, the signer is no CA and has digitalSignature; no unknown critical extension; every
   certificate, the pinned root included, valid at ``now`` (outside its window: ``chain_expired``). The chain is
   checked here, not by signxml, whose chain rules reject the genuine root (pitfall P11) and use the real clock.
5. **Read the verified tree.** The canonical bytes whose digest matched are parsed again and the result is read
   from that tree only (pitfall P5): ``SoftwareIdentity`` attributes, ``Meta`` and the ``Payload`` measurements
   (``type="Measurement"``, decimal ``index``, ``active`` ``True``/``False``, ``alternatives`` 1..
   ``limits.MAX_NVIDIA_RIM_ALTERNATIVES``, ``size`` 48, ``Hash0..Hash<n-1>`` lower-case hex in the sha384 namespace;
   at most ``limits.MAX_NVIDIA_RIM_MEASUREMENTS``; an index twice is ``nvidia.rim.malformed``).

Not done here: choosing the RIM for a report, comparing measurements (appraisal) and OCSP on the signing chain
(:mod:`verifier.trust.ocsp`; the chain is returned for it). Pure: the RIM bytes, the trust store and ``now`` are
arguments.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from verifier import limits
from verifier.errors import Code, CollateralError, EvidenceMalformed
from verifier.trust.chains import load_strict_certificate
from verifier.trust.store import NVIDIA_RIM_ROOT, TrustStore

SWID_NS: Final = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd"
DSIG_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
TCG_RIM_NS: Final = "https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/"
SHA384_NS: Final = "http://www.w3.org/2001/04/xmlenc#sha384"
_XML_NS: Final = "http://www.w3.org/XML/1998/namespace"

C14N_11: Final = "http://www.w3.org/2006/12/xml-c14n11"
C14N_10: Final = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
#: Canonicalisations accepted: both inclusive, without comments (equal on RIMs without xml:id / xml:base).
_C14N: Final = frozenset({C14N_11, C14N_10})
_ENVELOPED: Final = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_ECDSA_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
_SHA384: Final = "http://www.w3.org/2001/04/xmldsig-more#sha384"

_ROOT_TAG: Final = f"{{{SWID_NS}}}SoftwareIdentity"
_SIGNATURE: Final = f"{{{DSIG_NS}}}Signature"
_RIM_CERTS: Final = 4  # L4 signer, L3, L2 CA, CoRIM root
_SIGNATURE_BYTES: Final = 96  # raw r || s, 48 bytes each
_MEASUREMENT_SIZE: Final = 48  # SHA-384
_DECIMAL: Final = re.compile(r"[0-9]{1,6}")
_LOWER_HEX: Final = re.compile(r"[0-9a-f]*")
_B64_WHITESPACE: Final = str.maketrans("", "", " \t\r\n")
_P384_SHA384: Final = ec.ECDSA(hashes.SHA384())
#: Critical extensions the chain check understands; any other critical extension fails the chain.
_KNOWN_CRITICAL: Final = frozenset({x509.BasicConstraints.oid, x509.KeyUsage.oid})

_E = TypeVar("_E", bound=x509.ExtensionType)


@dataclass(frozen=True, slots=True)
class RimMeasurement:
    """One ``Payload/Resource type="Measurement"`` entry. ``index`` is the RIM's 0-based index: SPDM measurement
    block ``index + 1``."""

    index: int
    active: bool
    alternatives: tuple[bytes, ...]  # Hash0 .. Hash<n-1>, each ``size`` bytes
    size: int
    name: str


@dataclass(frozen=True, slots=True)
class VerifiedRim:
    """A RIM whose signature and signing chain verified at ``now``; every field read from the verified tree."""

    tag_id: str  # SoftwareIdentity/@tagId
    name: str  # SoftwareIdentity/@name: the product, "GH100" / "GB100" / "LS10"
    version: str  # SoftwareIdentity/@version
    colloquial_version: str  # Meta/@colloquialVersion: the driver version or the dotted VBIOS version
    product: str | None  # Meta/@product
    edition: str | None  # Meta/@edition: "GPU" / "SWITCH"
    firmware_manufacturer_id: str | None  # Meta/@rim:FirmwareManufacturerId ("5703": the claim ``oemid``)
    measurements: tuple[RimMeasurement, ...]
    signer_chain: tuple[x509.Certificate, ...]  # as embedded, L4 signer first, the embedded root left out
    sha256: str  # hex SHA-256 of the exact RIM bytes (RIM ids are not content: pin by hash, nvidia-gpu.md P6)
    not_after: datetime  # the earliest notAfter of the signing chain


def verify_rim(xml: bytes, trust: TrustStore, now: datetime) -> VerifiedRim:
    """Parse (defused), verify the XML-DSig and the signing chain at ``now``, then read the verified tree.

    Raises ``nvidia.rim.too_large`` / ``malformed`` (:class:`EvidenceMalformed`) or ``nvidia.rim.unsigned`` /
    ``signature_invalid`` / ``chain_untrusted`` / ``chain_expired`` (:class:`CollateralError`); the steps are in
    the module docstring."""
    # (1) parse, defused
    if len(xml) > limits.MAX_NVIDIA_RIM_BYTES:
        raise EvidenceMalformed(
            Code.NVIDIA_RIM_TOO_LARGE,
            "RIM larger than the limit",
            expected=f"<= {limits.MAX_NVIDIA_RIM_BYTES} bytes",
            actual=len(xml),
        )
    root = parse_rim_document(xml)
    # (2) the one enveloped signature and its exact shape
    signature = _signature_element(root)
    parts = _signature_parts(signature)
    # (3) digest over the document minus the signature, then ECDSA over SignedInfo
    canonical = _digest_input(root)
    if not hmac.compare_digest(hashlib.sha384(canonical).digest(), parts.digest):
        raise _signature_invalid("the reference digest does not match the document (content changed after signing)")
    certs = tuple(_load_certificate(der) for der in parts.certificates)
    _verify_signed_info(certs[0], parts)
    # (4) the signing chain to the pinned CoRIM root
    root_cert = trust.root(NVIDIA_RIM_ROOT).certificate
    chain = _check_chain(certs, root_cert, now)
    # (5) read the verified bytes only
    verified = parse_rim_document(canonical)
    return _read_rim(verified, chain, root_cert, hashlib.sha256(xml).hexdigest())


# -- (1) parsing -------------------------------------------------------------------------------------------------


def _malformed(message: str, *, expected: object | None = None, actual: object | None = None) -> EvidenceMalformed:
    return EvidenceMalformed(Code.NVIDIA_RIM_MALFORMED, message, expected=expected, actual=actual)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=False,
        remove_blank_text=False,
    )


def parse_rim_document(data: bytes) -> etree._Element:
    """The root of ``data`` read as UTF-8 XML with no DTD, entity or processing instruction, within the depth limit,
    rooted at a SWID ``SoftwareIdentity``."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _malformed("RIM carries a document type declaration (DTDs and entities are refused)")
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError) as e:
        raise _malformed(f"RIM is not well-formed XML: {e}") from e
    tree = root.getroottree()
    if tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        raise _malformed("RIM carries a document type declaration (DTDs and entities are refused)")
    for sibling in (*root.itersiblings(preceding=True), *root.itersiblings()):
        if not isinstance(sibling, etree._Comment):
            raise _malformed("RIM has a processing instruction or entity outside its root element")
    _check_nodes(root)
    if root.tag != _ROOT_TAG:
        raise _malformed("RIM root is not a SWID SoftwareIdentity", expected=_ROOT_TAG, actual=str(root.tag))
    return root


def _check_nodes(root: etree._Element) -> None:
    """Refuse nesting deeper than the limit, processing instructions and entity references anywhere."""
    stack: list[tuple[etree._Element, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.MAX_NVIDIA_RIM_DEPTH:
            raise _malformed("RIM nests deeper than the limit", expected=f"<= {limits.MAX_NVIDIA_RIM_DEPTH}")
        if isinstance(node, etree._ProcessingInstruction | etree._Entity):
            raise _malformed("RIM holds a processing instruction or an entity reference")
        if isinstance(node, etree._Comment):
            continue
        stack.extend((child, depth + 1) for child in node)


# -- (2) the signature's shape -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SignatureParts:
    signed_info: etree._Element
    digest: bytes
    signature: bytes
    certificates: tuple[bytes, ...]


def _signature_invalid(
    message: str, *, expected: object | None = None, actual: object | None = None
) -> CollateralError:
    return CollateralError(Code.NVIDIA_RIM_SIGNATURE_INVALID, message, expected=expected, actual=actual)


def _ds(name: str) -> str:
    return f"{{{DSIG_NS}}}{name}"


def _elements(parent: etree._Element) -> list[etree._Element]:
    """Child elements (comments left out)."""
    return [child for child in parent if not isinstance(child, etree._Comment)]


def _children(parent: etree._Element, *names: str) -> list[etree._Element]:
    """Exactly the ds: child elements ``names``, in order; anything else is a wrapping attempt."""
    found = _elements(parent)
    tags = [str(child.tag) for child in found]
    want = [_ds(name) for name in names]
    if tags != want:
        raise _signature_invalid(
            f"unexpected content in ds:{etree.QName(parent).localname}", expected=want, actual=tags
        )
    return found


def _attributes(element: etree._Element, *names: str) -> None:
    keys = sorted(str(key) for key in element.attrib)
    if keys != sorted(names):
        raise _signature_invalid(
            f"unexpected attributes on ds:{etree.QName(element).localname}", expected=sorted(names), actual=keys
        )


def _algorithm(element: etree._Element, allowed: frozenset[str]) -> str:
    _attributes(element, "Algorithm")
    if _elements(element) or (element.text or "").strip():
        raise _signature_invalid(f"ds:{etree.QName(element).localname} has parameters")
    algorithm = str(element.get("Algorithm"))
    if algorithm not in allowed:
        raise _signature_invalid(
            f"ds:{etree.QName(element).localname} algorithm not accepted", expected=sorted(allowed), actual=algorithm
        )
    return algorithm


def _base64(element: etree._Element, what: str) -> bytes:
    if _elements(element):
        raise _signature_invalid(f"{what} holds elements")
    text = (element.text or "").translate(_B64_WHITESPACE)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _signature_invalid(f"{what} is not base64") from e


def _signature_element(root: etree._Element) -> etree._Element:
    signatures = list(root.iter(_SIGNATURE))
    if not signatures:
        raise CollateralError(Code.NVIDIA_RIM_UNSIGNED, "RIM has no enveloped ds:Signature")
    if len(signatures) != 1:
        raise _signature_invalid("RIM has more than one ds:Signature", expected=1, actual=len(signatures))
    signature = signatures[0]
    if signature.getparent() is not root:
        raise _signature_invalid("ds:Signature is not a child of the SoftwareIdentity root")
    for element in root.iter():
        if f"{{{_XML_NS}}}id" in element.attrib or f"{{{_XML_NS}}}base" in element.attrib:
            raise _signature_invalid("xml:id / xml:base present: C14N 1.1 and 1.0 would differ")
    return signature


def _signature_parts(signature: etree._Element) -> _SignatureParts:
    _attributes(signature)
    signed_info, signature_value, key_info = _children(signature, "SignedInfo", "SignatureValue", "KeyInfo")
    _attributes(signed_info)
    c14n, method, reference = _children(signed_info, "CanonicalizationMethod", "SignatureMethod", "Reference")
    _algorithm(c14n, _C14N)
    _algorithm(method, frozenset({_ECDSA_SHA384}))
    _attributes(reference, "URI")
    if reference.get("URI") != "":
        raise _signature_invalid(
            "the Reference is not to the whole document", expected='URI=""', actual=reference.get("URI")
        )
    transforms, digest_method, digest_value = _children(reference, "Transforms", "DigestMethod", "DigestValue")
    _attributes(transforms)
    enveloped, canonical = _children(transforms, "Transform", "Transform")
    _algorithm(enveloped, frozenset({_ENVELOPED}))
    _algorithm(canonical, _C14N)
    _algorithm(digest_method, frozenset({_SHA384}))
    _attributes(digest_value)
    digest = _base64(digest_value, "DigestValue")
    if len(digest) != hashlib.sha384().digest_size:
        raise _signature_invalid("DigestValue is not a SHA-384 digest", expected=48, actual=len(digest))
    _attributes(signature_value)
    raw_signature = _base64(signature_value, "SignatureValue")
    _attributes(key_info)
    (x509_data,) = _children(key_info, "X509Data")
    _attributes(x509_data)
    cert_elements = _elements(x509_data)
    if len(cert_elements) > limits.MAX_NVIDIA_RIM_CERTS:
        raise _malformed(
            "RIM embeds too many certificates", expected=f"<= {limits.MAX_NVIDIA_RIM_CERTS}", actual=len(cert_elements)
        )
    if not cert_elements or any(element.tag != _ds("X509Certificate") for element in cert_elements):
        raise _signature_invalid("X509Data holds something other than X509Certificate elements, or nothing")
    for element in cert_elements:
        _attributes(element)
    certificates = tuple(_base64(element, "X509Certificate") for element in cert_elements)
    return _SignatureParts(signed_info, digest, raw_signature, certificates)


# -- (3) digest and signature --------------------------------------------------------------------------------------


def _c14n(node: etree._Element) -> bytes:
    """Inclusive C14N 1.0 without comments of ``node``'s subtree (in-scope namespaces included at its apex).
    C14N refuses some well-formed documents (a relative namespace URI): those are ``nvidia.rim.malformed``."""
    try:
        return bytes(etree.tostring(node, method="c14n", exclusive=False, with_comments=False))
    except (etree.C14NError, etree.SerialisationError, ValueError) as e:
        raise _malformed(f"RIM cannot be canonicalised: {e}") from e


def _digest_input(root: etree._Element) -> bytes:
    """C14N of a copy of the document with its ``Signature`` removed (the enveloped-signature transform): the
    signature's tail text stays where it was."""
    document = copy.deepcopy(root)
    signature = document.find(_SIGNATURE)
    if signature is None:  # the original has exactly one, as a child of the root: so has the copy
        raise _signature_invalid("ds:Signature vanished from the copy")
    if signature.tail:
        previous = signature.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + signature.tail
        else:
            document.text = (document.text or "") + signature.tail
        signature.tail = None
    document.remove(signature)
    return _c14n(document)


def _load_certificate(der: bytes) -> x509.Certificate:
    try:
        return load_strict_certificate(der)
    except ValueError as e:
        raise _malformed("an embedded X509Certificate is not a valid X.509 certificate") from e


def _p384_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey | None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP384R1):
        return key
    return None


def _verify_signed_info(signer: x509.Certificate, parts: _SignatureParts) -> None:
    key = _p384_key(signer)
    if key is None:
        raise _signature_invalid("the signing certificate's key is not EC P-384")
    if len(parts.signature) != _SIGNATURE_BYTES:
        raise _signature_invalid("SignatureValue is not a raw P-384 r||s", expected=96, actual=len(parts.signature))
    r = int.from_bytes(parts.signature[:48], "big")
    s = int.from_bytes(parts.signature[48:], "big")
    try:
        key.verify(encode_dss_signature(r, s), _c14n(parts.signed_info), _P384_SHA384)
    except (InvalidSignature, ValueError) as e:
        raise _signature_invalid("the ECDSA signature over SignedInfo does not verify under the signer's key") from e


# -- (4) the signing chain ------------------------------------------------------------------------------------------


def _untrusted(message: str, *, expected: object | None = None, actual: object | None = None) -> CollateralError:
    return CollateralError(Code.NVIDIA_RIM_CHAIN_UNTRUSTED, message, expected=expected, actual=actual)


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_extensions(cert: x509.Certificate, cas_below: int | None) -> None:
    """``cas_below`` None: the signer (no CA, digitalSignature); else a CA with ``cas_below`` CAs under it."""
    try:
        extensions = cert.extensions
        for extension in extensions:
            if extension.critical and extension.oid not in _KNOWN_CRITICAL:
                raise _untrusted(f"{_subject(cert)}: unknown critical extension", actual=extension.oid.dotted_string)
        constraints = _extension(cert, x509.BasicConstraints)
        usage = _extension(cert, x509.KeyUsage)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise _untrusted(f"{_subject(cert)}: extensions do not parse") from e
    if cas_below is None:
        if constraints is not None and constraints.ca:
            raise _untrusted(f"{_subject(cert)}: the RIM signer is a CA certificate")
        if usage is None or not usage.digital_signature:
            raise _untrusted(f"{_subject(cert)}: the RIM signer lacks key usage digitalSignature")
        return
    if constraints is None or not constraints.ca:
        raise _untrusted(f"{_subject(cert)}: not a CA certificate")
    if constraints.path_length is not None and constraints.path_length < cas_below:
        raise _untrusted(
            f"{_subject(cert)}: path length constraint exceeded",
            expected=f">= {cas_below}",
            actual=constraints.path_length,
        )
    if usage is None or not usage.key_cert_sign:
        raise _untrusted(f"{_subject(cert)}: CA lacks key usage keyCertSign")


def _check_link(cert: x509.Certificate, issuer: x509.Certificate) -> None:
    if cert.issuer != issuer.subject:
        raise _untrusted(
            f"{_subject(cert)}: issuer name is not the next certificate's subject",
            expected=_subject(issuer),
            actual=cert.issuer.rfc4514_string(),
        )
    key = _p384_key(issuer)
    if key is None or not isinstance(cert.signature_hash_algorithm, hashes.SHA384):
        raise _untrusted(f"{_subject(cert)}: not signed with ECDSA P-384/SHA-384")
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, _P384_SHA384)
    except (InvalidSignature, ValueError) as e:
        raise _untrusted(f"{_subject(cert)}: signature does not verify under {_subject(issuer)}") from e


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > not_after:
        raise CollateralError(
            Code.NVIDIA_RIM_CHAIN_EXPIRED,
            f"{_subject(cert)} expired",
            expected=f"<= {not_after.isoformat()}",
            actual=now.isoformat(),
        )
    if now < not_before:
        raise CollateralError(
            Code.NVIDIA_RIM_CHAIN_EXPIRED,
            f"{_subject(cert)} is not yet valid",
            expected=f">= {not_before.isoformat()}",
            actual=now.isoformat(),
        )


def _check_chain(
    certs: tuple[x509.Certificate, ...], root: x509.Certificate, now: datetime
) -> tuple[x509.Certificate, ...]:
    """The embedded (L4, L3, L2) after checking them up to the pinned ``root``; the embedded root is dropped."""
    if len(certs) != _RIM_CERTS:
        raise _untrusted("the RIM does not embed L4, L3, L2 and the root", expected=_RIM_CERTS, actual=len(certs))
    if certs[-1].public_bytes(Encoding.DER) != root.public_bytes(Encoding.DER):
        raise _untrusted(
            "the RIM's embedded root is not the pinned NVIDIA CoRIM signing root",
            expected=_subject(root),
            actual=_subject(certs[-1]),
        )
    chain = certs[:-1]
    for cert, issuer in zip(chain, (*chain[1:], root), strict=True):
        _check_link(cert, issuer)
    for position, cert in enumerate(chain):
        _check_extensions(cert, None if position == 0 else position - 1)
    constraints = _extension(root, x509.BasicConstraints)
    if constraints is not None and constraints.path_length is not None and constraints.path_length < len(chain) - 1:
        raise _untrusted("the pinned root's path length constraint does not allow the chain")
    for cert in (*chain, root):
        _check_validity(cert, now)
    return chain


# -- (5) reading the verified tree ----------------------------------------------------------------------------------


def _swid(name: str) -> str:
    return f"{{{SWID_NS}}}{name}"


def _required(element: etree._Element, name: str) -> str:
    value = element.get(name)
    if value is None or not value:
        raise _malformed(f"{etree.QName(element).localname} lacks the attribute {name}")
    return str(value)


def _optional(element: etree._Element, name: str) -> str | None:
    value = element.get(name)
    return None if value is None else str(value)


def _one(root: etree._Element, name: str) -> etree._Element:
    found = root.findall(_swid(name))
    if len(found) != 1:
        raise _malformed(f"SoftwareIdentity must hold exactly one {name}", expected=1, actual=len(found))
    return found[0]


def _decimal(element: etree._Element, name: str) -> int:
    text = _required(element, name)
    if not _DECIMAL.fullmatch(text):
        raise _malformed(f"Resource {name} is not a decimal number", actual=text)
    return int(text)


def _measurement(resource: etree._Element) -> RimMeasurement:
    if resource.tag != _swid("Resource") or resource.get("type") != "Measurement":
        raise _malformed("Payload holds something other than Measurement resources", actual=str(resource.tag))
    index = _decimal(resource, "index")
    active_text = _required(resource, "active")
    if active_text not in ("True", "False"):
        raise _malformed(f"measurement {index}: active is not True/False", actual=active_text)
    count = _decimal(resource, "alternatives")
    if not 1 <= count <= limits.MAX_NVIDIA_RIM_ALTERNATIVES:
        raise _malformed(
            f"measurement {index}: alternatives out of range",
            expected=f"1..{limits.MAX_NVIDIA_RIM_ALTERNATIVES}",
            actual=count,
        )
    size = _decimal(resource, "size")
    if size != _MEASUREMENT_SIZE:
        raise _malformed(f"measurement {index}: size is not a SHA-384 digest", expected=48, actual=size)
    hash_names = sorted(str(key) for key in resource.attrib if etree.QName(key).namespace == SHA384_NS)
    want = sorted(f"{{{SHA384_NS}}}Hash{k}" for k in range(count))
    if hash_names != want:
        raise _malformed(f"measurement {index}: Hash attributes do not match alternatives={count}")
    alternatives = []
    for k in range(count):
        text = str(resource.get(f"{{{SHA384_NS}}}Hash{k}"))
        if len(text) != 2 * size or not _LOWER_HEX.fullmatch(text):
            raise _malformed(f"measurement {index}: Hash{k} is not {size} bytes of lower-case hex")
        alternatives.append(bytes.fromhex(text))
    return RimMeasurement(index, active_text == "True", tuple(alternatives), size, resource.get("name") or "")


def _read_rim(
    root: etree._Element, chain: tuple[x509.Certificate, ...], pinned: x509.Certificate, sha256: str
) -> VerifiedRim:
    meta = _one(root, "Meta")
    payload = _one(root, "Payload")
    resources = _elements(payload)
    if len(resources) > limits.MAX_NVIDIA_RIM_MEASUREMENTS:
        raise _malformed(
            "RIM lists too many measurements",
            expected=f"<= {limits.MAX_NVIDIA_RIM_MEASUREMENTS}",
            actual=len(resources),
        )
    measurements = tuple(_measurement(resource) for resource in resources)
    indices = [m.index for m in measurements]
    if len(set(indices)) != len(indices):
        raise _malformed("RIM lists one measurement index twice")
    return VerifiedRim(
        tag_id=_required(root, "tagId"),
        name=_required(root, "name"),
        version=_required(root, "version"),
        colloquial_version=_required(meta, "colloquialVersion"),
        product=_optional(meta, "product"),
        edition=_optional(meta, "edition"),
        firmware_manufacturer_id=_optional(meta, f"{{{TCG_RIM_NS}}}FirmwareManufacturerId"),
        measurements=measurements,
        signer_chain=chain,
        sha256=sha256,
        not_after=min(cert.not_valid_after_utc for cert in (*chain, pinned)),
    )
