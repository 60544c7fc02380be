"""Independent checks for the simulated NVIDIA evidence tests, written from the spec (nvidia-gpu.md §2-§4) with
``cryptography`` and lxml directly — never with Keyward's own verifier."""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import ocsp
from lxml import etree

from verifier.evidence.nvidia import parse_gpu_report
from verifier.simulation.nvidia_pki import Defect, NvidiaEvidence, OcspEntry, SwitchEvidence

DS = "{http://www.w3.org/2000/09/xmldsig#}"
SWID = "{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}"
SHA384_NS = "{http://www.w3.org/2001/04/xmlenc#sha384}"


def ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def report_signed_by(report: bytes, cert: x509.Certificate) -> bool:
    """ECDSA P-384/SHA-384 (raw r||s -> DER) over the report's signed bytes with ``cert``'s key."""
    parsed = parse_gpu_report(report)
    der = encode_dss_signature(parsed.signature_r, parsed.signature_s)
    try:
        ec_key(cert).verify(der, parsed.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True


def links_ok(chain: Sequence[x509.Certificate]) -> list[bool]:
    """For each pair (cert, next): cert is directly issued (and signed) by next."""
    out = []
    for cert, issuer in itertools.pairwise(chain):
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError):
            out.append(False)
        else:
            out.append(True)
    return out


def rim_tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))


def rim_digest_ok(xml: bytes) -> bool:
    """SHA-384 over the inclusive C14N 1.0 of the document without its Signature == DigestValue (§4 step 2)."""
    root = rim_tree(xml)
    signature = root.find(f"{DS}Signature")
    assert signature is not None
    digest = base64.b64decode(signature.findtext(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue") or "")
    root.remove(signature)
    return hashlib.sha384(etree.tostring(root, method="c14n")).digest() == digest


def rim_certs(xml: bytes) -> list[x509.Certificate]:
    texts = rim_tree(xml).findall(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    return [x509.load_der_x509_certificate(base64.b64decode(t.text or "")) for t in texts]


def rim_signature_ok(xml: bytes) -> bool:
    """ECDSA P-384/SHA-384 (raw r||s) over C14N(SignedInfo) in place, key = the first certificate (§4 step 3)."""
    root = rim_tree(xml)
    signed_info = root.find(f"{DS}Signature/{DS}SignedInfo")
    assert signed_info is not None
    raw = base64.b64decode(root.findtext(f"{DS}Signature/{DS}SignatureValue") or "")
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    try:
        ec_key(rim_certs(xml)[0]).verify(der, etree.tostring(signed_info, method="c14n"), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return len(raw) == 96


def rim_active(xml: bytes) -> dict[int, tuple[str, ...]]:
    """Active RIM index -> its Hash alternatives (hex)."""
    out = {}
    for r in rim_tree(xml).iter(f"{SWID}Resource"):
        if r.get("active") == "True":
            n = int(r.get("alternatives") or 0)
            out[int(r.get("index") or -1)] = tuple(r.get(f"{SHA384_NS}Hash{i}") or "" for i in range(n))
    return out


def ocsp_ok(entry: OcspEntry) -> bool:
    """The response is successful, GOOD, for the entry's serial, signed by a responder the issuer delegated to."""
    r = ocsp.load_der_ocsp_response(entry.response)
    (responder,) = r.certificates
    responder.verify_directly_issued_by(entry.issuer)
    eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    try:
        ec_key(responder).verify(r.signature, r.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return (
        r.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        and r.certificate_status is ocsp.OCSPCertStatus.GOOD
        and r.serial_number == entry.cert.serial_number
        and x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku
    )


def differs(a: NvidiaEvidence | SwitchEvidence, b: NvidiaEvidence | SwitchEvidence) -> set[str]:
    """Which parts of two evidences differ: report, chain, rim:<role>, ocsp:<label>."""
    out = set()
    if a.report != b.report:
        out.add("report")
    if a.chain != b.chain:
        out.add("chain")
    out |= {f"rim:{x.role}" for x, y in zip(a.rims, b.rims, strict=True) if x.xml != y.xml}
    out |= {f"ocsp:{x.label}" for x, y in zip(a.ocsp, b.ocsp, strict=True) if x.response != y.response}
    return out


def touches(defect: Defect, primary: str) -> set[str]:
    """The parts ``defect`` changes when its RIM defects hit the RIM of role ``primary`` (driver on a GPU, bios on
    a switch): an alt chain brings its own OCSP responses and the alt leaf signs the report."""
    rim_chain = {f"rim:{primary}", f"ocsp:rim/{primary}-l4", "ocsp:rim/l3", "ocsp:rim/l2"}
    device_ocsp = {"ocsp:device/brom", "ocsp:device/ica", "ocsp:device/identity"}
    table: dict[Defect, set[str]] = {
        Defect.WRONG_ROOT: {"report", "chain", *device_ocsp},
        Defect.LEAF_WRONG_BROM: {"chain"},
        Defect.FWID_MISMATCH: {"chain"},
        Defect.FWID_MISSING: {"report"},
        Defect.LEAF_FWID_EXTENSION_MISSING: {"chain"},
        Defect.REPORT_SIGNATURE_BAD: {"report"},
        Defect.WRONG_NONCE: {"report"},
        Defect.MEASUREMENT_CHANGED: {"report"},
        Defect.DRIVER_VERSION_CHANGED: {"report"},
        Defect.RIM_TAMPERED: {f"rim:{primary}"},
        Defect.RIM_UNSIGNED: {f"rim:{primary}"},
        Defect.RIM_WRONG_KEY: {f"rim:{primary}"},
        # a GPU's VBIOS RIM keeps the genuine L3/L2 (and their answers); a switch's only RIM is the forged one
        Defect.RIM_WRONG_ROOT: rim_chain if primary == "bios" else {f"rim:{primary}", f"ocsp:rim/{primary}-l4"},
        Defect.RIM_DOCTYPE: {f"rim:{primary}"},
        Defect.RIM_SIGNER_EXPIRED: {f"rim:{primary}"},
        Defect.DEVICE_CERT_REVOKED: {"ocsp:device/brom"},
        Defect.DEVICE_CERT_HOLD: {"ocsp:device/brom"},
        Defect.RIM_SIGNER_REVOKED: {f"ocsp:rim/{primary}-l4"},
        Defect.OCSP_STALE: {"ocsp:device/brom"},
        Defect.OCSP_UNKNOWN: {"ocsp:device/brom"},
        Defect.OCSP_NOT_DELEGATED: {"ocsp:device/brom"},
        Defect.TRAILING_BYTES: {"report"},
        Defect.TRAILING_ZERO_BYTE: {"report"},
        Defect.TRUNCATED: {"report"},
    }
    return table[defect]
