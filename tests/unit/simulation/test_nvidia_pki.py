"""The simulated NVIDIA PKI: evidence that parses with Keyward's parser, signatures and chain links that verify with
``cryptography`` directly, certificates shaped like the real H100 chain (vector N1), OCSP responses with the chosen
answers, determinism, and defects that change exactly what they say."""

from __future__ import annotations

import base64
import contextlib
import functools
import itertools
from dataclasses import fields
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from verifier.errors import EvidenceMalformed
from verifier.evidence.nvidia import GpuReport, parse_device_chain, parse_gpu_report
from verifier.simulation.nvidia_pki import (
    FWID_OID,
    OTHER_DRIVER_VERSION,
    PARSER_DEFECTS,
    SAN_OTHER_NAME_OID,
    SIM_NOW,
    Defect,
    GpuOptions,
    NvidiaEvidence,
    NvidiaPki,
    default_nvidia_pki,
    expected_code,
)
from verifier.trust.store import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT

N1_CHAIN = Path(__file__).parents[2] / "vectors" / "nvidia" / "hopperCertChain.pem"
SHA384_OID = "2.16.840.1.101.3.4.2.2"


@functools.cache
def _build(defect: Defect | None = None) -> NvidiaEvidence:
    return default_nvidia_pki().build(defect=defect)


def _report_key_ok(report: GpuReport, key: ec.EllipticCurvePublicKey) -> bool:
    der = encode_dss_signature(report.signature_r, report.signature_s)
    try:
        key.verify(der, report.signed, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True


def _leaf_key(ev: NvidiaEvidence) -> ec.EllipticCurvePublicKey:
    key = ev.chain[0].public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _links_ok(chain: tuple[x509.Certificate, ...]) -> list[bool]:
    out = []
    for cert, issuer in itertools.pairwise(chain):
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError):
            out.append(False)
        else:
            out.append(True)
    return out


def _fwid_ext(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(FWID_OID)).value
    except x509.ExtensionNotFound:
        return None
    assert isinstance(ext, x509.UnrecognizedExtension)
    return ext.value


def _ocsp(ev: NvidiaEvidence, label: str) -> ocsp.OCSPResponse:
    entry = next(e for e in ev.ocsp if e.label == label)
    return ocsp.load_der_ocsp_response(entry.response)


# -- genuine evidence ---------------------------------------------------------------------------------------


def test_nvidia_pki_report_parses_with_the_fields_set() -> None:
    nonce = bytes(range(32))
    ev = default_nvidia_pki().build(
        GpuOptions(nonce=nonce, driver_version="570.124.06", vbios_version="96.00.CF.00.02", chip_sku="895")
    )
    report = parse_gpu_report(ev.report)
    o = report.response.opaque
    assert report.request.nonce == nonce
    assert (o.driver_version, o.vbios_version, o.chip_sku) == ("570.124.06", "96.00.CF.00.02", "895")
    assert (o.project, o.project_sku, o.nvdec0_status, o.protected_pcie_status) == ("1010", "0200", 0x55, 0x55)
    assert (o.opaque_data_version, o.feature_flag, o.switch_pdis) == (1, 0, (bytes(8),) * 18)
    assert o.fwid == ev.fwid
    assert report.response.number_of_blocks == 64
    assert report.measurements == default_nvidia_pki().default_measurements()
    assert report.trailing == b""


def test_nvidia_pki_report_signature_verifies_with_leaf_key() -> None:
    ev = _build()
    assert _report_key_ok(parse_gpu_report(ev.report), _leaf_key(ev))


def test_nvidia_pki_given_measurement_lands_in_its_block() -> None:
    value = bytes(range(48))
    report = parse_gpu_report(default_nvidia_pki().build(GpuOptions(measurements={64: value})).report)
    assert report.measurements[64] == value


def test_nvidia_pki_optional_tlvs_can_be_left_out() -> None:
    options = GpuOptions(switch_pdis=None, opaque_data_version=None, feature_flag=None, include_fwid=False)
    o = parse_gpu_report(default_nvidia_pki().build(options).report).response.opaque
    assert (o.switch_pdis, o.opaque_data_version, o.feature_flag, o.fwid) == (None, None, None, None)


def test_nvidia_pki_chain_parses_and_every_link_verifies() -> None:
    ev = _build()
    ders = parse_device_chain(ev.chain_pem)
    assert ders == tuple(c.public_bytes(Encoding.DER) for c in ev.chain)
    assert _links_ok(ev.chain) == [True] * 4
    ev.chain[4].verify_directly_issued_by(ev.chain[4])
    assert ev.chain[4] == ev.trust_store.root(NVIDIA_DEVICE_ROOT).certificate


def test_nvidia_pki_trust_store_holds_both_simulated_roots() -> None:
    pki = default_nvidia_pki()
    assert pki.trust_store.simulated
    assert pki.trust_store.root(NVIDIA_DEVICE_ROOT).certificate == pki.device_root()
    assert pki.trust_store.root(NVIDIA_RIM_ROOT).certificate == pki.rim_root()
    assert _build().simulated


def test_nvidia_pki_chain_shapes_match_real_h100_chain() -> None:
    """Names (attribute order and string types), serial sizes, validity, extension order and criticality, and
    signature algorithm as on the real chain; only keys and identifiers differ."""
    real = [x509.load_der_x509_certificate(d) for d in parse_device_chain(N1_CHAIN.read_bytes())]
    for sim, genuine in zip(_build().chain, real, strict=True):
        assert [(a.oid, a._type) for a in sim.subject] == [(a.oid, a._type) for a in genuine.subject]
        assert [a.value for a in sim.subject if a.oid != x509.NameOID.SERIAL_NUMBER] == [
            a.value for a in genuine.subject if a.oid != x509.NameOID.SERIAL_NUMBER
        ]
        assert sim.issuer == x509.Name([*sim.issuer])
        assert len(sim.issuer) == len(genuine.issuer)
        assert (sim.not_valid_before_utc, sim.not_valid_after_utc) == (
            genuine.not_valid_before_utc,
            genuine.not_valid_after_utc,
        )
        assert [(e.oid, e.critical) for e in sim.extensions] == [(e.oid, e.critical) for e in genuine.extensions]
        assert sim.signature_algorithm_oid == genuine.signature_algorithm_oid
        assert (sim.serial_number.bit_length() + 7) // 8 == (genuine.serial_number.bit_length() + 7) // 8
        for ext in (x509.BasicConstraints, x509.KeyUsage):
            with contextlib.suppress(x509.ExtensionNotFound):
                assert (
                    sim.extensions.get_extension_for_class(ext).value
                    == genuine.extensions.get_extension_for_class(ext).value
                )


def test_nvidia_pki_leaf_carries_fwid_san_and_serial_like_real_leaf() -> None:
    ev = _build()
    leaf, brom = ev.chain[0], ev.chain[1]
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert leaf.serial_number == int.from_bytes(ski, "big")
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == ski.hex().upper()
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    (other,) = san.get_values_for_type(x509.OtherName)
    assert other.type_id.dotted_string == SAN_OTHER_NAME_OID
    text = other.value[2:].decode()
    assert other.value[0] == 0x0C
    assert text.startswith("NVIDIA:GH100:")
    assert len(text) == 13 + 16
    ext = _fwid_ext(leaf)
    assert ext is not None
    assert ext[-48:] == ev.fwid
    brom_spki = brom.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert brom_spki in ext
    assert bytes.fromhex("020101") in ext[:8]


def test_nvidia_pki_gpus_have_distinct_brom_and_leaf_keys() -> None:
    a, b = (default_nvidia_pki().build(GpuOptions(device_index=i)) for i in (0, 1))
    assert a.chain[0].public_key() != b.chain[0].public_key()
    assert a.chain[1].public_key() != b.chain[1].public_key()
    assert a.chain[2:] == b.chain[2:]
    assert a.fwid != b.fwid
    assert _report_key_ok(parse_gpu_report(b.report), _leaf_key(b))
    assert b.evidence_item()["device_index"] == 1


def test_nvidia_pki_evidence_item_round_trips() -> None:
    ev = _build()
    item = ev.evidence_item()
    assert item["type"] == "nvidia-gpu"
    assert base64.b64decode(str(item["evidence"])) == ev.report
    assert base64.b64decode(str(item["certs"])) == ev.chain_pem


def test_nvidia_pki_rims_are_filed_under_the_reports_ids() -> None:
    ev = _build()
    assert [(r.role, r.rim_id) for r in ev.rims] == [
        ("driver", "NV_GPU_DRIVER_GH100_550.90.07"),
        ("vbios", "NV_GPU_VBIOS_1010_0200_882_96009F0001"),
    ]


# -- OCSP ---------------------------------------------------------------------------------------------------


def test_nvidia_pki_ocsp_covers_device_certs_1_to_3_and_rim_chains() -> None:
    ev = _build()
    labels = {e.label: (e.cert, e.issuer) for e in ev.ocsp}
    assert labels["device/brom"] == (ev.chain[1], ev.chain[2])
    assert labels["device/ica"] == (ev.chain[2], ev.chain[3])
    assert labels["device/identity"] == (ev.chain[3], ev.chain[4])
    driver, vbios = ev.rims
    assert labels["rim/driver-l4"] == driver.signer_chain[:2]
    assert labels["rim/vbios-l4"] == vbios.signer_chain[:2]
    assert labels["rim/l3"] == driver.signer_chain[1:3]
    assert labels["rim/l2"] == driver.signer_chain[2:4]


def test_nvidia_pki_ocsp_responses_are_good_signed_by_delegated_responders() -> None:
    for entry in _build().ocsp:
        r = ocsp.load_der_ocsp_response(entry.response)
        assert r.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert r.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert r.serial_number == entry.cert.serial_number
        assert isinstance(r.hash_algorithm, hashes.SHA384)
        assert r.this_update_utc <= SIM_NOW <= (r.next_update_utc or SIM_NOW)
        (responder,) = r.certificates
        responder.verify_directly_issued_by(entry.issuer)
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.OCSP_SIGNING in eku
        key = responder.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        ("good", ocsp.OCSPCertStatus.GOOD, None),
        ("revoked", ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise),
        ("hold", ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.certificate_hold),
        ("unknown", ocsp.OCSPCertStatus.UNKNOWN, None),
    ],
    ids=["good", "revoked", "hold", "unknown"],
)
def test_nvidia_pki_ocsp_response_carries_chosen_status(
    status: str, expected: ocsp.OCSPCertStatus, reason: x509.ReasonFlags | None
) -> None:
    pki, ev = default_nvidia_pki(), _build()
    this, nxt = SIM_NOW.replace(hour=1), SIM_NOW.replace(hour=23)
    der = pki.ocsp_response(ev.chain[2], ev.chain[3], status=status, this_update=this, next_update=nxt)  # type: ignore[arg-type]
    r = ocsp.load_der_ocsp_response(der)
    assert (r.certificate_status, r.revocation_reason) == (expected, reason)
    assert (r.this_update_utc, r.next_update_utc, r.produced_at_utc) == (this, nxt, this)


def test_nvidia_pki_ocsp_nonce_is_echoed() -> None:
    ev = _build()
    der = default_nvidia_pki().ocsp_response(ev.chain[1], ev.chain[2], nonce=b"n" * 32)
    ext = ocsp.load_der_ocsp_response(der).extensions.get_extension_for_class(x509.OCSPNonce)
    assert ext.value.nonce == b"n" * 32


def test_nvidia_pki_ocsp_refuses_an_issuer_it_does_not_know() -> None:
    with pytest.raises(ValueError, match="not a CA"):
        default_nvidia_pki().ocsp_response(_build().chain[0], _build().chain[0])


# -- determinism --------------------------------------------------------------------------------------------


def test_nvidia_pki_same_seed_same_bytes() -> None:
    a, b = NvidiaPki().build(), NvidiaPki().build()
    assert a.report == b.report
    assert a.chain_pem == b.chain_pem
    assert [r.xml for r in a.rims] == [r.xml for r in b.rims]
    assert [e.response for e in a.ocsp] == [e.response for e in b.ocsp]


def test_nvidia_pki_other_seed_other_keys() -> None:
    assert NvidiaPki("another seed").build().chain_pem != _build().chain_pem


# -- defects ------------------------------------------------------------------------------------------------


def _differs(a: NvidiaEvidence, b: NvidiaEvidence) -> set[str]:
    """Which parts of two evidences differ: report, chain, rim:<role>, ocsp:<label>."""
    out = set()
    if a.report != b.report:
        out.add("report")
    if a.chain != b.chain:
        out.add("chain")
    out |= {f"rim:{x.role}" for x, y in zip(a.rims, b.rims, strict=True) if x.xml != y.xml}
    out |= {f"ocsp:{x.label}" for x, y in zip(a.ocsp, b.ocsp, strict=True) if x.response != y.response}
    return out


_RIM_CHAIN_CHANGED = {"rim:driver", "ocsp:rim/driver-l4"}
#: The parts each defect changes (an alt chain brings its own OCSP responses and the leaf key signs the report).
TOUCHES = {
    Defect.WRONG_ROOT: {"report", "chain", "ocsp:device/brom", "ocsp:device/ica", "ocsp:device/identity"},
    Defect.LEAF_WRONG_BROM: {"chain"},
    Defect.FWID_MISMATCH: {"chain"},
    Defect.FWID_MISSING: {"report"},
    Defect.LEAF_FWID_EXTENSION_MISSING: {"chain"},
    Defect.REPORT_SIGNATURE_BAD: {"report"},
    Defect.WRONG_NONCE: {"report"},
    Defect.MEASUREMENT_CHANGED: {"report"},
    Defect.DRIVER_VERSION_CHANGED: {"report"},
    Defect.RIM_TAMPERED: {"rim:driver"},
    Defect.RIM_UNSIGNED: {"rim:driver"},
    Defect.RIM_WRONG_KEY: {"rim:driver"},
    Defect.RIM_WRONG_ROOT: _RIM_CHAIN_CHANGED,  # the VBIOS RIM keeps the genuine L3/L2 and their answers
    Defect.RIM_DOCTYPE: {"rim:driver"},
    Defect.RIM_SIGNER_EXPIRED: {"rim:driver"},  # same key, serial and issuer: the same CertID and response
    Defect.DEVICE_CERT_REVOKED: {"ocsp:device/brom"},
    Defect.DEVICE_CERT_HOLD: {"ocsp:device/brom"},
    Defect.RIM_SIGNER_REVOKED: {"ocsp:rim/driver-l4"},
    Defect.OCSP_STALE: {"ocsp:device/brom"},
    Defect.OCSP_UNKNOWN: {"ocsp:device/brom"},
    Defect.OCSP_NOT_DELEGATED: {"ocsp:device/brom"},
    Defect.TRAILING_BYTES: {"report"},
    Defect.TRAILING_ZERO_BYTE: {"report"},
    Defect.TRUNCATED: {"report"},
}


def test_nvidia_pki_every_defect_is_catalogued() -> None:
    assert set(TOUCHES) == set(Defect)
    assert all(expected_code(d).value.startswith("nvidia.") for d in Defect)


@pytest.mark.parametrize("defect", list(Defect), ids=[d.value for d in Defect])
def test_nvidia_pki_defect_changes_only_its_part(defect: Defect) -> None:
    assert _differs(_build(), _build(defect)) == TOUCHES[defect]


@pytest.mark.parametrize("defect", sorted(PARSER_DEFECTS), ids=[d.value for d in sorted(PARSER_DEFECTS)])
def test_nvidia_pki_parser_defect_is_refused_by_parser(defect: Defect) -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_gpu_report(_build(defect).report)
    assert e.value.code == expected_code(defect)


def test_nvidia_pki_trailing_zero_byte_parses_as_trailing() -> None:
    report = parse_gpu_report(_build(Defect.TRAILING_ZERO_BYTE).report)
    assert report.trailing == b"\x00"
    assert _report_key_ok(report, _leaf_key(_build()))


def test_nvidia_pki_wrong_root_chain_is_self_consistent_under_another_root() -> None:
    ev = _build(Defect.WRONG_ROOT)
    assert _links_ok(ev.chain) == [True] * 4
    assert ev.chain[4].subject == _build().chain[4].subject
    assert ev.chain[4].public_key() != _build().chain[4].public_key()
    assert _report_key_ok(parse_gpu_report(ev.report), _leaf_key(ev))


def test_nvidia_pki_leaf_wrong_brom_breaks_only_the_first_link() -> None:
    ev = _build(Defect.LEAF_WRONG_BROM)
    assert _links_ok(ev.chain) == [False, True, True, True]
    assert ev.chain[0].issuer == ev.chain[1].subject
    assert _report_key_ok(parse_gpu_report(ev.report), _leaf_key(ev))


@pytest.mark.parametrize(
    ("defect", "report_fwid", "leaf_fwid"),
    [
        (Defect.FWID_MISMATCH, "genuine", "other"),
        (Defect.FWID_MISSING, None, "genuine"),
        (Defect.LEAF_FWID_EXTENSION_MISSING, "genuine", None),
    ],
    ids=["mismatch", "report-missing", "leaf-missing"],
)
def test_nvidia_pki_fwid_defects(defect: Defect, report_fwid: str | None, leaf_fwid: str | None) -> None:
    ev = _build(defect)
    genuine = _build().fwid
    got_report = parse_gpu_report(ev.report).response.opaque.fwid
    ext = _fwid_ext(ev.chain[0])
    got_leaf = None if ext is None else ext[-48:]
    assert (got_report is None, got_report == genuine) == (report_fwid is None, report_fwid == "genuine")
    assert (got_leaf is None, got_leaf == genuine) == (leaf_fwid is None, leaf_fwid == "genuine")
    assert _links_ok(ev.chain) == [True] * 4


def test_nvidia_pki_report_signature_bad_is_well_formed_but_not_the_leafs() -> None:
    ev = _build(Defect.REPORT_SIGNATURE_BAD)
    report = parse_gpu_report(ev.report)
    assert not _report_key_ok(report, _leaf_key(ev))
    assert report.signed == parse_gpu_report(_build().report).signed


def test_nvidia_pki_wrong_nonce_changes_only_the_request_nonce() -> None:
    ev = _build(Defect.WRONG_NONCE)
    bad, good = parse_gpu_report(ev.report), parse_gpu_report(_build().report)
    assert bad.request.nonce != ev.nonce == good.request.nonce
    assert bad.signed[36:] == good.signed[36:]
    assert _report_key_ok(bad, _leaf_key(ev))


def test_nvidia_pki_measurement_changed_changes_one_block() -> None:
    bad, good = parse_gpu_report(_build(Defect.MEASUREMENT_CHANGED).report), parse_gpu_report(_build().report)
    changed = {i for i in good.measurements if good.measurements[i] != bad.measurements[i]}
    assert changed == {10}  # RIM index 9
    assert bad.response.opaque == good.response.opaque


def test_nvidia_pki_driver_version_changed_keeps_rim_for_the_old_version() -> None:
    ev = _build(Defect.DRIVER_VERSION_CHANGED)
    assert parse_gpu_report(ev.report).response.opaque.driver_version == OTHER_DRIVER_VERSION
    assert ev.rims[0].rim_id == "NV_GPU_DRIVER_GH100_550.90.07"
    assert b'colloquialVersion="550.90.07"' in ev.rims[0].xml


def test_nvidia_pki_rim_defects_change_what_they_say() -> None:
    assert b"<ds:Signature" not in _build(Defect.RIM_UNSIGNED).rims[0].xml
    assert _build(Defect.RIM_DOCTYPE).rims[0].xml.startswith(b"<!DOCTYPE SoftwareIdentity [<!ENTITY")
    assert _build(Defect.RIM_DOCTYPE).rims[0].xml.endswith(_build().rims[0].xml)
    expired = _build(Defect.RIM_SIGNER_EXPIRED).rims[0].signer_chain[0]
    assert expired.not_valid_after_utc < SIM_NOW
    assert expired.public_key() == _build().rims[0].signer_chain[0].public_key()
    forged = _build(Defect.RIM_WRONG_ROOT).rims[0].signer_chain
    assert [c.subject for c in forged] == [c.subject for c in _build().rims[0].signer_chain]
    assert forged[3] != default_nvidia_pki().rim_root()
    assert _links_ok(forged) == [True] * 3
    tampered, genuine = _build(Defect.RIM_TAMPERED).rims[0].xml, _build().rims[0].xml
    assert len(tampered) == len(genuine)
    assert sum(x != y for x, y in zip(tampered, genuine, strict=True)) <= 96


@pytest.mark.parametrize(
    ("defect", "label", "status", "reason"),
    [
        (Defect.DEVICE_CERT_REVOKED, "device/brom", ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise),
        (Defect.DEVICE_CERT_HOLD, "device/brom", ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.certificate_hold),
        (Defect.OCSP_UNKNOWN, "device/brom", ocsp.OCSPCertStatus.UNKNOWN, None),
        (Defect.RIM_SIGNER_REVOKED, "rim/driver-l4", ocsp.OCSPCertStatus.REVOKED, x509.ReasonFlags.key_compromise),
    ],
    ids=["revoked", "hold", "unknown", "rim-signer-revoked"],
)
def test_nvidia_pki_ocsp_status_defects(
    defect: Defect, label: str, status: ocsp.OCSPCertStatus, reason: x509.ReasonFlags | None
) -> None:
    r = _ocsp(_build(defect), label)
    assert (r.certificate_status, r.revocation_reason) == (status, reason)


def test_nvidia_pki_ocsp_stale_is_past_next_update() -> None:
    r = _ocsp(_build(Defect.OCSP_STALE), "device/brom")
    assert r.next_update_utc is not None
    assert r.next_update_utc < SIM_NOW
    assert r.certificate_status is ocsp.OCSPCertStatus.GOOD


def test_nvidia_pki_ocsp_not_delegated_responder_lacks_ocsp_signing() -> None:
    r = _ocsp(_build(Defect.OCSP_NOT_DELEGATED), "device/brom")
    (responder,) = r.certificates
    responder.verify_directly_issued_by(_build().chain[2])
    with pytest.raises(x509.ExtensionNotFound):
        responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    key = responder.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(r.signature, r.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))
    assert r.certificate_status is ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize(
    "bad",
    [GpuOptions(nonce=b"short"), GpuOptions(measurements={65: bytes(48)}), GpuOptions(fwid=b"x")],
    ids=["short-nonce", "block-65", "short-fwid"],
)
def test_nvidia_pki_options_reject_impossible_values(bad: GpuOptions) -> None:
    with pytest.raises(ValueError, match=r"bytes|indices"):
        default_nvidia_pki().build(bad)


def test_nvidia_pki_fwid_defect_needs_fwid() -> None:
    with pytest.raises(ValueError, match="does not apply"):
        default_nvidia_pki().build(GpuOptions(include_fwid=False), Defect.FWID_MISMATCH)


def test_nvidia_pki_options_are_frozen() -> None:
    assert {f.name for f in fields(GpuOptions)} >= {"device_index", "nonce", "driver_version", "vbios_version"}


def test_rebind_signs_the_new_nonce_with_the_gpu_attestation_key() -> None:
    pki = default_nvidia_pki()
    ev = pki.build(GpuOptions(device_index=2))
    report = parse_gpu_report(pki.rebind(ev, bytes(range(32))))
    assert report.request.nonce == bytes(range(32))
    leaf_key = ev.chain[0].public_key()
    assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
    signature = encode_dss_signature(report.signature_r, report.signature_s)
    leaf_key.verify(signature, report.signed, ec.ECDSA(hashes.SHA384()))
    assert report.signed[36:] == parse_gpu_report(ev.report).signed[36:]  # only the nonce changed


def test_rebind_refuses_defective_evidence() -> None:
    pki = default_nvidia_pki()
    with pytest.raises(ValueError, match="genuine"):
        pki.rebind(pki.build(defect=Defect.WRONG_NONCE), bytes(32))
