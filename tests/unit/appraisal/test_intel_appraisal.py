"""Appraisal of real, verified quotes: the default policy and each configurable rule, one rule at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.vectors import INTEL_CASES, IntelCase
from verifier.appraisal.intel import IntelPolicy, appraise_intel, parse_intel_policy
from verifier.errors import Code, UsageError
from verifier.evidence.dcap import parse_quote
from verifier.evidence.tdx import TD_ATTR_DEBUG, TD_ATTR_MIGRATABLE, TD_ATTR_SEPT_VE_DISABLE
from verifier.platforms.intel_dcap import IntelVerification, verify_quote
from verifier.trust.intel_collateral import parse_collateral_json
from verifier.trust.store import TrustStore


def _case(case_id: str) -> IntelCase:
    return next(c for c in INTEL_CASES if c.id == case_id)


def _verified(case_id: str, trust: TrustStore) -> IntelVerification:
    case = _case(case_id)
    return verify_quote(
        parse_quote(case.quote.read_bytes()), parse_collateral_json(case.collateral.read_bytes()), trust, case.now
    )


def _codes(v: IntelVerification, policy: IntelPolicy | None = None) -> list[Code]:
    return [r.code for r in appraise_intel(v, policy or IntelPolicy()).reasons]


@pytest.mark.parametrize(
    ("case_id", "code"),
    [
        ("T1", Code.INTEL_POLICY_TD_DEBUG),
        ("T2", Code.INTEL_POLICY_SGX_DEBUG),
        ("A6", Code.INTEL_POLICY_SGX_DEBUG),
        ("M1", Code.INTEL_POLICY_SGX_DEBUG),
        ("T5", Code.INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF),
        ("A5", Code.INTEL_POLICY_MRSERVICETD_NONZERO),
    ],
    ids=["T1-td-debug", "T2-sgx-debug", "A6-sgx-debug", "M1-sgx-debug", "T5-sept-ve-off", "A5-servicetd"],
)
def test_appraise_intel_default_policy_rejects_real_vector(case_id: str, code: Code, trust: TrustStore) -> None:
    assert code in _codes(_verified(case_id, trust))


@pytest.mark.parametrize("case_id", ["P2", "P4", "G2", "G3"])
def test_appraise_intel_default_policy_accepts_up_to_date(case_id: str, trust: TrustStore) -> None:
    verdict = appraise_intel(_verified(case_id, trust), IntelPolicy())
    assert verdict.accepted
    assert verdict.reasons == ()


def test_appraise_intel_lists_every_failed_check(trust: TrustStore) -> None:
    # T2: an SGX DEBUG enclave on an OutOfDate platform fails two independent checks; both are reported.
    codes = _codes(_verified("T2", trust))
    assert codes == [Code.INTEL_POLICY_SGX_DEBUG, Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED]


def test_appraise_intel_status_allow_list_is_configurable(trust: TrustStore) -> None:
    v = _verified("A2", trust)  # OutOfDate
    assert _codes(v) == [Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED]
    assert _codes(v, IntelPolicy(accepted_tcb_statuses=frozenset({"UpToDate", "OutOfDate"}))) == []


def test_appraise_intel_allow_debug_opt_in(trust: TrustStore) -> None:
    assert _codes(_verified("T1", trust), IntelPolicy(allow_debug=True)) == []


def test_appraise_intel_report_data_binding(trust: TrustStore) -> None:
    v = _verified("P2", trust)
    good = IntelPolicy(expected_report_data=v.quote.body.reportdata)
    assert _codes(v, good) == []
    bad = bytearray(v.quote.body.reportdata)
    bad[63] ^= 1  # the last byte counts too: all 64 bytes are compared
    reasons = appraise_intel(v, IntelPolicy(expected_report_data=bytes(bad))).reasons
    assert [r.code for r in reasons] == [Code.INTEL_POLICY_REPORT_DATA_MISMATCH]
    assert reasons[0].actual == v.quote.body.reportdata.hex()


def test_appraise_intel_measurement_allow_list(trust: TrustStore) -> None:
    v = _verified("P2", trust)
    mrtd = v.quote.td_body.mrtd
    assert _codes(v, IntelPolicy(allowed_measurements={"mrtd": frozenset({mrtd})})) == []
    other = IntelPolicy(allowed_measurements={"mrtd": frozenset({bytes(48)})})
    assert _codes(v, other) == [Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED]
    sgx_only = IntelPolicy(allowed_measurements={"mrenclave": frozenset({bytes(32)})})
    assert _codes(v, sgx_only) == [Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED]


def test_appraise_intel_sgx_signer_identity(trust: TrustStore) -> None:
    """MRSIGNER + ISVPRODID + a minimum ISVSVN: each rule on a real SGX quote (A6, debug allowed here)."""
    v = _verified("A6", trust)
    body = v.quote.sgx_body
    signer = IntelPolicy(
        allow_debug=True,
        accepted_tcb_statuses=IntelPolicy().accepted_tcb_statuses | {v.tcb.status},
        allowed_measurements={"mrsigner": frozenset({body.mrsigner})},
        allowed_isv_prod_ids=frozenset({body.isvprodid}),
        min_isv_svn=body.isvsvn,
    )
    assert _codes(v, signer) == []
    assert _codes(v, replace(signer, allowed_isv_prod_ids=frozenset({body.isvprodid + 1}))) == [
        Code.INTEL_POLICY_SGX_ISV_PROD_ID
    ]
    assert _codes(v, replace(signer, min_isv_svn=body.isvsvn + 1)) == [Code.INTEL_POLICY_SGX_ISV_SVN_TOO_LOW]


def test_appraise_intel_sgx_signer_rules_never_apply_to_a_td(trust: TrustStore) -> None:
    v = _verified("P2", trust)
    assert _codes(v, IntelPolicy(allowed_isv_prod_ids=frozenset({7}), min_isv_svn=0xFFFF)) == []


def test_appraise_intel_advisory_deny_list(trust: TrustStore) -> None:
    v = _verified("A1", trust)  # SWHardeningNeeded, INTEL-SA-00615
    assert _codes(v) == []
    assert _codes(v, IntelPolicy(denied_advisory_ids=frozenset({"INTEL-SA-00615"}))) == [
        Code.INTEL_POLICY_ADVISORY_DENIED
    ]


def test_appraise_intel_min_eval_number(trust: TrustStore) -> None:
    v = _verified("P4", trust)  # evaluation data number 20
    assert v.collateral.tcb_eval_number == 20
    assert _codes(v, IntelPolicy(min_tcb_eval_number=20)) == []
    assert _codes(v, IntelPolicy(min_tcb_eval_number=21)) == [Code.INTEL_POLICY_TCB_EVAL_NUMBER_TOO_LOW]


def test_appraise_intel_migratable_opt_out(trust: TrustStore) -> None:
    v = _verified("P2", trust)
    assert not v.quote.td_body.tdattributes_int & (1 << 29)
    assert _codes(v, IntelPolicy(allow_migratable=False)) == []


@pytest.mark.parametrize(
    ("tdattributes", "policy", "code"),
    [
        (TD_ATTR_SEPT_VE_DISABLE | TD_ATTR_DEBUG, IntelPolicy(), Code.INTEL_POLICY_TD_DEBUG),
        (TD_ATTR_SEPT_VE_DISABLE | 1 << 1, IntelPolicy(), Code.INTEL_POLICY_TD_RESERVED_ATTRIBUTES),
        (0, IntelPolicy(), Code.INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF),
        (
            TD_ATTR_SEPT_VE_DISABLE | TD_ATTR_MIGRATABLE,
            IntelPolicy(allow_migratable=False),
            Code.INTEL_POLICY_TD_MIGRATABLE,
        ),
    ],
    ids=["debug", "reserved-bit", "sept-ve-disable-off", "migratable"],
)
def test_appraise_intel_single_td_attribute_defect_rejects(
    trust: TrustStore, tdattributes: int, policy: IntelPolicy, code: Code
) -> None:
    v = _verified("P2", trust)
    assert v.quote.td_body.tdattributes_int == TD_ATTR_SEPT_VE_DISABLE
    body = replace(v.quote.td_body, tdattributes=tdattributes.to_bytes(8, "little"))
    assert _codes(replace(v, quote=replace(v.quote, body=body)), policy) == [code]


def test_appraise_intel_reports_every_rule_group_in_order(trust: TrustStore) -> None:
    # One defect per rule group, all at once: attributes and service TD first, measurements last.
    v = _verified("P2", trust)  # TD 1.0, UpToDate, no advisories, evaluation data number 17
    assert v.quote.body.reportdata != bytes(64)
    body = replace(
        v.quote.td_body,
        tdattributes=(TD_ATTR_SEPT_VE_DISABLE | TD_ATTR_DEBUG).to_bytes(8, "little"),
        mrservicetd=b"\x01" * 48,
    )
    v = replace(v, quote=replace(v.quote, body=body), tcb=replace(v.tcb, advisory_ids=("INTEL-SA-00615",)))
    policy = IntelPolicy(
        accepted_tcb_statuses=frozenset({"SWHardeningNeeded"}),
        denied_advisory_ids=frozenset({"INTEL-SA-00615"}),
        min_tcb_eval_number=18,
        expected_report_data=bytes(64),
        allowed_measurements={"mrtd": frozenset({bytes(48)})},
    )
    assert _codes(v, policy) == [
        Code.INTEL_POLICY_TD_DEBUG,
        Code.INTEL_POLICY_MRSERVICETD_NONZERO,
        Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
        Code.INTEL_POLICY_ADVISORY_DENIED,
        Code.INTEL_POLICY_TCB_EVAL_NUMBER_TOO_LOW,
        Code.INTEL_POLICY_REPORT_DATA_MISMATCH,
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED,
    ]


def test_parse_intel_policy_round_trip() -> None:
    policy = parse_intel_policy(
        '{"accepted_tcb_statuses": ["UpToDate"], "allow_debug": false, "min_tcb_eval_number": 17,'
        ' "allowed_measurements": {"mrtd": ["' + "00" * 48 + '"]}, "expected_report_data": "' + "11" * 64 + '"}'
    )
    assert policy.accepted_tcb_statuses == frozenset({"UpToDate"})
    assert policy.min_tcb_eval_number == 17
    assert policy.allowed_measurements["mrtd"] == frozenset({bytes(48)})
    assert policy.expected_report_data == b"\x11" * 64


def test_parse_intel_policy_sgx_signer_keys() -> None:
    policy = parse_intel_policy('{"allowed_isv_prod_ids": [1, 2], "min_isv_svn": 3}')
    assert (policy.allowed_isv_prod_ids, policy.min_isv_svn) == (frozenset({1, 2}), 3)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "not json",
        '{"alow_debug": true}',
        '{"allow_debug": "yes"}',
        '{"accepted_tcb_statuses": ["Revoked"]}',
        '{"accepted_tcb_statuses": ["Sometimes"]}',
        '{"expected_report_data": "abcd"}',
        '{"allowed_measurements": {"mrtd": ["00"]}}',
        '{"allowed_measurements": {"mrfoo": ["' + "00" * 48 + '"]}}',
        '{"min_tcb_eval_number": "17"}',
        '{"allowed_isv_prod_ids": []}',
        '{"allowed_isv_prod_ids": ["1"]}',
        '{"allowed_isv_prod_ids": [65536]}',
        '{"min_isv_svn": -1}',
        '{"min_isv_svn": 1.5}',
    ],
    ids=[
        "not-object",
        "not-json",
        "typo-key",
        "bool-as-string",
        "revoked",
        "unknown-status",
        "short-reportdata",
        "short-measurement",
        "unknown-measurement",
        "eval-as-string",
        "isv-prod-ids-empty",
        "isv-prod-id-as-string",
        "isv-prod-id-over-16-bits",
        "isv-svn-negative",
        "isv-svn-not-integer",
    ],
)
def test_parse_intel_policy_invalid_rejected(text: str) -> None:
    with pytest.raises(UsageError) as exc:
        parse_intel_policy(text)
    assert exc.value.code == Code.POLICY_INVALID
