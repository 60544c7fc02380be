"""The simulated provider: evidence from the fake vendor PKIs, bound to the challenge like real evidence."""

from __future__ import annotations

import base64

import pytest

from verifier.appraisal.intel import IntelPolicy
from verifier.appraisal.snp import SnpPolicy
from verifier.attestation.items import binding_for
from verifier.client.keys import EnclaveKeyPair
from verifier.client.providers import Binding, SimulatedProvider
from verifier.errors import Code
from verifier.keywrap.enclave import parse_enclave_jwk
from verifier.platforms.evaluation import Evaluation, evaluate_intel_quote, evaluate_snp_report
from verifier.platforms.item import EvidenceItem, Verifying
from verifier.platforms.registry import parse_item
from verifier.simulation.amd_pki import default_amd_pki
from verifier.simulation.intel_pki import SIM_NOW, default_pki
from verifier.simulation.intel_quote_builder import TD_ATTR_DEBUG, TdReport
from verifier.simulation.nvidia_pki import default_nvidia_pki
from verifier.trust.intel_collateral import parse_collateral_json

NONCE = bytes(range(7, 39))


@pytest.fixture(scope="module")
def key() -> EnclaveKeyPair:
    return EnclaveKeyPair.generate("P-256")


@pytest.fixture(scope="module")
def binding(key: EnclaveKeyPair) -> Binding:
    return Binding(NONCE, key.public_jwk, key.report_data(NONCE))


def test_simulated_tdx_accepted_under_simulated_roots(binding: Binding) -> None:
    [item] = SimulatedProvider().collect(binding)
    assert item["type"] == "intel-tdx"
    result = evaluate_intel_quote(
        base64.b64decode(item["evidence"]),
        parse_collateral_json(item["collateral"]),
        default_pki().build().trust_store,
        SIM_NOW,
        IntelPolicy(expected_report_data=binding.report_data),
    )
    assert result.accepted, result.reasons
    assert result.simulated


def test_simulated_tdx_debug_td_rejected(binding: Binding) -> None:
    provider = SimulatedProvider(td=TdReport().with_tdattributes(TdReport().tdattributes_int | TD_ATTR_DEBUG))
    [item] = provider.collect(binding)
    result = evaluate_intel_quote(
        base64.b64decode(item["evidence"]),
        parse_collateral_json(item["collateral"]),
        default_pki().build().trust_store,
        SIM_NOW,
        IntelPolicy(expected_report_data=binding.report_data),
    )
    assert [r.code.value for r in result.reasons] == ["intel.policy.td_debug"]


@pytest.mark.parametrize("certs", ["vcek", "cert_table"])
def test_simulated_snp_accepted_under_simulated_roots(binding: Binding, certs: str) -> None:
    [item] = SimulatedProvider(platform="amd-sev-snp", certs=certs).collect(binding)  # type: ignore[arg-type]
    assert set(item) == {"type", "evidence", certs, "crl"}
    ev = default_amd_pki().build()
    result = evaluate_snp_report(
        base64.b64decode(item["evidence"]),
        leaf_der=base64.b64decode(item["vcek"]) if certs == "vcek" else None,
        cert_table=base64.b64decode(item["cert_table"]) if certs == "cert_table" else None,
        trust=ev.trust_store,
        now=ev.now,
        policy=SnpPolicy(expected_report_data=binding.report_data, require_crl=True),
        crl_der=base64.b64decode(item["crl"]),
    )
    assert result.accepted, result.reasons


def test_simulated_snp_aci_binding_matches_server(binding: Binding, key: EnclaveKeyPair) -> None:
    [item] = SimulatedProvider(platform="amd-sev-snp", aci=True).collect(binding)
    expected = binding_for(EvidenceItem.model_validate(item), NONCE, key.public, binding.report_data)
    assert expected != binding.report_data
    assert expected[32:] == bytes(32)


def test_simulated_unknown_platform(binding: Binding) -> None:
    with pytest.raises(ValueError, match="simulated platform"):
        SimulatedProvider(platform="intel-sgx").collect(binding)  # type: ignore[arg-type]


def _gpu_evaluation(item: dict[str, object], key: EnclaveKeyPair) -> Evaluation:
    """A simulated GPU item evaluated as the service does (its binding, its carried RIMs and OCSP answers)."""
    parsed = parse_item(EvidenceItem.model_validate(item))
    nonce = binding_for(parsed.item, NONCE, parse_enclave_jwk(key.public_jwk), b"")
    policy = {"expected_report_data": nonce.hex()}
    pki = default_nvidia_pki()
    return parsed.evaluate({}, policy, Verifying(pki.trust_store, SIM_NOW))


def test_simulated_gpus_follow_the_cpu_item_each_bound_to_its_index(binding: Binding, key: EnclaveKeyPair) -> None:
    items = SimulatedProvider(gpus=2).collect(binding)
    assert [i["type"] for i in items] == ["intel-tdx", "nvidia-gpu", "nvidia-gpu"]
    assert [i["device_index"] for i in items[1:]] == [0, 1]
    for item in items[1:]:
        result = _gpu_evaluation(item, key)
        assert result.accepted, result.reasons
        assert result.simulated


def test_simulated_gpu_items_swapped_fail_their_binding(binding: Binding, key: EnclaveKeyPair) -> None:
    gpu0, gpu1 = SimulatedProvider(gpus=2).collect(binding)[1:]
    result = _gpu_evaluation({**gpu0, "device_index": 1}, key)
    assert Code.NVIDIA_NONCE_MISMATCH in {r.code for r in result.reasons}
    assert gpu1["device_index"] == 1
