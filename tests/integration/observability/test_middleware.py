"""The request-id middleware: kept or replaced, echoed, visible to sync endpoints, logged once, counted."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from verifier.app import create_app
from verifier.config import Settings
from verifier.observability.logging import current_request_id
from verifier.observability.metrics import HTTP_REQUESTS

DEAD = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/keyward", broker_url="redis://127.0.0.1:1/0")


def _app() -> FastAPI:
    app = create_app(DEAD)

    @app.get("/_probe/request-id")
    def request_id() -> dict[str, str | None]:  # sync, like the service's endpoints: runs in a worker thread
        return {"request_id": current_request_id()}

    @app.get("/_probe/boom")
    def boom() -> None:
        raise RuntimeError("unexpected")

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(_app(), raise_server_exceptions=False)


def test_request_id_sane_incoming_is_kept_and_echoed(client: TestClient) -> None:
    r = client.get("/_probe/request-id", headers={"X-Request-ID": "client-abc.123"})
    assert r.headers["X-Request-ID"] == "client-abc.123"
    assert r.json() == {"request_id": "client-abc.123"}


@pytest.mark.parametrize(
    "incoming", ["a" * 129, "two words", "<script>", ""], ids=["too-long", "space", "markup", "empty"]
)
def test_request_id_insane_incoming_is_replaced(client: TestClient, incoming: str) -> None:
    r = client.get("/_probe/request-id", headers={"X-Request-ID": incoming})
    generated = r.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert r.json() == {"request_id": generated}


def test_request_id_missing_is_generated_per_request(client: TestClient) -> None:
    first = client.get("/healthz").headers["X-Request-ID"]
    second = client.get("/healthz").headers["X-Request-ID"]
    assert first != second
    assert current_request_id() is None  # nothing leaks into the caller's context


def test_request_id_on_error_responses(client: TestClient) -> None:
    r = client.get("/v1/attestations/0f8fad5b-d9cb-469f-a165-70867728950e", headers={"X-Request-ID": "err-1"})
    assert r.status_code == 401  # no licence key
    assert r.headers["X-Request-ID"] == "err-1"


def test_access_log_one_line_per_request(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="keyward.access"):
        client.get("/_probe/request-id?secret=1", headers={"X-Request-ID": "acc-1"})
        client.get("/_probe/boom")
    lines = [r for r in caplog.records if r.name == "keyward.access"]
    assert len(lines) == 2
    ok, failed = lines
    assert ok.levelno == logging.INFO
    assert (ok.__dict__["method"], ok.__dict__["path"], ok.__dict__["status"]) == ("GET", "/_probe/request-id", 200)
    assert "secret" not in ok.__dict__["path"]  # the query string is never logged
    assert ok.__dict__["duration_ms"] >= 0
    assert failed.__dict__["status"] == 500


def test_access_log_probes_at_debug(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="keyward.access"):
        client.get("/healthz")
    (line,) = [r for r in caplog.records if r.name == "keyward.access"]
    assert line.levelno == logging.DEBUG


def test_http_metrics_route_template_and_unmatched(client: TestClient) -> None:
    def count(route: str, status: str) -> float:
        return float(HTTP_REQUESTS.labels("GET", route, status)._value.get())

    before = count("/v1/attestations/{attestation_id}", "401"), count("unmatched", "404")
    client.get("/v1/attestations/0f8fad5b-d9cb-469f-a165-70867728950e")
    client.get("/no/such/path/12345")
    after = count("/v1/attestations/{attestation_id}", "401"), count("unmatched", "404")
    assert after == (before[0] + 1, before[1] + 1)
