"""/healthz, /readyz and /metrics against real PostgreSQL, Redis and a real ``celery worker`` process, and the request
id that follows one attestation from the API into the worker's JSON log."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, delete

from tests.support.service import (
    TEST_BROKER,
    Seeded,
    seed,
    service_settings,
    start_logged_worker,
    stop_worker,
    tdx_submission,
)
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import WorkerHeartbeat

DEAD_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:1/keyward"
DEAD_BROKER = "redis://127.0.0.1:1/0"


@dataclass
class Api:
    client: TestClient
    settings: Settings


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.fixture
def api(database_url: str, engine: Engine) -> Api:
    """The API on the test database with no worker: heartbeats of earlier tests' workers are cleared."""
    with engine.begin() as conn:
        conn.execute(delete(WorkerHeartbeat))
    settings = service_settings(database_url)
    return Api(TestClient(create_app(settings)), settings)


def test_healthz_ok_without_dependencies() -> None:
    client = TestClient(create_app(Settings(database_url=DEAD_DATABASE, broker_url=DEAD_BROKER)))
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_no_worker_heartbeat_is_503(api: Api) -> None:
    r = api.client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["broker"] == {"ok": True}
    assert body["checks"]["worker"]["ok"] is False
    assert body["checks"]["worker"]["known"] == 0


def test_readyz_dead_database_is_503(api: Api) -> None:
    settings = api.settings.model_copy(update={"database_url": DEAD_DATABASE})
    started = time.monotonic()
    r = TestClient(create_app(settings)).get("/readyz")
    assert time.monotonic() - started < 10
    assert r.status_code == 503
    checks = r.json()["checks"]
    assert checks["database"] == {"ok": False, "error": "OperationalError"}  # the class only: no host, no password
    assert checks["worker"]["ok"] is False
    assert checks["broker"] == {"ok": True}


def test_readyz_dead_broker_is_503(api: Api) -> None:
    settings = api.settings.model_copy(update={"broker_url": DEAD_BROKER})
    r = TestClient(create_app(settings)).get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["broker"]["ok"] is False
    assert r.json()["checks"]["database"] == {"ok": True}


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "auth.missing"),
        ("Basic c2NyYXBlcg==", 401, "auth.missing"),
        ("Bearer not-the-token", 401, "auth.invalid"),
        ("Bearer scrape-token-for-tests", 200, None),
    ],
    ids=["none", "not-bearer", "wrong", "right"],
)
def test_metrics_token_when_configured(api: Api, authorization: str | None, status: int, code: str | None) -> None:
    settings = api.settings.model_copy(update={"metrics_token": SecretStr("scrape-token-for-tests")})
    headers = {"Authorization": authorization} if authorization else {}
    r = TestClient(create_app(settings)).get("/metrics", headers=headers)
    assert r.status_code == status
    if code is None:
        assert "keyward_metrics_source_up" in r.text
    else:
        assert r.json()["error"]["code"] == code
        assert "keyward_" not in r.text


def test_metrics_without_token_setting_answers_anyone(api: Api) -> None:
    assert TestClient(create_app(api.settings)).get("/metrics").status_code == 200


def test_metrics_dead_database_still_answers(api: Api) -> None:
    settings = api.settings.model_copy(update={"database_url": DEAD_DATABASE, "broker_url": DEAD_BROKER})
    r = TestClient(create_app(settings)).get("/metrics")
    assert r.status_code == 200
    assert 'keyward_metrics_source_up{source="database"} 0.0' in r.text
    assert 'keyward_metrics_source_up{source="broker"} 0.0' in r.text


def _attest(api: Api, seeded: Seeded, request_id: str) -> tuple[dict[str, Any], str | None]:
    auth = {"Authorization": f"Bearer {seeded.licence}"}
    body = tdx_submission(api.client, seeded.licence, model=seeded.model, deployment="health-1", curve="P-384")
    r = api.client.post(
        "/v1/attestations", json=body, headers={**auth, "Prefer": "wait=20", "X-Request-ID": request_id}
    )
    out: dict[str, Any] = r.json()
    return out, r.headers.get("X-Request-ID")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            lines.append(obj)
    return lines


def _sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus exposition (labels must all match), or None."""
    for line in text.splitlines():
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)", line)
        if m is None or m.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


def test_worker_heartbeat_readiness_metrics_and_request_id(
    api: Api, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    seeded = seed(engine, api.settings)
    log_path = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] = start_logged_worker(
        log_path,
        database_url,
        TEST_BROKER,
        KEYWARD_LOG_LEVEL="INFO",
        KEYWARD_LOG_FORMAT="json",
        KEYWARD_HEARTBEAT_INTERVAL_SECONDS="0.5",
    )
    try:
        # 1. Ready once the worker's first heartbeat is in.
        assert _wait_for(lambda: api.client.get("/readyz").status_code == 200, 60), log_path.read_text()
        checks = api.client.get("/readyz").json()["checks"]
        assert checks["worker"]["fresh"] >= 1

        # 2. One attestation with a client request id: decided, and the id comes back. (The database is shared
        #    with the other integration tests, so database-derived gauges are compared before and after.)
        before = api.client.get("/metrics").text
        request_id = "it-health-" + time.strftime("%H%M%S")
        out, echoed = _attest(api, seeded, request_id)
        assert out["status"] == "accepted", out
        assert echoed == request_id

        # 3. The worker's log line for that decision carries the same request id.
        def decided_line() -> dict[str, Any] | None:
            for line in _json_lines(log_path):
                if line.get("message") == "attestation decided" and line.get("attestation_id") == out["id"]:
                    return line
            return None

        assert _wait_for(lambda: decided_line() is not None, 10), log_path.read_text()
        line = decided_line()
        assert line is not None
        assert line["request_id"] == request_id
        assert line["outcome"] == "accepted"
        assert line["platform"] == "intel-tdx"
        assert line["service"] == "worker"
        assert line["task"] == "keyward.decide_attestation"

        # 4. /metrics: the worker's counts arrive with its next heartbeat; the gauges come from the database.
        def decided_count() -> float | None:
            text = api.client.get("/metrics").text
            return _sample(text, "keyward_attestations_decided_total", platform="intel-tdx", outcome="accepted")

        assert _wait_for(lambda: decided_count() == 1.0, 10)
        text = api.client.get("/metrics").text
        assert _sample(text, "keyward_leases_live") == (_sample(before, "keyward_leases_live") or 0) + 1
        assert _sample(text, "keyward_attestations_pending") == _sample(before, "keyward_attestations_pending")
        assert _sample(text, "keyward_queue_depth", queue="celery") == 0.0
        assert _sample(text, "keyward_verification_seconds_count", platform="intel-tdx") == 1.0
        assert _sample(text, "keyward_verification_seconds_bucket", platform="intel-tdx", le="+Inf") == 1.0
        assert _sample(text, "keyward_decision_latency_seconds_count", platform="intel-tdx") == 1.0
        assert _sample(text, "keyward_metrics_source_up", source="database") == 1.0
        assert _sample(text, "keyward_metrics_source_up", source="broker") == 1.0
        age = _sample(text, "keyward_worker_heartbeat_age_seconds", role="worker")
        assert age is not None
        assert age < 30
        assert _sample(text, "keyward_http_requests_total", method="POST", route="/v1/attestations", status="200")
    finally:
        stop_worker(worker)

    # 5. A cleanly stopped worker deletes its heartbeat: not ready any more.
    assert worker.returncode is not None
    r = api.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["worker"]["known"] == 0
