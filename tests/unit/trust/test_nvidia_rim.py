"""verifier.trust.nvidia_rim over genuine NVIDIA RIMs (tests/vectors/nvidia/rim/, see PROVENANCE-rim-ocsp.md) and
defects made from them: by editing bytes (digest, wrapping, DTD/entity attacks, limits), and by re-signing a real RIM
under a throwaway CoRIM-shaped PKI (chain rules, and what is read only after the signature verified).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Final

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from lxml import etree

from verifier import limits
from verifier.errors import Code, CollateralError, EvidenceMalformed, KeywardError
from verifier.trust.nvidia_rim import DSIG_NS, SHA384_NS, VerifiedRim, verify_rim
from verifier.trust.store import NVIDIA_RIM_ROOT, TrustStore, load_trust_store, trust_store_from_certificates

RIMS: Final = Path(__file__).resolve().parents[2] / "vectors" / "nvidia" / "rim"
DRIVER: Final = "NV_GPU_DRIVER_GH100_550.90.07.xml"
VBIOS: Final = "NV_GPU_VBIOS_1010_0200_882_96009F0001.xml"
N1_NOW: Final = datetime(2025, 10, 24, 12, tzinfo=UTC)
SDK_NOW: Final = datetime(2026, 6, 1, tzinfo=UTC)
REAL_NOW: Final = datetime(2026, 11, 23, tzinfo=UTC)  # the spec's research date: N1's RIM L4 signers have expired


@cache
def _rim(name: str) -> bytes:
    return (RIMS / name).read_bytes()


@cache
def _trust() -> TrustStore:
    return load_trust_store()


def _code(call: Callable[[], object]) -> Code:
    with pytest.raises(KeywardError) as info:
        call()
    return info.value.code


# -- genuine RIMs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "now", "colloquial", "edition", "active"),
    [
        (DRIVER, N1_NOW, "550.90.07", "GPU", {7, *range(21, 41)}),
        (VBIOS, N1_NOW, "96.00.9F.00.01", "GPU", {*range(7), *range(8, 13)}),
        ("NV_GPU_DRIVER_GH100_550.144.03.xml", SDK_NOW, "550.144.03", "GPU", None),
        ("NV_SWITCH_BIOS_5612_0002_890_9610550001.xml", SDK_NOW, "96.10.55.00.01", "SWITCH", None),
    ],
    ids=["n1-driver", "n1-vbios", "driver-550.144.03", "switch-ls10"],
)
def test_verify_rim_genuine_rims_verify(
    name: str, now: datetime, colloquial: str, edition: str, active: set[int] | None
) -> None:
    data = _rim(name)
    rim = verify_rim(data, _trust(), now)
    assert rim.colloquial_version == colloquial
    assert rim.edition == edition
    assert rim.name == rim.product == ("LS10" if edition == "SWITCH" else "GH100")
    assert rim.firmware_manufacturer_id == "5703"
    assert rim.sha256 == hashlib.sha256(data).hexdigest()
    assert len(rim.measurements) == 64
    assert [m.index for m in rim.measurements] == list(range(64))
    assert all(m.size == 48 and all(len(h) == 48 for h in m.alternatives) for m in rim.measurements)
    if active is not None:
        assert {m.index for m in rim.measurements if m.active} == active
    assert len(rim.signer_chain) == 3
    assert rim.signer_chain[2].issuer == _trust().root(NVIDIA_RIM_ROOT).certificate.subject
    assert rim.not_after == min(c.not_valid_after_utc for c in rim.signer_chain)


def test_verify_rim_hashes_are_the_documents_lower_case_hex() -> None:
    rim = verify_rim(_rim(DRIVER), _trust(), N1_NOW)
    index7 = next(m for m in rim.measurements if m.index == 7)
    text = _rim(DRIVER).decode()
    assert f'index="7" active="True" alternatives="1" ns2:Hash0="{index7.alternatives[0].hex()}"' in text


@pytest.mark.parametrize(
    "name",
    [
        "1010_0200_882_96005E0001_PROD.swidtag",
        "1010_0210_886_9600740011_PROD.swidtag",
        "g520_0200_885_9600740001_PROD.swidtag",
    ],
)
def test_verify_rim_nvtrust_vbios_rims_verify(name: str) -> None:
    rim = verify_rim(_rim(name), _trust(), datetime(2024, 10, 1, tzinfo=UTC))
    assert rim.edition == "GPU"
    assert sum(m.active for m in rim.measurements) == 12


@pytest.mark.parametrize("name", [DRIVER, VBIOS])
def test_verify_rim_n1_signer_expired_at_real_time(name: str) -> None:
    assert _code(lambda: verify_rim(_rim(name), _trust(), REAL_NOW)) is Code.NVIDIA_RIM_CHAIN_EXPIRED


def test_verify_rim_signer_not_yet_valid() -> None:
    # the driver RIM's L4 starts 2024-06-01
    before = datetime(2024, 5, 1, tzinfo=UTC)
    assert _code(lambda: verify_rim(_rim(DRIVER), _trust(), before)) is Code.NVIDIA_RIM_CHAIN_EXPIRED


# -- NVIDIA's negative RIMs (expected.json rim_cases) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "now", "code"),
    [
        ("NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml", SDK_NOW, Code.NVIDIA_RIM_SIGNATURE_INVALID),
        ("NV_GPU_DRIVER_GH100_570.124.03_expired.xml", SDK_NOW, Code.NVIDIA_RIM_SIGNATURE_INVALID),
        ("NV_SWITCH_BIOS_5612_0002_890_9610550001_invalid_signature.xml", SDK_NOW, Code.NVIDIA_RIM_SIGNATURE_INVALID),
        ("NV_SWITCH_BIOS_5612_0002_890_9610550001_measurement_mismatch.xml", N1_NOW, Code.NVIDIA_RIM_SIGNATURE_INVALID),
        ("incorrect_signature_driver_rim.xml", SDK_NOW, Code.NVIDIA_RIM_SIGNATURE_INVALID),
        ("incorrect_cert_chain_driver_rim.xml", SDK_NOW, Code.NVIDIA_RIM_CHAIN_UNTRUSTED),
    ],
    ids=["535-edited", "570-edited", "switch-invalid-signature", "switch-edited", "bad-ecdsa", "debug-root"],
)
def test_verify_rim_nvidia_negative_rims_rejected(name: str, now: datetime, code: Code) -> None:
    assert _code(lambda: verify_rim(_rim(f"negative/{name}"), _trust(), now)) is code


def test_verify_rim_validly_signed_mismatch_rim_is_accepted_and_differs_at_index_9() -> None:
    # rim_cases: NVIDIA-signed test RIM with the same id as the PROD one; appraisal, not verify_rim, rejects it (P6)
    test_rim = verify_rim(
        _rim("negative/NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml"), _trust(), N1_NOW
    )
    prod = verify_rim(_rim("1010_0200_882_96005E0001_PROD.swidtag"), _trust(), datetime(2024, 10, 1, tzinfo=UTC))
    assert test_rim.colloquial_version == prod.colloquial_version
    assert test_rim.sha256 != prod.sha256
    differ = {a.index for a, b in zip(test_rim.measurements, prod.measurements, strict=True) if a != b}
    assert 9 in differ


# -- byte edits of a genuine RIM -----------------------------------------------------------------------------------


def _edit(old: bytes, new: bytes, data: bytes | None = None) -> bytes:
    data = _rim(DRIVER) if data is None else data
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


_INDEX7: Final = b'index="7" active="True" alternatives="1" ns2:Hash0="80161aac'
_SIGNED_INFO: Final = b"<ds:SignedInfo>"
_REFERENCE: Final = b'<ds:Reference URI="">'
_REFERENCE_END: Final = b"</ds:Reference>"
_BODY: Final = b'<ns0:Entity name="NVIDIA Corporation"'


def _without_signature() -> bytes:
    data = _rim(DRIVER)
    start = data.index(b"<ds:Signature ")
    end = data.index(b"</ds:Signature>") + len(b"</ds:Signature>")
    return data[:start] + data[end:]


def _signature_text() -> bytes:
    data = _rim(DRIVER)
    return data[data.index(b"<ds:Signature ") : data.index(b"</ds:Signature>") + len(b"</ds:Signature>")]


def _second_reference() -> bytes:
    data = _rim(DRIVER)
    start = data.index(_REFERENCE)
    end = data.index(_REFERENCE_END) + len(_REFERENCE_END)
    return data[:end] + data[start:end].replace(b'URI=""', b'URI="#other"') + data[end:]


_DEPTH: Final = limits.MAX_NVIDIA_RIM_DEPTH

_DTD_CASES: Final[dict[str, bytes]] = {
    "internal-entity": b'<!DOCTYPE SoftwareIdentity [<!ENTITY v "550.90.07">]>\n',
    "external-entity": b'<!DOCTYPE SoftwareIdentity [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n',
    "external-dtd": b'<!DOCTYPE SoftwareIdentity SYSTEM "http://attacker.example/rim.dtd">\n',
    "billion-laughs": b'<!DOCTYPE SoftwareIdentity [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>\n',
}


@pytest.mark.parametrize("case", sorted(_DTD_CASES))
def test_verify_rim_document_type_declarations_refused(case: str) -> None:
    data = _DTD_CASES[case] + _edit(b'colloquialVersion="550.90.07"', b'colloquialVersion="&v;"')
    if case in ("external-entity", "billion-laughs"):
        data = data.replace(b"&v;", b"&x;" if case == "external-entity" else b"&d;")
    assert _code(lambda: verify_rim(data, _trust(), N1_NOW)) is Code.NVIDIA_RIM_MALFORMED


def test_verify_rim_doctype_in_utf16_refused() -> None:
    # the bytes are read as UTF-8 whatever they declare: UTF-16 cannot hide a DOCTYPE from the byte check
    data = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>').encode("utf-16")
    assert _code(lambda: verify_rim(data, _trust(), N1_NOW)) is Code.NVIDIA_RIM_MALFORMED


_EDITS: Final[dict[str, tuple[Callable[[], bytes], Code]]] = {
    "measurement-tampered": (lambda: _edit(_INDEX7, _INDEX7[:-1] + b"d"), Code.NVIDIA_RIM_SIGNATURE_INVALID),
    "meta-tampered": (
        lambda: _edit(b'colloquialVersion="550.90.07"', b'colloquialVersion="550.90.08"'),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "whitespace-added-to-body": (lambda: _edit(_BODY, b"\n" + _BODY), Code.NVIDIA_RIM_SIGNATURE_INVALID),
    "signed-info-tampered": (
        lambda: _edit(_SIGNED_INFO, _SIGNED_INFO + b" "),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "signature-value-tampered": (
        lambda: _edit(b"<ds:SignatureValue>uA3a", b"<ds:SignatureValue>uA3b"),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "signature-removed": (_without_signature, Code.NVIDIA_RIM_UNSIGNED),
    "second-reference": (_second_reference, Code.NVIDIA_RIM_SIGNATURE_INVALID),
    "reference-to-id": (lambda: _edit(_REFERENCE, b'<ds:Reference URI="#x">'), Code.NVIDIA_RIM_SIGNATURE_INVALID),
    "reference-without-uri": (lambda: _edit(_REFERENCE, b"<ds:Reference>"), Code.NVIDIA_RIM_SIGNATURE_INVALID),
    "xpath-transform": (
        lambda: _edit(
            b"</ds:Transforms>",
            b'<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"><ds:XPath>1</ds:XPath>'
            b"</ds:Transform></ds:Transforms>",
        ),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "exclusive-c14n": (
        lambda: _edit(
            b'<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2006/12/xml-c14n11"/>',
            b'<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>',
        ),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "rsa-signature-method": (
        lambda: _edit(b"xmldsig-more#ecdsa-sha384", b"xmldsig-more#rsa-sha256"),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "sha256-digest": (
        lambda: _edit(b"xmldsig-more#sha384", b"xmlenc#sha256"),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "two-signatures": (
        lambda: _edit(b"</SoftwareIdentity>", _signature_text() + b"</SoftwareIdentity>"),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "signature-nested-in-payload": (
        lambda: _edit(b"</ns0:Payload>", _signature_text() + b"</ns0:Payload>", _without_signature()),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "object-in-signature": (
        lambda: _edit(b"</ds:KeyInfo>", b"</ds:KeyInfo><ds:Object/>"),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "xml-id-attribute": (
        lambda: _edit(b"<ns0:Entity ", b'<ns0:Entity xml:id="e" '),
        Code.NVIDIA_RIM_SIGNATURE_INVALID,
    ),
    "processing-instruction": (lambda: _edit(_BODY, b"<?evil x?>" + _BODY), Code.NVIDIA_RIM_MALFORMED),
    "processing-instruction-before-root": (lambda: b"<?evil x?>" + _rim(DRIVER), Code.NVIDIA_RIM_MALFORMED),
    "undefined-entity": (lambda: _edit(b'edition="GPU"', b'edition="&gpu;"'), Code.NVIDIA_RIM_MALFORMED),
    "not-well-formed": (lambda: _rim(DRIVER)[:-5], Code.NVIDIA_RIM_MALFORMED),
    "not-utf8": (lambda: _edit(b'edition="GPU"', b'edition="\xff"'), Code.NVIDIA_RIM_MALFORMED),
    "empty": (lambda: b"", Code.NVIDIA_RIM_MALFORMED),
    "depth-over-limit": (
        lambda: _edit(_BODY, b"<ns0:x>" * _DEPTH + b"</ns0:x>" * _DEPTH + _BODY),
        Code.NVIDIA_RIM_MALFORMED,
    ),
    "depth-bomb-over-size-limit": (
        lambda: _edit(_BODY, b"<x>" * 100_000 + b"</x>" * 100_000 + _BODY),
        Code.NVIDIA_RIM_TOO_LARGE,
    ),
    "depth-bomb-under-size-limit": (lambda: b"<a>" * 30_000 + b"</a>" * 30_000, Code.NVIDIA_RIM_MALFORMED),
    "oversize": (
        lambda: _edit(b"</SoftwareIdentity>", b" " * limits.MAX_NVIDIA_RIM_BYTES + b"</SoftwareIdentity>"),
        Code.NVIDIA_RIM_TOO_LARGE,
    ),
    "relative-namespace-uri": (
        lambda: _edit(b'xmlns:ns2="http://www.w3.org/2001/04/xmlenc#sha384"', b'xmlns:ns2="www.w3.org/sha384"'),
        Code.NVIDIA_RIM_MALFORMED,
    ),
    "wrong-root-element": (
        lambda: _rim(DRIVER).replace(b"<SoftwareIdentity ", b"<Other ", 1).replace(b"</SoftwareIdentity>", b"</Other>"),
        Code.NVIDIA_RIM_MALFORMED,
    ),
    "wrong-root-namespace": (
        lambda: _edit(b'<SoftwareIdentity xmlns="http://standards.iso.org/iso/19770/-2/2015/schema.xsd"',
                      b'<SoftwareIdentity xmlns="urn:other"'),
        Code.NVIDIA_RIM_MALFORMED,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(_EDITS))
def test_verify_rim_edited_bytes_rejected(case: str) -> None:
    make, code = _EDITS[case]
    data = make()
    assert data != _rim(DRIVER)
    assert _code(lambda: verify_rim(data, _trust(), N1_NOW)) is code


def test_verify_rim_error_classes() -> None:
    with pytest.raises(EvidenceMalformed):
        verify_rim(b"<x", _trust(), N1_NOW)
    with pytest.raises(CollateralError):
        verify_rim(_without_signature(), _trust(), N1_NOW)


def test_verify_rim_comment_is_not_signed_and_not_read() -> None:
    # comments are outside C14N-without-comments: accepted, and the result is read from the canonical bytes
    data = _edit(_BODY, b'<!-- <ns0:Resource type="Measurement" index="99"/> -->' + _BODY)
    rim = verify_rim(data, _trust(), N1_NOW)
    assert [m.index for m in rim.measurements] == list(range(64))


def test_verify_rim_trailing_whitespace_after_signature_kept_in_digest() -> None:
    # the enveloped-signature transform removes the element, not its tail: a tail added after signing breaks the digest
    data = _edit(b"</ds:Signature></SoftwareIdentity>", b"</ds:Signature>\n</SoftwareIdentity>")
    assert _code(lambda: verify_rim(data, _trust(), N1_NOW)) is Code.NVIDIA_RIM_SIGNATURE_INVALID


# -- re-signed under a throwaway PKI -----------------------------------------------------------------------------

_T0: Final = datetime(2025, 1, 1, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Knobs:
    """One defect each (defaults: a well-formed CoRIM-shaped chain)."""

    signer_ca: bool = False
    signer_digital_signature: bool = True
    l3_path_length: int | None = 0
    l2_key_cert_sign: bool = True
    signer_not_after: datetime = _T0 + timedelta(days=730)
    signer_unknown_critical: bool = False
    l3_hash: hashes.SHA256 | hashes.SHA384 = field(default_factory=hashes.SHA384)


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    l2: x509.Certificate
    l3: x509.Certificate
    l4: x509.Certificate
    l4_key: ec.EllipticCurvePrivateKey

    def trust(self) -> TrustStore:
        return trust_store_from_certificates({NVIDIA_RIM_ROOT: self.root}, simulated=True)


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    usage: str = "cert",
    not_after: datetime = _T0 + timedelta(days=3650),
    unknown_critical: bool = False,
    algorithm: hashes.SHA256 | hashes.SHA384 | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_T0)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    )
    digital, cert_sign = usage in ("digital", "both"), usage in ("cert", "both")
    builder = builder.add_extension(
        x509.KeyUsage(digital, False, False, False, False, cert_sign, cert_sign, False, False), critical=True
    )
    if unknown_critical:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), critical=True
        )
    return builder.sign(issuer_key, algorithm or hashes.SHA384())


def _pki(knobs: Knobs) -> Pki:
    keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(4)]
    root = _issue("Test CoRIM Root", keys[0], "Test CoRIM Root", keys[0], ca=True)
    l2 = _issue(
        "Test L2", keys[1], "Test CoRIM Root", keys[0], ca=True, usage="cert" if knobs.l2_key_cert_sign else "none"
    )
    l3 = _issue(
        "Test L3", keys[2], "Test L2", keys[1], ca=True, path_length=knobs.l3_path_length, algorithm=knobs.l3_hash
    )
    l4 = _issue(
        "Test L4 Signer",
        keys[3],
        "Test L3",
        keys[2],
        ca=knobs.signer_ca,
        usage="digital" if knobs.signer_digital_signature else "none",
        not_after=knobs.signer_not_after,
        unknown_critical=knobs.signer_unknown_critical,
    )
    return Pki(root, l2, l3, l4, keys[3])


def _ds(name: str) -> str:
    return f"{{{DSIG_NS}}}{name}"


def _c14n(node: etree._Element) -> bytes:
    return bytes(etree.tostring(node, method="c14n", exclusive=False, with_comments=False))


def _resign(pki: Pki, edit: Callable[[etree._Element], None] | None = None, data: bytes | None = None) -> bytes:
    """A genuine RIM, edited, then signed as NVIDIA signs (enveloped, C14N, ecdsa-sha384) by ``pki``'s L4."""
    root = etree.fromstring(_rim(DRIVER) if data is None else data)
    if edit is not None:
        edit(root)
    signature = root.find(_ds("Signature"))
    assert signature is not None
    x509_data = signature.find(f"{_ds('KeyInfo')}/{_ds('X509Data')}")
    assert x509_data is not None
    for old in list(x509_data):
        x509_data.remove(old)
    for cert in (pki.l4, pki.l3, pki.l2, pki.root):
        etree.SubElement(x509_data, _ds("X509Certificate")).text = base64.b64encode(
            cert.public_bytes(Encoding.DER)
        ).decode()
    unsigned = copy.deepcopy(root)
    unsigned_signature = unsigned.find(_ds("Signature"))
    assert unsigned_signature is not None
    unsigned.remove(unsigned_signature)
    digest_value = signature.find(f".//{_ds('DigestValue')}")
    assert digest_value is not None
    digest_value.text = base64.b64encode(hashlib.sha384(_c14n(unsigned)).digest()).decode()
    signed_info = signature.find(_ds("SignedInfo"))
    signature_value = signature.find(_ds("SignatureValue"))
    assert signed_info is not None
    assert signature_value is not None
    r, s = decode_dss_signature(pki.l4_key.sign(_c14n(signed_info), ec.ECDSA(hashes.SHA384())))
    signature_value.text = base64.b64encode(r.to_bytes(48, "big") + s.to_bytes(48, "big")).decode()
    return bytes(etree.tostring(root))


_NOW: Final = _T0 + timedelta(days=30)


@cache
def _good_pki() -> Pki:
    return _pki(Knobs())


def test_verify_rim_resigned_under_test_pki_verifies() -> None:
    pki = _good_pki()
    rim = verify_rim(_resign(pki), pki.trust(), _NOW)
    assert rim.signer_chain == (pki.l4, pki.l3, pki.l2)
    assert rim.colloquial_version == "550.90.07"


def test_verify_rim_self_made_root_untrusted_by_the_pinned_store() -> None:
    assert _code(lambda: verify_rim(_resign(_good_pki()), _trust(), N1_NOW)) is Code.NVIDIA_RIM_CHAIN_UNTRUSTED


def test_verify_rim_attacker_recomputed_digest_fails_ecdsa() -> None:
    # tampered measurement with DigestValue recomputed: SignedInfo changed, so NVIDIA's signature no longer verifies
    data = _edit(_INDEX7, _INDEX7[:-1] + b"d")
    root = etree.fromstring(data)
    unsigned = copy.deepcopy(root)
    unsigned.remove(unsigned[-1])
    value = root.find(f".//{_ds('DigestValue')}")
    assert value is not None
    value.text = base64.b64encode(hashlib.sha384(_c14n(unsigned)).digest()).decode()
    forged = bytes(etree.tostring(root))
    assert _code(lambda: verify_rim(forged, _trust(), N1_NOW)) is Code.NVIDIA_RIM_SIGNATURE_INVALID


_CHAIN_DEFECTS: Final[dict[str, tuple[Knobs, Code]]] = {
    "signer-is-ca": (Knobs(signer_ca=True), Code.NVIDIA_RIM_CHAIN_UNTRUSTED),
    "signer-without-digital-signature": (Knobs(signer_digital_signature=False), Code.NVIDIA_RIM_CHAIN_UNTRUSTED),
    "l2-without-key-cert-sign": (Knobs(l2_key_cert_sign=False), Code.NVIDIA_RIM_CHAIN_UNTRUSTED),
    "signer-unknown-critical-extension": (Knobs(signer_unknown_critical=True), Code.NVIDIA_RIM_CHAIN_UNTRUSTED),
    "l3-signed-with-sha256": (Knobs(l3_hash=hashes.SHA256()), Code.NVIDIA_RIM_CHAIN_UNTRUSTED),
    "signer-expired": (Knobs(signer_not_after=_NOW - timedelta(days=1)), Code.NVIDIA_RIM_CHAIN_EXPIRED),
}


@pytest.mark.parametrize("case", sorted(_CHAIN_DEFECTS))
def test_verify_rim_chain_defects_rejected(case: str) -> None:
    knobs, code = _CHAIN_DEFECTS[case]
    pki = _pki(knobs)
    assert _code(lambda: verify_rim(_resign(pki), pki.trust(), _NOW)) is code


def test_verify_rim_l2_path_length_exceeded() -> None:
    # L2 with pathLen 0 cannot have the CA L3 under it
    keys = [ec.generate_private_key(ec.SECP384R1()) for _ in range(4)]
    root = _issue("R", keys[0], "R", keys[0], ca=True)
    l2 = _issue("L2", keys[1], "R", keys[0], ca=True, path_length=0)
    l3 = _issue("L3", keys[2], "L2", keys[1], ca=True, path_length=0)
    l4 = _issue("L4", keys[3], "L3", keys[2], ca=False, usage="digital")
    pki = Pki(root, l2, l3, l4, keys[3])
    assert _code(lambda: verify_rim(_resign(pki), pki.trust(), _NOW)) is Code.NVIDIA_RIM_CHAIN_UNTRUSTED


def test_verify_rim_chain_out_of_order_rejected() -> None:
    pki = _good_pki()
    swapped = Pki(pki.root, pki.l3, pki.l2, pki.l4, pki.l4_key)  # embedded as L4, L2, L3, root
    assert _code(lambda: verify_rim(_resign(swapped), pki.trust(), _NOW)) is Code.NVIDIA_RIM_CHAIN_UNTRUSTED


def _resource(root: etree._Element, index: int) -> etree._Element:
    for element in root.iter("{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}Resource"):
        if element.get("index") == str(index):
            return element
    raise AssertionError(index)


def _set(index: int, key: str, value: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        _resource(root, index).set(key, value)

    return edit


def _drop_meta(root: etree._Element) -> None:
    meta = root.find("{http://standards.iso.org/iso/19770/-2/2015/schema.xsd}Meta")
    assert meta is not None
    root.remove(meta)


_H0: Final = f"{{{SHA384_NS}}}Hash0"
_H1: Final = f"{{{SHA384_NS}}}Hash1"

#: Validly signed (by the test PKI) RIMs whose content is wrong: rejected when read from the verified tree.
_CONTENT_DEFECTS: Final[dict[str, Callable[[etree._Element], None]]] = {
    "duplicate-index": _set(8, "index", "7"),
    "index-not-decimal": _set(8, "index", "+8"),
    "active-lower-case": _set(7, "active", "true"),
    "alternatives-zero": _set(7, "alternatives", "0"),
    "alternatives-over-limit": _set(7, "alternatives", str(limits.MAX_NVIDIA_RIM_ALTERNATIVES + 1)),
    "alternatives-more-than-hashes": _set(7, "alternatives", "2"),
    "hash-beyond-alternatives": _set(7, _H1, "00" * 48),
    "hash-upper-case": _set(7, _H0, "80161AAC" + "00" * 44),
    "hash-short": _set(7, _H0, "00" * 47),
    "size-not-48": _set(7, "size", "32"),
    "no-meta": _drop_meta,
    "other-resource-type": _set(7, "type", "Payload"),
}


@pytest.mark.parametrize("case", sorted(_CONTENT_DEFECTS))
def test_verify_rim_signed_content_defects_malformed(case: str) -> None:
    pki = _good_pki()
    data = _resign(pki, _CONTENT_DEFECTS[case])
    assert _code(lambda: verify_rim(data, pki.trust(), _NOW)) is Code.NVIDIA_RIM_MALFORMED


def test_verify_rim_too_many_measurements() -> None:
    def many(root: etree._Element) -> None:
        payload = _resource(root, 0).getparent()
        assert payload is not None
        template = _resource(root, 0)
        for i in range(64, limits.MAX_NVIDIA_RIM_MEASUREMENTS + 1):
            extra = copy.deepcopy(template)
            extra.set("index", str(i))
            payload.append(extra)

    pki = _good_pki()
    assert _code(lambda: verify_rim(_resign(pki, many), pki.trust(), _NOW)) is Code.NVIDIA_RIM_MALFORMED


def test_verify_rim_too_many_certificates() -> None:
    data = _rim(DRIVER)
    cert = re.search(rb"<ds:X509Certificate>[^<]*</ds:X509Certificate>", data)
    assert cert is not None
    extra = cert.group(0) * limits.MAX_NVIDIA_RIM_CERTS
    data = data.replace(b"</ds:X509Data>", extra + b"</ds:X509Data>")
    assert _code(lambda: verify_rim(data, _trust(), N1_NOW)) is Code.NVIDIA_RIM_MALFORMED


def test_verify_rim_reads_multiple_alternatives() -> None:
    pki = _good_pki()

    def two(root: etree._Element) -> None:
        _set(7, "alternatives", "2")(root)
        _set(7, _H1, "ab" * 48)(root)

    rim = verify_rim(_resign(pki, two), pki.trust(), _NOW)
    index7 = next(m for m in rim.measurements if m.index == 7)
    assert index7.alternatives[1] == bytes([0xAB]) * 48
    assert len(index7.alternatives) == 2


def test_verify_rim_result_is_frozen() -> None:
    rim: VerifiedRim = verify_rim(_rim(DRIVER), _trust(), N1_NOW)
    with pytest.raises(AttributeError):
        rim.name = "GB100"  # type: ignore[misc]


def _damaged_subject(der: bytes) -> bytes:
    """``der`` with the tag of its subject's first attribute value zeroed: the certificate still loads, and
    cryptography raises only when the subject is read (the shape the Hypothesis byte mutations found)."""
    subject = x509.load_der_x509_certificate(der).subject.public_bytes()
    at = subject.index(b"\x06\x03\x55\x04") + 5  # after the attribute's OID 2.5.4.x: its value's tag
    return der.replace(subject, subject[:at] + b"\x00" + subject[at + 1 :], 1)


def test_verify_rim_embedded_certificate_with_damaged_subject_malformed() -> None:
    """KeyInfo is outside the digest and SignedInfo: a damaged L3 certificate reaches the chain check (found by the
    Hypothesis byte mutations), where it must be a malformed RIM, not a stray ValueError."""
    xml = _rim("NV_GPU_DRIVER_GH100_550.90.07.xml")
    certs = re.findall(rb"<ds:X509Certificate>(.*?)</ds:X509Certificate>", xml, re.S)
    l3 = base64.b64decode(b"".join(certs[1].split()))
    damaged = xml.replace(certs[1], base64.b64encode(_damaged_subject(l3)))
    assert _code(lambda: verify_rim(damaged, _trust(), N1_NOW)) is Code.NVIDIA_RIM_MALFORMED
