"""SEV-SNP appraisal on real, verified reports: each rule alone, every failure listed, confidential ACI, the
built-in TCB floor and the VLEK cspID allow-list.

Real vectors below the built-in AMD-SB-3019 floor (SNP SPL >= 0x18 Milan): G1 (snp 5), V1, T1, M1 (snp 8) and T3
(snp 0x15). Tests that appraise them for another rule say so with an explicit ``min_tcb_override``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest

from tests.support.vectors import AMD_CASES, AMD_VECTORS
from verifier.appraisal.snp import (
    DEFAULT_MIN_TCB,
    SnpPolicy,
    appraise_snp,
    cce_policy_digest,
    matched_cce_policy,
    parse_snp_policy,
)
from verifier.errors import Code, UsageError
from verifier.evidence.snp import (
    PLATFORM_ALIAS_CHECK_COMPLETE,
    POLICY_CXL_ALLOW,
    POLICY_DEBUG,
    POLICY_MIGRATE_MA,
    POLICY_RESERVED_MBO,
    parse_snp_report,
)
from verifier.platforms.amd_snp import SnpVerification, verify_snp_report
from verifier.platforms.evaluation import evaluate_snp_report
from verifier.simulation.amd_pki import DEFAULT_CSP_ID, ReportOptions, default_amd_pki
from verifier.simulation.amd_report_builder import DEFAULT_TCB, Tcb
from verifier.trust.store import TrustStore

ACI = AMD_VECTORS / "microsoft-confidential-sidecar-containers"
#: M1 (Azure confidential ACI, 2022) runs SNP SPL 8, below the built-in Milan floor: the ACI tests lift the floor
#: explicitly to test their own rule.
NO_MILAN_FLOOR: dict[str, dict[str, int]] = {"milan": {}}
#: Real vectors whose TCB is below the built-in floor (checked on all four TCBs).
BELOW_FLOOR = {"G1", "V1", "T1", "T3", "M1"}


def _verified(case_id: str, trust: TrustStore) -> SnpVerification:
    case = next(c for c in AMD_CASES if c.id == case_id)
    return verify_snp_report(parse_snp_report(case.report.read_bytes()), case.leaf_der(), trust, case.now)


def _codes(v: SnpVerification, policy: SnpPolicy) -> list[Code]:
    return [r.code for r in appraise_snp(v, policy).reasons]


@pytest.fixture
def o2(trust: TrustStore) -> SnpVerification:
    return _verified("O2", trust)  # Genoa v5, VMPL 0, policy 0x30000, reported TCB bl 10 tee 0 snp 25 ucode 84


def test_appraise_snp_defaults_accept_clean_report(o2: SnpVerification) -> None:
    assert _codes(o2, SnpPolicy()) == []


@pytest.mark.parametrize(
    ("policy", "code"),
    [
        (SnpPolicy(allowed_measurements=frozenset({bytes(48)})), Code.SNP_POLICY_MEASUREMENT),
        (SnpPolicy(allowed_host_data=frozenset({b"\x01" * 32})), Code.SNP_POLICY_HOST_DATA),
        (SnpPolicy(allowed_id_key_digests=frozenset({b"\x01" * 48})), Code.SNP_POLICY_ID_KEY_DIGEST),
        (SnpPolicy(allowed_author_key_digests=frozenset({b"\x01" * 48})), Code.SNP_POLICY_AUTHOR_KEY_DIGEST),
        (SnpPolicy(allowed_family_ids=frozenset({b"\x01" * 16})), Code.SNP_POLICY_FAMILY_ID),
        (SnpPolicy(allowed_image_ids=frozenset({b"\x01" * 16})), Code.SNP_POLICY_IMAGE_ID),
        (SnpPolicy(min_guest_svn=1), Code.SNP_POLICY_GUEST_SVN_TOO_LOW),
        (SnpPolicy(allowed_vmpls=frozenset({1})), Code.SNP_POLICY_VMPL),
        (SnpPolicy(allow_smt=False), Code.SNP_POLICY_SMT),
        (SnpPolicy(require_single_socket=True), Code.SNP_POLICY_SINGLE_SOCKET),
        (SnpPolicy(require_mem_aes_256_xts=True), Code.SNP_POLICY_MEM_AES_256_XTS),
        (SnpPolicy(require_rapl_dis=True), Code.SNP_POLICY_RAPL_DIS),
        (SnpPolicy(require_ciphertext_hiding=True), Code.SNP_POLICY_CIPHERTEXT_HIDING),
        (SnpPolicy(min_firmware=(1, 55, 44)), Code.SNP_POLICY_FIRMWARE_TOO_LOW),
        (SnpPolicy(expected_report_data=bytes(64)), Code.SNP_POLICY_REPORT_DATA),
        (SnpPolicy(allowed_signing_keys=frozenset({"vlek"})), Code.SNP_POLICY_SIGNING_KEY),
    ],
    ids=[
        "measurement",
        "host-data",
        "id-key",
        "author-key",
        "family-id",
        "image-id",
        "guest-svn",
        "vmpl",
        "smt",
        "single-socket",
        "aes-256-xts",
        "rapl-dis",
        "ciphertext-hiding",
        "firmware",
        "report-data",
        "signing-key",
    ],
)
def test_appraise_snp_single_rule_rejects(o2: SnpVerification, policy: SnpPolicy, code: Code) -> None:
    reasons = appraise_snp(o2, policy).reasons
    assert {r.code for r in reasons} == {code}  # only this rule (firmware: current and committed both listed)
    assert reasons[0].expected is not None
    assert reasons[0].actual is not None


@pytest.mark.parametrize(
    ("report_changes", "policy", "code"),
    [
        ({"policy": 0x30000 | POLICY_DEBUG}, SnpPolicy(), Code.SNP_POLICY_DEBUG),
        ({"policy": 0x30000 | POLICY_MIGRATE_MA}, SnpPolicy(), Code.SNP_POLICY_MIGRATE_MA),
        ({"policy": 0x30000 & ~POLICY_RESERVED_MBO}, SnpPolicy(), Code.SNP_POLICY_RESERVED_BITS),
        ({"policy": 0x30000 | 1 << 40}, SnpPolicy(), Code.SNP_POLICY_RESERVED_BITS),
        ({"policy": 0x30000 | POLICY_CXL_ALLOW}, SnpPolicy(), Code.SNP_POLICY_CXL),
        ({"platform_info": 0}, SnpPolicy(), Code.SNP_POLICY_PLATFORM_INFO),
        ({}, SnpPolicy(require_uvm_endorsement=True), Code.SNP_POLICY_MEASUREMENT),
    ],
    ids=["debug", "migrate-ma", "reserved-bit-17-clear", "reserved-high-bit", "cxl", "alias-check", "uvm-endorsement"],
)
def test_appraise_snp_single_report_defect_rejects(
    o2: SnpVerification, report_changes: dict[str, int], policy: SnpPolicy, code: Code
) -> None:
    assert o2.report.policy == 0x30000
    assert o2.report.platform_info & PLATFORM_ALIAS_CHECK_COMPLETE
    v = replace(o2, report=replace(o2.report, **report_changes))  # type: ignore[arg-type]
    assert _codes(v, policy) == [code]


def test_appraise_snp_reports_every_rule_group_in_order(o2: SnpVerification) -> None:
    # One defect per rule group, all at once: every group reports, guest policy first, binding last.
    report = replace(o2.report, policy=o2.report.policy | POLICY_DEBUG, vmpl=1)
    policy = SnpPolicy(
        allowed_signing_keys=frozenset({"vlek"}),
        min_tcb={"genoa": {"snp": o2.reported_tcb.snp + 1}},
        min_firmware=(255, 0, 0),
        allowed_measurements=frozenset({bytes(48)}),
        allowed_host_data=frozenset({b"\x01" * 32}),
        min_guest_svn=o2.report.guest_svn + 1,
        expected_report_data=b"\x01" * 64,
    )
    assert _codes(replace(o2, report=report), policy) == [
        Code.SNP_POLICY_DEBUG,
        Code.SNP_POLICY_VMPL,
        Code.SNP_POLICY_SIGNING_KEY,
        *[Code.SNP_POLICY_TCB_TOO_LOW] * 4,
        *[Code.SNP_POLICY_FIRMWARE_TOO_LOW] * 2,
        Code.SNP_POLICY_MEASUREMENT,
        Code.SNP_POLICY_HOST_DATA,
        Code.SNP_POLICY_GUEST_SVN_TOO_LOW,
        Code.SNP_POLICY_REPORT_DATA,
    ]


@pytest.mark.parametrize("component", ["bootloader", "tee", "snp", "microcode"])
def test_appraise_snp_min_tcb_each_component_each_tcb(o2: SnpVerification, component: str) -> None:
    have = o2.reported_tcb.components()[component]
    assert _codes(o2, SnpPolicy(min_tcb={"genoa": {component: have}})) == []
    reasons = appraise_snp(o2, SnpPolicy(min_tcb={"genoa": {component: have + 1}})).reasons
    # REPORTED, COMMITTED, CURRENT and LAUNCH are all checked (all equal on this report).
    assert [r.code for r in reasons] == [Code.SNP_POLICY_TCB_TOO_LOW] * 4
    assert [r.message.split("_")[0] for r in reasons] == ["REPORTED", "COMMITTED", "CURRENT", "LAUNCH"]
    # A minimum for another product does not apply.
    assert _codes(o2, SnpPolicy(min_tcb={"milan": {component: 255}})) == []


def test_appraise_snp_current_tcb_above_reported_is_checked_separately(trust: TrustStore) -> None:
    v = _verified("T1", trust)  # CURRENT microcode 0xce, REPORTED 0x73; SNP SPL 8 (floor replaced explicitly)
    codes = appraise_snp(v, SnpPolicy(min_tcb_override={"milan": {"microcode": 0x80}})).reasons
    assert [r.message.split("_")[0] for r in codes] == ["REPORTED", "COMMITTED", "LAUNCH"]


def test_appraise_snp_turin_fmc_component(trust: TrustStore) -> None:
    v = _verified("O1", trust)
    assert v.reported_tcb.fmc == 0
    assert Code.SNP_POLICY_TCB_TOO_LOW in _codes(v, SnpPolicy(min_tcb={"turin": {"fmc": 1}}))


def test_appraise_snp_debug_and_vmpl_all_listed(trust: TrustStore) -> None:
    v = _verified("G1", trust)  # DEBUG guest, SNP SPL 5: below the built-in floor on all four TCBs too
    assert _codes(v, SnpPolicy(allowed_vmpls=frozenset({1}))) == [
        Code.SNP_POLICY_DEBUG,
        Code.SNP_POLICY_VMPL,
        *[Code.SNP_POLICY_TCB_TOO_LOW] * 4,
    ]


def test_appraise_snp_measurement_allow_list_accepts_reference(o2: SnpVerification) -> None:
    assert _codes(o2, SnpPolicy(allowed_measurements=frozenset({o2.report.measurement}))) == []


def test_appraise_snp_vlek_csp_allow_list(trust: TrustStore) -> None:
    v = _verified("T2", trust)
    ok = SnpPolicy(allowed_vmpls=frozenset({1}), allowed_csp_ids=frozenset({"CN=cc-us-east-2.amazonaws.com"}))
    assert _codes(v, ok) == []
    other = SnpPolicy(allowed_vmpls=frozenset({1}), allowed_csp_ids=frozenset({"CN=other-csp"}))
    assert _codes(v, other) == [Code.SNP_POLICY_CSP_ID]


def test_appraise_snp_vlek_without_csp_allow_list_rejected(trust: TrustStore) -> None:
    v = _verified("T2", trust)  # AWS VLEK, VMPL 1
    for policy in (SnpPolicy(allowed_vmpls=frozenset({1})), parse_snp_policy({"allowed_vmpls": [1]})):
        reasons = appraise_snp(v, policy).reasons
        assert [r.code for r in reasons] == [Code.SNP_POLICY_CSP_ID]
        assert "allows no cloud provider" in reasons[0].message
        assert reasons[0].actual == "CN=cc-us-east-2.amazonaws.com"
    listed = parse_snp_policy({"allowed_vmpls": [1], "allowed_csp_ids": ["CN=cc-us-east-2.amazonaws.com"]})
    assert _codes(v, listed) == []


def test_appraise_snp_simulated_vlek_needs_its_csp_listed() -> None:
    options = ReportOptions(product="milan", version=3, signing_key="vlek")
    assert _simulated(options, SnpPolicy()) == [(Code.SNP_POLICY_CSP_ID, "VLEK-signed")]
    assert _simulated(options, SnpPolicy(allowed_csp_ids=frozenset({DEFAULT_CSP_ID}))) == []


def test_appraise_snp_csp_allow_list_does_not_affect_vcek(o2: SnpVerification) -> None:
    assert o2.signing_key == "vcek"
    assert _codes(o2, SnpPolicy(allowed_csp_ids=frozenset({"CN=cc-us-east-2.amazonaws.com"}))) == []


@pytest.mark.parametrize("case_id", [c.id for c in AMD_CASES])
def test_appraise_snp_default_tcb_floor_on_real_vectors(trust: TrustStore, case_id: str) -> None:
    v = _verified(case_id, trust)
    reasons = [r for r in appraise_snp(v, SnpPolicy()).reasons if r.code == Code.SNP_POLICY_TCB_TOO_LOW]
    if case_id in BELOW_FLOOR:
        assert v.reported_tcb.snp < DEFAULT_MIN_TCB[v.product]["snp"]
        assert [r.message.split("_")[0] for r in reasons] == ["REPORTED", "COMMITTED", "CURRENT", "LAUNCH"]
        assert reasons[0].expected == f"snp>={DEFAULT_MIN_TCB[v.product]['snp']}"
        assert reasons[0].actual == f"snp={v.reported_tcb.snp}"
        lifted = SnpPolicy(min_tcb_override={v.product: {"snp": v.reported_tcb.snp}})
        assert Code.SNP_POLICY_TCB_TOO_LOW not in _codes(v, lifted)
    else:
        assert reasons == []


def _simulated(options: ReportOptions, policy: SnpPolicy) -> list[tuple[Code, str]]:
    ev = default_amd_pki().build(options)
    result = evaluate_snp_report(
        ev.report, leaf_der=ev.leaf_der, cert_table=None, trust=ev.trust_store, now=ev.now, policy=policy
    )
    return [(r.code, r.message.split()[0]) for r in result.reasons]  # code and its subject


@pytest.mark.parametrize(
    ("product", "tcb", "rejected"),
    [
        ("milan", Tcb(bl=4, tee=0, snp=0x17, ucode=0xDB), True),
        ("milan", Tcb(bl=4, tee=0, snp=0x18, ucode=0xDB), False),
        ("genoa", Tcb(bl=10, tee=0, snp=0x16, ucode=0x54), True),
        ("genoa", Tcb(bl=10, tee=0, snp=0x17, ucode=0x54), False),
        ("milan", Tcb(bl=0, tee=0, snp=0, ucode=0), True),
        ("turin", Tcb(bl=0, tee=0, snp=0, ucode=0, fmc=0), False),
    ],
    ids=["milan-0x17", "milan-0x18", "genoa-0x16", "genoa-0x17", "milan-all-zero", "turin-no-floor"],
)
def test_appraise_snp_default_tcb_floor_boundary(product: str, tcb: Tcb, rejected: bool) -> None:
    codes = _simulated(ReportOptions(product=product, reported_tcb=tcb), SnpPolicy())  # type: ignore[arg-type]
    assert codes == (
        [(Code.SNP_POLICY_TCB_TOO_LOW, t) for t in ("REPORTED_TCB", "COMMITTED_TCB", "CURRENT_TCB", "LAUNCH_TCB")]
        if rejected
        else []
    )


@pytest.mark.parametrize("which", ["committed_tcb", "current_tcb", "launch_tcb"])
def test_appraise_snp_default_tcb_floor_checks_every_tcb(which: str) -> None:
    low = Tcb(bl=4, tee=0, snp=0x17, ucode=0xDB)
    options = ReportOptions(product="milan", reported_tcb=DEFAULT_TCB["milan"], **{which: low})  # type: ignore[arg-type]
    assert _simulated(options, SnpPolicy()) == [(Code.SNP_POLICY_TCB_TOO_LOW, which.upper())]


def test_appraise_snp_min_tcb_only_raises_the_floor(trust: TrustStore) -> None:
    v = _verified("T1", trust)  # Milan, SNP SPL 8
    # A lower min_tcb does not lower the built-in floor ...
    assert Code.SNP_POLICY_TCB_TOO_LOW in _codes(v, parse_snp_policy({"min_tcb": {"milan": {"snp": 1}}}))
    # ... only min_tcb_override does, and min_tcb still applies on top of it.
    assert _codes(v, parse_snp_policy({"min_tcb_override": {"milan": {"snp": 8}}})) == []
    assert Code.SNP_POLICY_TCB_TOO_LOW in _codes(v, parse_snp_policy({"min_tcb_override": {"milan": {"snp": 9}}}))
    both = parse_snp_policy({"min_tcb_override": {"milan": {}}, "min_tcb": {"milan": {"snp": 9}}})
    assert Code.SNP_POLICY_TCB_TOO_LOW in _codes(v, both)
    # The override names Milan only: Genoa keeps its built-in floor.
    assert SnpPolicy(min_tcb_override=NO_MILAN_FLOOR).tcb_floor("genoa") == {"snp": 0x17}
    assert SnpPolicy(min_tcb={"genoa": {"snp": 0x20, "microcode": 1}}).tcb_floor("genoa") == {
        "snp": 0x20,
        "microcode": 1,
    }


def test_cce_policy_digest_base64_and_text_agree() -> None:
    b64 = (ACI / "uvm_security_policy.base64").read_bytes()
    rego = base64.b64decode(b64)
    assert cce_policy_digest(b64) == cce_policy_digest(rego) == hashlib.sha256(rego).digest()


def test_appraise_snp_confidential_aci_host_data_matches_cce_policy(trust: TrustStore) -> None:
    v = _verified("M1", trust)
    policy = parse_snp_policy(
        {
            "cce_policies": {"model-runtime-v1": (ACI / "uvm_security_policy.base64").read_text()},
            "min_tcb_override": NO_MILAN_FLOOR,
        }
    )
    assert _codes(v, policy) == []
    assert matched_cce_policy(v, policy) == "model-runtime-v1"
    other = parse_snp_policy({"cce_policies": {"other": "package policy\n"}, "min_tcb_override": NO_MILAN_FLOOR})
    assert _codes(v, other) == [Code.SNP_POLICY_HOST_DATA]
    assert matched_cce_policy(v, other) is None


def test_appraise_snp_confidential_aci_uvm_measurement_pinned(trust: TrustStore) -> None:
    # Without the COSE endorsement, the UVM MEASUREMENT can be pinned as a reference value.
    v = _verified("M1", trust)
    uvm = bytes.fromhex(
        "51068107cdc7ee3d89c7821b05bca6147eb77b2005ae759050fc049b65a1b0beabc65a9d857acecf23225f5ec76849f5"
    )
    assert _codes(v, SnpPolicy(allowed_measurements=frozenset({uvm}), min_tcb_override=NO_MILAN_FLOOR)) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"allow_debuug": True},
        {"allowed_measurements": ["00"]},
        {"min_tcb": {"rome": {"snp": 1}}},
        {"min_tcb": {"milan": {"spl9": 1}}},
        {"allowed_signing_keys": ["ask"]},
        {"allow_debug": "no"},
        {"min_firmware": "1.55"},
        {"expected_report_data": "00"},
        {"min_tcb_override": {"rome": {}}},
        {"min_tcb": {"milan": {"snp": "24"}}},
        {"min_tcb_override": {"milan": {"snp": 256}}},
        {"min_tcb": {"milan": {"snp": -1}}},
        {"allowed_csp_ids": None},
    ],
    ids=[
        "typo",
        "short-measurement",
        "unknown-product",
        "unknown-component",
        "bad-key-kind",
        "bool-string",
        "bad-firmware",
        "short-report-data",
        "override-unknown-product",
        "spl-string",
        "spl-too-large",
        "spl-negative",
        "csp-ids-null",
    ],
)
def test_parse_snp_policy_invalid_rejected(doc: dict[str, object]) -> None:
    with pytest.raises(UsageError) as exc:
        parse_snp_policy(doc)
    assert exc.value.code == Code.POLICY_INVALID


@pytest.mark.parametrize(
    "text", ["[" * 100_000, b"\xff\xfe not utf-8", "not json", "[]"], ids=["deep-nesting", "bad-utf8", "text", "array"]
)
def test_parse_policies_reject_non_object_documents_alike(text: str | bytes) -> None:
    from verifier.appraisal.intel import parse_intel_policy

    for parse in (parse_snp_policy, parse_intel_policy):
        with pytest.raises(UsageError) as exc:
            parse(text)
        assert exc.value.code == Code.POLICY_INVALID


def test_appraise_snp_require_crl_rejects_unchecked_revocation(o2: SnpVerification) -> None:
    assert not o2.crl_checked  # verified without a CRL
    reasons = appraise_snp(o2, SnpPolicy(require_crl=True)).reasons
    assert [r.code for r in reasons] == [Code.SNP_CRL_MISSING]
    assert _codes(o2, parse_snp_policy({"require_crl": False})) == []
    assert parse_snp_policy({"require_crl": True}).require_crl is True
    with pytest.raises(UsageError):
        parse_snp_policy({"require_crl": "yes"})
