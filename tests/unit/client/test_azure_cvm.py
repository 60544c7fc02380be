"""The Azure CVM provider against a real software TPM (swtpm) provisioned like an Azure vTPM, behind the simulated
paravisor; its evidence is verified by the server's own code under the development (simulated) trust store."""

from __future__ import annotations

import base64
import functools
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.swtpm import AzureVtpm, azure_vtpm, needs_swtpm
from tests.unit.client.fake_imds import FakeImds, running_imds
from verifier.client.cli import main
from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.keys import EnclaveKeyPair
from verifier.client.providers import AzureCvmProvider, Binding, Endorsements
from verifier.client.providers.azure_cvm import imds_endorsements
from verifier.config import Settings
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import EvidenceItem, Verifying
from verifier.platforms.registry import parse_item
from verifier.simulation.amd_options import Defect, ReportOptions
from verifier.simulation.amd_pki import SIM_NOW, default_amd_pki
from verifier.simulation.azure_cvm_builder import Kind
from verifier.simulation.azure_paravisor import AK_HANDLE, USER_DATA_INDEX, simulated_endorsements, simulated_td_quote
from verifier.wiring import trust_store_for

pytestmark = needs_swtpm
NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def key() -> EnclaveKeyPair:
    return EnclaveKeyPair.generate("P-256")


def _binding(key: EnclaveKeyPair, nonce: bytes = NONCE) -> Binding:
    return Binding(nonce, key.public_jwk, key.report_data(nonce))


@pytest.fixture(params=["snp", "tdx"])
def vtpm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AzureVtpm]:
    with azure_vtpm(tmp_path / "swtpm", request.param) as v:
        yield v


@pytest.fixture
def snp_vtpm(tmp_path: Path) -> Iterator[AzureVtpm]:
    with azure_vtpm(tmp_path / "swtpm", "snp") as v:
        yield v


def _provider(address: tuple[str, int], **kw: Any) -> AzureCvmProvider:
    return AzureCvmProvider(tcp=address, endorsements=simulated_endorsements, **kw)


def _verify(item: dict[str, Any], expected: bytes, **policy: object) -> Evaluation:
    """The server's evaluation of one item with the development trust store (simulated roots)."""
    trust = trust_store_for(Settings(allow_simulated_roots=True))
    parsed = parse_item(EvidenceItem.model_validate(item))
    return parsed.evaluate({}, {"expected_report_data": expected.hex(), **policy}, Verifying(trust, SIM_NOW))


def _evidence(item: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(item["evidence"]))
    return doc


def _codes(result: Evaluation) -> list[str]:
    return [r.code for r in result.reasons]


def test_azure_cvm_evidence_v2_accepted_with_binding(vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    binding = _binding(key)
    [item] = _provider(vtpm.address).collect(binding)
    result = _verify(item, binding.report_data, require_user_data_binding=True)
    assert result.accepted, result.reasons
    assert result.simulated
    assert result.platform == {"snp": "azure-sev-snp-vtpm", "tdx": "azure-tdx-vtpm"}[vtpm.proxy.kind]
    assert result.claims["user_data"] == binding.report_data.hex()
    assert result.claims["user_data_bound"] is True
    assert result.claims["tpm_nonce"] == binding.report_data.hex()
    assert result.claims["pcr_digest_verified"] is True


def test_azure_cvm_evidence_json_shape(vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    [item] = _provider(vtpm.address).collect(_binding(key))
    doc = _evidence(item)
    hardware = "vcek" if vtpm.proxy.kind == "snp" else "td_quote"
    assert set(doc) == {"version", "tpm_quote", "hcl_report", hardware}
    assert doc["version"] == 2
    assert set(doc["tpm_quote"]) == {"signature", "message", "pcrs"}
    assert len(doc["tpm_quote"]["pcrs"]) == 24
    assert len(bytes.fromhex(doc["tpm_quote"]["signature"])) == 256
    assert base64.urlsafe_b64decode(doc["hcl_report"])[:4] == b"HCLA"
    beside = "crl" if vtpm.proxy.kind == "snp" else "collateral"
    assert set(item) == {"type", "evidence", beside}


def test_azure_cvm_pcrs_sent_are_the_tpm_values(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    [item] = _provider(snp_vtpm.address).collect(_binding(key))
    with snp_vtpm.tpm() as tpm:
        values = tpm.pcr_read()
    assert _evidence(item)["tpm_quote"]["pcrs"] == [values[i].hex() for i in range(24)]
    assert values[7] != bytes(32)  # the simulated boot extended it


def test_azure_cvm_other_binding_rejected(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    [item] = _provider(snp_vtpm.address).collect(_binding(key))
    result = _verify(item, _binding(key, b"another challenge nonce").report_data)
    assert not result.accepted
    assert _codes(result) == ["azure.tpm.nonce_mismatch"]


def test_azure_cvm_other_key_rejected(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    [item] = _provider(snp_vtpm.address).collect(_binding(key))
    result = _verify(item, _binding(EnclaveKeyPair.generate("P-256")).report_data)
    assert _codes(result) == ["azure.tpm.nonce_mismatch"]


def test_azure_cvm_v1_leaves_user_data_unbound(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    binding = _binding(key)
    [item] = _provider(snp_vtpm.address, version=1).collect(binding)
    assert snp_vtpm.proxy.refreshes == 0
    result = _verify(item, binding.report_data)
    assert result.accepted, result.reasons
    assert result.claims["user_data_bound"] is False
    assert result.claims["user_data"] == bytes(64).hex()
    assert _codes(_verify(item, binding.report_data, require_user_data_binding=True)) == [
        "azure.policy.user_data_binding_required"
    ]


def test_azure_cvm_v1_relabelled_v2_fails_user_data_binding(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    binding = _binding(key)
    [item] = _provider(snp_vtpm.address, version=1).collect(binding)
    doc = _evidence(item) | {"version": 2}
    item["evidence"] = base64.b64encode(json.dumps(doc).encode()).decode()
    assert _codes(_verify(item, binding.report_data)) == ["azure.claims.user_data_mismatch"]


def test_azure_cvm_v2_user_data_written_to_nv(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    binding = _binding(key)
    _provider(snp_vtpm.address).collect(binding)
    with snp_vtpm.tpm() as tpm:
        assert tpm.nv_read(USER_DATA_INDEX) == binding.report_data
    assert snp_vtpm.proxy.refreshes == 1


def test_azure_cvm_v2_defines_missing_user_data_index(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    with snp_vtpm.tpm() as tpm:
        tpm.nv_undefine_space(USER_DATA_INDEX)
    binding = _binding(key)
    [item] = _provider(snp_vtpm.address).collect(binding)
    assert _verify(item, binding.report_data).accepted


def test_azure_cvm_v2_stale_report_refused(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    """Straight to the swtpm, bypassing the paravisor: the HCL report never carries the new user-data."""
    with pytest.raises(ProviderError) as e:
        _provider(snp_vtpm.swtpm, refresh_timeout=0.3).collect(_binding(key))
    assert e.value.code == "client.provider"
    assert "did not refresh NV 0x01400001" in e.value.message


def test_azure_cvm_without_ak_names_command_and_rc(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    with snp_vtpm.tpm() as tpm:
        tpm.evict_control(AK_HANDLE, AK_HANDLE)  # evicting a persistent handle removes it
    with pytest.raises(ProviderError) as e:  # version 1: the paravisor, with no AK, could not refresh the report
        _provider(snp_vtpm.address, version=1).collect(_binding(key))
    assert type(e.value) is ProviderError
    assert "TPM2_Quote failed: TPM_RC_HANDLE (handle 1)" in e.value.message


def test_azure_cvm_no_vcek_refused(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    provider = AzureCvmProvider(tcp=snp_vtpm.address, endorsements=lambda kind, hcl: Endorsements())
    with pytest.raises(ProviderError, match="no VCEK"):
        provider.collect(_binding(key))


def test_azure_cvm_no_device_unavailable(tmp_path: Path, key: EnclaveKeyPair) -> None:
    with pytest.raises(ProviderUnavailable) as e:
        AzureCvmProvider(device=tmp_path / "tpmrm0").collect(_binding(key))
    assert e.value.code == "client.provider.unavailable"


def test_azure_cvm_nothing_listening_unavailable(tmp_path: Path, key: EnclaveKeyPair) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(ProviderUnavailable):
        AzureCvmProvider(tcp=("127.0.0.1", port)).collect(_binding(key))


def test_azure_cvm_unprovisioned_tpm_names_nv_rc(tmp_path: Path, key: EnclaveKeyPair) -> None:
    from tests.support.swtpm import running_swtpm

    with running_swtpm(tmp_path / "bare") as address, pytest.raises(ProviderError) as e:
        _provider(address).collect(_binding(key))
    assert "TPM2_NV_ReadPublic failed: TPM_RC_HANDLE (handle 1)" in e.value.message


@pytest.mark.parametrize("kind", ["snp", "tdx"])
def test_cli_attest_options_build_azure_provider(kind: Kind) -> None:
    from verifier.client.cli import _cpu_provider

    params: dict[str, Any] = {
        "provider": "azure-cvm",
        "tpm_device": Path("/dev/tpmrm0"),
        "tpm_tcp": ("127.0.0.1", 2321),
        "azure_evidence_version": "1",
        "azure_endorsements": "simulated",
    }
    provider = _cpu_provider(params)
    assert isinstance(provider, AzureCvmProvider)
    assert (provider.tcp, provider.version, provider.endorsements) == (("127.0.0.1", 2321), 1, simulated_endorsements)


def test_cli_tpm_tcp_invalid_is_usage_error() -> None:
    target = ["--url", "http://x", "--licence", "l", "--model", "m", "--deployment", "d"]
    result = CliRunner().invoke(main, ["attest", *target, "--provider", "azure-cvm", "--tpm-tcp", "nohost"])
    assert result.exit_code == 2
    assert "HOST:PORT" in result.output


# -- Azure's instance metadata service, as a local stand-in (tests/unit/client/fake_imds.py) ---------------------


def _imds_provider(address: tuple[str, int], base_url: str) -> AzureCvmProvider:
    return AzureCvmProvider(tcp=address, endorsements=functools.partial(imds_endorsements, base_url=base_url))


def test_azure_cvm_imds_vcek_accepted(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    imds = FakeImds()
    binding = _binding(key)
    with running_imds(imds) as url:
        [item] = _imds_provider(snp_vtpm.address, url).collect(binding)
    crl = default_amd_pki().build(ReportOptions(product="genoa")).crl_der
    assert crl is not None
    item["crl"] = base64.b64encode(crl).decode()
    result = _verify(item, binding.report_data, require_user_data_binding=True)
    assert result.accepted, result.reasons
    assert imds.requests == [("GET", "/metadata/THIM/amd/certification")]


def test_azure_cvm_imds_td_quote_accepted(tmp_path: Path, key: EnclaveKeyPair) -> None:
    imds = FakeImds()
    binding = _binding(key)
    with azure_vtpm(tmp_path / "swtpm", "tdx") as vtpm, running_imds(imds) as url:
        [item] = _imds_provider(vtpm.address, url).collect(binding)
    hcl = base64.urlsafe_b64decode(_evidence(item)["hcl_report"])
    _, collateral = simulated_td_quote(hcl[0x20 : 0x20 + 1024])  # IMDS sends no collateral: the worker fetches it
    result = _verify({**item, "collateral": collateral}, binding.report_data, require_user_data_binding=True)
    assert result.accepted, result.reasons
    assert imds.requests == [("POST", "/acc/tdquote")]


def test_azure_cvm_imds_ignores_proxy_environment(
    snp_vtpm: AzureVtpm, key: EnclaveKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as dead:
        proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with running_imds(FakeImds()) as url:
        [item] = _imds_provider(snp_vtpm.address, url).collect(_binding(key))
    assert "vcek" in _evidence(item)


@pytest.mark.parametrize("defect", [Defect.TCB_EXT_MISMATCH_SNP, Defect.HWID_MISMATCH])
def test_azure_cvm_imds_vcek_for_another_tcb_refused(snp_vtpm: AzureVtpm, key: EnclaveKeyPair, defect: Defect) -> None:
    with running_imds(FakeImds(vcek_defect=defect)) as url, pytest.raises(ProviderError, match="another TCB or chip"):
        _imds_provider(snp_vtpm.address, url).collect(_binding(key))


def test_azure_cvm_imds_unusable_answer_refused(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    with running_imds(FakeImds(broken=True)) as url, pytest.raises(ProviderError, match="endorsement is unusable"):
        _imds_provider(snp_vtpm.address, url).collect(_binding(key))


def test_azure_cvm_imds_not_answering_unavailable(snp_vtpm: AzureVtpm, key: EnclaveKeyPair) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    with pytest.raises(ProviderUnavailable, match="not an Azure VM"):
        _imds_provider(snp_vtpm.address, url).collect(_binding(key))
