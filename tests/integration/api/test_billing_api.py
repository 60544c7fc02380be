"""The billing API (/v1/billing) over HTTP against real PostgreSQL: the hand-computed scenario of
tests/unit/billing/scenario.py as JSON, closed-period reproducibility, cursor pagination, 400s with stable codes, and
credential scoping (billing reads billing only; admin and enclave credentials cannot read billing).

Rows are committed (the app's sessions are its own) and deleted again when the module or test ends.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session

from tests.support.factories import make_entitlement
from tests.unit.billing.scenario import NOW, Scenario, at, remove, seed
from verifier.app import create_app
from verifier.auth.credentials import issue_credential
from verifier.config import Settings
from verifier.db.models import ApiCredential, CredentialKind, Customer, Entitlement, Lease, LeaseStatus, Model

BILLING = "/v1/billing"
DAYS = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-04T00:00:00Z", "granularity": "day"}


@dataclass(frozen=True)
class World:
    scenario: Scenario
    extra: tuple[Entitlement, Entitlement]  # two more entitlements of the main customer
    tokens: dict[str, str]  # billing, billing-other (scoped to the other customer), admin, enclave
    names: dict[uuid.UUID, str]  # the main customer and model names by id


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _issue(session: Session, settings: Settings, kind: CredentialKind, **scope: Any) -> tuple[ApiCredential, str]:
    pepper = settings.credential_pepper.get_secret_value().encode()
    return issue_credential(session, pepper, kind, label="billing test", now=datetime.now(UTC), **scope)


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, simulation_time=NOW)


def _client_at(settings: Settings, now: datetime) -> TestClient:
    return TestClient(create_app(settings.model_copy(update={"simulation_time": now})))


@pytest.fixture(scope="module")
def client(settings: Settings) -> TestClient:
    return _client_at(settings, NOW)


def _seed_world(engine: Engine, settings: Settings) -> tuple[World, list[ApiCredential]]:
    with Session(engine, expire_on_commit=False) as s:
        scenario = seed(s)
        customer, model = s.get(Customer, scenario.main.customer_id), s.get(Model, scenario.main.model_id)
        assert customer is not None
        assert model is not None
        extra = (make_entitlement(s, customer=customer), make_entitlement(s, customer=customer))
        issued = {
            "billing": _issue(s, settings, CredentialKind.BILLING_READ),
            "billing-other": _issue(s, settings, CredentialKind.BILLING_READ, customer_id=scenario.other.customer_id),
            "admin": _issue(s, settings, CredentialKind.ADMIN),
            "enclave": _issue(
                s, settings, CredentialKind.ENCLAVE, customer_id=customer.id, entitlement_id=scenario.main.id
            ),
        }
        names = {customer.id: customer.name, model.id: model.name}
        s.commit()
    tokens = {name: token for name, (_, token) in issued.items()}
    return World(scenario, extra, tokens, names), [row for row, _ in issued.values()]


def _remove_world(engine: Engine, world: World, credentials: list[ApiCredential]) -> None:
    with Session(engine) as s:
        s.execute(delete(ApiCredential).where(ApiCredential.id.in_([c.id for c in credentials])))
        for entitlement in world.extra:
            s.execute(delete(Entitlement).where(Entitlement.id == entitlement.id))
            s.execute(delete(Model).where(Model.id == entitlement.model_id))
        remove(s, world.scenario)
        s.commit()


@pytest.fixture(scope="module")
def world(engine: Engine, settings: Settings) -> Iterator[World]:
    world, credentials = _seed_world(engine, settings)
    yield world
    _remove_world(engine, world, credentials)


def _get(
    client: TestClient, path: str, token: str | None, params: dict[str, str] | None = None, expect: int = 200
) -> Any:
    response = client.get(BILLING + path, headers=_auth(token), params=params)
    assert response.status_code == expect, response.text
    return response.json()


def _row(
    entitlement: Entitlement, day: int, closed: bool, lease: str, gpu: str, hours: str, deployments: int, *counts: int
) -> dict[str, Any]:
    return {
        "entitlement_id": str(entitlement.id),
        "customer_id": str(entitlement.customer_id),
        "period_start": f"2026-03-{day:02d}T00:00:00Z",
        "period_end": f"2026-03-{day + 1:02d}T00:00:00Z",
        "closed": closed,
        "lease_seconds": lease,
        "gpu_seconds": gpu,
        "gpu_hours": hours,
        "deployments": deployments,
        "attestations_accepted": counts[0],
        "attestations_rejected": counts[1],
        "renewals_accepted": counts[2],
        "renewals_rejected": counts[3],
    }


def test_usage_daily_rows_match_hand_computation(client: TestClient, world: World) -> None:
    main = world.scenario.main
    body = _get(client, "/usage", world.tokens["billing"], {**DAYS, "entitlement": str(main.id)})
    assert body == {
        "items": [
            _row(main, 1, True, "7200.000000", "0.000000", "0.000000", 1, 1, 1, 0, 0),
            _row(main, 2, True, "9900.500000", "3600.000000", "1.000000", 3, 2, 1, 0, 1),
            _row(main, 3, False, "10800.000000", "21600.000000", "6.000000", 1, 1, 0, 1, 0),
        ],
        "next_cursor": None,
    }
    other = world.scenario.other
    body = _get(client, "/usage", world.tokens["billing"], {**DAYS, "customer": str(other.customer_id)})
    assert body["items"] == [_row(other, 1, True, "3600.000000", "0.000000", "0.000000", 1, 1, 0, 0, 0)]


def test_usage_closed_periods_identical_twice_and_after_later_activity(engine: Engine, settings: Settings) -> None:
    world, credentials = _seed_world(engine, settings)
    scenario, headers = world.scenario, _auth(world.tokens["billing"])

    def snapshot(now: datetime) -> list[bytes]:
        """Hours 03-01 00:00 to 03-03 11:00 of each customer; all closed at NOW (12:00)."""
        client, query = _client_at(settings, now), {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T11:00:00Z"}
        responses = [
            client.get(f"{BILLING}/usage", headers=headers, params={**query, "granularity": "hour", "customer": str(c)})
            for c in (scenario.main.customer_id, scenario.other.customer_id)
        ]
        assert all(r.status_code == 200 for r in responses)
        assert all(row["closed"] for r in responses for row in r.json()["items"])
        return [r.content for r in responses]

    try:
        first = snapshot(NOW)
        assert snapshot(NOW) == first
        # Later: the enclave releases the live lease L4 (issued 09:00) on 03-20, on the decision clock it was issued
        # on, and beat finally expires L5 (expires_at 03-01 06:00) on 03-20.
        client = _client_at(settings, at(20, 0))
        released = client.delete(f"/v1/leases/{scenario.live_lease.id}", headers=_auth(world.tokens["enclave"]))
        assert released.status_code == 204
        with Session(engine) as s:
            lease = s.get(Lease, scenario.live_lease.id)
            assert lease is not None
            assert lease.ended_at == at(20, 0)
        with Session(engine) as s:  # what beat's expire_leases does, for L5 only (other tests' leases stay live)
            s.execute(
                update(Lease)
                .where(Lease.entitlement_id == scenario.other.id)
                .values(status=LeaseStatus.EXPIRED, ended_at=at(20, 0))
            )
            s.commit()
        assert snapshot(at(20, 0)) == first
        assert b'"lease_seconds":"3600.000000"' in first[1]  # L5 stays one hour
    finally:
        _remove_world(engine, world, credentials)


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_usage_pages_walk_every_row_once(client: TestClient, world: World, limit: int) -> None:
    token = world.tokens["billing"]
    everything = _get(client, "/usage", token, {**DAYS, "limit": "1000"})
    assert everything["next_cursor"] is None
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = _get(client, "/usage", token, {**DAYS, "limit": str(limit), **({"cursor": cursor} if cursor else {})})
        assert len(page["items"]) <= limit
        walked.extend(page["items"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert walked == everything["items"]
    keys = [(r["period_start"], r["entitlement_id"]) for r in walked]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    assert {str(world.scenario.main.id), str(world.scenario.other.id)} <= {r["entitlement_id"] for r in walked}


def test_entitlements_list_get_and_pages(client: TestClient, world: World) -> None:
    main, token = world.scenario.main, world.tokens["billing"]
    expected = {
        "id": str(main.id),
        "customer": {"id": str(main.customer_id), "name": world.names[main.customer_id]},
        "model": {"id": str(main.model_id), "name": world.names[main.model_id]},
        "seats": 3,
        "max_gpus": 4,
        "allowed_platforms": ["tdx", "snp", "nvidia"],
        "allowed_versions": [],
        "valid_from": "2026-01-30T00:00:00Z",
        "valid_until": "2027-01-01T00:00:00Z",
        "status": "active",
        "live_leases": 1,
    }
    assert _get(client, f"/entitlements/{main.id}", token) == expected
    pages: list[dict[str, Any]] = []
    params: dict[str, str] = {"customer": str(main.customer_id), "limit": "2"}
    while True:
        page = _get(client, "/entitlements", token, params)
        pages.append(page)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert [len(p["items"]) for p in pages] == [2, 1]
    items = [item for p in pages for item in p["items"]]
    assert [i["id"] for i in items] == sorted(str(e.id) for e in (main, *world.extra))
    assert expected in items
    everything = _get(client, "/entitlements", token, {"limit": "1000"})["items"]
    assert {str(main.id), str(world.scenario.other.id)} <= {i["id"] for i in everything}


def test_entitlement_unknown_is_404(client: TestClient, world: World) -> None:
    body = _get(client, f"/entitlements/{uuid.uuid4()}", world.tokens["billing"], expect=404)
    assert body["error"]["code"] == "resource.not_found"


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


USAGE_BAD = [
    ("missing_from", {"to": DAYS["to"]}, "billing.query.invalid"),
    ("missing_to", {"from": DAYS["from"]}, "billing.query.invalid"),
    ("from_not_iso", {**DAYS, "from": "yesterday"}, "billing.query.invalid"),
    ("from_unencoded_plus", {**DAYS, "from": "2026-03-01T00:00:00 00:00"}, "billing.query.invalid"),
    ("from_naive", {**DAYS, "from": "2026-03-01T00:00:00"}, "billing.query.invalid"),
    ("from_after_to", {**DAYS, "from": DAYS["to"], "to": DAYS["from"]}, "billing.query.invalid"),
    ("from_equals_to", {**DAYS, "to": DAYS["from"]}, "billing.query.invalid"),
    ("hours_too_long", {**DAYS, "to": "2026-04-02T00:00:00Z", "granularity": "hour"}, "billing.query.invalid"),
    ("days_too_long", {**DAYS, "to": "2027-03-03T00:00:00Z"}, "billing.query.invalid"),
    ("year_one", {**DAYS, "from": "0001-01-01T00:00:00+01:00"}, "billing.query.invalid"),
    ("granularity_week", {**DAYS, "granularity": "week"}, "billing.query.invalid"),
    ("limit_zero", {**DAYS, "limit": "0"}, "billing.query.invalid"),
    ("limit_too_big", {**DAYS, "limit": "1001"}, "billing.query.invalid"),
    ("limit_not_int", {**DAYS, "limit": "ten"}, "billing.query.invalid"),
    ("limit_superscript", {**DAYS, "limit": "\u00b2"}, "billing.query.invalid"),
    ("limit_huge", {**DAYS, "limit": "9" * 5000}, "billing.query.invalid"),
    ("customer_not_uuid", {**DAYS, "customer": "acme"}, "billing.query.invalid"),
    ("entitlement_not_uuid", {**DAYS, "entitlement": "42"}, "billing.query.invalid"),
    ("cursor_garbage", {**DAYS, "cursor": "%%%"}, "billing.cursor.invalid"),
    ("cursor_too_long", {**DAYS, "cursor": "A" * 500}, "billing.cursor.invalid"),
    ("cursor_of_entitlements", {**DAYS, "cursor": _cursor(f"e|{uuid.uuid4()}")}, "billing.cursor.invalid"),
    ("cursor_bad_time", {**DAYS, "cursor": _cursor(f"u|noon|{uuid.uuid4()}")}, "billing.cursor.invalid"),
    (
        "cursor_naive_time",
        {**DAYS, "cursor": _cursor(f"u|2026-03-01T00:00:00|{uuid.uuid4()}")},
        "billing.cursor.invalid",
    ),
    ("cursor_short", {**DAYS, "cursor": _cursor("u|2026-03-01T00:00:00+00:00")}, "billing.cursor.invalid"),
]
ENTITLEMENTS_BAD = [
    ("list_limit_negative", "/entitlements", {"limit": "-1"}, "billing.query.invalid"),
    ("list_customer_not_uuid", "/entitlements", {"customer": "x"}, "billing.query.invalid"),
    (
        "list_cursor_of_usage",
        "/entitlements",
        {"cursor": _cursor("u|2026-03-01T00:00:00+00:00|x")},
        "billing.cursor.invalid",
    ),
    ("list_cursor_not_uuid", "/entitlements", {"cursor": _cursor("e|nope")}, "billing.cursor.invalid"),
    (
        "list_cursor_not_utf8",
        "/entitlements",
        {"cursor": base64.urlsafe_b64encode(b"\xff\xfe").decode()},
        "billing.cursor.invalid",
    ),
    ("get_not_uuid", "/entitlements/not-a-uuid", {}, "billing.query.invalid"),
]


@pytest.mark.parametrize(("params", "code"), [c[1:] for c in USAGE_BAD], ids=[c[0] for c in USAGE_BAD])
def test_usage_bad_parameter_is_400(client: TestClient, world: World, params: dict[str, str], code: str) -> None:
    assert _get(client, "/usage", world.tokens["billing"], params, expect=400)["error"]["code"] == code


@pytest.mark.parametrize(
    ("path", "params", "code"), [c[1:] for c in ENTITLEMENTS_BAD], ids=[c[0] for c in ENTITLEMENTS_BAD]
)
def test_entitlements_bad_parameter_is_400(
    client: TestClient, world: World, path: str, params: dict[str, str], code: str
) -> None:
    assert _get(client, path, world.tokens["billing"], params, expect=400)["error"]["code"] == code


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_PARAM = st.one_of(_TEXT, st.sampled_from([*DAYS.values(), "hour", "2026-03-02T00:00:00+05:30", str(uuid.uuid4())]))


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["from", "to", "granularity", "customer", "cursor", "limit"]), _PARAM))
def test_usage_arbitrary_parameters_never_500(client: TestClient, world: World, params: dict[str, str]) -> None:
    response = client.get(f"{BILLING}/usage", headers=_auth(world.tokens["billing"]), params=params)
    assert response.status_code in {200, 400}, response.text
    if response.status_code == 400:
        assert response.json()["error"]["code"] in {"billing.query.invalid", "billing.cursor.invalid"}


FORBIDDEN, MISSING, INVALID = (403, "auth.forbidden"), (401, "auth.missing"), (401, "auth.invalid")
ACCESS: list[tuple[str | None, str, str, tuple[int, str | None]]] = [
    # A billing credential reads billing and nothing else.
    ("billing", "GET", "/v1/billing/entitlements", (200, None)),
    ("billing", "GET", "/v1/billing/usage?from=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", (200, None)),
    ("billing", "GET", "/v1/admin/customers", FORBIDDEN),
    ("billing", "GET", "/v1/admin/leases", FORBIDDEN),
    ("billing", "POST", "/v1/challenges", FORBIDDEN),
    ("billing", "GET", f"/v1/attestations/{uuid.uuid4()}", FORBIDDEN),
    ("billing", "DELETE", f"/v1/leases/{uuid.uuid4()}", FORBIDDEN),
    # Admin and enclave credentials cannot read billing; no credential or a bad one is a 401.
    ("admin", "GET", "/v1/billing/entitlements", FORBIDDEN),
    ("admin", "GET", "/v1/billing/usage", FORBIDDEN),
    ("enclave", "GET", "/v1/billing/entitlements", FORBIDDEN),
    ("enclave", "GET", f"/v1/billing/entitlements/{uuid.uuid4()}", FORBIDDEN),
    ("enclave", "GET", "/v1/billing/usage", FORBIDDEN),
    (None, "GET", "/v1/billing/entitlements", MISSING),
    (None, "GET", "/v1/billing/usage", MISSING),
    ("kw_0123456789abcdef_wrong", "GET", "/v1/billing/usage", INVALID),
]


@pytest.mark.parametrize(
    ("who", "method", "path", "outcome"), ACCESS, ids=[f"{a[0]}-{a[1]}-{a[2].split('?')[0]}" for a in ACCESS]
)
def test_credential_scoping(
    client: TestClient, world: World, who: str | None, method: str, path: str, outcome: tuple[int, str | None]
) -> None:
    token = world.tokens.get(who, who) if who else None
    response = client.request(method, path, headers=_auth(token))
    assert response.status_code == outcome[0], response.text
    if outcome[1] is not None:
        assert response.json()["error"]["code"] == outcome[1]


def test_customer_scoped_billing_credential_sees_its_customer_only(client: TestClient, world: World) -> None:
    token, main, other = world.tokens["billing-other"], world.scenario.main, world.scenario.other
    assert [i["id"] for i in _get(client, "/entitlements", token, {"limit": "1000"})["items"]] == [str(other.id)]
    assert _get(client, f"/entitlements/{main.id}", token, expect=404)["error"]["code"] == "resource.not_found"
    assert {r["entitlement_id"] for r in _get(client, "/usage", token, DAYS)["items"]} == {str(other.id)}
    forbidden = _get(client, "/usage", token, {**DAYS, "customer": str(main.customer_id)}, expect=403)
    assert forbidden["error"]["code"] == "auth.forbidden"
    assert _get(client, "/usage", token, {**DAYS, "entitlement": str(main.id)})["items"] == []
