"""Every operation of the OpenAPI document, fed schema-shaped and malformed requests (schemathesis strategies driven
by Hypothesis), with the right kind of credential: never a 500, and every refusal is the structured error shape with
a stable code. Then the admin operations again, their schema-shaped requests with fields swapped for extreme values
(integers past 2^31 and 2^63, timestamps near years 1 and 9999 with offsets, JSON nested hundreds deep, names of
whitespace, controls and bidi overrides) and the seeded customer, model and version ids put in, so the values reach
the services and the database: zero 5xx (issue 17). Bounded for CI; KEYWARD_SLOW=1 runs many more examples."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from tests.support.factories import make_entitlement, make_model_version
from tests.support.service import purge_test_broker, seed, service_settings
from verifier.app import create_app
from verifier.auth.credentials import issue_credential
from verifier.db.engine import upgrade_database
from verifier.db.models import CredentialKind, Model
from verifier.db.session import engine_for
from verifier.testing.databases import scratch_database

EXAMPLES = 200 if os.environ.get("KEYWARD_SLOW") else 12
#: Extreme-value examples per admin operation.
EXTREME_EXAMPLES = 200 if os.environ.get("KEYWARD_SLOW") else 25


class Fuzzed(NamedTuple):
    schema: Any
    tokens: dict[str, str]
    ids: dict[str, str]  # customer, model, version and entitlement ids of the extreme-value fuzz's own records


@pytest.fixture(scope="module")
def api() -> Iterator[Fuzzed]:
    """The app on its own scratch database (the fuzzer creates records freely) with one credential per kind, and
    a customer, model, version and entitlement for the extreme-value fuzz (apart from the seeded ones the other
    tests use: it may suspend them)."""
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
            entitlement = make_entitlement(s)  # the extreme-value fuzz's own: it may suspend or revoke them
            version = make_model_version(s, s.get_one(Model, entitlement.model_id))
            ids = {
                "customer_id": str(entitlement.customer_id),
                "model_id": str(entitlement.model_id),
                "model_version_id": str(version.id),
                "entitlement_id": str(entitlement.id),
            }
            s.commit()
        engine.dispose()
        app = create_app(config)
        try:
            yield Fuzzed(schemathesis.openapi.from_asgi("/openapi.json", app), tokens, ids)
        finally:
            purge_test_broker()
            engine_for(url).dispose()  # the app's pool, before the database is dropped


def _token(path: str, tokens: dict[str, str]) -> str | None:
    if path.startswith("/v1/admin"):
        return tokens["admin"]
    if path.startswith("/v1/billing"):
        return tokens["billing-read"]
    if path.startswith(("/v1/challenges", "/v1/attestations", "/v1/leases")):
        return tokens["enclave"]
    return None


def _assert_structured(response: Any, case: Any) -> None:
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str)
        assert error["code"]
        assert isinstance(error["message"], str)


def test_api_fuzz_no_server_errors_and_structured_refusals(api: Fuzzed) -> None:
    schema, tokens = api.schema, api.tokens
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
        _assert_structured(response, case)

    check()


def _nested(depth: int) -> Any:
    doc: Any = "vcek"
    for _ in range(depth):
        doc = [doc]
    return doc


#: Values from the issue 17 probe and around every bound the admin API has, by the kind of value they replace.
EXTREME_INTS = st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**31) - 1, -(2**63) - 1, 10**30])
FAR_TIMES = st.sampled_from(
    [
        "0001-01-01T00:00:00+05:00",  # year 0 in UTC
        "0001-01-01T00:00:00-14:00",
        "9999-12-31T23:59:59-05:00",  # year 10000 in UTC
        "9999-12-31T23:59:59+14:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "1969-12-31T23:59:59Z",
        "2001-01-01T00:00:00Z",  # in the past: an empty window when the start is left to now
        "2026-01-01T00:00:00",  # no timezone
    ]
)
BAD_TEXT = st.sampled_from(
    ["", " ", "\t\n", "acme\u202egpj.exe", "\u2066acme\u2069", "\u200facme", "acme\x07", "\ufeff", "x" * 10_000]
)
DEEP = st.one_of(
    st.integers(min_value=17, max_value=400).map(lambda n: {"allowed_csp_ids": [_nested(n)]}),  # a policy
    st.integers(min_value=17, max_value=400).map(
        lambda n: {"allowed_measurements": ["22" * 48], "cce_policies": {"p": _nested(n)}}  # reference values
    ),
)
_TIME_KEYS = frozenset({"valid_from", "valid_until", "from", "to"})
#: Operations whose bodies take a validity window, which schema-shaped cases often leave out.
_WINDOWS = frozenset({"/v1/admin/entitlements", "/v1/admin/reference-values"})


def _extreme(key: str, value: Any) -> st.SearchStrategy[Any]:
    """Extreme values for the field ``key``, of the kind its schema-shaped ``value`` has."""
    if key in _TIME_KEYS:
        return FAR_TIMES
    if isinstance(value, bool):
        return st.just(value)
    if isinstance(value, int):
        return EXTREME_INTS
    if isinstance(value, str):
        return BAD_TEXT
    if isinstance(value, dict):
        return DEEP
    if isinstance(value, list):
        return st.one_of(st.lists(BAD_TEXT, min_size=1, max_size=3), st.integers(250, 400).map(_nested))
    return st.one_of(EXTREME_INTS, BAD_TEXT, DEEP)


@st.composite
def _extreme_case(draw: st.DrawFn, operation: Any, ids: dict[str, str]) -> Any:
    """A schema-shaped case of ``operation`` with the fuzz's own ids put in (so it gets past the 404s to the
    services and the database) and each other body field and query parameter swapped, one time in two, for an
    extreme value of its kind."""
    case = draw(operation.as_strategy())
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and case.method == "POST" and case.path in _WINDOWS:
        for key in draw(st.lists(st.sampled_from(sorted(_TIME_KEYS & {"valid_from", "valid_until"})), unique=True)):
            body.setdefault(key, "2030-01-01T00:00:00Z")
    if case.path.endswith("/attestations") and case.method == "GET":
        for key in draw(st.lists(st.sampled_from(["from", "to"]), unique=True)):
            case.query = {**(case.query or {}), key: "2030-01-01T00:00:00Z"}
    for params, swap in ((case.path_parameters, False), (case.query, True), (body, True)):
        fields: dict[str, Any] = params or {}
        for key in list(fields):
            if key in ids:
                fields[key] = ids[key]
            elif swap and draw(st.booleans()):
                fields[key] = draw(_extreme(key, fields[key]))
    return case


def test_api_fuzz_admin_extreme_values_no_server_errors(api: Fuzzed) -> None:
    operations = [r.ok() for r in api.schema.get_all_operations() if r.ok().path.startswith("/v1/admin")]
    assert len(operations) >= 20
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    for operation in operations:  # each its own run: every operation gets its examples

        @settings(
            max_examples=EXTREME_EXAMPLES,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(_extreme_case(operation, api.ids))
        def check(case: Any) -> None:
            _assert_structured(case.call(headers=headers), case)

        check()


def test_api_fuzz_app_client_works(api: Fuzzed) -> None:
    """The fixture's app answers like the service (guards against fuzzing an app that refuses everything)."""
    schema, tokens = api.schema, api.tokens
    client = TestClient(schema.app)
    r = client.post("/v1/challenges", headers={"Authorization": f"Bearer {tokens['enclave']}"})
    assert r.status_code == 200
    assert client.get("/v1/admin/customers", headers={"Authorization": f"Bearer {tokens['admin']}"}).status_code == 200
