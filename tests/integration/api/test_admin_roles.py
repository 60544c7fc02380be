"""Roles on the admin API (verifier/api/roles.py; issue 17, finding 4) over HTTP against real PostgreSQL: every admin
route with every kind of credential (none, licence key, billing, a customer-scoped admin, viewer, operator, admin),
and what credential issuing and rotation do with roles and customer scope."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from tests.support.factories import make_customer, make_entitlement
from verifier.app import create_app
from verifier.auth.credentials import issue_credential
from verifier.config import Settings
from verifier.db.models import ApiCredential, AuditEvent, CredentialKind, StaffRole

ADMIN = "/v1/admin"

#: The role each admin route needs. Reads: viewer; revoking a lease and a customer's status: operator (as on the
#: dashboard); everything else: admin. Every route of the OpenAPI document under /v1/admin must be listed.
ROUTES: dict[tuple[str, str], StaffRole] = {
    ("GET", "/customers"): StaffRole.VIEWER,
    ("GET", "/customers/{customer_id}"): StaffRole.VIEWER,
    ("GET", "/models"): StaffRole.VIEWER,
    ("GET", "/reference-values"): StaffRole.VIEWER,
    ("GET", "/policies"): StaffRole.VIEWER,
    ("GET", "/entitlements"): StaffRole.VIEWER,
    ("GET", "/credentials"): StaffRole.VIEWER,
    ("GET", "/leases"): StaffRole.VIEWER,
    ("GET", "/deployments"): StaffRole.VIEWER,
    ("GET", "/attestations"): StaffRole.VIEWER,
    ("GET", "/attestations/{attestation_id}"): StaffRole.VIEWER,
    ("POST", "/leases/{lease_id}/revoke"): StaffRole.OPERATOR,
    ("PATCH", "/customers/{customer_id}"): StaffRole.OPERATOR,  # a status; a new name needs admin (below)
    ("POST", "/customers"): StaffRole.ADMIN,
    ("POST", "/models"): StaffRole.ADMIN,
    ("POST", "/models/{model_id}/versions"): StaffRole.ADMIN,
    ("POST", "/models/{model_id}/versions/{version_id}/rotate-key"): StaffRole.ADMIN,
    ("POST", "/reference-values"): StaffRole.ADMIN,
    ("PATCH", "/reference-values/{rv_id}"): StaffRole.ADMIN,
    ("POST", "/policies"): StaffRole.ADMIN,
    ("DELETE", "/policies/{policy_id}"): StaffRole.ADMIN,
    ("POST", "/entitlements"): StaffRole.ADMIN,
    ("PATCH", "/entitlements/{entitlement_id}"): StaffRole.ADMIN,
    ("POST", "/entitlements/{entitlement_id}/licence-keys"): StaffRole.ADMIN,
    ("POST", "/credentials"): StaffRole.ADMIN,
    ("POST", "/credentials/{credential_id}/rotate"): StaffRole.ADMIN,
    ("POST", "/credentials/{credential_id}/revoke"): StaffRole.ADMIN,
}
ROLES = [StaffRole.VIEWER, StaffRole.OPERATOR, StaffRole.ADMIN]
#: Credentials that may use no admin route, and the refusal each gets.
REFUSED = {"none": (401, "auth.missing"), "enclave": (403, "auth.forbidden"), "billing": (403, "auth.forbidden")}
REFUSED["scoped-admin"] = (403, "auth.forbidden")
RANK = {role: i for i, role in enumerate(ROLES)}


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def tokens(engine: Engine, settings: Settings) -> dict[str, str]:
    """One token per kind of credential: each role, a licence key, a billing credential, and an admin credential
    stored with a customer (as before roles: now refused at issue, so written straight into its row)."""
    pepper, now = settings.credential_pepper.get_secret_value().encode(), datetime.now(UTC)
    found: dict[str, str] = {}
    with Session(engine) as s:
        for role in ROLES:
            _, found[role.value] = issue_credential(s, pepper, CredentialKind.ADMIN, label="r", now=now, role=role)
        entitlement = make_entitlement(s, now=now)
        _, found["enclave"] = issue_credential(
            s,
            pepper,
            CredentialKind.ENCLAVE,
            label="e",
            now=now,
            customer_id=entitlement.customer_id,
            entitlement_id=entitlement.id,
        )
        _, found["billing"] = issue_credential(s, pepper, CredentialKind.BILLING_READ, label="b", now=now)
        scoped, found["scoped-admin"] = issue_credential(s, pepper, CredentialKind.ADMIN, label="s", now=now)
        s.execute(
            update(ApiCredential).where(ApiCredential.id == scoped.id).values(customer_id=entitlement.customer_id)
        )
        s.commit()
    return found


def _call(client: TestClient, method: str, path: str, token: str | None, body: Any = None) -> Any:
    url = ADMIN + path.format_map({k: uuid.uuid4() for k in _params(path)})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.request(method, url, headers=headers, json=body if method in {"POST", "PATCH"} else None)


def _params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def test_admin_roles_table_names_every_admin_route(client: TestClient) -> None:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(m.upper(), p.removeprefix(ADMIN)) for p, ops in paths.items() if p.startswith(ADMIN) for m in ops}
    assert routes == set(ROUTES)


@pytest.mark.parametrize("who", list(REFUSED))
@pytest.mark.parametrize(("method", "path"), list(ROUTES), ids=[f"{m}-{p}" for m, p in ROUTES])
def test_admin_route_refuses_credentials_that_are_not_unscoped_admin(
    client: TestClient, tokens: dict[str, str], who: str, method: str, path: str
) -> None:
    response = _call(client, method, path, tokens.get(who), {})
    status, code = REFUSED[who]
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("role", ROLES, ids=[r.value for r in ROLES])
@pytest.mark.parametrize(("method", "path"), list(ROUTES), ids=[f"{m}-{p}" for m, p in ROUTES])
def test_admin_route_needs_its_role(
    client: TestClient, tokens: dict[str, str], role: StaffRole, method: str, path: str
) -> None:
    """Below the route's role: 403 naming the role needed. At or above it: past authorization (the random ids and
    empty bodies then get their own 4xx, or the read its 200)."""
    need = ROUTES[(method, path)]
    response = _call(client, method, path, tokens[role.value], {})
    if RANK[role] < RANK[need]:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "auth.forbidden"
        assert response.json()["error"]["expected"] == need.value
    else:
        assert response.status_code not in (401, 403), response.text
        assert response.status_code < 500, response.text


def test_operator_changes_a_customers_status_but_not_its_name(
    client: TestClient, tokens: dict[str, str], engine: Engine
) -> None:
    with Session(engine) as s:
        customer = make_customer(s)
        s.commit()
        cid, name = customer.id, customer.name
    operator, viewer = tokens["operator"], tokens["viewer"]
    renamed = _call(client, "PATCH", f"/customers/{cid}", operator, {"name": f"x-{uuid.uuid4().hex[:8]}"})
    assert renamed.status_code == 403, renamed.text
    assert renamed.json()["error"]["expected"] == "admin"
    assert _call(client, "PATCH", f"/customers/{cid}", viewer, {"status": "suspended"}).status_code == 403
    suspended = _call(client, "PATCH", f"/customers/{cid}", operator, {"status": "suspended"})
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["name"] == name


def _issue(client: TestClient, tokens: dict[str, str], body: dict[str, Any], expect: int) -> Any:
    response = _call(client, "POST", "/credentials", tokens["admin"], body)
    assert response.status_code == expect, response.text
    return response.json()


def test_admin_credential_issued_with_a_role_has_exactly_that_role(
    client: TestClient, tokens: dict[str, str], engine: Engine
) -> None:
    issued = _issue(client, tokens, {"kind": "admin", "label": "read-only", "role": "viewer"}, 201)
    assert issued["credential"]["role"] == "viewer"
    assert _call(client, "GET", "/customers", issued["token"]).status_code == 200
    assert _call(client, "POST", "/customers", issued["token"], {"name": "x"}).status_code == 403
    with Session(engine) as s:
        [event] = s.scalars(select(AuditEvent).where(AuditEvent.subject_id == issued["credential"]["id"])).all()
    assert event.data["role"] == "viewer"


def test_admin_credential_role_defaults_to_admin(client: TestClient, tokens: dict[str, str]) -> None:
    assert _issue(client, tokens, {"kind": "admin", "label": "full"}, 201)["credential"]["role"] == "admin"


def test_admin_credential_for_a_customer_is_refused_and_not_stored(
    client: TestClient, tokens: dict[str, str], engine: Engine
) -> None:
    with Session(engine) as s:
        customer = make_customer(s)
        s.commit()
        cid = customer.id
    label = f"scoped-{uuid.uuid4().hex[:8]}"
    error = _issue(client, tokens, {"kind": "admin", "label": label, "customer_id": str(cid)}, 400)["error"]
    assert error["code"] == "usage.invalid"
    with Session(engine) as s:
        assert s.scalars(select(ApiCredential).where(ApiCredential.label == label)).all() == []


def test_billing_credential_with_a_role_is_refused(client: TestClient, tokens: dict[str, str]) -> None:
    body = {"kind": "billing-read", "label": "b", "role": "viewer"}
    assert _issue(client, tokens, body, 400)["error"]["code"] == "usage.invalid"


def test_billing_credential_has_no_role(client: TestClient, tokens: dict[str, str]) -> None:
    assert _issue(client, tokens, {"kind": "billing-read", "label": "b"}, 201)["credential"]["role"] is None


def test_rotated_admin_credential_keeps_its_role(client: TestClient, tokens: dict[str, str]) -> None:
    old = _issue(client, tokens, {"kind": "admin", "label": "ops", "role": "operator"}, 201)
    rotated = _call(client, "POST", f"/credentials/{old['credential']['id']}/rotate", tokens["admin"], {})
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["credential"]["role"] == "operator"
