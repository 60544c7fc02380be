"""Appraisal of verified Azure CVMs (simulated evidence): the VM configuration knobs, PCR allow-lists, binding
requirements and the hardware policy beside them, one rule per case; the policy document's own errors."""

from __future__ import annotations

import hashlib
from typing import Any, Final

import pytest

from verifier.appraisal.azure_cvm import parse_azure_snp_policy, parse_azure_tdx_policy
from verifier.errors import Code, UsageError
from verifier.evidence.azure_cvm import parse_azure_evidence
from verifier.platforms.azure_evidence import evaluate_azure_evidence
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import Verifying
from verifier.simulation.azure_cvm_builder import AzureCvmBuilder, Kind
from verifier.trust.intel_collateral import parse_collateral_json

BUILDER: Final = AzureCvmBuilder()
PCR7: Final = hashlib.sha256(b"pcr7").digest().hex()


def _evaluate(kind: Kind, policy: dict[str, Any], **build: Any) -> Evaluation:
    ev = BUILDER.build(kind, **build)
    document = {"expected_nonce": ev.nonce.hex(), **policy}
    parsed = parse_azure_snp_policy(document) if kind == "snp" else parse_azure_tdx_policy(document)
    collateral = None if ev.collateral_json is None else parse_collateral_json(ev.collateral_json)
    evidence = parse_azure_evidence(ev.evidence_json, kind)
    return evaluate_azure_evidence(evidence, parsed, Verifying(ev.trust_store, ev.now), collateral=collateral)


def _codes(result: Evaluation) -> list[Code]:
    assert result.verified, result.reasons
    return [r.code for r in result.reasons]


@pytest.mark.parametrize(
    ("config", "policy", "codes"),
    [
        ({"secure-boot": False}, {}, [Code.AZURE_POLICY_SECURE_BOOT]),
        ({"secure-boot": False}, {"require_secure_boot": False}, []),
        ({"tpm-enabled": False}, {}, [Code.AZURE_POLICY_TPM_DISABLED]),
        ({"tpm-enabled": False}, {"require_tpm_enabled": False}, []),
        ({}, {"allow_console": False}, [Code.AZURE_POLICY_CONSOLE_ENABLED]),
        ({"console-enabled": False}, {"allow_console": False}, []),
    ],
    ids=["secure-boot", "secure-boot-allowed", "tpm", "tpm-allowed", "console", "console-off"],
)
def test_appraise_azure_vm_configuration(config: dict[str, Any], policy: dict[str, Any], codes: list[Code]) -> None:
    assert _codes(_evaluate("snp", policy, vm_configuration=config)) == codes


@pytest.mark.parametrize("kind", ["snp", "tdx"])
def test_appraise_azure_pcr_allow_lists(kind: Kind) -> None:
    assert _codes(_evaluate(kind, {"allowed_pcrs": {"7": [PCR7, "00" * 32]}})) == []
    wrong = _evaluate(kind, {"allowed_pcrs": {"7": ["00" * 32]}})
    assert _codes(wrong) == [Code.AZURE_POLICY_PCR_NOT_ALLOWED]
    assert wrong.reasons[0].actual == PCR7


def test_appraise_azure_pcr_without_values_not_quoted() -> None:
    result = _evaluate("snp", {"allowed_pcrs": {"7": [PCR7]}}, with_pcr_values=False)
    assert _codes(result) == [Code.AZURE_POLICY_PCR_NOT_QUOTED]
    assert result.claims["pcrs"] == {}
    assert result.claims["pcr_digest_verified"] is False


def test_appraise_azure_binding_requirements() -> None:
    assert _codes(_evaluate("snp", {"require_user_data_binding": True}, version=1)) == [
        Code.AZURE_POLICY_USER_DATA_REQUIRED
    ]
    assert _codes(_evaluate("snp", {"require_user_data_binding": True})) == []


def test_appraise_azure_hardware_policy_applies() -> None:
    assert _codes(_evaluate("snp", {"allowed_measurements": ["00" * 48]})) == [Code.SNP_POLICY_MEASUREMENT]
    assert _codes(_evaluate("tdx", {"allowed_measurements": {"mrtd": ["00" * 48]}})) == [
        Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED
    ]


@pytest.mark.parametrize(
    "document",
    [
        {"require_secure_boot": "yes"},
        {"allowed_pcrs": {"24": ["00" * 32]}},
        {"allowed_pcrs": {"7": []}},
        {"allowed_pcrs": {"7": ["zz"]}},
        {"allowed_pcrs": ["00" * 32]},
        {"expected_nonce": "00" * 65},
        {"expected_nonce": "00", "expected_report_data": "01"},
        {"no_such_key": True},
    ],
    ids=["bool", "pcr-index", "pcr-empty", "pcr-hex", "pcr-not-map", "nonce-long", "nonces-disagree", "unknown"],
)
def test_parse_azure_policy_invalid(document: dict[str, Any]) -> None:
    for parse in (parse_azure_snp_policy, parse_azure_tdx_policy):
        with pytest.raises(UsageError) as e:
            parse(document)
        assert e.value.code is Code.POLICY_INVALID
