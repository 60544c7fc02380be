"""Azure CVM verification on simulated evidence (:mod:`verifier.simulation.azure_cvm_builder`): genuine evidence of
both kinds is accepted, and every single defect (claims hash, AK swap, nonce, PCR digest, unsigned-header lies, the
hash type, a TD quote whose body is not the HCL TD report, truncations, AK certificate faults) is rejected with
its own code; the result is marked simulated."""

from __future__ import annotations

from typing import Any, Final

import pytest

from verifier.appraisal.azure_cvm import parse_azure_snp_policy, parse_azure_tdx_policy
from verifier.evidence.azure_cvm import parse_azure_evidence
from verifier.platforms.azure_evidence import evaluate_azure_evidence
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import Verifying
from verifier.simulation.azure_cvm_builder import TDX_ONLY, AzureCvmBuilder, AzureDefect, Kind, expected_code
from verifier.trust.intel_collateral import parse_collateral_json

BUILDER: Final = AzureCvmBuilder()


def _evaluate(kind: Kind, defect: AzureDefect | None = None, **policy: Any) -> Evaluation:
    ev = BUILDER.build(kind, defect)
    document = {"expected_nonce": ev.nonce.hex(), "require_ak_cert": True, **policy}
    parsed = parse_azure_snp_policy(document) if kind == "snp" else parse_azure_tdx_policy(document)
    collateral = None if ev.collateral_json is None else parse_collateral_json(ev.collateral_json)
    try:
        evidence = parse_azure_evidence(ev.evidence_json, kind)
    except Exception as e:  # the evidence JSON itself is never a defect here
        raise AssertionError(f"builder produced undecodable evidence: {e}") from e
    return evaluate_azure_evidence(evidence, parsed, Verifying(ev.trust_store, ev.now), collateral=collateral)


@pytest.mark.parametrize("kind", ["snp", "tdx"])
def test_azure_simulated_genuine_accepted(kind: Kind) -> None:
    result = _evaluate(kind)
    assert result.accepted, result.reasons
    assert result.simulated
    assert result.claims["user_data_bound"] is True
    assert result.claims["ak_cert"] is not None


CASES: Final = [(kind, d) for d in AzureDefect for kind in ("snp", "tdx") if kind == "tdx" or d not in TDX_ONLY]


@pytest.mark.parametrize(("kind", "defect"), CASES, ids=[f"{k}-{d.value}" for k, d in CASES])
def test_azure_simulated_defect_rejected_with_its_code(kind: Kind, defect: AzureDefect) -> None:
    result = _evaluate(kind, defect)
    assert not result.verified
    assert [r.code for r in result.reasons] == [expected_code(defect, kind)]
