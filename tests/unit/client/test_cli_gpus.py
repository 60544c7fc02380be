"""keyward-enclave --gpus: parsing, and the GPU evidence it adds after the CPU evidence (fake server, fake NVML
standing in for pynvml, the echo provider standing in for the simulated CPU evidence)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from tests.unit.client.fake_keyward import LICENCE, EchoProvider, FakeKeyward
from verifier.client import KeywardClient, cli
from verifier.client.cli import EXIT_OK, EXIT_TRANSPORT, EXIT_USAGE, GpuChoice, GpuSelection, main
from verifier.keywrap.enclave import MAX_NVIDIA_DEVICES, gpu_nonce, parse_enclave_jwk
from verifier.testing import fake_nvml
from verifier.testing.fake_nvml import FakeNvml

TARGET = ["--url", "http://keyward.test", "--licence", LICENCE, "--provider", "simulated"]
ATTEST = ["attest", *TARGET, "--model", "m", "--deployment", "d", "--json"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("none", None), ("all", "all"), ("ALL", "all"), ("1", (1,)), ("2,0", (2, 0)), (" 3 , 1 ", (3, 1))],
    ids=["none", "all", "all-upper-case", "one", "two-in-order", "spaces"],
)
def test_gpu_selection_parses(text: str, expected: GpuChoice) -> None:
    assert GpuSelection().convert(text, None, None) == expected


@pytest.mark.parametrize(
    "text",
    ["", "x", "-1", "0,0", "0,,1", "1.5", "+1", "1000", ",".join(str(i) for i in range(MAX_NVIDIA_DEVICES + 1))],
    ids=["empty", "word", "negative", "repeated", "empty-entry", "fraction", "plus-sign", "too-long", "too-many"],
)
def test_cli_gpus_usage_errors(text: str) -> None:
    result = CliRunner().invoke(main, [*ATTEST, "--gpus", text])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "--gpus" in result.output


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> FakeKeyward:
    fake = FakeKeyward()
    monkeypatch.setattr(
        cli, "_client", lambda params: KeywardClient(params["url"], params["licence"], http=fake.client())
    )
    monkeypatch.setattr(cli, "SimulatedProvider", lambda platform, gpus: EchoProvider())
    monkeypatch.delenv("KEYWARD_URL", raising=False)
    monkeypatch.delenv("KEYWARD_LICENCE", raising=False)
    return fake


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml.with_gpus(3)
    monkeypatch.setitem(sys.modules, "pynvml", fake)  # what the provider's lazy `import pynvml` finds
    return fake


def _sent(server: FakeKeyward, path: str) -> dict[str, Any]:
    [request] = [r for r in server.requests if r.method == "POST" and r.url.path.startswith(path)]
    body: dict[str, Any] = json.loads(request.content)
    return body


def _expected_gpu_nonces(body: dict[str, Any], count: int) -> list[bytes]:
    nonce = base64.urlsafe_b64decode(body["nonce"] + "==")
    thumbprint = parse_enclave_jwk(body["enclave_key"]).thumbprint
    return [gpu_nonce(nonce, thumbprint, i) for i in range(count)]


def _attest(*args: str) -> Result:
    return CliRunner().invoke(main, [*ATTEST, *args])


def test_cli_gpus_listed_after_cpu_evidence(server: FakeKeyward, nvml: FakeNvml) -> None:
    result = _attest("--gpus", "2,0")
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["status"] == "accepted"
    body = _sent(server, "/v1/attestations")
    assert [item["type"] for item in body["evidence"]] == ["intel-tdx", "nvidia-gpu", "nvidia-gpu"]
    assert [item["device_index"] for item in body["evidence"][1:]] == [0, 1]
    assert nvml.nonces == list(zip([2, 0], _expected_gpu_nonces(body, 2), strict=True))


def test_cli_gpus_all(server: FakeKeyward, nvml: FakeNvml) -> None:
    result = _attest("--gpus", "all")
    assert result.exit_code == EXIT_OK, result.output
    body = _sent(server, "/v1/attestations")
    assert [item["device_index"] for item in body["evidence"][1:]] == [0, 1, 2]
    assert [index for index, _ in nvml.nonces] == [0, 1, 2]


def test_cli_gpus_none_by_default(server: FakeKeyward, nvml: FakeNvml) -> None:
    result = _attest()
    assert result.exit_code == EXIT_OK, result.output
    assert [item["type"] for item in _sent(server, "/v1/attestations")["evidence"]] == ["intel-tdx"]
    assert nvml.inits == 0


def test_cli_gpus_renewal_sends_fresh_gpu_evidence(server: FakeKeyward, nvml: FakeNvml, tmp_path: Path) -> None:
    key = tmp_path / "enclave.jwk"
    attested = _attest("--gpus", "1", "--key-out", str(key))
    assert attested.exit_code == EXIT_OK, attested.output
    lease = json.loads(attested.stdout)["lease"]["id"]
    renewal = ["renew", *TARGET, "--lease", lease, "--key", str(key), "--gpus", "1", "--json"]
    renewed = CliRunner().invoke(main, renewal)
    assert renewed.exit_code == EXIT_OK, renewed.output
    body = _sent(server, f"/v1/leases/{lease}/renew")
    assert [item["type"] for item in body["evidence"]] == ["intel-tdx", "nvidia-gpu"]
    assert nvml.nonces[-1] == (1, _expected_gpu_nonces(body, 1)[0])


def test_cli_gpus_provider_failure_exits_3(server: FakeKeyward, nvml: FakeNvml) -> None:
    nvml.cc_feature = fake_nvml.CC_FEATURE_DISABLED
    result = _attest("--gpus", "all")
    assert result.exit_code == EXIT_TRANSPORT, result.output
    doc = json.loads(result.stdout)
    assert doc["error"]["code"] == "client.provider"
    assert "confidential computing is off" in doc["error"]["message"]
    assert not [r for r in server.requests if r.url.path == "/v1/attestations"]  # nothing submitted


def test_cli_gpus_index_beyond_count_exits_3(server: FakeKeyward, nvml: FakeNvml) -> None:
    result = _attest("--gpus", "0,3")
    assert result.exit_code == EXIT_TRANSPORT, result.output
    assert "no GPU 3" in json.loads(result.stdout)["error"]["message"]
