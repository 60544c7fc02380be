"""Real SEV-SNP reports from real AMD hardware, verified against the pinned AMD roots at their pinned times.

Expected values come from tests/vectors/amd/expected.json and PROVENANCE.md (measurement, reported TCB,
product and key type per row). At the real current time the two expired VLEKs (T2, T3) fail with a
leaf-expired code; every other row still verifies.
"""

from __future__ import annotations

import base64
import json
import warnings
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.vectors import AMD_CASES, AMD_VECTORS, AmdCase
from verifier.appraisal.snp import SnpPolicy, appraise_snp
from verifier.errors import Code, EvidenceMalformed, VerificationFailed
from verifier.evidence.snp import parse_cert_table, parse_snp_report
from verifier.platforms.amd_snp import SnpVerification, SnpVerificationCache, verify_snp_report
from verifier.trust.amd_certs import load_leaf
from verifier.trust.store import TrustStore

IDS = [c.id for c in AMD_CASES]


def _verify(case: AmdCase, trust: TrustStore, now: datetime | None = None, **kw: object) -> SnpVerification:
    report = parse_snp_report(case.report.read_bytes())
    return verify_snp_report(report, case.leaf_der(), trust, now or case.now, **kw)  # type: ignore[arg-type]


def test_expected_json_covers_products_and_key_types() -> None:
    assert len(AMD_CASES) == 13
    assert {c.raw["product"] for c in AMD_CASES} == {"milan", "genoa", "turin"}
    assert {c.raw["signing_key"] for c in AMD_CASES} == {"vcek", "vlek"}
    assert {c.raw["version"] for c in AMD_CASES} == {2, 3, 5}


@pytest.mark.parametrize("case", AMD_CASES, ids=IDS)
def test_verify_snp_report_real_vector_at_pinned_time(case: AmdCase, trust: TrustStore) -> None:
    v = _verify(case, trust)
    assert v.product == case.raw["product"]
    assert v.signing_key == case.raw["signing_key"]
    assert v.report.version == case.raw["version"]
    assert v.report.measurement.hex() == case.raw["measurement"]
    assert v.report.host_data.hex() == case.raw["host_data"]
    assert v.report.reported_tcb.hex() == case.raw["reported_tcb_raw"]
    assert hex(v.report.policy) == case.raw["policy"]
    assert v.report.vmpl == case.raw["vmpl"]
    assert v.report.debug is case.raw["debug"]
    assert v.simulated is False


@pytest.mark.parametrize("case", AMD_CASES, ids=IDS)
def test_verify_snp_report_real_vector_at_real_time(case: AmdCase, trust: TrustStore) -> None:
    real_now = max(datetime.now(UTC), datetime(2026, 11, 23, tzinfo=UTC))
    if case.raw["valid_now"]:
        assert _verify(case, trust, real_now).product == case.raw["product"]
    else:
        with pytest.raises(VerificationFailed) as exc:
            _verify(case, trust, real_now)
        assert exc.value.code == Code.SNP_LEAF_EXPIRED


@pytest.mark.parametrize("case", AMD_CASES, ids=IDS)
def test_verify_snp_report_before_leaf_issued_rejected(case: AmdCase, trust: TrustStore) -> None:
    leaf = load_leaf(case.leaf_der())
    with pytest.raises(VerificationFailed) as exc:
        _verify(case, trust, leaf.not_before - timedelta(seconds=1))
    assert exc.value.code == Code.SNP_LEAF_NOT_YET_VALID


@pytest.mark.parametrize("case", AMD_CASES, ids=IDS)
def test_appraise_snp_default_policy_on_real_vector(case: AmdCase, trust: TrustStore) -> None:
    # Default policy: VMPL 0 only, DEBUG rejected, no VLEK cloud provider allowed, TCB at or above the built-in
    # AMD-SB-3019 floor. G1 is the DEBUG guest; K2/K3/T2/T3 were requested at VMPL 1; T2/T3 are AWS VLEKs; G1, V1,
    # T1, M1 and T3 predate the floor (Milan SNP SPL 5, 8, 8, 8, 0x15 < 0x18) on all four TCBs.
    codes = [r.code for r in appraise_snp(_verify(case, trust), SnpPolicy()).reasons]
    expected = []
    if case.raw["debug"]:
        expected.append(Code.SNP_POLICY_DEBUG)
    if case.raw["vmpl"] != 0:
        expected.append(Code.SNP_POLICY_VMPL)
    if case.raw["signing_key"] == "vlek":
        expected.append(Code.SNP_POLICY_CSP_ID)
    if case.id in {"G1", "V1", "T1", "M1", "T3"}:
        expected.extend([Code.SNP_POLICY_TCB_TOO_LOW] * 4)
    assert codes == expected


def test_verify_snp_report_warm_cache_matches_cold(trust: TrustStore) -> None:
    cache = SnpVerificationCache()
    for case in AMD_CASES:
        cold = _verify(case, trust)
        assert _verify(case, trust, cache=cache) == cold
        assert _verify(case, trust, cache=cache) == cold


def test_verify_snp_report_warm_cache_still_checks_signature(trust: TrustStore) -> None:
    case = next(c for c in AMD_CASES if c.id == "O2")
    cache = SnpVerificationCache()
    _verify(case, trust, cache=cache)
    raw = bytearray(case.report.read_bytes())
    raw[0x90] ^= 1  # one bit of MEASUREMENT
    with pytest.raises(VerificationFailed) as exc:
        verify_snp_report(parse_snp_report(bytes(raw)), case.leaf_der(), trust, case.now, cache=cache)
    assert exc.value.code == Code.SNP_SIGNATURE_INVALID


def test_verify_snp_report_current_tcb_is_not_used_for_the_vcek(trust: TrustStore) -> None:
    # T1: CURRENT_TCB microcode 0xce > REPORTED 0x73; the VCEK matches REPORTED, and verification succeeds.
    case = next(c for c in AMD_CASES if c.id == "T1")
    v = _verify(case, trust)
    assert v.current_tcb.microcode == 0xCE
    assert v.reported_tcb.microcode == 0x73 == v.leaf.ucode_spl


def test_verify_snp_report_v2_product_from_chain(trust: TrustStore) -> None:
    case = next(c for c in AMD_CASES if c.id == "V1")  # v2: no CPUID
    assert parse_snp_report(case.report.read_bytes()).cpuid_fam_id is None
    assert _verify(case, trust).product == "milan"
    with pytest.raises(VerificationFailed) as exc:
        _verify(case, trust, product="genoa")  # a Milan VCEK does not chain to the Genoa ASK
    assert exc.value.code == Code.SNP_CHAIN_PRODUCT_MISMATCH
    assert (exc.value.expected, exc.value.actual) == ("genoa", "milan")


def test_verify_snp_report_product_hint_contradicting_cpuid(trust: TrustStore) -> None:
    case = next(c for c in AMD_CASES if c.id == "O1")  # Turin by CPUID
    with pytest.raises(VerificationFailed) as exc:
        _verify(case, trust, product="milan")
    assert exc.value.code == Code.SNP_CHAIN_PRODUCT_MISMATCH


def test_verify_snp_report_vlek_leaf_for_vcek_report(trust: TrustStore) -> None:
    vcek_case = next(c for c in AMD_CASES if c.id == "O3")
    vlek = next(c for c in AMD_CASES if c.id == "T2").leaf_der()
    with pytest.raises(VerificationFailed) as exc:
        verify_snp_report(parse_snp_report(vcek_case.report.read_bytes()), vlek, trust, vcek_case.now)
    assert exc.value.code == Code.SNP_LEAF_KEY_TYPE_MISMATCH


def test_verify_snp_report_other_chips_vcek_rejected(trust: TrustStore) -> None:
    # O3 and O4: same product, same TCB, different chips; each VCEK is bound to its own CHIP_ID.
    o3, o4 = (next(c for c in AMD_CASES if c.id == i) for i in ("O3", "O4"))
    with pytest.raises(VerificationFailed) as exc:
        verify_snp_report(parse_snp_report(o3.report.read_bytes()), o4.leaf_der(), trust, o3.now)
    assert exc.value.code == Code.SNP_LEAF_HWID_MISMATCH


def test_verify_snp_report_missing_leaf(trust: TrustStore) -> None:
    case = AMD_CASES[0]
    with pytest.raises(VerificationFailed) as exc:
        verify_snp_report(parse_snp_report(case.report.read_bytes()), None, trust, case.now)
    assert exc.value.code == Code.SNP_LEAF_MISSING


def test_verify_snp_report_configfs_tsm_dump_with_cert_table(trust: TrustStore) -> None:
    # R1: Linux configfs-tsm outblob + auxblob (PEM entries) from a Genoa host.
    doc = json.loads((AMD_VECTORS / "veraison-services/sevsnp-tsm-report_genoa_v3.json").read_text())

    def b64(s: str) -> bytes:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

    table = parse_cert_table(b64(doc["auxblob"]))
    assert set(table) == {
        "c0b406a4-a803-4952-9743-3fb6014cd0ae",
        "4ab7b379-bbac-4fe4-a02f-05aef327c782",
        "63da758d-e664-4564-adc5-f4b93be8accd",
    }
    report = parse_snp_report(b64(doc["outblob"]))
    v = verify_snp_report(
        report, table["63da758d-e664-4564-adc5-f4b93be8accd"], trust, datetime(2025, 4, 21, 18, 31, 36, tzinfo=UTC)
    )
    assert (v.product, v.report.version) == ("genoa", 3)
    assert v.report.measurement.hex().startswith("7699e6ac")


def test_verify_snp_report_azure_hcl_report(trust: TrustStore) -> None:
    # T4: an Azure CVM HCL report; the SNP report sits at 0x20..0x4BF.
    hcl = (AMD_VECTORS / "confidential-containers-trustee/az-snp-vtpm_hcl-report_milan_v2.bin").read_bytes()
    pem = (AMD_VECTORS / "confidential-containers-trustee/az-snp-vtpm_vcek_ask_ark_milan.pem").read_bytes()
    from verifier.collateral.amd_files import leaf_from_certificates

    v = verify_snp_report(
        parse_snp_report(hcl[0x20:0x4C0]),
        leaf_from_certificates(pem),
        trust,
        datetime(2023, 5, 3, 21, 22, 19, tzinfo=UTC),
    )
    assert v.report.measurement.hex().startswith("9ac48fca")


def test_verify_snp_report_turin_vcek_without_report_loads(trust: TrustStore) -> None:
    # A real Turin VCEK (structVersion 1, 8-byte hwID, fmcSPL) with no report: the chain-only check.
    from verifier.trust.amd_certs import parse_amd_extensions

    leaf = load_leaf((AMD_VECTORS / "virtee-sev/turin_vcek_no_report.der").read_bytes())
    ext = parse_amd_extensions(leaf)
    assert (ext.struct_version, ext.hwid, ext.fmc_spl) == (1, bytes.fromhex("1e550a8ee5cf9f4d"), 0)
    assert ext.kind == "vcek"


@pytest.mark.parametrize("case", AMD_CASES, ids=IDS)
def test_load_leaf_serial_zero_both_parsers_agree(case: AmdCase) -> None:
    der = case.leaf_der()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the expected serial-0 warning must be handled inside load_leaf
        a = load_leaf(der)
    b = load_leaf(der, force_fallback=True)
    assert a.serial == b.serial == 0
    assert (a.parsed_by, b.parsed_by) == ("cryptography", "der-fallback")
    assert (a.tbs, a.signature, a.issuer_der, a.not_before, a.not_after, a.extensions) == (
        b.tbs,
        b.signature,
        b.issuer_der,
        b.not_before,
        b.not_after,
        b.extensions,
    )
    assert a.public_key.public_numbers() == b.public_key.public_numbers()


def test_verify_snp_report_when_cryptography_refuses_serial_zero(
    trust: TrustStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate the future cryptography release that raises on serial 0: verification still works.
    from cryptography import x509

    real = x509.load_der_x509_certificate

    def refusing(data: bytes) -> x509.Certificate:
        cert = real(data)
        if cert.serial_number == 0:
            raise ValueError("error parsing asn1 value: serial number must be positive")
        return cert

    monkeypatch.setattr(x509, "load_der_x509_certificate", refusing)
    case = next(c for c in AMD_CASES if c.id == "O1")
    assert load_leaf(case.leaf_der()).parsed_by == "der-fallback"
    assert _verify(case, trust).product == "turin"


@pytest.mark.parametrize(
    ("offset", "value", "code"),
    [
        (0x000, b"\x04", Code.SNP_REPORT_UNSUPPORTED_VERSION),
        (0x000, b"\x06", Code.SNP_REPORT_UNSUPPORTED_VERSION),
        (0x034, b"\x00", Code.SNP_REPORT_SIGNATURE_ALGO),
        (0x04C, b"\x01", Code.SNP_REPORT_RESERVED_NONZERO),
        (0x048, b"\x1c", Code.SNP_REPORT_SIGNING_KEY_INVALID),
        (0x048, b"\x02", Code.SNP_REPORT_MASK_CHIP_KEY),
        (0x110, b"\x01", Code.SNP_REPORT_AUTHOR_KEY_INCONSISTENT),
        (0x18B, b"\x01", Code.SNP_REPORT_RESERVED_NONZERO),
        (0x250, b"\x01", Code.SNP_REPORT_RESERVED_NONZERO),
        (0x2D0, b"\x01", Code.SNP_SIGNATURE_MALFORMED),
        (0x400, b"\x01", Code.SNP_SIGNATURE_MALFORMED),
    ],
    ids=[
        "version-4",
        "version-6",
        "sig-algo-0",
        "reserved-04c",
        "signing-key-7",
        "mask-chip-key-vcek",
        "author-digest-without-en",
        "reserved-18b",
        "reserved-250",
        "r-padding",
        "sig-tail",
    ],
)
def test_parse_snp_report_real_vector_single_defect(offset: int, value: bytes, code: Code) -> None:
    raw = bytearray((AMD_VECTORS / "project-oak/genoa_v5_oc_report.bin").read_bytes())
    raw[offset : offset + len(value)] = value
    with pytest.raises(EvidenceMalformed) as exc:
        parse_snp_report(bytes(raw))
    assert exc.value.code == code


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", Code.SNP_REPORT_TRUNCATED),
        (b"\x02" + bytes(1182), Code.SNP_REPORT_TRUNCATED),
        (b"\x02" + bytes(1184), Code.SNP_REPORT_TRAILING_DATA),
        (b"abc", Code.SNP_REPORT_ENCODING),
    ],
    ids=["empty", "short", "long", "odd-hex"],
)
def test_parse_snp_report_size_and_encoding(data: bytes, code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as exc:
        parse_snp_report(data)
    assert exc.value.code == code


def test_parse_snp_report_hex_equals_binary() -> None:
    hex_report = (AMD_VECTORS / "virtee-sev/milan_v2_report.hex").read_bytes()
    assert parse_snp_report(hex_report) == parse_snp_report(bytes.fromhex(hex_report.decode()))


def test_parse_snp_report_r_out_of_range() -> None:
    from verifier.evidence.snp import P384_ORDER

    raw = bytearray((AMD_VECTORS / "project-oak/genoa_v5_oc_report.bin").read_bytes())
    raw[0x2A0:0x2D0] = P384_ORDER.to_bytes(48, "little")
    with pytest.raises(EvidenceMalformed) as exc:
        parse_snp_report(bytes(raw))
    assert exc.value.code == Code.SNP_SIGNATURE_MALFORMED
