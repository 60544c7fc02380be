"""``keyward verify`` for AMD SEV-SNP: the same JSON fields and exit codes as for Intel."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tests.support.vectors import AMD_CASES, AMD_VECTORS
from verifier.cli import main

ACI = AMD_VECTORS / "microsoft-confidential-sidecar-containers"
M1 = next(c for c in AMD_CASES if c.id == "M1")
G1 = next(c for c in AMD_CASES if c.id == "G1")
T2 = next(c for c in AMD_CASES if c.id == "T2")
#: M1, T1 and G1 (2022-2023) run Milan SNP SPL 5-8, below the built-in AMD-SB-3019 floor (0x18): tests of other
#: rules lift it explicitly, as an operator would have to.
NO_MILAN_FLOOR = json.dumps({"snp": {"min_tcb_override": {"milan": {}}}})


def _run(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(main, [*args, "--json"])
    return result.exit_code, json.loads(result.output)


def _below_floor(tmp_path: Path, *args: str) -> tuple[int, dict[str, object]]:
    """:func:`_run` with the Milan TCB floor lifted (``--policy``)."""
    policy = tmp_path / "no-milan-floor.json"
    policy.write_text(NO_MILAN_FLOOR)
    return _run(*args, "--policy", str(policy))


def test_cli_verify_snp_below_tcb_floor_rejected() -> None:
    code, doc = _run(
        "verify", str(M1.report), "--certs", str(ACI / "uvm_host_amd_certificate.pem"), "--at", "2022-11-30T01:55:56Z"
    )
    assert code == 1
    assert doc["verified"] is True
    assert [r["code"] for r in doc["reasons"]] == ["snp.policy.tcb_too_low"] * 4  # type: ignore[attr-defined]


def test_cli_verify_snp_confidential_aci_with_cce_policy(tmp_path: Path) -> None:
    code, doc = _below_floor(
        tmp_path,
        "verify",
        str(M1.report),
        "--certs",
        str(ACI / "uvm_host_amd_certificate.pem"),
        "--cce-policy",
        str(ACI / "uvm_security_policy.base64"),
        "--at",
        "2022-11-30T01:55:56Z",
    )
    assert code == 0
    assert (doc["platform"], doc["verified"], doc["accepted"]) == ("amd-sev-snp", True, True)
    claims = doc["claims"]
    assert isinstance(claims, dict)
    assert claims["cce_policy"] == "uvm_security_policy.base64"
    assert claims["host_data"] == M1.raw["host_data"]
    assert claims["product"] == "milan"
    assert claims["signing_key_type"] == "vcek"
    assert claims["reported_tcb"] == {"bootloader": 3, "tee": 0, "snp": 8, "microcode": 115}
    assert claims["policy_decoded"]["debug"] is False


def test_cli_verify_snp_wrong_cce_policy_exit_1(tmp_path: Path) -> None:
    other = tmp_path / "other.rego"
    other.write_text("package policy\n")
    code, doc = _below_floor(
        tmp_path,
        "verify",
        str(M1.report),
        "--certs",
        str(ACI / "uvm_host_amd_certificate.pem"),
        "--cce-policy",
        str(other),
        "--at",
        "2022-11-30T01:55:56Z",
    )
    assert code == 1
    assert [r["code"] for r in doc["reasons"]] == ["snp.policy.host_data_not_allowed"]  # type: ignore[attr-defined]


def test_cli_verify_snp_debug_rejected() -> None:
    code, doc = _run("verify", str(G1.report), "--certs", str(G1.certs), "--at", "2022-09-25T00:55:28Z")
    assert code == 1
    assert doc["verified"] is True
    # G1 is also SNP SPL 5, below the built-in floor, on all four TCBs.
    assert [r["code"] for r in doc["reasons"]] == ["snp.policy.debug"] + ["snp.policy.tcb_too_low"] * 4  # type: ignore[attr-defined]


def test_cli_verify_snp_expired_vlek_at_real_time() -> None:
    code, doc = _run("verify", str(T2.report), "--certs", str(T2.certs))
    assert code == 1
    assert doc["verified"] is False
    assert doc["reasons"][0]["code"] == "snp.leaf.expired"  # type: ignore[index]


def test_cli_verify_snp_configfs_tsm_dump_uses_auxblob() -> None:
    code, doc = _run(
        "verify", str(AMD_VECTORS / "veraison-services/sevsnp-tsm-report_genoa_v3.json"), "--at", "2025-04-21T18:31:36Z"
    )
    assert code == 0
    assert doc["claims"]["product"] == "genoa"  # type: ignore[index]


def test_cli_verify_snp_policy_sections(tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"intel": {"allow_debug": False}, "snp": {"allowed_vmpls": [0, 1]}}))
    case = next(c for c in AMD_CASES if c.id == "K2")  # VMPL 1
    code, _ = _run("verify", str(case.report), "--certs", str(case.certs), "--at", "2025-12-06T06:04:27Z")
    assert code == 1
    code, doc = _run(
        "verify", str(case.report), "--certs", str(case.certs), "--at", "2025-12-06T06:04:27Z", "--policy", str(policy)
    )
    assert code == 0, doc


def test_cli_verify_snp_missing_leaf_clean_rejection() -> None:
    code, doc = _run("verify", str(M1.report), "--at", "2022-11-30T01:55:56Z")
    assert code == 1
    assert doc["platform"] == "amd-sev-snp"
    assert doc["reasons"][0]["code"] == "snp.leaf.missing"  # type: ignore[index]


def test_cli_verify_snp_chain_without_leaf_rejected(tmp_path: Path) -> None:
    code, doc = _run(
        "verify", str(M1.report), "--certs", str(AMD_VECTORS / "roots/ark_milan.pem"), "--at", "2022-11-30T01:55:56Z"
    )
    assert code == 1
    assert doc["reasons"][0]["code"] == "snp.leaf.missing"  # type: ignore[index]


def test_cli_verify_snp_truncated_report(tmp_path: Path) -> None:
    bad = tmp_path / "r.bin"
    bad.write_bytes(M1.report.read_bytes()[:1000])
    code, doc = _run("verify", str(bad), "--certs", str(M1.certs))
    assert code == 1
    assert doc["reasons"][0]["code"] == "snp.report.truncated"  # type: ignore[index]


def test_cli_verify_snp_bad_product_usage_error() -> None:
    result = CliRunner().invoke(main, ["verify", str(M1.report), "--product", "rome"])
    assert result.exit_code == 2


def test_cli_verify_snp_aci_uvm_endorsement_vouches_for_measurement(tmp_path: Path) -> None:
    # The real Microsoft UVM endorsement (COSE_Sign1, pinned Microsoft root) endorses exactly this MEASUREMENT.
    code, doc = _below_floor(
        tmp_path,
        "verify",
        str(M1.report),
        "--certs",
        str(ACI / "uvm_host_amd_certificate.pem"),
        "--cce-policy",
        str(ACI / "uvm_security_policy.base64"),
        "--uvm-endorsement",
        str(ACI / "body.uvm_reference_info.bin"),
        "--at",
        "2023-02-08T06:00:00Z",
    )
    assert code == 0, doc
    claims = doc["claims"]
    assert isinstance(claims, dict)
    (endorsement,) = claims["uvm_endorsements"]
    assert endorsement["matches_report"] is True
    assert endorsement["launch_measurement"] == M1.raw["measurement"]


def test_cli_verify_snp_aci_endorsement_for_other_uvm_rejected(tmp_path: Path) -> None:
    # The endorsement verifies, but the report's MEASUREMENT is not the endorsed one.
    other = next(c for c in AMD_CASES if c.id == "T1")
    code, doc = _below_floor(
        tmp_path,
        "verify",
        str(other.report),
        "--certs",
        str(other.certs),
        "--uvm-endorsement",
        str(ACI / "body.uvm_reference_info.bin"),
        "--at",
        "2023-02-08T06:00:00Z",
    )
    assert code == 1
    assert [r["code"] for r in doc["reasons"]] == ["snp.policy.measurement_not_allowed"]  # type: ignore[attr-defined]


def test_cli_verify_snp_aci_endorsement_before_signing_rejected(tmp_path: Path) -> None:
    code, doc = _below_floor(
        tmp_path,
        "verify",
        str(M1.report),
        "--certs",
        str(ACI / "uvm_host_amd_certificate.pem"),
        "--uvm-endorsement",
        str(ACI / "body.uvm_reference_info.bin"),
        "--at",
        "2022-12-01T00:00:00Z",
    )
    assert code == 1
    codes = [r["code"] for r in doc["reasons"]]  # type: ignore[attr-defined]
    assert codes == ["azure.uvm.not_yet_valid", "snp.policy.measurement_not_allowed"]


def test_cli_verify_snp_certs_as_concatenated_der_chain(tmp_path: Path) -> None:
    # VCEK + ASK + ARK as concatenated DER: the EC leaf is found, the supplied ASK/ARK ignored.
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from verifier.encoding import pem_blocks

    pem = (ACI / "uvm_host_amd_certificate.pem").read_bytes()
    ders = pem_blocks(pem, "CERTIFICATE")
    assert len(ders) == 3
    chain = tmp_path / "chain.der"
    chain.write_bytes(ders[1] + ders[2] + ders[0])  # any order
    assert x509.load_der_x509_certificate(ders[1]).public_bytes(Encoding.DER) == ders[1]
    code, doc = _below_floor(tmp_path, "verify", str(M1.report), "--certs", str(chain), "--at", "2022-11-30T01:55:56Z")
    assert code == 0, doc
