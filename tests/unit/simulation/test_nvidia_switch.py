"""The simulated NVSwitch (LS10): a 31-block report that parses like the real S1 (same opaque field set, order and
sizes), a chain shaped like S1's under the shared GH100 Identity, a BIOS RIM shaped like the real one and signed
under the LS10 RIM chain, OCSP for both chains, determinism and defects that change exactly what they say."""

from __future__ import annotations

import base64
import contextlib
import functools
from pathlib import Path

import pytest
from cryptography import x509

from tests.unit.simulation.nvidia_checks import (
    SWID,
    differs,
    links_ok,
    ocsp_ok,
    report_signed_by,
    rim_active,
    rim_certs,
    rim_digest_ok,
    rim_signature_ok,
    rim_tree,
    touches,
)
from verifier.evidence.nvidia import GpuReport, parse_gpu_report, parse_serialized_evidence
from verifier.simulation.nvidia_options import switch_port_slots
from verifier.simulation.nvidia_pki import (
    FWID_OID,
    NOT_FOR_SWITCHES,
    Defect,
    NvidiaPki,
    SwitchEvidence,
    SwitchOptions,
    default_nvidia_pki,
)
from verifier.trust.store import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT

VECTORS = Path(__file__).parents[2] / "vectors" / "nvidia"
S1 = VECTORS / "switch_evidence_ls10.json"
REAL_RIM = VECTORS / "rim" / "NV_SWITCH_BIOS_5612_0002_890_9610550001.xml"
SWITCH_DEFECTS = [d for d in Defect if d not in NOT_FOR_SWITCHES]


@functools.cache
def _build(defect: Defect | None = None) -> SwitchEvidence:
    return default_nvidia_pki().build_switch(defect=defect)


@functools.cache
def _s1() -> tuple[GpuReport, tuple[x509.Certificate, ...]]:
    (item,) = parse_serialized_evidence(S1.read_bytes())
    return item.report, tuple(x509.load_der_x509_certificate(d) for d in item.chain)


def _parsed(ev: SwitchEvidence) -> GpuReport:
    return parse_gpu_report(ev.report)


# -- the report ---------------------------------------------------------------------------------------------


def test_switch_report_has_s1_field_set_order_and_sizes() -> None:
    real, _ = _s1()
    sim = _parsed(_build())
    assert [(f.type, len(f.value)) for f in sim.response.opaque.fields] == [
        (f.type, len(f.value)) for f in real.response.opaque.fields
    ]
    assert sim.response.number_of_blocks == real.response.number_of_blocks == 31
    assert len(sim.raw) == len(real.raw)


def test_switch_report_parses_with_the_fields_set() -> None:
    pki = default_nvidia_pki()
    nonce = bytes(range(32))
    ev = pki.build_switch(SwitchOptions(device_index=1, nonce=nonce, bios_version="96.10.6D.00.01"))
    report = _parsed(ev)
    o = report.response.opaque
    assert report.request.nonce == nonce
    assert o.vbios_version == "96.10.6D.00.01"
    assert o.switch_pdis == (pki.switch_pdi(1),)
    assert o.switch_gpu_pdis == tuple(pki.gpu_pdi(g) for g in range(8))
    assert o.switch_port_gpu_slots == switch_port_slots(1)
    assert (o.floorswept_ports, o.position_id, o.lock_switch_status) == (0x00EC, 1, 1)
    assert (o.fwid, o.driver_version, o.project, o.feature_flag) == (None, None, None, None)
    assert report.measurements == pki.switch_measurements()
    assert report.trailing == b""


def test_switch_report_signature_verifies_with_leaf_key() -> None:
    ev = _build()
    assert report_signed_by(ev.report, ev.chain[0])
    assert not report_signed_by(ev.report, ev.chain[1])


def test_switch_port_slots_list_each_gpu() -> None:
    slots = _parsed(_build()).response.opaque.switch_port_gpu_slots
    assert slots is not None
    assert set(slots) == {*range(8), 0xFF}
    assert len(slots) == 64


# -- the chain ----------------------------------------------------------------------------------------------


def test_switch_chain_links_verify_to_the_simulated_root() -> None:
    ev = _build()
    assert links_ok(ev.chain) == [True] * 4
    assert ev.chain[4] == ev.trust_store.root(NVIDIA_DEVICE_ROOT).certificate
    cns = [c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for c in ev.chain]
    assert cns == [
        "LS_10 A01 FSP FMC LF",
        "LS_10 A01 FSP BROM",
        "NVIDIA LS_10 Provisioner ICA 1",
        "NVIDIA GH100 Identity",
        "NVIDIA Device Identity CA",
    ]


def test_switch_chain_shares_the_gh100_identity_with_gpus() -> None:
    gpu = default_nvidia_pki().build()
    assert _build().chain[3] == gpu.chain[3]
    assert _build().chain[2] != gpu.chain[2]


def test_switch_chain_shapes_match_real_s1_chain() -> None:
    """Names (attribute order and string types), serial sizes, validity, extension order and criticality."""
    _, real = _s1()
    for sim, genuine in zip(_build().chain, real, strict=True):
        assert [(a.oid, a._type) for a in sim.subject] == [(a.oid, a._type) for a in genuine.subject]
        assert [a.value for a in sim.subject if a.oid != x509.NameOID.SERIAL_NUMBER] == [
            a.value for a in genuine.subject if a.oid != x509.NameOID.SERIAL_NUMBER
        ]
        assert (sim.not_valid_before_utc, sim.not_valid_after_utc) == (
            genuine.not_valid_before_utc,
            genuine.not_valid_after_utc,
        )
        assert [(e.oid, e.critical) for e in sim.extensions] == [(e.oid, e.critical) for e in genuine.extensions]
        assert (sim.serial_number.bit_length() + 7) // 8 == (genuine.serial_number.bit_length() + 7) // 8
        for ext in (x509.BasicConstraints, x509.KeyUsage):
            with contextlib.suppress(x509.ExtensionNotFound):
                assert (
                    sim.extensions.get_extension_for_class(ext).value
                    == genuine.extensions.get_extension_for_class(ext).value
                )


def test_switch_brom_serial_carries_the_device_pdi_like_s1() -> None:
    real_report, real_chain = _s1()
    ev = _build()
    assert real_chain[1].serial_number.to_bytes(9, "big") == b"\x50" + real_report.response.opaque.switch_pdis[0]  # type: ignore[index]
    assert ev.chain[1].serial_number.to_bytes(9, "big") == b"\x50" + ev.pdi


def test_switch_leaf_carries_fwid_extension_and_ls10_san() -> None:
    leaf = _build().chain[0]
    ext = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(FWID_OID)).value
    assert isinstance(ext, x509.UnrecognizedExtension)
    assert ext.value[-48:] == _build().fwid
    (other,) = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.OtherName
    )
    assert other.value[2:].decode().startswith("NVIDIA:LS_10:")


# -- the BIOS RIM -------------------------------------------------------------------------------------------


def test_switch_bios_rim_id_and_signature_verify() -> None:
    (rim,) = _build().rims
    assert (rim.role, rim.rim_id) == ("bios", "NV_SWITCH_BIOS_5612_0002_890_9610550001")
    assert rim_digest_ok(rim.xml)
    assert rim_signature_ok(rim.xml)


def test_switch_bios_rim_chain_is_the_ls10_chain_under_the_simulated_rim_root() -> None:
    (rim,) = _build().rims
    certs = rim_certs(rim.xml)
    assert certs == list(rim.signer_chain)
    assert links_ok(certs) == [True] * 3
    assert certs[3] == _build().trust_store.root(NVIDIA_RIM_ROOT).certificate
    real = rim_certs(REAL_RIM.read_bytes())
    assert [c.subject for c in certs[:3]] == [c.subject for c in real[:3]]
    assert [[(e.oid, e.critical) for e in c.extensions] for c in certs] == [
        [(e.oid, e.critical) for e in c.extensions] for c in real
    ]


def test_switch_bios_rim_shape_matches_real_rim() -> None:
    real, sim = rim_tree(REAL_RIM.read_bytes()), rim_tree(_build().rims[0].xml)
    assert (sim.get("name"), real.get("name")) == ("LS10", "LS10")
    s, r = sim.find(f"{SWID}Meta"), real.find(f"{SWID}Meta")
    assert s is not None
    assert r is not None
    assert sorted(s.attrib.items()) == sorted(r.attrib.items())  # edition SWITCH, product LS10, 96.10.55.00.01
    assert rim_active(_build().rims[0].xml).keys() == rim_active(REAL_RIM.read_bytes()).keys()
    assert [r.get("name") for r in sim.iter(f"{SWID}Resource")] == [r.get("name") for r in real.iter(f"{SWID}Resource")]
    assert [len(v) for v in rim_active(_build().rims[0].xml).values()] == [
        len(v) for v in rim_active(REAL_RIM.read_bytes()).values()
    ]


def test_switch_runtime_values_match_the_bios_rim() -> None:
    ev = _build()
    values = _parsed(ev).measurements
    active = rim_active(ev.rims[0].xml)
    assert len(active) == 31
    assert all(values[i + 1].hex() in alternatives for i, alternatives in active.items())
    assert {i for i, a in active.items() if a.index(values[i + 1].hex()) != 0} == {i for i in range(9, 26) if i % 4}


# -- OCSP, items, determinism -------------------------------------------------------------------------------


def test_switch_ocsp_covers_device_certs_and_rim_chain() -> None:
    ev = _build()
    labels = {e.label: (e.cert, e.issuer) for e in ev.ocsp}
    assert labels == {
        "device/brom": (ev.chain[1], ev.chain[2]),
        "device/ica": (ev.chain[2], ev.chain[3]),
        "device/identity": (ev.chain[3], ev.chain[4]),
        "rim/bios-l4": ev.rims[0].signer_chain[0:2],
        "rim/l3": ev.rims[0].signer_chain[1:3],
        "rim/l2": ev.rims[0].signer_chain[2:4],
    }
    assert all(ocsp_ok(e) for e in ev.ocsp)


def test_switch_evidence_item_carries_collateral_on_request() -> None:
    ev = _build()
    assert set(ev.evidence_item()) == {"type", "evidence", "certs", "device_index"}
    item = ev.evidence_item(9, carry_collateral=True)
    assert (item["type"], item["device_index"]) == ("nvidia-gpu", 9)
    assert base64.b64decode(str(item["evidence"])) == ev.report
    assert base64.b64decode(str(item["certs"])) == ev.chain_pem
    assert item["rims"] == [base64.b64encode(ev.rims[0].xml).decode()]
    assert item["ocsp"] == [base64.b64encode(e.response).decode() for e in ev.ocsp]


def test_switch_same_seed_same_bytes() -> None:
    a, b = NvidiaPki().build_switch(), NvidiaPki().build_switch()
    assert (a.report, a.chain_pem, a.rims, [e.response for e in a.ocsp]) == (
        b.report,
        b.chain_pem,
        b.rims,
        [e.response for e in b.ocsp],
    )


def test_switches_have_distinct_keys_and_pdis() -> None:
    a, b = (default_nvidia_pki().build_switch(SwitchOptions(device_index=i)) for i in (0, 1))
    assert a.chain[0].public_key() != b.chain[0].public_key()
    assert a.chain[1].public_key() != b.chain[1].public_key()
    assert a.pdi != b.pdi
    assert a.chain[2:] == b.chain[2:]


# -- defects ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", SWITCH_DEFECTS, ids=[d.value for d in SWITCH_DEFECTS])
def test_switch_defect_changes_only_its_part(defect: Defect) -> None:
    assert differs(_build(), _build(defect)) == touches(defect, "bios")


@pytest.mark.parametrize("defect", sorted(NOT_FOR_SWITCHES), ids=[d.value for d in sorted(NOT_FOR_SWITCHES)])
def test_switch_refuses_gpu_only_defect(defect: Defect) -> None:
    with pytest.raises(ValueError, match="does not apply"):
        default_nvidia_pki().build_switch(defect=defect)


def test_switch_measurement_changed_changes_one_block() -> None:
    bad, good = _parsed(_build(Defect.MEASUREMENT_CHANGED)), _parsed(_build())
    assert {i for i in good.measurements if good.measurements[i] != bad.measurements[i]} == {10}
    assert bad.response.opaque == good.response.opaque


def test_switch_rim_tampered_breaks_only_the_digest() -> None:
    xml = _build(Defect.RIM_TAMPERED).rims[0].xml
    assert not rim_digest_ok(xml)
    assert rim_signature_ok(xml)


def test_switch_wrong_nonce_keeps_a_valid_signature() -> None:
    ev = _build(Defect.WRONG_NONCE)
    assert _parsed(ev).request.nonce != ev.nonce
    assert report_signed_by(ev.report, ev.chain[0])


@pytest.mark.parametrize(
    "bad",
    [SwitchOptions(pdi=b"x"), SwitchOptions(gpu_pdis=(bytes(8),) * 7), SwitchOptions(measurements={32: bytes(48)})],
    ids=["short-pdi", "seven-gpus", "block-32"],
)
def test_switch_options_reject_impossible_values(bad: SwitchOptions) -> None:
    with pytest.raises(ValueError, match=r"PDI|measurements"):
        default_nvidia_pki().build_switch(bad)
