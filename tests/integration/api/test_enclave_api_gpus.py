"""CPU + GPU attestation through the service: the enclave API in-process, the decision in a real Celery worker
process on real PostgreSQL and Redis. The evidence is simulated (the fake Intel and NVIDIA PKIs, trusted only in
this development profile): a TDX quote and simulated H100s, each bound to the challenge and the enclave key (GPU
``i`` signs ``gpu_nonce(nonce, thumbprint, i)``) and carrying its RIMs and OCSP answers.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.support.service import TEST_BROKER, allow_gpus, seed, service_settings, start_worker, stop_worker
from verifier.app import create_app
from verifier.client.keys import EnclaveKeyPair
from verifier.client.providers import Binding, SimulatedProvider
from verifier.keywrap.ear import verify_ear
from verifier.keywrap.enclave import gpu_nonce
from verifier.simulation.intel_pki import SIM_NOW
from verifier.simulation.nvidia_options import Defect, GpuOptions
from verifier.simulation.nvidia_pki import default_nvidia_pki


@dataclass
class Stack:
    client: TestClient
    licence: str
    model: str
    dek: bytes


@pytest.fixture(scope="module")
def stack(database_url: str, engine: Engine) -> Iterator[Stack]:
    settings = service_settings(database_url)
    seeded = seed(engine, settings, seats=3)
    allow_gpus(engine, seeded.entitlement_id, max_gpus=8, policy={"architectures": ["HOPPER"], "max_gpus": 8})
    worker = start_worker(database_url, TEST_BROKER)
    try:
        yield Stack(TestClient(create_app(settings)), seeded.licence, seeded.model, seeded.dek)
    finally:
        stop_worker(worker)


def _attest(stack: Stack, deployment: str, gpus: int, bad: dict[int, Defect] | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {stack.licence}"}
    nonce_b64 = stack.client.post("/v1/challenges", headers=headers).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    key = EnclaveKeyPair.generate("P-384")
    binding = Binding(nonce, key.public_jwk, key.report_data(nonce))
    items = SimulatedProvider(gpus=gpus).collect(binding)
    for index, defect in (bad or {}).items():  # that GPU's evidence with one defect, bound like the others
        options = GpuOptions(device_index=index, nonce=gpu_nonce(binding.nonce, binding.thumbprint, index))
        items[1 + index] = default_nvidia_pki().build(options, defect).evidence_item(index, carry_collateral=True)
    body = {"nonce": nonce_b64, "model": stack.model, "deployment": deployment, "enclave_key": key.public_jwk}
    r = stack.client.post(
        "/v1/attestations", json={**body, "evidence": items}, headers={**headers, "Prefer": "wait=60"}
    )
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    if out["status"] == "accepted":
        assert key.unwrap(str(out["wrapped_key"])) == stack.dek
    return out


def _submods(stack: Stack, out: dict[str, Any]) -> set[str]:
    claims = verify_ear(str(out["result_token"]), stack.client.get("/.well-known/jwks.json").json(), now=SIM_NOW)
    return set(claims["submods"])


def test_enclave_api_cpu_and_one_gpu_accepted(stack: Stack) -> None:
    out = _attest(stack, "gpu-1", 1)
    assert out["status"] == "accepted", out
    assert out["simulated"] is True
    assert _submods(stack, out) == {"intel-tdx", "nvidia-gpu:GPU-0"}


def test_enclave_api_cpu_and_eight_gpus_accepted(stack: Stack) -> None:
    out = _attest(stack, "gpu-8", 8)
    assert out["status"] == "accepted", out
    assert _submods(stack, out) == {"intel-tdx", *(f"nvidia-gpu:GPU-{i}" for i in range(8))}


def test_enclave_api_one_bad_gpu_rejects_naming_it(stack: Stack) -> None:
    out = _attest(stack, "gpu-bad", 8, bad={3: Defect.REPORT_SIGNATURE_BAD})
    assert out["status"] == "rejected"
    assert [r["code"] for r in out["reasons"]] == ["nvidia.report.signature_invalid"]
    assert out["reasons"][0]["message"].startswith("GPU 3: ")
    assert out.get("wrapped_key") is None
