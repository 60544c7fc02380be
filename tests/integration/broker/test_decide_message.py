"""The decide message the API pushes itself (:mod:`verifier.broker.decide_message`) is the one Celery's send_task
writes, on the list a worker reads; the API pushes it on its own Redis client inside its lifespan and sends through
Celery outside it. (Workers consuming it: every service test with a worker, e.g. tests/integration/client.)"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX, purge_test_broker, seed, service_settings
from verifier.app import create_app
from verifier.broker import app as broker_app
from verifier.broker.decide_message import decide_message, decide_route
from verifier.client.keys import EnclaveKeyPair
from verifier.simulation.intel_pki import QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport

_IDS = (("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"), ("properties", "delivery_tag"))


@pytest.fixture
def queue(database_url: str) -> Iterator[redis.Redis]:
    service_settings(database_url)  # the in-process Celery app publishes to the test broker, emptied
    try:
        yield redis.Redis.from_url(TEST_BROKER)
    finally:
        purge_test_broker()


def _pop(queue: redis.Redis) -> dict[str, Any]:
    raw = queue.rpop(TEST_KEY_PREFIX + "celery")
    assert isinstance(raw, bytes), "no message on the decide queue"
    message: dict[str, Any] = json.loads(raw)
    return message


def _args(message: dict[str, Any]) -> list[Any]:
    args: list[Any] = json.loads(base64.b64decode(message["body"]))[0]
    return args


def _without_ids(message: dict[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(message))
    for part, name in _IDS:
        assert copy[part].pop(name)
    copy["body"] = json.loads(base64.b64decode(copy["body"]))
    return copy


def test_decide_message_is_what_send_task_writes(queue: redis.Redis) -> None:
    attestation_id, headers = str(uuid.uuid4()), {"x_keyward_request_id": "req-1"}
    broker_app.send_decide(attestation_id, headers)
    sent = _pop(queue)
    route = decide_route(TEST_BROKER, TEST_KEY_PREFIX)
    assert route is not None
    assert route.key == TEST_KEY_PREFIX + "celery"
    ours = json.loads(decide_message(attestation_id, headers, route))
    assert _without_ids(ours) == _without_ids(sent)
    assert ours["headers"]["id"] == ours["headers"]["root_id"] == ours["properties"]["correlation_id"]


def test_decide_message_each_a_new_task_id(queue: redis.Redis) -> None:
    route = decide_route(TEST_BROKER, TEST_KEY_PREFIX)
    assert route is not None
    first, second = (json.loads(decide_message("same", None, route)) for _ in range(2))
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]


def test_decide_route_none_without_redis() -> None:
    assert decide_route("sqla+sqlite:///broker.db", "") is None


def _submit(client: TestClient, licence: str, model: str) -> str:
    headers = {"Authorization": f"Bearer {licence}"}
    nonce_b64 = client.post("/v1/challenges", headers=headers).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    key = EnclaveKeyPair.generate("P-256")
    quote = default_pki().build(QuoteOptions(td=TdReport(reportdata=key.report_data(nonce)))).quote
    body = {"nonce": nonce_b64, "model": model, "deployment": f"pushed-{uuid.uuid4().hex[:8]}",
            "enclave_key": key.public_jwk,
            "evidence": [{"type": "intel-tdx", "evidence": base64.b64encode(quote).decode()}]}  # fmt: skip
    response = client.post("/v1/attestations", json=body, headers=headers)
    assert response.status_code == 202, response.text
    attestation_id: str = response.json()["id"]
    return attestation_id


def test_api_pushes_decide_message_in_its_lifespan(
    database_url: str, engine: Engine, queue: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings(database_url)
    seeded = seed(engine, settings)

    def through_celery(*_: Any) -> None:
        raise AssertionError("sent through Celery")

    monkeypatch.setattr(broker_app, "send_decide", through_celery)
    with TestClient(create_app(settings)) as client:  # the lifespan runs: the app's Redis clients exist
        attestation_id = _submit(client, seeded.licence, seeded.model)
    assert _args(_pop(queue)) == [attestation_id]


def test_api_sends_through_celery_outside_its_lifespan(
    database_url: str, engine: Engine, queue: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings(database_url)
    seeded = seed(engine, settings)
    sent: list[str] = []
    monkeypatch.setattr(broker_app, "send_decide", lambda attestation_id, _headers=None: sent.append(attestation_id))
    client = TestClient(create_app(settings))  # no lifespan: no app Redis client in this loop
    attestation_id = _submit(client, seeded.licence, seeded.model)
    assert sent == [attestation_id]
