"""Azure confidential VMs on the real vectors of tests/vectors/azure-cvm: every case of expected.json gives its
expected result at its pinned time, and each of the ten mutations M1-M10 is rejected with its own code.

Full cases (HCL report + hardware evidence + TPM quote) go through the evidence JSON a Confidential Containers guest
sends (:func:`tests.support.azure.evidence_json`); partial cases (HCL report only, TD quote + claims only, TPM quote
only, AK certificate only) through the verification step they can reach."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from tests.support.azure import ak_intermediates, collateral, evidence_doc
from tests.support.vectors import AZURE_CASES, AZURE_MUTATIONS, AzureCase
from verifier.appraisal.azure_cvm import AzureCvmPolicy, parse_azure_snp_policy, parse_azure_tdx_policy
from verifier.appraisal.intel import IntelPolicy, appraise_intel
from verifier.encoding import pem_blocks
from verifier.errors import Code, KeywardError
from verifier.evidence.azure_cvm import parse_azure_evidence
from verifier.evidence.azure_hcl import parse_hcl_report, parse_runtime_claims, parse_td_report
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.azure_ak import verify_ak_certificate
from verifier.platforms.azure_cvm import check_claims_binding, verify_tpm_quote
from verifier.platforms.azure_evidence import evaluate_azure_evidence
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.intel_dcap import verify_quote
from verifier.platforms.item import Verifying
from verifier.trust.store import load_trust_store

TRUST: Final = load_trust_store()
FULL: Final = ("S1", "S2", "S3", "S4", "S5", "S6", "T1", "T3", "T4", "T5")
#: Evidence version per case: 2 where the HCL user-data carries the quote's nonce (S6: trustee v2; T4/T5: flashbots
#: writes 64 zero bytes and quotes the first 32).
VERSION: Final = {"S6": 2, "T4": 2, "T5": 2}
#: What the default policy (hardware defaults, secure boot required) says of each full case at its pinned time.
DEFAULT_REASONS: Final[dict[str, list[str]]] = {
    # Milan SNP SPL 8: below the built-in AMD-SB-3019 floor (REPORTED, COMMITTED, CURRENT, LAUNCH TCB).
    "S1": ["snp.policy.tcb_too_low"] * 4,
    "S2": ["snp.policy.tcb_too_low"] * 4,
    "S3": ["snp.policy.tcb_too_low"] * 4,
    "S4": [],
    "S5": [],
    "S6": [],
    # expected.json: "TD quote rejected by policy: SEPT_VE_DISABLE is not enabled (Intel status: OutOfDate)".
    "T1": ["intel.policy.td_sept_ve_disable_off", "intel.policy.tcb_status_not_accepted"],
    "T3": [
        "intel.policy.td_sept_ve_disable_off",
        "intel.policy.tcb_status_not_accepted",
        "azure.policy.secure_boot_disabled",
    ],
    # Real reports do have secure-boot false (azure-cvm.md §5): a policy knob.
    "T4": ["azure.policy.secure_boot_disabled"],
    "T5": [],
}
TCB_STATUS: Final = {"T1": "OutOfDate", "T3": "OutOfDate", "T4": "UpToDate", "T5": "UpToDate"}
#: The day the vectors were collected: every Intel collateral bundle has expired by then.
COLLECTED: Final = datetime(2026, 12, 6, tzinfo=UTC)


def _kind(case: AzureCase) -> str:
    return "tdx" if case.id.startswith("T") else "snp"


def _evaluate(
    case: AzureCase,
    doc: dict[str, Any] | None = None,
    *,
    nonce: bytes | None = None,
    policy: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Evaluation:
    kind = _kind(case)
    doc = doc if doc is not None else evidence_doc(case, version=VERSION.get(case.id, 1))
    evidence = parse_azure_evidence(json.dumps(doc).encode(), "tdx" if kind == "tdx" else "snp")
    document = {"expected_nonce": (nonce or case.read("nonce.bin") or b"").hex(), **(policy or {})}
    parsed: AzureCvmPolicy[Any] = (
        parse_azure_tdx_policy(document) if kind == "tdx" else parse_azure_snp_policy(document)
    )
    return evaluate_azure_evidence(
        evidence, parsed, Verifying(TRUST, now or case.now or COLLECTED), collateral=collateral(case)
    )


@pytest.mark.parametrize("case_id", FULL)
def test_azure_full_case_expected_result_at_pinned_time(case_id: str) -> None:
    case = AZURE_CASES[case_id]
    result = _evaluate(case)
    assert result.verified, result.reasons
    assert [r.code.value for r in result.reasons] == DEFAULT_REASONS[case_id]
    assert result.tcb_status == TCB_STATUS.get(case_id)
    claims = result.claims
    want = case.raw["tpm_quote"]
    values_given = want["pcr_values_present"]
    assert claims["pcr_digest_verified"] is values_given
    if values_given:
        assert claims["pcrs"] == {str(int(k[3:])): v for k, v in want["pcrs"].items()}
    else:  # "verified except PCR digest": the quote proves no PCR
        assert claims["pcrs"] == {}
    assert claims["vm_configuration"] == case.raw["hcl"]["vm_configuration"]
    assert claims["tpm_nonce"] == want["extra_data"]
    assert claims["nonce_checked"] is True
    assert claims["user_data_bound"] is (VERSION.get(case_id, 1) == 2)
    ak = load_pem_public_key(case.read("ak_pub.pem") or b"")
    assert isinstance(ak, rsa.RSAPublicKey)
    spki = ak.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert claims["ak_pub_sha256"] == hashlib.sha256(spki).hexdigest()
    if "snp" in case.raw:
        assert claims["measurement"] == case.raw["snp"]["measurement"]
        assert claims["report_data"] == case.raw["snp"]["report_data"]
    else:
        assert claims["mrtd"] == case.raw["tdx"]["mrtd"]
    if "ak_cert" in case.raw:
        assert isinstance(claims["ak_cert"], dict)
        assert claims["ak_cert"]["subject"] == case.raw["ak_cert"]["subject"]


@pytest.mark.parametrize("case_id", FULL)
def test_azure_full_case_accepted_by_a_policy_for_its_vm(case_id: str) -> None:
    """The rejections above are the policy's alone: a policy that allows what this VM is accepts it (T1/T3 only
    when it explicitly accepts SEPT_VE_DISABLE off and an OutOfDate TCB)."""
    policy: dict[str, Any] = {"require_secure_boot": False}
    if case_id in ("S1", "S2", "S3"):
        policy["min_tcb_override"] = {"milan": {}}
    if case_id in ("T1", "T3"):
        policy.update(require_sept_ve_disable=False, accepted_tcb_statuses=["UpToDate", "OutOfDate"])
    result = _evaluate(AZURE_CASES[case_id], policy=policy)
    assert result.accepted, result.reasons


@pytest.mark.parametrize("case_id", ["T1", "T3", "T4", "T5"])
def test_azure_tdx_case_rejected_after_its_collateral_expired(case_id: str) -> None:
    result = _evaluate(AZURE_CASES[case_id], now=COLLECTED)
    assert not result.verified
    assert result.reasons[0].code.value.startswith("intel.")


@pytest.mark.parametrize("case_id", ["S1", "S2", "S3", "S4", "S5", "S6"])
def test_azure_snp_case_still_verifies_when_collected(case_id: str) -> None:
    """VCEKs live seven years and the TPM quote carries no wall-clock time: the SEV-SNP rows verify on the day the
    vectors were collected as at their pinned time (expected.json ``valid_now``)."""
    case = AZURE_CASES[case_id]
    assert case.raw["snp"]["valid_now"] is True
    assert _evaluate(case, now=COLLECTED).verified


def test_azure_t4_ak_certificate_expired_after_2026_11_30() -> None:
    case = AZURE_CASES["T4"]
    with pytest.raises(KeywardError) as e:
        verify_ak_certificate(case.read("ak_cert_nv.bin") or b"", [], TRUST, COLLECTED, None)
    assert e.value.code is Code.AZURE_AK_CERT_EXPIRED


@pytest.mark.parametrize("case_id", ["S8", "T7", "T8"])
def test_azure_hcl_only_case_parses_and_binds(case_id: str) -> None:
    """No verifiable hardware report was published (S8: no VCEK; T7/T8: a TDREPORT is MAC'd for its CPU only):
    parse and the claims binding."""
    case = AZURE_CASES[case_id]
    hcl = parse_hcl_report(case.read("hcl_report.bin") or b"", _kind(case))  # type: ignore[arg-type]
    claims = parse_runtime_claims(hcl.runtime_claims)
    if hcl.kind == "snp":
        report_data = parse_snp_report(hcl.hardware_report).report_data
    else:
        report_data = parse_td_report(hcl.hardware_report).reportdata
    check_claims_binding(report_data, hcl.runtime_claims)
    assert dict(claims.vm_configuration) == case.raw["hcl"]["vm_configuration"]
    with pytest.raises(KeywardError) as e:
        check_claims_binding(report_data, hcl.runtime_claims + b" ")
    assert e.value.code is Code.AZURE_HCL_RUNTIME_CLAIMS_HASH_MISMATCH


def test_azure_t6_ita_td_quote_binds_runtime_claims() -> None:
    """T6 (Intel Trust Authority, no HCL wrapper, no TPM quote): the TD quote verifies, its REPORTDATA binds the
    runtime claims, user-data = SHA-512(nonce || user_data); Intel's status UpToDate, policy rejects SEPT_VE_DISABLE
    off."""
    case = AZURE_CASES["T6"]
    assert case.now is not None
    quote = parse_quote(case.read("td_quote.bin") or b"")
    coll = collateral(case)
    assert coll is not None
    v = verify_quote(quote, coll, TRUST, case.now)
    claims_raw = case.read("runtime_claims.json") or b""
    check_claims_binding(quote.td_body.reportdata, claims_raw)
    claims = parse_runtime_claims(claims_raw)
    nonce, user_data = case.read("nonce.bin") or b"", case.read("user_data.bin") or b""
    assert claims.user_data == hashlib.sha512(nonce + user_data).digest()
    assert v.tcb.status == "UpToDate"
    verdict = appraise_intel(v, IntelPolicy())
    assert [r.code.value for r in verdict.reasons] == ["intel.policy.td_sept_ve_disable_off"]


@pytest.mark.parametrize("case_id", ["K1", "K2"])
def test_azure_tpm_only_case_verifies_under_its_ak(case_id: str) -> None:
    case = AZURE_CASES[case_id]
    ak = load_pem_public_key(case.read("ak_pub.pem") or b"")
    assert isinstance(ak, rsa.RSAPublicKey)
    pcrs = case.read("tpm_pcrs_sha256.bin") or b""
    values = tuple(pcrs[i : i + 32] for i in range(0, len(pcrs), 32))
    tpm = verify_tpm_quote(
        case.read("tpm_quote_attest.bin") or b"",
        case.read("tpm_quote_signature.bin") or b"",
        ak,
        case.read("nonce.bin"),
        values,
    )
    assert tpm.pcr_digest_verified is bool(values)
    assert list(tpm.quote.pcr_selection) == case.raw["tpm_quote"]["pcr_selection"][0]["pcrs"]


def test_azure_k3_ak_certificate_chains_to_the_pinned_root() -> None:
    case = AZURE_CASES["K3"]
    assert case.now is not None
    inter = (case.read("azure_cloud_virtual_tpm_ca_24.pem") or b"") + (
        case.read("azure_cloud_virtual_tpm_ca_2025.pem") or b""
    )
    ak = verify_ak_certificate(
        case.read("ak_cert_nv.bin") or b"", pem_blocks(inter, "CERTIFICATE"), TRUST, case.now, None
    )
    assert ak.subject == case.raw["ak_cert"]["subject"]
    assert ak.path[-1].startswith("CN=Azure Virtual TPM Root Certificate Authority 2023")
    with pytest.raises(KeywardError) as e:  # without its intermediates nothing leads to the root
        verify_ak_certificate(case.read("ak_cert_nv.bin") or b"", [], TRUST, case.now, None)
    assert e.value.code is Code.AZURE_AK_CERT_UNTRUSTED


# ----------------------------------------------------------------------------------------------------------
# Mutations M1-M10 (expected.json "mutations")


def _flip_hex(text: str, offset: int) -> str:
    raw = bytearray(bytes.fromhex(text))
    raw[offset] ^= 1
    return raw.hex()


def _b64url_edit(doc: dict[str, Any], key: str, edit: Any) -> None:
    raw = base64.urlsafe_b64decode(doc[key])
    doc[key] = base64.urlsafe_b64encode(edit(bytearray(raw))).decode()


def _mutated(mutation_id: str) -> tuple[AzureCase, dict[str, Any], bytes | None]:
    """The base case, its mutated evidence JSON and the nonce to verify with (None: the case's own)."""
    s1, s2, t4, t5 = (AZURE_CASES[k] for k in ("S1", "S2", "T4", "T5"))

    def flip(offset: int) -> Any:
        def edit(b: bytearray) -> bytes:
            b[offset] ^= 1
            return bytes(b)

        return edit

    def set_u32(offset: int, value: int) -> Any:
        def edit(b: bytearray) -> bytes:
            b[offset : offset + 4] = value.to_bytes(4, "little")
            return bytes(b)

        return edit

    doc = evidence_doc(s1)
    if mutation_id == "M1":
        _b64url_edit(doc, "hcl_report", flip(0x538))
    elif mutation_id == "M2":
        _b64url_edit(doc, "hcl_report", flip(0xB0))
    elif mutation_id == "M3":
        doc["tpm_quote"]["message"] = _flip_hex(doc["tpm_quote"]["message"], 44)
    elif mutation_id == "M4":
        return s1, doc, b"challengf"
    elif mutation_id == "M5":
        doc["tpm_quote"]["pcrs"][0] = _flip_hex(doc["tpm_quote"]["pcrs"][0], 0)
    elif mutation_id == "M6":
        doc["tpm_quote"] = evidence_doc(s2)["tpm_quote"]
    elif mutation_id == "M7":
        doc = evidence_doc(t5, version=2)
        doc["td_quote"] = evidence_doc(t4)["td_quote"]
        return t4, doc, None  # T4's collateral verifies T4's quote
    elif mutation_id == "M8":
        doc = evidence_doc(t4, version=2)
        five = evidence_doc(t5)
        doc["ak_cert"], doc["ak_intermediates"] = five["ak_cert"], five["ak_intermediates"]
        return t4, doc, None
    elif mutation_id == "M9":
        doc = evidence_doc(t5, version=2)
        _b64url_edit(doc, "hcl_report", set_u32(0x4CC, 2))
        return t5, doc, None
    elif mutation_id == "M10":
        doc = evidence_doc(t5, version=2)
        _b64url_edit(doc, "hcl_report", set_u32(0x08, 2600))
        return t5, doc, None
    return s1, doc, None


#: Codes expected.json suggests that Keyward already spells otherwise (its codes never change once released).
KEYWARD_CODE: Final = {"snp.report.signature_invalid": Code.SNP_SIGNATURE_INVALID.value}


def test_azure_mutations_are_the_ten_of_expected_json() -> None:
    assert [m["id"] for m in AZURE_MUTATIONS] == [f"M{i}" for i in range(1, 11)]


@pytest.mark.parametrize("mutation", AZURE_MUTATIONS, ids=lambda m: m["id"])
def test_azure_mutation_rejected_with_its_code(mutation: dict[str, Any]) -> None:
    case, doc, nonce = _mutated(mutation["id"])
    result = _evaluate(case, doc, nonce=nonce, policy={"require_secure_boot": False})
    assert not result.verified
    want = mutation["expected_error_code"]
    assert [r.code.value for r in result.reasons] == [KEYWARD_CODE.get(want, want)]


def test_azure_mutation_m7_genuine_pair_is_accepted_unmutated() -> None:
    """M7's and M8's parts verify on their own: only the mix fails."""
    for case_id in ("T4", "T5"):
        assert _evaluate(AZURE_CASES[case_id], policy={"require_secure_boot": False}).accepted


def test_azure_evidence_v2_user_data_mismatch_rejected() -> None:
    """S1's HCL user-data is zero: as version 2 evidence it does not carry the quote's nonce."""
    result = _evaluate(
        AZURE_CASES["S1"], evidence_doc(AZURE_CASES["S1"], version=2), policy={"min_tcb_override": {"milan": {}}}
    )
    assert [r.code.value for r in result.reasons] == ["azure.claims.user_data_mismatch"]


def test_azure_intermediates_of_the_evidence_used_for_t5() -> None:
    doc = evidence_doc(AZURE_CASES["T5"], version=2)
    assert len(doc["ak_intermediates"]) == len(ak_intermediates(AZURE_CASES["T5"])) == 2
    doc.pop("ak_intermediates")
    result = _evaluate(AZURE_CASES["T5"], doc)
    assert [r.code.value for r in result.reasons] == ["azure.ak_cert.untrusted"]


def test_azure_policy_requires_nonce_binding_and_ak_cert() -> None:
    case = AZURE_CASES["S4"]
    evidence = parse_azure_evidence(json.dumps(evidence_doc(case)).encode(), "snp")
    policy = parse_azure_snp_policy({"require_nonce": True, "require_user_data_binding": True, "require_ak_cert": True})
    result = evaluate_azure_evidence(evidence, policy, Verifying(TRUST, case.now or COLLECTED))
    assert result.verified
    assert [r.code.value for r in result.reasons] == [
        "azure.policy.nonce_required",
        "azure.policy.user_data_binding_required",
        "azure.policy.ak_cert_required",
    ]
    assert replace(policy, require_nonce=False).require_nonce is False
