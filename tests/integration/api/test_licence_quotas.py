"""Per-licence limits on the real app with real Redis (issue 17, finding 2): over its requests per minute or its
submitted bytes per hour a licence key gets 429 with Retry-After and nothing is stored, while another licence key
goes on as before. No worker runs: an accepted submission stays pending."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.support.service import seed, service_settings
from verifier.app import create_app
from verifier.db.models import Attestation


def _clear_of_a_minute_boundary() -> None:
    """The requests-per-minute window is the wall clock's minute: start a test well inside one."""
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)


def _stored(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.execute(select(func.count()).select_from(Attestation)).scalar_one())


def _client(database_url: str, engine: Engine, **limits: Any) -> tuple[TestClient, dict[str, str], dict[str, str]]:
    settings = service_settings(database_url, **limits)
    first, second = seed(engine, settings), seed(engine, settings)
    client = TestClient(create_app(settings))
    return client, {"Authorization": f"Bearer {first.licence}"}, {"Authorization": f"Bearer {second.licence}"}


def test_licence_over_its_requests_per_minute_gets_429_and_another_does_not(database_url: str, engine: Engine) -> None:
    _clear_of_a_minute_boundary()
    client, busy, quiet = _client(database_url, engine, licence_requests_per_minute=3)
    assert [client.post("/v1/challenges", headers=busy).status_code for _ in range(3)] == [200, 200, 200]
    refused = client.post("/v1/challenges", headers=busy)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "request.rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert client.post("/v1/challenges", headers=quiet).status_code == 200


def test_licence_over_its_stored_bytes_gets_429_and_nothing_is_stored(database_url: str, engine: Engine) -> None:
    client, busy, quiet = _client(database_url, engine, licence_stored_bytes_per_hour=4096)

    def submission(headers: dict[str, str]) -> dict[str, Any]:  # ~2.7 KB: one fits the hour's 4 KiB, two do not
        nonce = client.post("/v1/challenges", headers=headers).json()["nonce"]
        evidence = [{"type": "intel-tdx", "evidence": "A" * 2500}]
        return {"nonce": nonce, "model": "m", "deployment": "d", "enclave_key": {}, "evidence": evidence}

    first = client.post("/v1/attestations", json=submission(busy), headers=busy)
    assert first.status_code != 429, first.text
    before = _stored(engine)
    refused = client.post("/v1/attestations", json=submission(busy), headers=busy)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "request.storage_quota_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _stored(engine) == before
    assert client.post("/v1/challenges", headers=busy).status_code == 200  # bodiless requests are not counted
    assert client.post("/v1/attestations", json=submission(quiet), headers=quiet).status_code != 429


@pytest.mark.parametrize("limit", ["licence_requests_per_minute", "licence_stored_bytes_per_hour"])
def test_licence_limit_zero_means_none(database_url: str, engine: Engine, limit: str) -> None:
    limits = {"licence_requests_per_minute": 3, "licence_stored_bytes_per_hour": 1, limit: 0}
    client, busy, _ = _client(database_url, engine, **limits)
    if limit == "licence_requests_per_minute":
        assert all(client.post("/v1/challenges", headers=busy).status_code == 200 for _ in range(5))
    else:
        big = {"nonce": "x", "model": "m", "deployment": "d", "enclave_key": {}, "evidence": []}
        assert client.post("/v1/attestations", json=big, headers=busy).status_code != 429
