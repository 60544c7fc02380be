"""The enclave API end to end with a real Celery worker process, real Redis and real PostgreSQL.

The API runs in-process (TestClient); the decision runs in a separate ``celery worker`` process that reads the same
database. Evidence is simulated (the fake Intel PKI), trusted only because this development profile says so, and
every result is marked simulated.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from joserfc import jwk
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.support.service import TEST_BROKER, seed, service_settings, start_worker, stop_worker
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import Lease, LeaseStatus
from verifier.keywrap.ear import verify_ear
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk, unwrap_in_enclave
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Stack:
    client: TestClient
    settings: Settings
    licence: str
    model: str
    dek: bytes


@pytest.fixture(scope="module")
def stack(database_url: str, engine: Engine) -> Iterator[Stack]:
    broker = TEST_BROKER
    settings = service_settings(database_url)
    seeded = seed(engine, settings)
    worker = start_worker(database_url, broker)
    try:
        yield Stack(TestClient(create_app(settings)), settings, seeded.licence, seeded.model, seeded.dek)
    finally:
        stop_worker(worker)


def _headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.licence}"}


def _attest(
    stack: Stack, *, deployment: str, wait: int = 20, bind: bool = True
) -> tuple[dict[str, object], jwk.ECKey, int]:
    nonce_b64 = stack.client.post("/v1/challenges", headers=_headers(stack)).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    enclave = jwk.ECKey.generate_key("P-384")
    public = dict(enclave.as_dict(private=False))
    reportdata = expected_report_data(nonce, parse_enclave_jwk(public)) if bind else bytes(64)
    ev = default_pki().build(QuoteOptions(td=TdReport(reportdata=reportdata)))
    body = {
        "nonce": nonce_b64,
        "model": stack.model,
        "deployment": deployment,
        "enclave_key": public,
        "evidence": [
            {"type": "intel-tdx", "evidence": base64.b64encode(ev.quote).decode(), "collateral": ev.collateral_json}
        ],
    }
    r = stack.client.post("/v1/attestations", json=body, headers={**_headers(stack), "Prefer": f"wait={wait}"})
    return r.json(), enclave, r.status_code


def _renew(stack: Stack, lease_id: str, enclave: jwk.ECKey) -> dict[str, object]:
    nonce_b64 = stack.client.post("/v1/challenges", headers=_headers(stack)).json()["nonce"]
    nonce = base64.urlsafe_b64decode(nonce_b64 + "=" * (-len(nonce_b64) % 4))
    public = dict(enclave.as_dict(private=False))
    ev = default_pki().build(
        QuoteOptions(td=TdReport(reportdata=expected_report_data(nonce, parse_enclave_jwk(public))))
    )
    body = {
        "nonce": nonce_b64,
        "enclave_key": public,
        "evidence": [
            {"type": "intel-tdx", "evidence": base64.b64encode(ev.quote).decode(), "collateral": ev.collateral_json}
        ],
    }
    r = stack.client.post(f"/v1/leases/{lease_id}/renew", json=body, headers={**_headers(stack), "Prefer": "wait=20"})
    result: dict[str, object] = r.json()
    return result


def test_enclave_api_attest_through_real_worker(stack: Stack, engine: Engine) -> None:
    out, enclave, status = _attest(stack, deployment="eu-1")
    assert status == 200, out  # decided within the wait
    assert out["status"] == "accepted", out
    assert out["simulated"] is True
    dek = unwrap_in_enclave(str(out["wrapped_key"]), dict(enclave.as_dict(private=True)))
    assert dek == stack.dek
    jwks = stack.client.get("/.well-known/jwks.json").json()
    claims = verify_ear(str(out["result_token"]), jwks, now=SIM_NOW)
    assert claims["jti"] == out["id"]
    # Polling gives the same answer; the seat is held (1 seat) until the lease is released.
    again = stack.client.get(str(out["status_url"]), headers=_headers(stack)).json()
    assert again["status"] == "accepted"
    second, _, _ = _attest(stack, deployment="eu-2")
    assert second["status"] == "rejected"
    reasons = second["reasons"]
    assert isinstance(reasons, list)
    assert [r["code"] for r in reasons] == ["entitlement.seats_exhausted"]
    lease = out["lease"]
    assert isinstance(lease, dict)
    # Renewal: fresh nonce, fresh evidence, the same enclave key -> the same lease, a new wrapped key.
    renewed = _renew(stack, str(lease["id"]), enclave)
    assert renewed["status"] == "accepted", renewed
    assert renewed["lease"]["id"] == lease["id"]  # type: ignore[index]
    assert unwrap_in_enclave(str(renewed["wrapped_key"]), dict(enclave.as_dict(private=True))) == stack.dek
    # Another key cannot renew it.
    stolen = _renew(stack, str(lease["id"]), jwk.ECKey.generate_key("P-384"))
    assert [r["code"] for r in stolen["reasons"]] == ["lease.not_renewable"]  # type: ignore[attr-defined]
    assert stack.client.delete(f"/v1/leases/{lease['id']}", headers=_headers(stack)).status_code == 204
    with Session(engine) as s:  # released on the clock it was issued on (the simulation clock), not the real time
        released = s.get(Lease, uuid.UUID(str(lease["id"])))
        assert released is not None
        assert (released.status, released.ended_at) == (LeaseStatus.RELEASED, SIM_NOW)
    third, _, _ = _attest(stack, deployment="eu-2")
    assert third["status"] == "accepted", third


def test_enclave_api_wrong_binding_rejected_with_safe_reasons(stack: Stack) -> None:
    out, _, _ = _attest(stack, deployment="eu-3", bind=False)
    assert out["status"] == "rejected"
    reasons = out["reasons"]
    assert isinstance(reasons, list)
    assert [r["code"] for r in reasons] == ["intel.policy.report_data_mismatch"]
    assert set(reasons[0]) == {"code", "fault", "message"}  # expected/actual stay for staff
    assert out["wrapped_key"] is None


def test_enclave_api_202_then_poll(stack: Stack) -> None:
    out, _, status = _attest(stack, deployment="eu-4", wait=0)
    assert status == 202
    assert out["status"] == "pending"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        polled = stack.client.get(str(out["status_url"]), headers=_headers(stack)).json()
        if polled["status"] != "pending":
            break
        time.sleep(0.05)
    assert polled["status"] in ("accepted", "rejected")


def test_enclave_api_requires_licence(stack: Stack) -> None:
    r = stack.client.post("/v1/challenges")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth.missing"
    r = stack.client.post("/v1/challenges", headers={"Authorization": "Bearer kw_0123456789abcdef_nope"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth.invalid"


def test_enclave_api_weak_enclave_key_400(stack: Stack) -> None:
    nonce = stack.client.post("/v1/challenges", headers=_headers(stack)).json()["nonce"]
    weak = dict(jwk.RSAKey.generate_key(2048).as_dict(private=False))
    body = {
        "nonce": nonce,
        "model": stack.model,
        "deployment": "x",
        "enclave_key": weak,
        "evidence": [{"type": "intel-tdx", "evidence": "AAAA"}],
    }
    r = stack.client.post("/v1/attestations", json=body, headers=_headers(stack))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "keywrap.jwk_weak"


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/v1/attestations/{id}", "attestation.not_found"),
        ("DELETE", "/v1/leases/{id}", "lease.not_found"),
        ("POST", "/v1/leases/{id}/renew", "lease.not_found"),
    ],
    ids=["attestation", "release", "renew"],
)
def test_enclave_api_unknown_record_404(stack: Stack, method: str, path: str, code: str) -> None:
    import uuid

    body = {"nonce": "AAAA", "enclave_key": {"kty": "EC"}, "evidence": [{"type": "intel-tdx", "evidence": "AAAA"}]}
    r = stack.client.request(
        method, path.format(id=uuid.uuid4()), headers=_headers(stack), json=body if method == "POST" else None
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == code


def test_enclave_api_nonce_not_base64url_400(stack: Stack) -> None:
    body = {
        "nonce": "not base64!",
        "model": stack.model,
        "deployment": "x",
        "enclave_key": dict(jwk.ECKey.generate_key("P-384").as_dict(private=False)),
        "evidence": [{"type": "intel-tdx", "evidence": "AAAA"}],
    }
    r = stack.client.post("/v1/attestations", json=body, headers=_headers(stack))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "attestation.evidence_malformed"


def test_enclave_api_schema_mismatch_400_with_stable_code(stack: Stack) -> None:
    r = stack.client.post("/v1/attestations", json={"nonce": "AAAA"}, headers=_headers(stack))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "request.invalid"
    assert {"loc": "body.model", "msg": "Field required"} in error["actual"]


def test_enclave_api_nul_character_anywhere_400(stack: Stack) -> None:
    body = {
        "nonce": "AAAA",
        "model": stack.model,
        "deployment": "eu\x00west",
        "enclave_key": {"kty": "EC", "crv": "P-384", "x\x00": "y"},
        "evidence": [{"type": "intel-tdx", "evidence": "AAAA"}],
    }
    r = stack.client.post("/v1/attestations", json=body, headers=_headers(stack))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "request.invalid"


def test_enclave_api_worker_announces_the_answer_the_database_gives(stack: Stack, engine: Engine) -> None:
    """The worker's announcement carries the enclave's answer (so a waiting request need not read it back), and it
    is the answer ``GET /v1/attestations/{id}`` gives from the database."""
    import json

    import redis
    from sqlalchemy import update

    from tests.support.service import TEST_KEY_PREFIX
    from verifier.api.enclave import AttestationOut
    from verifier.broker.notify import channel_for

    with Session(engine) as s, s.begin():  # the licence's one seat free again, whatever ran before
        s.execute(update(Lease).where(Lease.status == LeaseStatus.LIVE).values(status=LeaseStatus.RELEASED))

    pubsub = redis.Redis.from_url(TEST_BROKER).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel_for(TEST_BROKER, TEST_KEY_PREFIX))
    try:
        out, _, status = _attest(stack, deployment="eu-announced", wait=0)
        assert status == 202
        deadline, announced = time.monotonic() + 30, None
        while announced is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message and isinstance(message["data"], bytes) and message["data"].startswith(b"{"):
                decoded = json.loads(message["data"])
                announced = decoded["answer"] if decoded["id"] == out["id"] else None
    finally:
        pubsub.close()
    assert announced is not None, "no announcement with an answer"
    assert announced["status"] == "accepted", announced
    assert announced["lease"] is not None
    rendered = AttestationOut.model_validate(announced).model_dump(mode="json")  # as the waiting request sends it
    assert rendered == stack.client.get(str(out["status_url"]), headers=_headers(stack)).json()
