"""A submission whose place is known without the database (the licence catalog cached) is stored and sent on the
event loop, with no threadpool hop (issue 16): the INSERT on the app's async engine, the task onto its Redis list.
On the real app in its lifespan, PostgreSQL and Redis; the request is in the database and its task on the queue."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX, purge_test_broker, seed, service_settings
from verifier.api import enclave
from verifier.app import create_app
from verifier.client.keys import EnclaveKeyPair
from verifier.db.models import Attestation, AttestationStatus
from verifier.simulation.intel_pki import QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport


def _body(client: TestClient, headers: dict[str, str], model: str) -> dict[str, Any]:
    nonce_b64 = client.post("/v1/challenges", headers=headers).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    key = EnclaveKeyPair.generate("P-256")
    quote = default_pki().build(QuoteOptions(td=TdReport(reportdata=key.report_data(nonce)))).quote
    return {"nonce": nonce_b64, "model": model, "deployment": f"loop-{uuid.uuid4().hex[:8]}",
            "enclave_key": key.public_jwk,
            "evidence": [{"type": "intel-tdx", "evidence": base64.b64encode(quote).decode()}]}  # fmt: skip


def test_submission_with_cached_catalog_stored_without_threadpool_hop(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = service_settings(database_url)
    seeded = seed(engine, settings)
    headers = {"Authorization": f"Bearer {seeded.licence}"}
    queue = redis.Redis.from_url(TEST_BROKER)
    try:
        with TestClient(create_app(settings)) as client:
            first = client.post("/v1/attestations", json=_body(client, headers, seeded.model), headers=headers)
            assert first.status_code == 202, first.text  # fills the catalog cache (one read, in the threadpool)
            hops: list[Callable[..., Any]] = []
            real = run_in_threadpool

            async def counted(func: Callable[..., Any], *args: Any) -> Any:
                hops.append(func)
                return await real(func, *args)

            monkeypatch.setattr(enclave, "run_in_threadpool", counted)
            second = client.post("/v1/attestations", json=_body(client, headers, seeded.model), headers=headers)
        assert second.status_code == 202, second.text
        assert hops == []
        attestation_id = second.json()["id"]
        with Session(engine) as s:
            stored = s.scalar(select(Attestation.status).where(Attestation.id == uuid.UUID(attestation_id)))
        assert stored == AttestationStatus.PENDING
        queued = [json.loads(m) for m in queue.lrange(TEST_KEY_PREFIX + "celery", 0, -1)]
        sent = [json.loads(base64.b64decode(m["body"]))[0] for m in queued]
        assert [attestation_id] in sent
    finally:
        purge_test_broker()
