"""The two Azure CVM registry entries: items of both types validate as the API's evidence, parse once into the
cache rows their hardware part needs (the SEV-SNP report's AMD CRL, the TD quote's Intel collateral), evaluate from
the registry with the service's policy (nonce binding required, revocation for SEV-SNP), and their reference values
must pin a PCR; observed claims become a set that accepts the same evidence."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Final

import pytest

from tests.support.azure import collateral_text, evidence_json
from tests.support.vectors import AZURE_CASES
from verifier.api.enclave import EvidenceIn
from verifier.collateral.documents import AMD, INTEL
from verifier.errors import Code, EvidenceMalformed, UsageError
from verifier.platforms.azure_evidence import ParsedAzure
from verifier.platforms.cli_inputs import choose_family
from verifier.platforms.item import EvidenceItem, Verifying, stored_item
from verifier.platforms.registry import (
    CLI_FAMILIES,
    PLATFORMS,
    Unparsed,
    parse_evidence,
    parse_item,
    reference_values_problem,
)
from verifier.simulation.azure_cvm_builder import AzureCvmBuilder
from verifier.trust.store import load_trust_store

TRUST: Final = load_trust_store()
S4, T5 = AZURE_CASES["S4"], AZURE_CASES["T5"]


def _item(kind: str, data: bytes, **extra: str) -> EvidenceItem:
    return EvidenceItem.model_validate({"type": kind, "evidence": base64.b64encode(data).decode(), **extra})


def test_azure_items_are_enclave_api_evidence() -> None:
    for kind in ("azure-sev-snp-vtpm", "azure-tdx-vtpm"):
        sent = EvidenceIn(type=kind, evidence="AAAA")
        assert stored_item(sent.model_dump(exclude_none=True)).type == kind
        assert PLATFORMS[kind].family == "azure"
        assert not PLATFORMS[kind].runtime_data_binding


def test_azure_snp_item_needs_the_amd_crl_of_its_report() -> None:
    parsed = parse_item(_item("azure-sev-snp-vtpm", evidence_json(S4)))
    assert isinstance(parsed.value, ParsedAzure)
    assert [(w.vendor, w.kind, w.key, w.optional) for w in parsed.needs] == [(AMD, "crl", "vcek:milan", False)]


def test_azure_tdx_item_needs_the_intel_collateral_of_its_quote() -> None:
    item = _item("azure-tdx-vtpm", evidence_json(T5, version=2), collateral=collateral_text(T5) or "")
    parsed = parse_item(item)
    assert [w.kind for w in parsed.needs] == ["tcb_info", "qe_identity", "pck_crl", "root_ca_crl"]
    assert all(w.vendor == INTEL and w.optional for w in parsed.needs)


def test_azure_tdx_item_evaluates_with_its_own_collateral_and_the_service_policy() -> None:
    assert T5.now is not None
    item = _item("azure-tdx-vtpm", evidence_json(T5, version=2), collateral=collateral_text(T5) or "")
    parsed = parse_item(item)
    nonce = (T5.read("nonce.bin") or b"").hex()
    result = parsed.evaluate({}, {"expected_report_data": nonce, "require_ak_cert": True}, Verifying(TRUST, T5.now))
    assert result.accepted, result.reasons
    assert result.platform == "azure-tdx-vtpm"
    assert result.tcb_status == "UpToDate"
    unbound = parsed.evaluate({}, {}, Verifying(TRUST, T5.now))
    assert [r.code for r in unbound.reasons] == [Code.AZURE_POLICY_NONCE_REQUIRED]


def test_azure_snp_item_service_policy_requires_revocation() -> None:
    """The service checks the AMD CRL unless the policy says otherwise (as for amd-sev-snp)."""
    ev = AzureCvmBuilder().build("snp")
    parsed = parse_item(_item("azure-sev-snp-vtpm", ev.evidence_json))
    env = Verifying(ev.trust_store, ev.now)
    strict = parsed.evaluate({}, {"expected_report_data": ev.nonce.hex()}, env)
    assert [r.code for r in strict.reasons] == [Code.SNP_CRL_MISSING]
    lenient = parsed.evaluate({}, {"expected_report_data": ev.nonce.hex(), "require_crl": False}, env)
    assert lenient.accepted, lenient.reasons


def test_azure_item_whose_evidence_is_not_its_type_is_reported() -> None:
    parsed = parse_item(_item("azure-tdx-vtpm", evidence_json(S4)))
    result = parsed.evaluate({}, {}, Verifying(TRUST, S4.now or TRUST_NOW))
    assert [r.code for r in result.reasons] == [Code.AZURE_EVIDENCE_MALFORMED]
    (unparsed,) = parse_evidence([{"type": "azure-sev-snp-vtpm", "evidence": "not base64!"}])
    assert isinstance(unparsed, Unparsed)
    assert isinstance(unparsed.error, EvidenceMalformed)


_S4_NOW = AZURE_CASES["S4"].now
assert _S4_NOW is not None  # S4 has a pinned verification time (expected.json)
TRUST_NOW: datetime = _S4_NOW


def test_azure_reference_values_must_pin_a_pcr() -> None:
    for kind in ("azure-sev-snp-vtpm", "azure-tdx-vtpm"):
        problem = reference_values_problem(kind, {})
        assert problem is not None
        assert "allowed_pcrs" in problem
        assert reference_values_problem(kind, {"allowed_pcrs": {"7": ["00" * 32]}}) is None
        with pytest.raises(UsageError):
            reference_values_problem(kind, {"allowed_pcrs": {"7": ["00"]}})
    with pytest.raises(UsageError):
        reference_values_problem("azure-tdx-vtpm", {"allowed_pcrs": {"7": ["00" * 32]}, "allowed_host_data": []})


def test_azure_reference_values_from_claims_round_trip() -> None:
    ev = AzureCvmBuilder().build("snp")
    parsed = parse_item(_item("azure-sev-snp-vtpm", ev.evidence_json))
    env = Verifying(ev.trust_store, ev.now)
    base = {"expected_report_data": ev.nonce.hex(), "require_crl": False}
    claims = parsed.evaluate({}, base, env).claims
    entry = PLATFORMS["azure-sev-snp-vtpm"]
    assert entry.reference_values_from_claims is not None
    values = entry.reference_values_from_claims(claims)
    assert sorted(values["allowed_pcrs"], key=int) == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "5",
        "7",
        "8",
        "9",
        "11",
        "12",
        "13",
        "14",
    ]
    assert reference_values_problem("azure-sev-snp-vtpm", values) is None
    assert parsed.evaluate({}, {**base, **values}, env).accepted
    other = json.loads(json.dumps(values))
    other["allowed_pcrs"]["7"] = ["11" * 32]
    assert [r.code for r in parsed.evaluate({}, {**base, **other}, env).reasons] == [Code.AZURE_POLICY_PCR_NOT_ALLOWED]
    with pytest.raises(UsageError):
        entry.reference_values_from_claims({"pcrs": {}})


def test_azure_item_whose_vcek_is_over_the_item_limit_is_rejected_not_crashed() -> None:
    doc = json.loads(evidence_json(S4))
    doc["vcek"] = base64.urlsafe_b64encode(bytes(20000)).decode()
    (parsed,) = parse_evidence(
        [{"type": "azure-sev-snp-vtpm", "evidence": base64.b64encode(json.dumps(doc).encode()).decode()}]
    )
    assert not isinstance(parsed, Unparsed)
    assert parsed.needs == ()
    result = parsed.evaluate({}, {"expected_report_data": "00"}, Verifying(TRUST, S4.now or TRUST_NOW))
    assert result.reasons[0].code.value.startswith("snp.leaf.")


@pytest.mark.parametrize(
    "given",
    [(), ("nonce",), ("collateral",), ("certs",), ("crl",)],
    ids=["sniffed", "nonce", "collateral", "certs", "crl"],
)
def test_cli_azure_evidence_json_picks_the_azure_family(given: tuple[str, ...]) -> None:
    """Sniffed, or with any of its options, shared ones included (``--collateral`` and ``--nonce`` are shared with
    Intel and NVIDIA, ``--certs`` and ``--crl`` with SEV-SNP); the other families' evidence keeps its family."""
    for data in (
        evidence_json(S4),
        evidence_json(T5),
        (AZURE_CASES["S5"].dir / "upstream" / "evidence-v1.json").read_bytes(),
    ):
        assert choose_family(CLI_FAMILIES, given, data).family == "azure"
    assert choose_family(CLI_FAMILIES, given, S4.read("tpm_quote_attest.bin") or b"").family != "azure"


def test_azure_snp_item_with_an_empty_vcek_needs_no_cached_vcek() -> None:
    doc = json.loads(evidence_json(S4))
    doc["vcek"] = ""
    parsed = parse_item(_item("azure-sev-snp-vtpm", json.dumps(doc).encode()))
    assert [w.kind for w in parsed.needs] == ["crl"]
    result = parsed.evaluate({}, {"require_crl": False, "require_nonce": False}, Verifying(TRUST, S4.now or TRUST_NOW))
    assert [r.code for r in result.reasons] == [Code.SNP_LEAF_MISSING]
