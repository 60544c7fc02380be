"""The simulated Blackwell (GB100) GPU: a report with the real B200's opaque field set, order and sizes, a GB100
chain shaped like the real M3 chain whose leaf carries the TcbInfo-like FWID extension 2.23.133.5.4.1.1 built like
the real one, CC driver and VBIOS RIMs under the GB1XX RIM chain, and the common defects."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import pytest
from cryptography import x509

from tests.unit.simulation.nvidia_checks import (
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
from verifier.evidence.nvidia import GpuReport, parse_device_chain, parse_gpu_report
from verifier.simulation.nvidia_pki import (
    FWID_OID,
    TCB_INFO_FWID_OID,
    Defect,
    NvidiaEvidence,
    NvidiaPki,
    blackwell_options,
    default_nvidia_pki,
)
from verifier.trust.store import NVIDIA_DEVICE_ROOT, NVIDIA_RIM_ROOT

VECTORS = Path(__file__).parents[2] / "vectors" / "nvidia"
REAL_REPORT = VECTORS / "devices" / "M3-blackwell-mpt-gpu0.bin"
REAL_CHAIN = VECTORS / "devices" / "M3-blackwell-mpt-gpu0.pem"


@functools.cache
def _build(defect: Defect | None = None) -> NvidiaEvidence:
    return default_nvidia_pki().build(blackwell_options(), defect)


def _parsed(ev: NvidiaEvidence) -> GpuReport:
    return parse_gpu_report(ev.report)


def _real_chain() -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(d) for d in parse_device_chain(REAL_CHAIN.read_bytes())]


def _tcb_info(cert: x509.Certificate) -> bytes:
    ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(TCB_INFO_FWID_OID)).value
    assert isinstance(ext, x509.UnrecognizedExtension)
    return ext.value


def test_blackwell_report_has_real_b200_field_set_order_and_sizes() -> None:
    real, sim = parse_gpu_report(REAL_REPORT.read_bytes()), _parsed(_build())
    assert [(f.type, len(f.value)) for f in sim.response.opaque.fields] == [
        (f.type, len(f.value)) for f in real.response.opaque.fields
    ]
    assert len(sim.raw) == len(real.raw)
    assert sim.response.number_of_blocks == 64


def test_blackwell_report_parses_with_the_fields_set() -> None:
    nonce = bytes(range(32))
    ev = default_nvidia_pki().build(blackwell_options(nonce=nonce, driver_version="590.44.01"))
    o = _parsed(ev).response.opaque
    assert _parsed(ev).request.nonce == nonce
    assert (o.chip_info, o.driver_version, o.vbios_version) == ("GB100", "590.44.01", "97.00.D9.00.35")
    assert (o.project, o.project_sku, o.chip_sku) == ("G525", "0220", "886")
    assert (o.feature_flag, o.opaque_data_version, o.sys_enable_status, o.nvdec0_status) == (1, 1, 0x0707, 0xAA)
    assert (o.protected_pcie_status, o.switch_pdis) == (None, None)
    assert o.gpu_info == (0x1A0).to_bytes(8, "little")
    assert o.fwid == ev.fwid
    assert _parsed(ev).measurements == NvidiaPki.default_measurements("BLACKWELL")


def test_blackwell_report_signature_and_chain_verify() -> None:
    ev = _build()
    assert report_signed_by(ev.report, ev.chain[0])
    assert links_ok(ev.chain) == [True] * 4
    assert ev.chain[4] == ev.trust_store.root(NVIDIA_DEVICE_ROOT).certificate
    assert ev.chain[3] != default_nvidia_pki().build().chain[3]  # NVIDIA GB100 Identity, not GH100's


def test_blackwell_chain_shapes_match_real_b200_chain() -> None:
    for sim, genuine in zip(_build().chain, _real_chain(), strict=True):
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


def test_blackwell_fwid_extension_is_built_like_the_real_one() -> None:
    """The real leaf's extension with its FWID replaced by ours is byte for byte ours: same tags, strings,
    svn/layer/index, second (zero) FWID and flags."""
    real_fwid = parse_gpu_report(REAL_REPORT.read_bytes()).response.opaque.fwid
    assert real_fwid is not None
    real = _tcb_info(_real_chain()[0])
    assert real.count(real_fwid) == 1
    assert real.replace(real_fwid, _build().fwid) == _tcb_info(_build().chain[0])
    with pytest.raises(x509.ExtensionNotFound):
        _build().chain[0].extensions.get_extension_for_oid(x509.ObjectIdentifier(FWID_OID))


def test_blackwell_rims_are_cc_driver_and_vbios_under_the_gb1xx_chain() -> None:
    ev = _build()
    assert [(r.role, r.rim_id) for r in ev.rims] == [
        ("driver", "NV_GPU_CC_DRIVER_GB100_590.48.01"),
        ("vbios", "NV_GPU_VBIOS_G525_0220_886_9700D90035"),
    ]
    for rim in ev.rims:
        assert rim_digest_ok(rim.xml)
        assert rim_signature_ok(rim.xml)
        certs = rim_certs(rim.xml)
        assert links_ok(certs) == [True] * 3
        assert certs[3] == ev.trust_store.root(NVIDIA_RIM_ROOT).certificate
        cns = [c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for c in certs[:3]]
        assert cns == ["RIM L4 Signer", "NVIDIA Reference Value L3 GB100-CC 001", "NVIDIA Reference Value GB1XX CA 001"]
        assert rim_tree(rim.xml).get("name") == "GB100"


def test_blackwell_runtime_values_match_the_rims_without_conflict() -> None:
    ev = _build()
    driver, vbios = (rim_active(r.xml) for r in ev.rims)
    assert not driver.keys() & vbios.keys()
    values = _parsed(ev).measurements
    assert all(values[i + 1].hex() in a for i, a in (driver | vbios).items())
    assert {i - 1 for i, v in values.items() if any(v)} == driver.keys() | vbios.keys()


def test_blackwell_ocsp_covers_device_and_rim_chains() -> None:
    ev = _build()
    assert {e.label for e in ev.ocsp} == {
        "device/brom",
        "device/ica",
        "device/identity",
        "rim/driver-l4",
        "rim/vbios-l4",
        "rim/l3",
        "rim/l2",
    }
    assert all(ocsp_ok(e) for e in ev.ocsp)


def test_blackwell_same_seed_same_bytes() -> None:
    a, b = NvidiaPki().build(blackwell_options()), NvidiaPki().build(blackwell_options())
    assert (a.report, a.chain_pem, a.rims) == (b.report, b.chain_pem, b.rims)


@pytest.mark.parametrize("defect", list(Defect), ids=[d.value for d in Defect])
def test_blackwell_defect_changes_only_its_part(defect: Defect) -> None:
    assert differs(_build(), _build(defect)) == touches(defect, "driver")


def test_blackwell_fwid_mismatch_changes_the_leafs_fwids0() -> None:
    bad = _tcb_info(_build(Defect.FWID_MISMATCH).chain[0])
    assert _build().fwid not in bad
    assert _parsed(_build(Defect.FWID_MISMATCH)).response.opaque.fwid == _build().fwid
    assert links_ok(_build(Defect.FWID_MISMATCH).chain) == [True] * 4


def test_blackwell_options_require_version_and_feature_fields() -> None:
    with pytest.raises(ValueError, match="Blackwell"):
        default_nvidia_pki().build(blackwell_options(feature_flag=None))
