"""A request waiting with ``Prefer: wait`` answers from the worker's announcement (issue 16: the decision published
in the pub/sub message, so the API answers without reading it back), on the real app, PostgreSQL and Redis. No
worker runs: the test announces an answer for the stored request itself, and the database still says pending, so an
answer that says accepted can only have come from the message."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX, seed, service_settings
from verifier.app import create_app
from verifier.broker.notify import publish_decided
from verifier.client.keys import EnclaveKeyPair
from verifier.db.models import Attestation, AttestationStatus
from verifier.simulation.intel_pki import QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport


def test_wait_answered_from_the_announcement(database_url: str, engine: Engine) -> None:
    settings = service_settings(database_url)
    seeded = seed(engine, settings)
    client = TestClient(create_app(settings))
    headers = {"Authorization": f"Bearer {seeded.licence}"}
    nonce_b64 = client.post("/v1/challenges", headers=headers).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    key = EnclaveKeyPair.generate("P-256")
    quote = default_pki().build(QuoteOptions(td=TdReport(reportdata=key.report_data(nonce)))).quote
    deployment = f"announced-{uuid.uuid4().hex[:8]}"
    body = {"nonce": nonce_b64, "model": seeded.model, "deployment": deployment, "enclave_key": key.public_jwk,
            "evidence": [{"type": "intel-tdx", "evidence": base64.b64encode(quote).decode()}]}  # fmt: skip
    answered: list[Any] = []  # TestClient's responses
    waiting = threading.Thread(
        target=lambda: answered.append(
            client.post("/v1/attestations", json=body, headers={**headers, "Prefer": "wait=8"})
        )
    )
    waiting.start()
    attestation_id = _stored_id(engine, deployment)
    announced: dict[str, Any] = {
        "id": str(attestation_id),
        "status": "accepted",
        "status_url": f"/v1/attestations/{attestation_id}",
        "lease": {"id": str(uuid.uuid4()), "expires_at": "2026-01-15T12:15:00+00:00",
                  "renew_after": "2026-01-15T12:10:00+00:00"},
        "wrapped_key": "announced.jwe", "result_token": "announced.ear", "simulated": True,
    }  # fmt: skip
    while waiting.is_alive():  # until the waiting request has heard it (its subscriber connects first)
        publish_decided(TEST_BROKER, str(attestation_id), key_prefix=TEST_KEY_PREFIX, answer=announced)
        waiting.join(0.05)
    [response] = answered
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["status"], out["wrapped_key"], out["result_token"]) == ("accepted", "announced.jwe", "announced.ear")
    with Session(engine) as s:  # the database never said so: the answer came from the message
        assert s.scalar(select(Attestation.status).where(Attestation.id == attestation_id)) == AttestationStatus.PENDING


def _stored_id(engine: Engine, deployment: str) -> uuid.UUID:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Session(engine) as s:
            found = s.scalar(select(Attestation.id).where(Attestation.deployment_name == deployment))
        if found is not None:
            return found
        time.sleep(0.02)
    raise AssertionError("the request was not stored")
