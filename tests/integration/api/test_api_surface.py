"""The API's edges, as an independent probe found them (issue 17, findings 10-12): every refusal has the documented
error shape (``{"error": {code, fault, message, expected, actual}}``), FastAPI's own ``{"detail": ...}`` never
reaches a client; the bearer scheme is case-insensitive (RFC 7235); the request metrics label a route by its whole
path template; ``/docs`` and ``/openapi.json`` are off in production unless asked for; and database errors never
carry the statement's parameters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.support.service import seed, service_settings
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.engine import make_engine
from verifier.observability.metrics import HTTP_REQUESTS

DEAD = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/keyward", broker_url="redis://127.0.0.1:1/0")
ERROR_FIELDS = {"code", "fault", "message", "expected", "actual"}
SOME_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"


@pytest.fixture(scope="module")
def dead() -> TestClient:
    """The app with no database behind it: what is refused before any SQL."""
    return TestClient(create_app(DEAD), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def live(database_url: str, engine: Engine) -> Iterator[tuple[TestClient, str]]:
    settings = service_settings(database_url)
    licence = seed(engine, settings).licence
    with TestClient(create_app(settings)) as client:
        yield client, licence


def _error(response: object) -> dict[str, object]:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    assert set(body["error"]) == ERROR_FIELDS, body
    return dict(body["error"])


def test_api_unknown_route_has_the_error_shape(dead: TestClient) -> None:
    response = dead.get("/v1/no-such-route")
    assert response.status_code == 404
    assert _error(response)["code"] == "resource.not_found"


def test_api_wrong_method_has_the_error_shape(dead: TestClient) -> None:
    response = dead.delete("/v1/challenges")
    assert response.status_code == 405
    assert _error(response)["code"] == "request.invalid"
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "body", [b"\xff\xfe{", b'{"nonce": ', b"[1, 2"], ids=["not-utf8", "cut-short", "unclosed-array"]
)
def test_api_unparseable_body_has_the_error_shape(live: tuple[TestClient, str], body: bytes) -> None:
    client, licence = live
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {licence}"}
    response = client.post("/v1/attestations", content=body, headers=headers)
    assert response.status_code == 400
    assert _error(response)["code"] == "request.invalid"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_api_bearer_scheme_any_case_authenticates(live: tuple[TestClient, str], scheme: str) -> None:
    client, licence = live
    response = client.get(f"/v1/attestations/{SOME_ID}", headers={"Authorization": f"{scheme} {licence}"})
    assert response.status_code == 404  # authenticated: the attestation is what is missing
    assert _error(response)["code"] == "attestation.not_found"


@pytest.mark.parametrize(
    "header", ["Basic {}", "{}", "Bearer", "Bearer  "], ids=["basic", "no-scheme", "bare", "blank"]
)
def test_api_other_scheme_or_no_token_refused(live: tuple[TestClient, str], header: str) -> None:
    client, licence = live
    response = client.get(f"/v1/attestations/{SOME_ID}", headers={"Authorization": header.format(licence)})
    assert response.status_code == 401
    assert _error(response)["code"] in {"auth.missing", "auth.invalid"}


def test_api_release_unknown_lease_is_lease_not_found(live: tuple[TestClient, str]) -> None:
    client, licence = live
    response = client.delete(f"/v1/leases/{uuid.uuid4()}", headers={"Authorization": f"Bearer {licence}"})
    assert response.status_code == 404
    assert _error(response)["code"] == "lease.not_found"


def _count(method: str, route: str, status: str) -> float:
    return float(HTTP_REQUESTS.labels(method, route, status)._value.get())


def test_api_metrics_admin_route_labelled_with_its_prefix(dead: TestClient) -> None:
    route = "/v1/admin/attestations/{attestation_id}"
    before = _count("GET", route, "401"), _count("GET", "/attestations/{attestation_id}", "401")
    dead.get(f"/v1/admin/attestations/{SOME_ID}")
    assert (_count("GET", route, "401"), _count("GET", "/attestations/{attestation_id}", "401")) == (
        before[0] + 1,
        before[1],
    )


def test_api_metrics_dashboard_page_labelled_under_its_mount(dead: TestClient) -> None:
    before = _count("GET", "/dashboard/login", "200")
    dead.get("/dashboard/login")
    assert _count("GET", "/dashboard/login", "200") == before + 1


def test_api_docs_served_in_development(dead: TestClient) -> None:
    assert dead.get("/openapi.json").status_code == 200
    assert dead.get("/docs").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_docs_off_in_production(path: str) -> None:
    production = Settings.model_construct(**{**DEAD.model_dump(), "environment": "production"})
    response = TestClient(create_app(production)).get(path)
    assert response.status_code == 404
    assert _error(response)["code"] == "resource.not_found"


def test_api_docs_on_in_production_when_asked() -> None:
    production = Settings.model_construct(**{**DEAD.model_dump(), "environment": "production", "api_docs": True})
    assert TestClient(create_app(production)).get("/openapi.json").status_code == 200


def test_db_errors_never_carry_parameters(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection, pytest.raises(DBAPIError) as raised:
            connection.execute(text("SELECT 1 / 0, CAST(:value AS text)"), {"value": "secret-licence-material"})
    finally:
        engine.dispose()
    assert "secret-licence-material" not in str(raised.value)


def test_api_unexpected_error_has_the_error_shape(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(DEAD)

    @app.get("/_probe/boom")
    def boom() -> None:
        raise RuntimeError("a bug with a secret-looking detail")

    response = TestClient(app, raise_server_exceptions=False).get("/_probe/boom")
    assert response.status_code == 500
    assert _error(response)["code"] == "internal.error"
    assert "secret-looking" not in response.text
    assert any(r.exc_info and "secret-looking" in str(r.exc_info[1]) for r in caplog.records)
