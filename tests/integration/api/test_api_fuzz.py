"""Every operation of the OpenAPI document, fed schema-shaped and malformed requests (schemathesis strategies driven
by Hypothesis), with the right kind of credential: never a 500, and every refusal is the structured error shape with
a stable code. Bounded for CI; KEYWARD_SLOW=1 runs many more examples."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.support.service import purge_test_broker, seed, service_settings
from verifier.app import create_app
from verifier.auth.credentials import issue_credential
from verifier.db.engine import upgrade_database
from verifier.db.models import CredentialKind
from verifier.testing.databases import scratch_database

EXAMPLES = 200 if os.environ.get("KEYWARD_SLOW") else 12


@pytest.fixture(scope="module")
def api() -> Iterator[tuple[Any, dict[str, str]]]:
    """The app on its own scratch database (the fuzzer creates records freely) with one credential per kind."""
    with scratch_database("keyward_fuzz") as url:
        upgrade_database(url)
        config = service_settings(url)  # accepted submissions are queued; no worker decides them here
        engine = create_engine(url)
        seeded = seed(engine, config)
        pepper = config.credential_pepper.get_secret_value().encode()
        tokens = {"enclave": seeded.licence}
        with Session(engine) as s:
            for kind in (CredentialKind.ADMIN, CredentialKind.BILLING_READ):
                _, tokens[kind.value] = issue_credential(s, pepper, kind, label="fuzz", now=datetime.now(UTC))
            s.commit()
        engine.dispose()
        app = create_app(config)
        yield schemathesis.openapi.from_asgi("/openapi.json", app), tokens
        purge_test_broker()


def _token(path: str, tokens: dict[str, str]) -> str | None:
    if path.startswith("/v1/admin"):
        return tokens["admin"]
    if path.startswith("/v1/billing"):
        return tokens["billing-read"]
    if path.startswith(("/v1/challenges", "/v1/attestations", "/v1/leases")):
        return tokens["enclave"]
    return None


def test_api_fuzz_no_server_errors_and_structured_refusals(api: tuple[Any, dict[str, str]]) -> None:
    schema, tokens = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30  # enclave, admin, billing and health operations are all in the document

    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(*(op.as_strategy() for op in operations)))
    def check(case: Any) -> None:
        token = _token(case.path, tokens)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(headers=headers)
        if case.path == "/readyz":  # 503 is its answer while no worker heartbeat is fresh (none runs here)
            assert response.status_code in (200, 503)
            return
        assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["code"], str)
            assert error["code"]
            assert isinstance(error["message"], str)

    check()


def test_api_fuzz_app_client_works(api: tuple[Any, dict[str, str]]) -> None:
    """The fixture's app answers like the service (guards against fuzzing an app that refuses everything)."""
    schema, tokens = api
    client = TestClient(schema.app)
    r = client.post("/v1/challenges", headers={"Authorization": f"Bearer {tokens['enclave']}"})
    assert r.status_code == 200
    assert client.get("/v1/admin/customers", headers={"Authorization": f"Bearer {tokens['admin']}"}).status_code == 200
