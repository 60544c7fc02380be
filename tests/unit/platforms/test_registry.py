"""The platform registry: every platform name the API and admin schemas accept comes from it, each entry's parse and
needs on the real vectors of tests/vectors, a stored item parsed once into the value the prefetch and the
decision both read, and the CLI descriptors (``keyward verify``): sniffing real vectors, and a synthetic third
family dispatched with no change to the CLI."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

import pytest

from tests.support.tools import ROOT
from tests.support.vectors import AMD_CASES, AMD_VECTORS, INTEL_CASES, INTEL_VECTORS, AmdCase, IntelCase
from verifier.api.admin_schemas import EntitlementCreate, Platform, PolicyCreate, PolicyPlatform, ReferenceValueCreate
from verifier.api.enclave import EvidenceIn
from verifier.collateral.documents import AMD, INTEL, Wanted, amd_crl_key, vcek_key
from verifier.errors import Code, KeywardError
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import parse_snp_report
from verifier.platforms import intel_evidence, snp_evidence
from verifier.platforms.cli_inputs import (
    CliFamily,
    CliInput,
    choose_family,
    families_of,
    policy_section,
    shared_inputs,
)
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import PLATFORM_NAMES, EvidenceItem, stored_item
from verifier.platforms.registry import (
    CLI_FAMILIES,
    PLATFORMS,
    ParsedItem,
    Unparsed,
    parse_evidence,
    parse_item,
    platform,
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_registry_names_every_platform_the_schemas_accept() -> None:
    names = tuple(PLATFORMS)
    assert (
        names
        == PLATFORM_NAMES
        == (
            "intel-tdx",
            "intel-sgx",
            "amd-sev-snp",
            "nvidia-gpu",
            "azure-sev-snp-vtpm",
            "azure-tdx-vtpm",
        )
    )
    assert get_args(EvidenceIn.model_fields["type"].annotation) == names
    assert get_args(Platform) == names
    assert get_args(ReferenceValueCreate.model_fields["platform"].annotation) == names
    assert get_args(get_args(EntitlementCreate.model_fields["allowed_platforms"].annotation)[0]) == names
    families = {e.family for e in PLATFORMS.values()}
    assert set(get_args(PolicyPlatform)) == set(get_args(PolicyCreate.model_fields["platform"].annotation))
    assert set(get_args(PolicyPlatform)) == {*names, *families}


def test_registry_evidence_in_is_the_stored_item_type() -> None:
    """The API's evidence model is the worker's: what the API stores validates back into the same type."""
    assert issubclass(EvidenceIn, EvidenceItem)
    sent = EvidenceIn(type="amd-sev-snp", evidence="AAAA", crl="AAAA")
    assert stored_item(sent.model_dump(exclude_none=True)) == EvidenceItem(
        type="amd-sev-snp", evidence="AAAA", crl="AAAA"
    )


def test_registry_unknown_type_unsupported() -> None:
    with pytest.raises(KeywardError) as e:
        platform("nvidia-h100")
    assert e.value.code is Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not an object", Code.ATTESTATION_EVIDENCE_MALFORMED),
        ({"type": "intel-tdx"}, Code.ATTESTATION_EVIDENCE_MALFORMED),
        ({"type": "intel-tdx", "evidence": 7}, Code.ATTESTATION_EVIDENCE_MALFORMED),
        ({"type": "intel-tdx", "evidence": "not base64!"}, Code.ATTESTATION_EVIDENCE_MALFORMED),
        ({"type": "amd-sev-snp", "evidence": "AAAA", "crl": "not base64!"}, Code.ATTESTATION_EVIDENCE_MALFORMED),
        ({"type": "nvidia-h100", "evidence": "AAAA"}, Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED),
    ],
    ids=["not-object", "no-evidence", "evidence-not-string", "evidence-not-base64", "crl-not-base64", "unknown-type"],
)
def test_parse_evidence_malformed_item_is_unparsed_with_its_code(raw: object, code: Code) -> None:
    (parsed,) = parse_evidence([raw])
    assert isinstance(parsed, Unparsed)
    assert isinstance(parsed.error, KeywardError)
    assert parsed.error.code is code


@pytest.mark.parametrize("case", INTEL_CASES, ids=lambda c: c.id)
def test_intel_needs_on_real_quotes(case: IntelCase) -> None:
    tee = "sgx" if case.raw["body_type"] == 1 else "tdx"
    own = {"collateral": case.collateral.read_text()}
    for extra, optional in (({}, False), (own, True)):
        item = EvidenceItem.model_validate({"type": f"intel-{tee}", "evidence": _b64(case.quote.read_bytes()), **extra})
        parsed = parse_item(item)
        keys = parsed.value.keys
        assert keys is not None
        assert parsed.needs == (
            Wanted(INTEL, "tcb_info", f"{tee}:{case.raw['fmspc']}", optional=optional),
            Wanted(INTEL, "qe_identity", tee, optional=optional),
            Wanted(INTEL, "pck_crl", keys.ca, optional=optional),
            Wanted(INTEL, "root_ca_crl", "root", optional=optional),
        )
        assert all(w.fetchable for w in parsed.needs)


@pytest.mark.parametrize("case", AMD_CASES, ids=lambda c: c.id)
def test_snp_needs_on_real_reports(case: AmdCase) -> None:
    raw = case.report.read_bytes()
    report = parse_snp_report(raw)
    product, chain, version = case.raw["product"], case.raw["signing_key"], case.raw["version"]
    alone = parse_item(EvidenceItem(type="amd-sev-snp", evidence=_b64(raw)))
    with_leaf = parse_item(EvidenceItem(type="amd-sev-snp", evidence=_b64(raw), vcek=_b64(case.leaf_der())))
    vcek = vcek_key(report.chip_id, report.reported_tcb)
    kds = product if version >= 3 and chain == "vcek" else None  # KDS needs CPUID's product; VLEKs are not on KDS
    crl_alone = [Wanted(AMD, "crl", amd_crl_key(product, chain), product)] if version >= 3 else []
    assert alone.needs == (*crl_alone, Wanted(AMD, "vcek", vcek, kds))
    # A leaf that rides along names a v2 report's product; no VCEK is read or fetched for it.
    assert with_leaf.needs == (Wanted(AMD, "crl", amd_crl_key(product, chain), product),)


def test_snp_needs_crl_that_rides_along_is_optional() -> None:
    case = next(c for c in AMD_CASES if c.raw["version"] >= 3 and c.raw["signing_key"] == "vcek")
    parsed = parse_item(EvidenceItem(type="amd-sev-snp", evidence=_b64(case.report.read_bytes()), crl="AAAA"))
    assert [(w.kind, w.optional) for w in parsed.needs] == [("crl", True), ("vcek", False)]


def test_parse_evidence_parses_each_item_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One parse per item: the parsed value carries the quote/report and its needs, so neither the prefetch nor the
    decision (which read ``needs`` and ``value``) parses again."""
    calls: dict[str, int] = {"quote": 0, "report": 0}

    def counting(name: str, parse: Any) -> Any:
        def wrapper(data: bytes) -> Any:
            calls[name] += 1
            return parse(data)

        return wrapper

    monkeypatch.setattr(intel_evidence, "parse_quote", counting("quote", parse_quote))
    monkeypatch.setattr(snp_evidence, "parse_snp_report", counting("report", parse_snp_report))
    intel, amd = INTEL_CASES[0], AMD_CASES[0]
    stored = [
        {
            "type": "intel-sgx" if intel.raw["body_type"] == 1 else "intel-tdx",
            "evidence": _b64(intel.quote.read_bytes()),
        },
        {"type": "amd-sev-snp", "evidence": _b64(amd.report.read_bytes())},
    ]
    parsed = parse_evidence(json.loads(json.dumps(stored)))
    assert all(isinstance(p, ParsedItem) for p in parsed)
    assert calls == {"quote": 1, "report": 1}


# ----------------------------------------------------------------------------------------------------------
# keyward verify: the CLI descriptors


def test_registry_every_entry_has_its_family_cli_descriptor() -> None:
    for entry in PLATFORMS.values():
        assert isinstance(entry.cli, CliFamily)
        assert entry.cli.family == entry.family
        assert entry.cli.inputs, entry.name
    assert PLATFORMS["intel-tdx"].cli is PLATFORMS["intel-sgx"].cli  # one Intel family on the command line
    assert [f.family for f in CLI_FAMILIES] == ["intel", "snp", "nvidia", "azure"]
    assert PLATFORMS["azure-sev-snp-vtpm"].cli is PLATFORMS["azure-tdx-vtpm"].cli
    assert [f.family for f in CLI_FAMILIES if f.fallback] == ["intel"]


def _intel_evidence() -> list[Path]:
    return sorted({*(c.quote for c in INTEL_CASES), *INTEL_VECTORS.rglob("*.hex")})


def _snp_evidence() -> list[Path]:
    return sorted({*(c.report for c in AMD_CASES), *AMD_VECTORS.rglob("*.hex"), *AMD_VECTORS.rglob("*tsm*.json")})


@pytest.mark.parametrize("path", _intel_evidence() + _snp_evidence(), ids=lambda p: p.name)
def test_cli_sniffing_real_vectors_picks_their_family(path: Path) -> None:
    family = "snp" if path in _snp_evidence() else "intel"
    data = path.read_bytes()
    assert [f.family for f in CLI_FAMILIES if f.sniff(data)] == [family]
    assert choose_family(CLI_FAMILIES, (), data).family == family


def test_cli_sniffing_covers_every_kind_of_vector() -> None:
    assert any(p.suffix == ".hex" for p in _intel_evidence())
    assert any(p.suffix == ".hex" for p in _snp_evidence())
    assert any("tsm" in p.name for p in _snp_evidence())


def test_cli_platform_options_win_over_sniffing() -> None:
    quote = INTEL_CASES[0].quote.read_bytes()
    report = AMD_CASES[0].report.read_bytes()
    assert choose_family(CLI_FAMILIES, {"certs"}, quote).family == "snp"
    # The fallback's own option does not claim evidence another family recognises (as before the registry).
    assert choose_family(CLI_FAMILIES, {"collateral"}, report).family == "snp"
    assert choose_family(CLI_FAMILIES, (), b"neither").family == "intel"


def _fake_entries() -> dict[str, Any]:
    """The real entries plus a synthetic third platform (test only): a family with its own option and sniffer."""
    fake_cli: CliFamily[dict[str, Any]] = CliFamily(
        family="fake",
        inputs=(CliInput("--fake-token", "fake_token", "Fake: a token file."),),
        sniff=lambda data: data.startswith(b"FAKE"),
        policy=lambda doc: doc,
        evaluate=lambda data, inputs, policy, env: Evaluation(
            "fake-tee",
            True,
            policy.get("accept", True),
            None,
            (),
            {"token": None if (t := inputs.file("fake_token")) is None else t.data.decode()},
            (),
        ),
    )
    return {**PLATFORMS, "fake-tee": replace(PLATFORMS["amd-sev-snp"], name="fake-tee", family="fake", cli=fake_cli)}


def test_cli_dispatch_reaches_a_synthetic_third_family() -> None:
    families = families_of(_fake_entries().values())
    assert [f.family for f in families] == ["intel", "snp", "nvidia", "azure", "fake"]
    assert choose_family(families, (), b"FAKE evidence").family == "fake"
    assert choose_family(families, {"fake_token"}, b"anything").family == "fake"
    assert choose_family(families, (), AMD_CASES[0].report.read_bytes()).family == "snp"
    assert choose_family(families, (), INTEL_CASES[0].quote.read_bytes()).family == "intel"


def test_cli_families_reject_an_option_declared_two_ways() -> None:
    entries = _fake_entries()
    clash = replace(entries["fake-tee"].cli, inputs=(CliInput("--certs", "certs", "clash", multiple=True),))
    with pytest.raises(ValueError, match="two different ways"):
        families_of([*PLATFORMS.values(), replace(entries["fake-tee"], cli=clash)])


def test_cli_families_reject_a_flag_naming_two_inputs() -> None:
    entries = _fake_entries()
    clash = replace(entries["fake-tee"].cli, inputs=(CliInput("--certs", "fake_certs", "clash"),))
    with pytest.raises(ValueError, match="names two inputs"):
        families_of([*PLATFORMS.values(), replace(entries["fake-tee"], cli=clash)])


def test_cli_shared_option_leaves_the_choice_to_the_bytes() -> None:
    quote = INTEL_CASES[0].quote.read_bytes()
    report = AMD_CASES[0].report.read_bytes()
    gpu = (ROOT / "tests" / "vectors" / "nvidia" / "hopperAttestationReport.bin").read_bytes()
    assert "certs" in shared_inputs(CLI_FAMILIES)
    assert choose_family(CLI_FAMILIES, {"certs"}, gpu).family == "nvidia"
    assert choose_family(CLI_FAMILIES, {"certs"}, report).family == "snp"
    # Evidence neither family taking --certs recognises (a truncated report): the first of them says why.
    assert choose_family(CLI_FAMILIES, {"certs"}, quote).family == "snp"
    assert choose_family(CLI_FAMILIES, {"rim"}, report).family == "nvidia"  # an option of its own picks NVIDIA


@pytest.mark.parametrize(
    ("document", "family", "section"),
    [
        (None, "intel", {}),
        ({"allow_debug": True}, "snp", {"allow_debug": True}),
        ({"intel": {"allow_debug": True}, "snp": {"allowed_vmpls": [1]}}, "snp", {"allowed_vmpls": [1]}),
        ({"intel": {"allow_debug": True}}, "snp", {}),
        ({"snp": []}, "snp", {}),
    ],
    ids=["none", "flat", "keyed", "keyed-absent", "keyed-not-object"],
)
def test_cli_policy_section(document: dict[str, Any] | None, family: str, section: dict[str, Any]) -> None:
    assert policy_section(document, family, [f.family for f in CLI_FAMILIES]) == section
