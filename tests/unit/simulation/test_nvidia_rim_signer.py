"""The simulated NVIDIA RIM signer: signed SWID tags whose XML-DSig verifies with lxml C14N and ``cryptography``
directly (independent of Keyward's RIM verifier), shaped like NVIDIA's real RIMs.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from lxml import etree

from verifier.simulation.nvidia_pki import default_nvidia_pki
from verifier.simulation.nvidia_rim_signer import (
    HOPPER_DRIVER_ACTIVE,
    HOPPER_VBIOS_ACTIVE,
    RimDocument,
    RimEntry,
    driver_rim_id,
    sign_rim,
    unsigned_rim_xml,
    vbios_rim_id,
)

REAL_RIM = Path(__file__).parents[2] / "vectors" / "nvidia" / "rim" / "NV_GPU_DRIVER_GH100_550.90.07.xml"
DS = "{http://www.w3.org/2000/09/xmldsig#}"
SWID = "{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}"
SHA384_NS = "{http://www.w3.org/2001/04/xmlenc#sha384}"
TCG = "{https://trustedcomputinggroup.org/resource/tcg-reference-integrity-manifest-rim-information-model/}"


def _tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))


def _digest_ok(xml: bytes) -> bool:
    """Step (2) of nvidia-gpu.md §4, written here from the spec: SHA-384 over C14N of the doc minus Signature."""
    root = _tree(xml)
    signature = root.find(f"{DS}Signature")
    assert signature is not None
    digest_value = base64.b64decode(signature.findtext(f"{DS}SignedInfo/{DS}Reference/{DS}DigestValue") or "")
    root.remove(signature)
    return hashlib.sha384(etree.tostring(root, method="c14n")).digest() == digest_value


def _signature_ok(xml: bytes) -> bool:
    """Step (3): ECDSA P-384/SHA-384, raw r||s, over C14N(SignedInfo) in place, key = first X509Certificate."""
    root = _tree(xml)
    signed_info = root.find(f"{DS}Signature/{DS}SignedInfo")
    assert signed_info is not None
    raw = base64.b64decode(root.findtext(f"{DS}Signature/{DS}SignatureValue") or "")
    first = root.findtext(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate") or ""
    key = x509.load_der_x509_certificate(base64.b64decode(first)).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:48], "big"), int.from_bytes(raw[48:], "big"))
    try:
        key.verify(der, etree.tostring(signed_info, method="c14n"), ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return len(raw) == 96


@pytest.fixture(scope="module")
def rim() -> bytes:
    ev = default_nvidia_pki().build()
    return ev.rims[0].xml


def test_rim_signer_digest_rule_reproduces_real_nvidia_rim() -> None:
    assert _digest_ok(REAL_RIM.read_bytes())


def test_rim_signer_digest_value_verifies(rim: bytes) -> None:
    assert _digest_ok(rim)


def test_rim_signer_signature_value_verifies(rim: bytes) -> None:
    assert _signature_ok(rim)


def test_rim_signer_changed_hash_breaks_only_the_digest(rim: bytes) -> None:
    root = _tree(rim)
    resource = root.find(f"{SWID}Payload/{SWID}Resource[@index='7']")
    assert resource is not None
    resource.set(f"{SHA384_NS}Hash0", "00" * 48)
    tampered = etree.tostring(root)
    assert not _digest_ok(tampered)
    assert _signature_ok(tampered)


def test_rim_signer_key_info_holds_l4_l3_l2_root(rim: bytes) -> None:
    pki = default_nvidia_pki()
    texts = _tree(rim).findall(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    certs = [x509.load_der_x509_certificate(base64.b64decode(t.text or "")) for t in texts]
    assert certs == list(pki.rim_chain("driver"))
    for cert, issuer in itertools.pairwise(certs):
        cert.verify_directly_issued_by(issuer)
    certs[3].verify_directly_issued_by(certs[3])
    assert certs[3] == pki.rim_root()


def test_rim_signer_l4_is_an_end_entity_signing_key() -> None:
    l4 = default_nvidia_pki().rim_signer("driver")
    assert l4.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ku = l4.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature
    assert not ku.value.key_cert_sign


def test_rim_signer_shape_matches_real_rim(rim: bytes) -> None:
    """Same namespaces, prefixes, element and attribute names as NVIDIA's, in the same order."""
    real, sim = _tree(REAL_RIM.read_bytes()), _tree(rim)
    assert sim.nsmap == real.nsmap
    assert [c.tag for c in sim] == [c.tag for c in real]
    assert [c.prefix for c in sim] == [c.prefix for c in real]
    assert list(sim.attrib) == list(real.attrib)
    for path in (f"{SWID}Entity", f"{SWID}Meta", f"{SWID}Payload"):
        s, r = sim.find(path), real.find(path)
        assert s is not None
        assert r is not None
        assert list(s.attrib) == list(r.attrib)
        assert s.nsmap == r.nsmap
    sim_res, real_res = sim.find(f"{SWID}Payload/{SWID}Resource"), real.find(f"{SWID}Payload/{SWID}Resource")
    assert sim_res is not None
    assert real_res is not None
    assert list(sim_res.attrib) == list(real_res.attrib)
    sig_paths = [e.tag for e in sim.iter(f"{DS}*") if e.tag != f"{DS}X509Certificate"]
    assert sig_paths == [e.tag for e in real.iter(f"{DS}*") if e.tag != f"{DS}X509Certificate"]
    algorithms = [e.get("Algorithm") for e in sim.iter(f"{DS}*") if e.get("Algorithm")]
    assert algorithms == [e.get("Algorithm") for e in real.iter(f"{DS}*") if e.get("Algorithm")]
    assert sim[-1].tag == f"{DS}Signature"


def test_rim_signer_meta_and_measurements(rim: bytes) -> None:
    root = _tree(rim)
    meta = root.find(f"{SWID}Meta")
    assert meta is not None
    assert (root.get("name"), meta.get("colloquialVersion"), meta.get("product")) == ("GH100", "550.90.07", "GH100")
    assert meta.get(f"{TCG}FirmwareManufacturerId") == "5703"
    resources = root.findall(f"{SWID}Payload/{SWID}Resource")
    assert [int(r.get("index") or -1) for r in resources] == list(range(64))
    active = {int(r.get("index") or -1) for r in resources if r.get("active") == "True"}
    assert active == HOPPER_DRIVER_ACTIVE
    assert all(r.get("size") == "48" and r.get("type") == "Measurement" for r in resources)
    r35 = root.find(f"{SWID}Payload/{SWID}Resource[@index='35']")
    assert r35 is not None
    assert r35.get("alternatives") == "2"
    assert r35.get(f"{SHA384_NS}Hash1") is not None


def test_rim_signer_vbios_rim_active_set() -> None:
    root = _tree(default_nvidia_pki().build().rims[1].xml)
    active = {int(r.get("index") or -1) for r in root.iter(f"{SWID}Resource") if r.get("active") == "True"}
    assert active == HOPPER_VBIOS_ACTIVE
    assert _digest_ok(etree.tostring(root))
    assert _signature_ok(etree.tostring(root))


def test_rim_signer_hash_values_are_the_report_measurements() -> None:
    ev = default_nvidia_pki().build()
    values = default_nvidia_pki().default_measurements()
    root = _tree(ev.rims[0].xml)
    for r in root.iter(f"{SWID}Resource"):
        if r.get("active") == "True":
            assert r.get(f"{SHA384_NS}Hash0") == values[int(r.get("index") or -1) + 1].hex()


def test_rim_signer_unsigned_text_is_the_signed_minus_signature() -> None:
    pki = default_nvidia_pki()
    doc = RimDocument("GH100", "1.2.3", (RimEntry(0, True, (bytes(range(48)),)),))
    signed = pki.sign_rim(doc, "driver")
    start, end = signed.index(b"<ds:Signature"), signed.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    assert signed[:start] + signed[end:] == unsigned_rim_xml(doc).encode()


def test_rim_signer_deterministic() -> None:
    pki = default_nvidia_pki()
    doc = RimDocument("GH100", "1.2.3", (RimEntry(0, True, (bytes(48),)),))
    key = pki.key("rim-l4/driver")
    assert sign_rim(doc, key, []) == sign_rim(doc, key, [])


@pytest.mark.parametrize("alternatives", [(), (bytes(47),)], ids=["none", "short"])
def test_rim_signer_rejects_bad_entries(alternatives: tuple[bytes, ...]) -> None:
    with pytest.raises(ValueError, match="alternatives"):
        unsigned_rim_xml(RimDocument("GH100", "1", (RimEntry(0, True, alternatives),)))


def test_rim_ids_follow_nvidia_naming() -> None:
    assert driver_rim_id("GH100", "550.90.07") == "NV_GPU_DRIVER_GH100_550.90.07"
    assert vbios_rim_id("1010", "0200", "882", "96.00.9f.00.01") == "NV_GPU_VBIOS_1010_0200_882_96009F0001"
