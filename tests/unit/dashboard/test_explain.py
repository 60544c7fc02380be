"""verifier.dashboard.explain: each family of stored reason codes reads as a sentence naming what failed, with
expected vs actual; unknown codes fall back to the stored message; checks come out passed / failed / not reached
in decision order; measurements line up expected vs actual."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from verifier.dashboard.explain import (
    Check,
    CheckStatus,
    check_of,
    explain,
    explain_detail,
    measurement_rows,
    reference_phrase,
)
from verifier.dashboard.service import AttestationDetail, EvaluationView, ReasonView, ReferenceSetView
from verifier.errors import Code, fault_of

MRTD = "46b9" * 24
OTHER = "7c1a" * 24
SET_ID = uuid.UUID("5e7a0000-0000-4000-8000-000000000001")
REF = "the reference set 'acme-llm 1.2 · intel-tdx' (5e7a0000) in force at decision time"
T = datetime(2026, 1, 1, tzinfo=UTC)


def _reason(code: str, message: str = "", expected: str | None = None, actual: str | None = None) -> ReasonView:
    return ReasonView(code, fault_of(code).value, message, expected, actual)


def _sentence(code: str, message: str = "", expected: str | None = None, actual: str | None = None, **kw: Any) -> str:
    return explain(_reason(code, message, expected, actual), **kw).sentence


# -- per code family ------------------------------------------------------------------------------------------------


def test_explain_mrtd_mismatch_names_the_measurement_and_the_set() -> None:
    reason = _reason(
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED, "mrtd is not in the allow-list", f"one of {MRTD}", OTHER
    )
    explained = explain(reason, platform="intel-tdx", claims={"mrtd": OTHER}, reference=REF)
    assert explained.text == f"MRTD differs from {REF}: expected one of {MRTD}, got {OTHER}"
    assert (explained.code, explained.fault) == ("intel.policy.measurement_not_allowed", "policy")


def test_explain_measurement_named_from_claims_when_the_message_does_not() -> None:
    sentence = _sentence(
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED,
        "not allowed",
        "one of aa",
        OTHER,
        claims={"rtmr2": OTHER},
        reference=REF,
    )
    assert sentence == f"RTMR2 differs from {REF}"


def test_explain_measurement_the_tee_does_not_report() -> None:
    sentence = _sentence(
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED, "policy lists rtmr0, which this TEE type does not report",
        "rtmr0", "absent", reference=REF,
    )  # fmt: skip
    assert (
        sentence
        == "The reference set 'acme-llm 1.2 · intel-tdx' (5e7a0000) in force at decision time pins RTMR0, which "
        "this TEE type does not report"
    )


def test_explain_snp_measurement_names_the_field() -> None:
    sentence = _sentence(Code.SNP_POLICY_HOST_DATA, "HOST_DATA matches no allowed value", "aa", "bb", reference=REF)
    assert sentence.startswith("HOST_DATA differs from ")


@pytest.mark.parametrize(
    ("code", "starts"),
    [
        (Code.INTEL_POLICY_REPORT_DATA_MISMATCH, "REPORTDATA does not bind"),
        (Code.SNP_POLICY_REPORT_DATA, "REPORT_DATA does not bind"),
        (Code.ATTESTATION_BINDING_MISMATCH, "The evidence's runtime data does not name"),
    ],
    ids=["intel-reportdata", "snp-report-data", "runtime-data"],
)
def test_explain_binding_mismatch(code: Code, starts: str) -> None:
    assert _sentence(code, "x", "aa", "bb").startswith(starts)


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (Code.INTEL_POLICY_TD_DEBUG, "The TD runs in debug mode"),
        (Code.INTEL_POLICY_SGX_DEBUG, "debug enclave"),
        (Code.SNP_POLICY_DEBUG, "POLICY.DEBUG"),
    ],
    ids=["td", "sgx", "snp"],
)
def test_explain_debug(code: Code, needle: str) -> None:
    assert needle in _sentence(code, "debug", "0x00", "0x01")


def test_explain_tcb_status_not_accepted_names_the_status_and_lists_the_accepted() -> None:
    explained = explain(
        _reason(
            Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
            "TCB status is not accepted",
            "SWHardeningNeeded | UpToDate",
            "OutOfDate",
        )
    )
    assert explained.text == (
        "The platform's TCB status OutOfDate is not one the appraisal policy accepts: "
        "expected one of SWHardeningNeeded, UpToDate, got OutOfDate"
    )


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (Code.INTEL_COLLATERAL_TCB_INFO_EXPIRED, "Intel's TCB Info was past its next update"),
        (Code.INTEL_COLLATERAL_QE_IDENTITY_EXPIRED, "Intel's QE Identity was past its next update"),
        (Code.SNP_CRL_EXPIRED, "The certificate revocation list was past its next update"),
        (Code.INTEL_COLLATERAL_MISSING, "No copy of Intel's collateral"),
        (Code.SNP_CRL_MISSING, "No copy of the certificate revocation list"),
        (Code.INTEL_COLLATERAL_UNAVAILABLE, "Intel PCS/PCCS could not be reached"),
        (Code.SNP_LEAF_UNAVAILABLE, "AMD KDS could not be reached, so the chip's VCEK certificate"),
        (Code.NVIDIA_RIM_UNAVAILABLE, "the NVIDIA service could not be reached"),
        (Code.INTEL_COLLATERAL_TCB_INFO_NOT_YET_VALID, "Intel's TCB Info was not yet valid"),
    ],
    ids=["tcb-info-expired", "qe-identity-expired", "crl-expired", "intel-missing", "crl-missing",
         "pcs-unavailable", "kds-unavailable", "rim-unavailable", "not-yet-valid"],
)  # fmt: skip
def test_explain_collateral_expired_missing_unavailable(code: Code, needle: str) -> None:
    assert needle.lower() in _sentence(code, "x").lower()


@pytest.mark.parametrize(
    ("code", "starts"),
    [
        (Code.INTEL_PCK_CHAIN_UNTRUSTED, "The PCK certificate chain does not lead to Intel's pinned root"),
        (Code.SNP_CHAIN_UNTRUSTED, "The VCEK certificate chain does not lead to AMD's pinned root"),
        (Code.NVIDIA_CHAIN_UNTRUSTED, "The device certificate chain does not lead to NVIDIA's pinned root"),
        (Code.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED, "The collateral's signing chain does not lead to Intel's"),
    ],
    ids=["pck", "vcek", "nvidia", "intel-signing"],
)
def test_explain_chain_untrusted(code: Code, starts: str) -> None:
    assert _sentence(code, "x").startswith(starts)


@pytest.mark.parametrize(
    ("code", "starts"),
    [
        (Code.INTEL_QUOTE_SIGNATURE_INVALID, "The quote's signature does not verify"),
        (Code.SNP_SIGNATURE_INVALID, "The attestation report's signature does not verify"),
        (Code.NVIDIA_REPORT_SIGNATURE_INVALID, "The GPU report's signature does not verify"),
    ],
    ids=["quote", "snp-report", "gpu-report"],
)
def test_explain_signature_invalid(code: Code, starts: str) -> None:
    assert _sentence(code, "x").startswith(starts)


@pytest.mark.parametrize(
    ("code", "message", "needle"),
    [
        (Code.CHALLENGE_EXPIRED, "nonce had expired when the evidence arrived", "nonce had expired"),
        (Code.CHALLENGE_EXPIRED, "the request waited too long for its decision; attest again", "waited too long"),
        (Code.CHALLENGE_REPLAYED, "nonce has already been used", "already used by an earlier attestation"),
    ],
    ids=["expired", "decision-delay", "replayed"],
)
def test_explain_challenge(code: Code, message: str, needle: str) -> None:
    assert needle in _sentence(code, message)


@pytest.mark.parametrize(
    ("code", "actual", "needle"),
    [
        (Code.ENTITLEMENT_SEATS_EXHAUSTED, "4", "Every seat of the customer's licence is held"),
        (Code.ENTITLEMENT_GPUS_EXCEEDED, "3", "more GPUs than the customer's licence allows"),
        (Code.ENTITLEMENT_PLATFORM_NOT_ALLOWED, "amd-sev-snp", "does not cover the platform amd-sev-snp"),
        (Code.ENTITLEMENT_EXPIRED, "2026-01-02", "licence had expired"),
        (Code.ENTITLEMENT_CUSTOMER_SUSPENDED, "suspended", "The customer is suspended"),
        (Code.ENTITLEMENT_INACTIVE, "suspended", "licence is suspended, not active"),
    ],
    ids=["seats", "gpus", "platform", "expired", "customer-suspended", "entitlement-suspended"],
)
def test_explain_entitlement_refusals(code: Code, actual: str, needle: str) -> None:
    explained = explain(_reason(code, "x", "e", actual))
    assert needle in explained.sentence
    assert (explained.expected, explained.actual) == ("e", actual)


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (Code.ATTESTATION_REFERENCE_VALUES_MISSING, "no active reference-value set for nvidia-gpu"),
        (Code.ATTESTATION_REFERENCE_VALUES_UNCONSTRAINED, "pin no workload measurement"),
    ],
    ids=["missing", "unconstrained"],
)
def test_explain_reference_values(code: Code, needle: str) -> None:
    assert needle in _sentence(code, "x", None, "nvidia-gpu", platform="nvidia-gpu")


def test_explain_nvidia_measurement_mismatch_names_index_and_rim() -> None:
    claims = {"rims": {"vbios": {"id": "NV_GPU_VBIOS_1010"}}}
    explained = explain(
        _reason(
            Code.NVIDIA_MEASUREMENT_MISMATCH,
            "GPU 3: measurement index 9 (SPDM block 10, vbios RIM) matches no reference value",
            "aa | bb",
            "cc",
        ),
        platform="nvidia-gpu",
        device="GPU-3",
        claims=claims,
    )
    assert explained.text == (
        "GPU-3: measurement index 9 (SPDM block 10) differs from NVIDIA's signed VBIOS RIM 'NV_GPU_VBIOS_1010': "
        "expected one of aa, bb, got cc"
    )


def test_explain_nvidia_nonce_mismatch_names_the_device() -> None:
    sentence = _sentence(Code.NVIDIA_NONCE_MISMATCH, "GPU 0: x", "aa", "bb", device="GPU-0")
    assert sentence.startswith("GPU-0: the SPDM request nonce is not the one")


@pytest.mark.parametrize(
    ("code", "message", "needle"),
    [
        (Code.NVIDIA_OCSP_REVOKED, "GPU 1: device leaf (CN=x) is revoked", "says the device leaf certificate is"),
        (Code.NVIDIA_OCSP_STALE, "OCSP response is past nextUpdate (+ grace)", "out of date"),
        (Code.NVIDIA_OCSP_MISSING, "no OCSP response for device leaf (CN=x)", "no OCSP answer was available for the"),
    ],
    ids=["revoked", "stale", "missing"],
)  # fmt: skip
def test_explain_nvidia_ocsp(code: Code, message: str, needle: str) -> None:
    assert needle in _sentence(code, message, "good", "keyCompromise", device="GPU-1")


def test_explain_nvidia_rim_missing() -> None:
    explained = explain(
        _reason(Code.NVIDIA_RIM_MISSING, "GPU 0: no vbios RIM", "NV_GPU_VBIOS_X", "none"), device="GPU-0"
    )
    assert explained.sentence.startswith("GPU-0: NVIDIA's reference integrity manifest for the VBIOS was not available")
    assert explained.expected == "NV_GPU_VBIOS_X"


def test_explain_unknown_code_falls_back_to_the_stored_message() -> None:
    explained = explain(_reason("future.thing.failed", "the flux capacitor is off", "on", "off"))
    assert explained.text == "The flux capacitor is off: expected on, got off"
    assert (explained.code, explained.fault) == ("future.thing.failed", "internal")


def test_explain_without_values_ends_the_sentence() -> None:
    assert (
        explain(_reason(Code.CHALLENGE_REPLAYED, "nonce has already been used")).text.endswith("retried request.")
        is False
    )
    assert explain(_reason(Code.CHALLENGE_REPLAYED, "nonce has already been used")).text.endswith(".")


# -- checks and reference sets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "check"),
    [
        ("challenge.replayed", Check.CHALLENGE),
        ("intel.quote.truncated", Check.FORMAT),
        ("intel.pck.chain_untrusted", Check.SIGNATURE),
        ("intel.collateral.tcb_info_expired", Check.COLLATERAL),
        ("nvidia.nonce.mismatch", Check.BINDING),
        ("intel.policy.tcb_status_not_accepted", Check.TCB),
        ("intel.policy.td_debug", Check.CONFIGURATION),
        ("intel.policy.measurement_not_allowed", Check.MEASUREMENTS),
        ("nvidia.policy.cpu_required", Check.TOGETHER),
        ("entitlement.seats_exhausted", Check.LICENCE),
        ("attestation.model_key_missing", Check.RELEASE),
        ("future.thing", Check.OTHER),
    ],
    ids=str,
)
def test_check_of_places_each_family(code: str, check: Check) -> None:
    assert check_of(code) is check


def _set(platform: str) -> ReferenceSetView:
    return ReferenceSetView(SET_ID, platform, "active", T, None, {"allowed_measurements": {"mrtd": [MRTD]}})


def test_reference_phrase_one_set_is_named_as_in_force() -> None:
    phrase = reference_phrase([_set("intel-tdx"), _set("nvidia-gpu")], "intel-tdx", model="acme-llm", version="1.2")
    assert phrase == REF


def test_reference_phrase_recorded_set_is_named_as_the_one_used() -> None:
    phrase = reference_phrase([_set("intel-tdx")], "intel-tdx", model="acme-llm", version="1.2", recorded=True)
    assert phrase == "the reference set 'acme-llm 1.2 · intel-tdx' (5e7a0000)"


def test_reference_phrase_several_sets_are_counted_not_chosen() -> None:
    phrase = reference_phrase([_set("intel-tdx"), _set("intel-tdx")], "intel-tdx", model="m", version="1")
    assert phrase == "the reference values of m 1 for intel-tdx (2 sets were in force)"


def test_measurement_rows_cpu_against_the_set() -> None:
    rows = measurement_rows("intel-tdx", {"mrtd": OTHER.upper()}, {"allowed_measurements": {"mrtd": [MRTD]}})
    assert [(r.name, r.expected, r.actual, r.matches) for r in rows] == [("MRTD", (MRTD,), OTHER, False)]


def test_measurement_rows_unconstrained_mrtd_has_no_verdict() -> None:
    [row] = measurement_rows("intel-tdx", {"mrtd": MRTD}, None)
    assert (row.expected, row.matches) == ((), None)


def test_measurement_rows_gpu_from_the_stored_comparison() -> None:
    claims = {
        "measurements": [
            {"index": 9, "block": 10, "source": "vbios", "result": "mismatch", "expected": ["aa"], "actual": "bb"}
        ]
    }
    [row] = measurement_rows("nvidia-gpu", claims, None)
    assert (row.name, row.expected, row.actual, row.matches, row.source) == (
        "index 9 (block 10)",
        ("aa",),
        "bb",
        False,
        "vbios",
    )


def _evaluation(
    platform: str, reasons: tuple[ReasonView, ...] = (), *, verified: bool = True, device: str | None = None
) -> EvaluationView:
    return EvaluationView(platform, device, verified, not reasons, False, "UpToDate", (), reasons, {"mrtd": OTHER}, {})


def _detail(
    status: str,
    reasons: tuple[ReasonView, ...],
    evaluations: tuple[EvaluationView, ...],
    platforms: tuple[str, ...] = ("intel-tdx",),
) -> AttestationDetail:
    return AttestationDetail(
        id=uuid.uuid4(), kind="attest", status=status, deployment_name="prod", deployment_id=None,
        entitlement_id=uuid.uuid4(), customer="acme", model="acme-llm", model_version="1.2", platforms=platforms,
        created_at=T, decided_at=T, simulated=False, lease_id=None, reasons=reasons, evaluations=evaluations,
        collateral={}, timings={}, token=None, reference_sets=(_set("intel-tdx"),), policies=(),
        inputs_recorded=False,
    )  # fmt: skip


def _statuses(rows: Any) -> dict[Check, CheckStatus]:
    return {r.check: r.status for r in rows}


def test_explain_detail_mrtd_rejection_summary_and_checks() -> None:
    reason = _reason(
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED, "mrtd is not in the allow-list", f"one of {MRTD}", OTHER
    )
    explained = explain_detail(_detail("rejected", (reason,), (_evaluation("intel-tdx", (reason,)),)))
    [summary] = explained.summary
    assert summary.text == f"MRTD differs from {REF}: expected one of {MRTD}, got {OTHER}"
    assert _statuses(explained.checks) == {
        Check.CHALLENGE: CheckStatus.PASSED,
        Check.EVIDENCE: CheckStatus.FAILED,
        Check.LICENCE: CheckStatus.NOT_REACHED,
        Check.RELEASE: CheckStatus.NOT_REACHED,
    }
    [item] = explained.evaluations
    statuses = _statuses(item.checks)
    assert statuses[Check.MEASUREMENTS] is CheckStatus.FAILED
    assert statuses[Check.SIGNATURE] is CheckStatus.PASSED
    assert [(m.name, m.matches) for m in item.measurements] == [("MRTD", False)]


def test_explain_detail_unverified_item_does_not_claim_later_checks_passed() -> None:
    reason = _reason(Code.INTEL_PCK_CHAIN_UNTRUSTED, "x")
    explained = explain_detail(_detail("rejected", (reason,), (_evaluation("intel-tdx", (reason,), verified=False),)))
    statuses = _statuses(explained.evaluations[0].checks)
    assert statuses[Check.SIGNATURE] is CheckStatus.FAILED
    assert statuses[Check.MEASUREMENTS] is CheckStatus.NOT_REACHED
    assert statuses[Check.FORMAT] is CheckStatus.NOT_REACHED


def test_explain_detail_licence_refusal_fails_licence_after_passed_evidence() -> None:
    reason = _reason(Code.ENTITLEMENT_SEATS_EXHAUSTED, "x", "fewer than 1", "1")
    explained = explain_detail(_detail("rejected", (reason,), (_evaluation("intel-tdx"),)))
    assert _statuses(explained.checks) == {
        Check.CHALLENGE: CheckStatus.PASSED,
        Check.EVIDENCE: CheckStatus.PASSED,
        Check.LICENCE: CheckStatus.FAILED,
        Check.RELEASE: CheckStatus.NOT_REACHED,
    }
    assert explained.summary[0].sentence == "Every seat of the customer's licence is held by another deployment"


def test_explain_detail_gpu_reason_takes_its_device_from_the_evaluation() -> None:
    reason = _reason(
        Code.NVIDIA_NONCE_MISMATCH, "GPU 1: the SPDM request nonce is not this device's binding", "aa", "bb"
    )
    gpu = _evaluation("nvidia-gpu", (reason,), verified=False, device="GPU-1")
    explained = explain_detail(
        _detail("rejected", (reason,), (_evaluation("intel-tdx"), gpu), ("intel-tdx", "nvidia-gpu"))
    )
    assert explained.summary[0].sentence.startswith("GPU-1: ")
    assert Check.TOGETHER in _statuses(explained.checks)
    assert [e.title for e in explained.evaluations] == ["intel-tdx", "nvidia-gpu GPU-1"]


def test_explain_detail_acceptance_passes_every_check() -> None:
    explained = explain_detail(_detail("accepted", (), (_evaluation("intel-tdx"),)))
    assert explained.summary == ()
    assert set(_statuses(explained.checks).values()) == {CheckStatus.PASSED}
    assert set(_statuses(explained.evaluations[0].checks).values()) == {CheckStatus.PASSED}


@pytest.mark.parametrize(
    ("code", "check", "says"),
    [
        (Code.ATTESTATION_SUPERSEDED_BY_NEWER, Check.LICENCE, "A newer request of the same deployment"),
        (Code.ATTESTATION_REQUEST_STALE, Check.CHALLENGE, "too old when a worker reached it"),
    ],
)
def test_explain_late_request_codes_read_as_answers(code: Code, check: Check, says: str) -> None:
    assert check_of(code.value) is check
    assert says in _sentence(code, "message", None, None)
