"""Observed claims -> reference values ("trust these measurements"), per platform: each mapping pins what its
appraisal reads, the set is one the catalogue accepts, and the round trip holds on real verification: evidence
rejected for its measurements alone is accepted under the set made from its own claims, and other evidence is not.
TDX and SGX on simulated quotes, plain SEV-SNP on a simulated report, confidential ACI on Microsoft's real report
and UVM endorsement. Claims that lack a measurement are refused, one defect per case."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.vectors import AMD_VECTORS
from verifier.appraisal.intel import parse_intel_policy
from verifier.appraisal.reference_values import (
    sgx_reference_values_from_claims,
    snp_reference_values_from_claims,
    tdx_reference_values_from_claims,
)
from verifier.appraisal.snp import SnpPolicy, parse_snp_policy
from verifier.encoding import pem_blocks
from verifier.errors import Code, UsageError
from verifier.platforms.evaluation import Evaluation, evaluate_intel_quote, evaluate_snp_report
from verifier.platforms.registry import PLATFORMS, reference_values_problem
from verifier.simulation.amd_options import ReportOptions
from verifier.simulation.amd_pki import default_amd_pki
from verifier.simulation.intel_options import QuoteOptions
from verifier.simulation.intel_pki import default_pki
from verifier.simulation.intel_quote_builder import SgxReport, TdReport
from verifier.trust.intel_collateral import parse_collateral_json
from verifier.trust.store import TrustStore

ACI = AMD_VECTORS / "microsoft-confidential-sidecar-containers"
ACI_NOW = datetime(2023, 2, 8, 5, 42, 23, tzinfo=UTC)  # the UVM endorsement's signing time, inside the leaf's validity
NO_MILAN_FLOOR: dict[str, Any] = {"milan": {}}  # the real ACI report runs below the built-in Milan floor
OTHER48 = bytes.fromhex("7c1a" * 24)


def _intel(options: QuoteOptions, values: dict[str, Any]) -> Evaluation:
    ev = default_pki().build(options)
    collateral = parse_collateral_json(ev.collateral_json)
    return evaluate_intel_quote(ev.quote, collateral, ev.trust_store, ev.now, parse_intel_policy(json.dumps(values)))


def _snp(options: ReportOptions, values: dict[str, Any]) -> Evaluation:
    ev = default_amd_pki().build(options)
    return evaluate_snp_report(
        ev.report,
        leaf_der=ev.leaf_der,
        cert_table=None,
        trust=ev.trust_store,
        now=ev.now,
        policy=parse_snp_policy(values),
    )


def _aci_with_leaf(trust: TrustStore, policy: SnpPolicy) -> Evaluation:
    leaf = pem_blocks((ACI / "uvm_host_amd_certificate.pem").read_bytes(), "CERTIFICATE")[0]
    return evaluate_snp_report(
        (ACI / "snp_report.bin").read_bytes(),
        leaf_der=leaf,
        cert_table=None,
        trust=trust,
        now=ACI_NOW,
        policy=policy,
        uvm_endorsements=((ACI / "body.uvm_reference_info.bin").read_bytes(),),
    )


def _codes(result: Evaluation) -> list[str]:
    return [r.code.value for r in result.reasons]


def test_registry_names_a_mapping_for_every_cpu_platform() -> None:
    mapped = {name for name, entry in PLATFORMS.items() if entry.reference_values_from_claims is not None}
    assert mapped == {"intel-tdx", "intel-sgx", "amd-sev-snp", "azure-sev-snp-vtpm", "azure-tdx-vtpm"}
    assert PLATFORMS["nvidia-gpu"].reference_values_from_claims is None


def test_tdx_reference_values_from_claims_round_trip() -> None:
    observed = replace(TdReport(), mrtd=OTHER48)
    rejected = _intel(QuoteOptions(tee="tdx", td=observed), {"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}})
    assert rejected.verified
    assert _codes(rejected) == [Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED.value]

    values = tdx_reference_values_from_claims(rejected.claims)

    assert set(values["allowed_measurements"]) == {"mrtd", "rtmr0", "rtmr1", "rtmr2"}  # MRCONFIGID etc. are zero
    assert values["allowed_measurements"]["mrtd"] == [OTHER48.hex()]
    assert reference_values_problem("intel-tdx", values) is None
    assert _intel(QuoteOptions(tee="tdx", td=observed), values).accepted
    assert _codes(_intel(QuoteOptions(tee="tdx"), values)) == [Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED.value]


def test_tdx_reference_values_from_claims_pins_a_set_mrconfigid() -> None:
    observed = replace(TdReport(), mrconfigid=OTHER48)
    claims = _intel(QuoteOptions(tee="tdx", td=observed), {}).claims

    values = tdx_reference_values_from_claims(claims)

    assert values["allowed_measurements"]["mrconfigid"] == [OTHER48.hex()]
    assert "mrowner" not in values["allowed_measurements"]
    assert _intel(QuoteOptions(tee="tdx", td=observed), values).accepted


def test_sgx_reference_values_from_claims_round_trip() -> None:
    observed = replace(SgxReport(), mrenclave=b"\x5a" * 32)
    result = _intel(QuoteOptions(tee="sgx", version=3, sgx=observed), {})
    assert result.verified

    values = sgx_reference_values_from_claims(result.claims)

    assert values == {"allowed_measurements": {"mrenclave": [(b"\x5a" * 32).hex()]}}
    assert reference_values_problem("intel-sgx", values) is None
    assert _intel(QuoteOptions(tee="sgx", version=3, sgx=observed), values).accepted
    assert not _intel(QuoteOptions(tee="sgx", version=3), values).accepted


def test_snp_reference_values_from_claims_round_trip() -> None:
    observed = ReportOptions(measurement=b"\x42" * 48)
    rejected = _snp(observed, {"allowed_measurements": [OTHER48.hex()]})
    assert rejected.verified
    assert _codes(rejected) == [Code.SNP_POLICY_MEASUREMENT.value]

    values = snp_reference_values_from_claims(rejected.claims)

    assert values == {"allowed_measurements": [(b"\x42" * 48).hex()]}
    assert reference_values_problem("amd-sev-snp", values) is None
    assert _snp(observed, values).accepted
    assert _codes(_snp(ReportOptions(), values)) == [Code.SNP_POLICY_MEASUREMENT.value]


def test_snp_reference_values_from_claims_confidential_aci_round_trip(trust: TrustStore) -> None:
    rejected = _aci_with_leaf(
        trust, SnpPolicy(allowed_host_data=frozenset({b"\x01" * 32}), min_tcb_override=NO_MILAN_FLOOR)
    )
    assert rejected.verified
    assert _codes(rejected) == [Code.SNP_POLICY_HOST_DATA.value]

    values = snp_reference_values_from_claims(rejected.claims)

    assert values == {"allowed_host_data": [rejected.claims["host_data"]], "require_uvm_endorsement": True}
    assert reference_values_problem("amd-sev-snp", values) is None
    accepted = _aci_with_leaf(trust, parse_snp_policy({**values, "min_tcb_override": NO_MILAN_FLOOR}))
    assert accepted.accepted, accepted.reasons


def test_snp_reference_values_from_claims_aci_unendorsed_pins_the_measurement() -> None:
    claims = {"measurement": "ab" * 48, "host_data": "cd" * 32, "uvm_endorsements": []}

    values = snp_reference_values_from_claims(claims)

    assert values == {"allowed_host_data": ["cd" * 32], "allowed_measurements": ["ab" * 48]}


@pytest.mark.parametrize(
    ("function", "claims"),
    [
        (tdx_reference_values_from_claims, {"rtmr0": "00" * 48, "rtmr1": "00" * 48, "rtmr2": "00" * 48}),
        (tdx_reference_values_from_claims, {"mrtd": "zz" * 48, "rtmr0": "00" * 48, "rtmr1": "0", "rtmr2": "0"}),
        (tdx_reference_values_from_claims, {"mrtd": "ab" * 32, "rtmr0": "00" * 48, "rtmr1": "0", "rtmr2": "0"}),
        (sgx_reference_values_from_claims, {"mrsigner": "ab" * 32}),
        (sgx_reference_values_from_claims, {"mrenclave": 7}),
        (snp_reference_values_from_claims, {"host_data": "00" * 32}),
        (snp_reference_values_from_claims, {"measurement": "ab" * 48, "uvm_endorsements": []}),
    ],
    ids=[
        "tdx-no-mrtd",
        "tdx-mrtd-not-hex",
        "tdx-mrtd-short",
        "sgx-no-mrenclave",
        "sgx-mrenclave-not-text",
        "snp-no-measurement",
        "aci-no-host-data",
    ],
)
def test_reference_values_from_claims_incomplete_claims_refused(function: Any, claims: dict[str, Any]) -> None:
    with pytest.raises(UsageError) as caught:
        function(claims)
    assert caught.value.code == Code.REQUEST_INVALID
