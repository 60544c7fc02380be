"""The confidential ACI SKR provider against a local HTTP server speaking the sidecar's API (fake_skr.py)."""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.vectors import VECTORS
from tests.unit.client.fake_skr import FakeSidecar, running_sidecar
from verifier.appraisal.snp import SnpPolicy
from verifier.attestation.items import binding_for
from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.keys import EnclaveKeyPair
from verifier.client.providers import AciSkrProvider, Binding
from verifier.client.providers.aci_skr import Endpoint, skr_report_data, skr_runtime_data, vcek_fits
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.evaluation import evaluate_snp_report
from verifier.platforms.item import EvidenceItem
from verifier.simulation.amd_options import Defect
from verifier.simulation.amd_pki import ReportOptions, default_amd_pki

ACI_VECTORS = VECTORS / "amd" / "microsoft-confidential-sidecar-containers"
NONCE = bytes(range(100, 132))


@pytest.fixture(scope="module")
def key() -> EnclaveKeyPair:
    return EnclaveKeyPair.generate("P-384")


@pytest.fixture(scope="module")
def binding(key: EnclaveKeyPair) -> Binding:
    return Binding(NONCE, key.public_jwk, key.report_data(NONCE))


@pytest.fixture(scope="module")
def running() -> Iterator[FakeSidecar]:
    with running_sidecar() as s:
        yield s


@pytest.fixture
def sidecar(running: FakeSidecar) -> FakeSidecar:
    running.override = None
    running.uvm_endorsements = ""
    running.vcek_defect = None
    running.requests.clear()
    return running


def test_aci_skr_runtime_data_names_nonce_and_key(binding: Binding, key: EnclaveKeyPair) -> None:
    doc = json.loads(skr_runtime_data(binding))
    assert doc == {"nonce": binding.nonce_b64url, "keys": [key.public_jwk]}
    assert skr_report_data(b"x")[32:] == bytes(32)


def test_aci_skr_raw_item_passes_server_binding(sidecar: FakeSidecar, binding: Binding, key: EnclaveKeyPair) -> None:
    [item] = AciSkrProvider(url=sidecar.url).collect(binding)
    assert set(item) == {"type", "evidence", "runtime_data"}  # the VCEK comes from the server's cache
    assert sidecar.requests[0][0] == "/attest/raw"
    assert sidecar.requests[0][1] == {"runtime_data": item["runtime_data"]}
    # The server's own binding check accepts it, and the report verifies with that binding.
    expected = binding_for(EvidenceItem.model_validate(item), NONCE, key.public, key.report_data(NONCE))
    assert expected == skr_report_data(base64.b64decode(item["runtime_data"]))
    ev = default_amd_pki().build(ReportOptions(report_data=expected))
    result = evaluate_snp_report(
        base64.b64decode(item["evidence"]),
        leaf_der=ev.leaf_der,
        cert_table=None,
        trust=ev.trust_store,
        now=ev.now,
        policy=SnpPolicy(expected_report_data=expected),
    )
    assert result.accepted, result.reasons


def test_aci_skr_combined_carries_vcek(sidecar: FakeSidecar, binding: Binding) -> None:
    [item] = AciSkrProvider(url=sidecar.url, endpoint="combined").collect(binding)
    assert sidecar.requests[0][0] == "/attest/combined"
    assert base64.b64decode(item["vcek"]) == default_amd_pki().build().leaf_der  # the leaf, not the ASK/ARK


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, b'{"error":"invalid request format\\ndetails"}', "HTTP 400: invalid request format"),
        (403, b'{"error":"failure to fetch attestation report hex"}{"report":""}', "HTTP 403: failure to fetch"),
        (500, b"upstream crashed", "HTTP 500: upstream crashed"),
        (500, b"", "HTTP 500: no message"),
        (200, b'{"message":"Status OK"}', "has no 'report'"),
        (200, b'{"report":"zz-not-hex"}', "does not decode"),
        (200, b"[]", "without a JSON object"),
        (200, json.dumps({"report": "05" + "00" * 1183}).encode(), "does not parse"),
    ],
    ids=["400", "403-double-json", "500-text", "500-empty", "no-report", "not-hex", "not-object", "garbage-report"],
)
def test_aci_skr_error_answers(sidecar: FakeSidecar, binding: Binding, status: int, body: bytes, message: str) -> None:
    sidecar.override = (status, body)
    with pytest.raises(ProviderError, match=message) as exc:
        AciSkrProvider(url=sidecar.url).collect(binding)
    assert not isinstance(exc.value, ProviderUnavailable)
    assert exc.value.provider == "aci-skr"


def test_aci_skr_report_without_binding_rejected(sidecar: FakeSidecar, binding: Binding) -> None:
    # A sidecar (or anything on its port) answering with a report that does not hash our runtime data.
    other = default_amd_pki().build(ReportOptions(report_data=bytes(64))).report
    sidecar.override = (200, json.dumps({"report": other.hex()}).encode())
    with pytest.raises(ProviderError, match="does not carry SHA-256"):
        AciSkrProvider(url=sidecar.url).collect(binding)


def test_aci_skr_combined_carries_uvm_endorsement(sidecar: FakeSidecar, binding: Binding) -> None:
    endorsement = (ACI_VECTORS / "body.uvm_reference_info.bin").read_bytes()  # Microsoft's real COSE_Sign1
    sidecar.uvm_endorsements = base64.b64encode(endorsement).decode()
    [item] = AciSkrProvider(url=sidecar.url, endpoint="combined").collect(binding)
    assert base64.b64decode(item["uvm_endorsement"]) == endorsement


def test_aci_skr_combined_without_uvm_endorsement_sends_none(sidecar: FakeSidecar, binding: Binding) -> None:
    [item] = AciSkrProvider(url=sidecar.url, endpoint="combined").collect(binding)
    assert "uvm_endorsement" not in item


def test_aci_skr_combined_uvm_endorsement_not_base64(sidecar: FakeSidecar, binding: Binding) -> None:
    sidecar.uvm_endorsements = "not base64!"
    with pytest.raises(ProviderError, match="uvm_endorsements is not base64"):
        AciSkrProvider(url=sidecar.url, endpoint="combined").collect(binding)


def test_aci_skr_combined_bad_endorsements(sidecar: FakeSidecar, binding: Binding) -> None:
    runtime = skr_runtime_data(binding)
    report = default_amd_pki().build(ReportOptions(report_data=skr_report_data(runtime))).report
    body = {"evidence": base64.b64encode(report).decode(), "endorsements": base64.b64encode(b"no certs").decode()}
    sidecar.override = (200, json.dumps(body).encode())
    with pytest.raises(ProviderError, match="hold no VCEK"):
        AciSkrProvider(url=sidecar.url, endpoint="combined").collect(binding)


def test_aci_skr_unknown_endpoint_unavailable(sidecar: FakeSidecar, binding: Binding) -> None:
    sidecar.override = (404, b"404 page not found")
    with pytest.raises(ProviderUnavailable, match="HTTP 404"):
        AciSkrProvider(url=sidecar.url).collect(binding)


def _dead_url() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_aci_skr_no_sidecar_unavailable(binding: Binding) -> None:
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as exc:
        AciSkrProvider(url=_dead_url(), startup_wait=0.5).collect(binding)
    assert exc.value.code == "client.provider.unavailable"
    assert 0.5 <= time.monotonic() - started < 5  # waited for a sidecar that might be starting, then gave up


def test_aci_skr_sidecar_still_starting_waited_for(binding: Binding) -> None:
    with running_sidecar(listen_after=0.6) as starting:
        [item] = AciSkrProvider(url=starting.url).collect(binding)
    assert item["type"] == "amd-sev-snp"
    assert len(starting.requests) == 1


def test_aci_skr_refused_after_first_answer_not_waited_for(binding: Binding) -> None:
    with running_sidecar() as gone:
        provider = AciSkrProvider(url=gone.url, startup_wait=30)
        provider.collect(binding)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        provider.collect(binding)  # the sidecar was up and went away: renewals have their own retry
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("endpoint", ["raw", "combined"])
def test_aci_skr_proxy_environment_ignored(
    sidecar: FakeSidecar, binding: Binding, monkeypatch: pytest.MonkeyPatch, endpoint: Endpoint
) -> None:
    dead_proxy = _dead_url()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead_proxy)
    [item] = AciSkrProvider(url=sidecar.url, endpoint=endpoint, startup_wait=0).collect(binding)
    assert item["type"] == "amd-sev-snp"


@pytest.mark.parametrize(
    "defect",
    [Defect.TCB_EXT_MISMATCH_SNP, Defect.TCB_EXT_MISMATCH_UCODE, Defect.HWID_MISMATCH],
    ids=["snp-spl", "microcode-spl", "other-chip"],
)
def test_aci_skr_combined_stale_vcek_left_out(sidecar: FakeSidecar, binding: Binding, defect: Defect) -> None:
    sidecar.vcek_defect = defect  # the VCEK THIM gave the sidecar at its start, not this report's
    [item] = AciSkrProvider(url=sidecar.url, endpoint="combined").collect(binding)
    assert "vcek" not in item  # the server then uses its own VCEK cache
    assert item["type"] == "amd-sev-snp"


def test_aci_skr_vcek_fits_needs_same_kind() -> None:
    vcek = default_amd_pki().build()
    vlek = default_amd_pki().build(ReportOptions(signing_key="vlek"))
    assert vcek_fits(parse_snp_report(vcek.report), vcek.leaf_der)
    assert not vcek_fits(parse_snp_report(vlek.report), vcek.leaf_der)
