"""``keyward verify`` for Azure confidential VMs: the az-snp-vtpm / az-tdx-vtpm evidence JSON a Confidential
Containers guest sends, ``--nonce``, ``--collateral``, ``--certs``; the same JSON fields and exit codes as for the
other platforms (0 accepted, 1 rejected, 2 usage)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.support.azure import evidence_json
from tests.support.vectors import AZURE_CASES, AZURE_VECTORS
from verifier.cli import main

S5, S6, T1, T5 = (AZURE_CASES[k] for k in ("S5", "S6", "T1", "T5"))
S6_EVIDENCE = S6.dir / "upstream" / "evidence-v2.json"
T1_EVIDENCE = T1.dir / "upstream" / "evidence-v1.json"
T1_COLLATERAL = AZURE_VECTORS / "../intel/assembled/automata-solana-2025-07_tdx_00806f050000.collateral.json"


def _run(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(main, [*args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


def _nonce(case_id: str) -> str:
    return (AZURE_CASES[case_id].read("nonce.bin") or b"").hex()


def test_cli_verify_azure_snp_trustee_v2_accepted() -> None:
    code, doc = _run("verify", str(S6_EVIDENCE), "--nonce", _nonce("S6"), "--at", "2025-01-29T16:33:43Z")
    assert code == 0
    assert (doc["platform"], doc["verified"], doc["accepted"]) == ("azure-sev-snp-vtpm", True, True)
    claims = doc["claims"]
    assert isinstance(claims, dict)
    assert claims["user_data_bound"] is True
    assert claims["measurement"] == S6.raw["snp"]["measurement"]
    assert len(claims["pcrs"]) == 24
    assert doc["tcb_status"] is None


def test_cli_verify_azure_snp_wrong_nonce_rejected() -> None:
    code, doc = _run("verify", str(S6_EVIDENCE), "--nonce", "00" * 48, "--at", "2025-01-29T16:33:43Z")
    assert code == 1
    assert doc["verified"] is False
    assert [r["code"] for r in doc["reasons"]] == ["azure.tpm.nonce_mismatch"]  # type: ignore[attr-defined]


def test_cli_verify_azure_snp_without_nonce_verifies_unbound() -> None:
    code, doc = _run("verify", str(S6_EVIDENCE), "--at", "2025-01-29T16:33:43Z")
    assert code == 0
    claims = doc["claims"]
    assert isinstance(claims, dict)
    assert (claims["nonce_checked"], claims["user_data_bound"]) == (False, False)


def test_cli_verify_azure_tdx_with_collateral_rejected_by_policy() -> None:
    code, doc = _run(
        "verify", str(T1_EVIDENCE), "--nonce", _nonce("T1"), "--collateral", str(T1_COLLATERAL), "--at", "1751883626"
    )
    assert code == 1
    assert (doc["platform"], doc["verified"], doc["tcb_status"]) == ("azure-tdx-vtpm", True, "OutOfDate")
    assert [r["code"] for r in doc["reasons"]] == [  # type: ignore[attr-defined]
        "intel.policy.td_sept_ve_disable_off",
        "intel.policy.tcb_status_not_accepted",
    ]


def test_cli_verify_azure_tdx_without_collateral_rejected() -> None:
    code, doc = _run("verify", str(T1_EVIDENCE), "--nonce", _nonce("T1"), "--at", "1751883626")
    assert code == 1
    assert [r["code"] for r in doc["reasons"]] == ["intel.collateral.missing"]  # type: ignore[attr-defined]


def test_cli_verify_azure_tdx_ak_certificate_and_policy(tmp_path: Path) -> None:
    evidence = tmp_path / "t5.json"
    evidence.write_bytes(evidence_json(T5, version=2))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"azure": {"require_ak_cert": True, "allowed_pcrs": {"4": ["00" * 32]}}}))
    args = ["verify", str(evidence), "--nonce", _nonce("T5"), "--collateral", str(T5.dir / "collateral.json")]
    code, doc = _run(*args, "--at", "1780922561", "--policy", str(policy))
    assert code == 1
    assert [r["code"] for r in doc["reasons"]] == ["azure.policy.pcr_not_allowed"]  # type: ignore[attr-defined]
    claims = doc["claims"]
    assert isinstance(claims, dict)
    assert isinstance(claims["ak_cert"], dict)
    policy.write_text(json.dumps({"azure": {"require_ak_cert": True}}))
    assert _run(*args, "--at", "1780922561", "--policy", str(policy))[0] == 0


def test_cli_verify_azure_certs_replace_the_evidence_vcek(tmp_path: Path) -> None:
    """``--certs`` gives the VCEK: another chip's is refused by the SNP verifier's own code."""
    evidence = tmp_path / "s5.json"
    evidence.write_bytes(evidence_json(S5))
    other = AZURE_CASES["S1"].dir / "vcek_ask_ark.pem"
    code, doc = _run("verify", str(evidence), "--nonce", _nonce("S5"), "--certs", str(other), "--at", "1738168015")
    assert code == 1
    assert doc["verified"] is False
    assert doc["reasons"][0]["code"].startswith("snp.leaf.")  # type: ignore[index]


def test_cli_verify_azure_malformed_evidence_clean_rejection(tmp_path: Path) -> None:
    evidence = tmp_path / "bad.json"
    evidence.write_text(json.dumps({"version": 9, "hcl_report": "", "tpm_quote": {}, "vcek": ""}))
    code, doc = _run("verify", str(evidence), "--nonce", "00")
    assert code == 1
    assert [r["code"] for r in doc["reasons"]] == ["azure.evidence.malformed"]  # type: ignore[attr-defined]


def test_cli_verify_azure_bad_nonce_or_policy_is_a_usage_error(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["verify", str(S6_EVIDENCE), "--nonce", "zz"]).exit_code == 2
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allowed_pcrs": {"24": ["00" * 32]}}))
    assert runner.invoke(main, ["verify", str(S6_EVIDENCE), "--policy", str(policy)]).exit_code == 2


def test_cli_verify_azure_human_report() -> None:
    result = CliRunner().invoke(main, ["verify", str(S6_EVIDENCE), "--nonce", _nonce("S6"), "--at", "1738168423"])
    assert result.exit_code == 0
    assert "azure-sev-snp-vtpm (evidence v2, HCL report v1)" in result.output
    assert "HCLAkPub -> TPM quote" in result.output
