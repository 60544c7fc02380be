"""The customer pages over HTTP against real PostgreSQL (the world of ``customers_world``, whose seats are known):
the list (seats used vs allowed, live leases, search, keyset pages, a bad cursor), a customer's page (entitlements
with their seats and highlights, licence keys, the deployments link, recent changes), who may do what (viewer,
operator, admin; the CSRF token), and each form: create a customer, add an entitlement, change its status, issue a
licence key (shown once, ``no-store``) and revoke it, suspend and reinstate the customer, each audited as
``staff:<name>``; and each defect of a form one at a time (a 400 page with the message, nothing written)."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.integration.dashboard.customers_world import SeededCustomers, remove_customers, seed_customers
from tests.support.dashboard import DASHBOARD
from verifier.api.dashboard import customers as customers_view
from verifier.app import create_app
from verifier.auth.credentials import authenticate
from verifier.config import Settings
from verifier.db.models import (
    ApiCredential,
    AuditEvent,
    CredentialKind,
    Customer,
    CustomerStatus,
    Entitlement,
    EntitlementStatus,
    Lease,
    LeaseStatus,
    StaffRole,
)

_ROW = re.compile(r'<a href="/dashboard/customers/([0-9a-f-]{36})">([^<]+)</a>')
_NEXT = re.compile(r'<a class="button button-quiet" rel="next" href="([^"]+)">')
_TOKEN = re.compile(r'<textarea id="licence-key"[^>]*>([^<]+)</textarea>')


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, staff_login_address_max_failures=1000)


@pytest.fixture(scope="module")
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def seeded(engine: Engine) -> Iterator[SeededCustomers]:
    seeded = seed_customers(engine, datetime.now(UTC))
    yield seeded
    remove_customers(engine, seeded)


def _csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"{DASHBOARD}/").text)
    assert found is not None
    return found.group(1)


def _audit(engine: Engine, subject_type: str, subject_id: object) -> list[tuple[str, str]]:
    with Session(engine) as s:
        rows = s.execute(
            select(AuditEvent.tag, AuditEvent.actor)
            .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == str(subject_id))
            .order_by(AuditEvent.id)
        ).all()
    return [(tag, actor) for tag, actor in rows]


def _row_html(html: str, customer_id: uuid.UUID) -> str:
    """The list's table row of one customer."""
    start = html.index(f'href="/dashboard/customers/{customer_id}"')
    return html[start : html.index("</tr>", start)]


def _section(html: str, entitlement_id: uuid.UUID) -> str:
    """A customer's page's section of one entitlement."""
    start = html.index(f'id="x-{entitlement_id}"')
    return html[start : html.index("</section>", start)]


def _customer(engine: Engine, customer_id: uuid.UUID) -> Customer:
    with Session(engine) as s:
        return s.get_one(Customer, customer_id)


def _entitlements(engine: Engine, customer_id: uuid.UUID) -> list[Entitlement]:
    with Session(engine) as s:
        return list(s.scalars(select(Entitlement).where(Entitlement.customer_id == customer_id)))


# -- the list ---------------------------------------------------------------------------------------------------


def test_customers_list_counts_seats_as_the_entitlement_service(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/customers", params={"q": seeded.token})
    assert response.status_code == 200
    assert sorted(name for _, name in _ROW.findall(response.text)) == [f"Acme {seeded.token}", f"Globex {seeded.token}"]
    acme = _row_html(response.text, seeded.acme)
    # 2 seats on main (the expired-but-live and the released lease hold none) + 1 on small; the revoked
    # entitlement's 5 seats are not allowed any more: 3 of 3 + 1.
    assert "<strong>3</strong> / 4" in acme
    assert '<td class="num">3</td>' in acme  # live leases
    assert "(2 active)" in acme  # of 3 entitlements
    globex = _row_html(response.text, seeded.globex)
    assert "<strong>0</strong> / 0" in globex


def test_customers_list_search_without_match_shows_the_empty_state(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/customers", params={"q": f"nobody-{seeded.token}"})
    assert response.status_code == 200
    assert "No customer's name contains" in response.text


def test_customers_list_next_links_walk_every_row_once(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(customers_view, "PAGE_SIZE", 1)
    client = signed_in(StaffRole.VIEWER)
    names: list[list[str]] = []
    url = f"{DASHBOARD}/customers?q={seeded.token}"
    while True:
        response = client.get(url)
        assert response.status_code == 200
        names.append([name for _, name in _ROW.findall(response.text)])
        found = _NEXT.search(response.text)
        if found is None:
            break
        url = found.group(1).replace("&amp;", "&")
    assert names == [[f"Acme {seeded.token}"], [f"Globex {seeded.token}"]]


def test_customers_list_bad_cursor_is_a_400_page(signed_in: Callable[[StaffRole], TestClient]) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/customers", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "the page cursor is not one this list gave" in response.text


def test_customers_list_signed_out_redirects_to_sign_in(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        response = client.get(f"{DASHBOARD}/customers")
    assert response.status_code == 303
    assert response.headers["location"] == f"{DASHBOARD}/login?next=/dashboard/customers"


def test_customers_navigation_entry_shown_to_a_viewer(signed_in: Callable[[StaffRole], TestClient]) -> None:
    client = signed_in(StaffRole.VIEWER)
    assert '<a href="/dashboard/customers">Customers</a>' in client.get(f"{DASHBOARD}/").text


# -- a customer's page ------------------------------------------------------------------------------------------


def test_customer_page_shows_each_entitlement_with_its_seats(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/customers/{seeded.acme}")
    assert response.status_code == 200
    text = response.text
    assert "<strong>3</strong> used of 4 allowed" in text
    main = _section(text, seeded.main)
    assert "<strong>2</strong> used of 3" in main
    assert "bar-fill w-70" in main  # 2/3 rounded up to 5 %
    assert seeded.key_id in main
    assert f"prod key {seeded.token}" in main
    assert "Intel TDX" in main
    assert "NVIDIA GPU" in main
    assert "near its seat limit" not in main
    small = _section(text, seeded.small)
    assert "<strong>1</strong> used of 1" in small
    assert "all seats in use" in small
    assert "ends in" in small
    assert "bar-full" in small
    old = _section(text, seeded.old)
    assert "Revoked" in old
    assert "expired" in old
    assert f'href="/dashboard/deployments?customer={seeded.acme}"' in text


def test_customer_page_unknown_id_is_404(signed_in: Callable[[StaffRole], TestClient]) -> None:
    client = signed_in(StaffRole.VIEWER)
    assert client.get(f"{DASHBOARD}/customers/{uuid.uuid4()}").status_code == 404


@pytest.mark.parametrize(
    ("role", "present", "absent"),
    [
        (StaffRole.VIEWER, [], ["/suspend", "/licence-keys", "/entitlements/new", "/status", "/revoke"]),
        (StaffRole.OPERATOR, ["/suspend"], ["/licence-keys", "/entitlements/new", "/status", "/revoke"]),
        (StaffRole.ADMIN, ["/suspend", "/licence-keys", "/entitlements/new", "/status", "/revoke"], []),
    ],
    ids=["viewer", "operator", "admin"],
)
def test_customer_page_forms_follow_the_role(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    role: StaffRole,
    present: list[str],
    absent: list[str],
) -> None:
    text = signed_in(role).get(f"{DASHBOARD}/customers/{seeded.acme}").text
    for action in present:
        assert f'{action}"' in text, action
    for action in absent:
        assert f'{action}"' not in text, action


def test_customer_page_offers_suspension_before_revocation(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    text = signed_in(StaffRole.ADMIN).get(f"{DASHBOARD}/customers/{seeded.acme}").text
    options = re.findall(r'<option value="(\w+)">', _section(text, seeded.main))
    assert options == ["suspended", "revoked"]  # the first is the default: never the final one


# -- who may do what --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        (StaffRole.VIEWER, "post", "/customers/{acme}/suspend"),
        (StaffRole.VIEWER, "post", "/customers/{acme}/reinstate"),
        (StaffRole.OPERATOR, "get", "/customers/new"),
        (StaffRole.OPERATOR, "post", "/customers/new"),
        (StaffRole.OPERATOR, "get", "/customers/{acme}/entitlements/new"),
        (StaffRole.OPERATOR, "post", "/customers/{acme}/entitlements/new"),
        (StaffRole.OPERATOR, "post", "/customers/{acme}/entitlements/{main}/status"),
        (StaffRole.OPERATOR, "post", "/customers/{acme}/entitlements/{main}/licence-keys"),
        (StaffRole.OPERATOR, "post", "/customers/{acme}/licence-keys/{key}/revoke"),
    ],
    ids=[
        "viewer-suspend",
        "viewer-reinstate",
        "operator-new-customer-form",
        "operator-create-customer",
        "operator-new-entitlement-form",
        "operator-create-entitlement",
        "operator-entitlement-status",
        "operator-issue-key",
        "operator-revoke-key",
    ],
)
def test_customer_action_below_its_role_is_refused(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    engine: Engine,
    role: StaffRole,
    method: str,
    path: str,
) -> None:
    client = signed_in(role)
    url = DASHBOARD + path.format(acme=seeded.acme, main=seeded.main, key=seeded.key)
    data = {
        "csrf_token": _csrf(client),
        "confirm": "yes",
        "name": f"Sneaky {seeded.token}",
        "status": "suspended",
    }
    response = client.get(url) if method == "get" else client.post(url, data=data)
    assert response.status_code == 403
    assert "this needs the" in response.text
    assert _customer(engine, seeded.acme).status == CustomerStatus.ACTIVE
    with Session(engine) as s:
        assert s.get_one(Entitlement, seeded.main).status == EntitlementStatus.ACTIVE
        assert s.get_one(ApiCredential, seeded.key).revoked_at is None
        assert s.scalar(select(func.count()).where(Customer.name == f"Sneaky {seeded.token}")) == 0
        keys = select(func.count()).where(ApiCredential.entitlement_id == seeded.main)
        assert s.scalar(keys) == 1


def test_customer_suspend_without_csrf_refused(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    response = client.post(f"{DASHBOARD}/customers/{seeded.acme}/suspend", data={"confirm": "yes"})
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert _customer(engine, seeded.acme).status == CustomerStatus.ACTIVE


# -- suspend and reinstate --------------------------------------------------------------------------------------


def test_customer_suspend_then_reinstate_by_operator_audited(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    token = _csrf(client)

    suspended = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/suspend", data={"csrf_token": token, "confirm": "yes"}
    )

    assert suspended.status_code == 303
    assert suspended.headers["location"] == f"{DASHBOARD}/customers/{seeded.acme}?done=suspended"
    assert _customer(engine, seeded.acme).status == CustomerStatus.SUSPENDED
    with Session(engine) as s:
        states = s.scalars(select(Lease.status).where(Lease.id.in_(seeded.live_leases))).all()
    assert states == [LeaseStatus.REVOKED] * 3
    page = client.get(suspended.headers["location"]).text
    assert "The customer is suspended" in page
    assert "Customer status changed" in page
    assert "4 leases revoked" in page  # the service revokes the unmarked expired lease as well
    assert "/reinstate" in page

    reinstated = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/reinstate", data={"csrf_token": token, "confirm": "yes"}
    )

    assert reinstated.status_code == 303
    assert _customer(engine, seeded.acme).status == CustomerStatus.ACTIVE
    events = _audit(engine, "customer", seeded.acme)
    assert [tag for tag, _ in events] == ["admin:customer:status_changed"] * 2
    assert all(actor.startswith("staff:") for _, actor in events)


def test_customer_suspend_unconfirmed_changes_nothing(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    response = client.post(f"{DASHBOARD}/customers/{seeded.acme}/suspend", data={"csrf_token": _csrf(client)})
    assert response.status_code == 400
    assert "Tick the confirmation box to suspend the customer." in response.text
    assert _customer(engine, seeded.acme).status == CustomerStatus.ACTIVE
    assert _audit(engine, "customer", seeded.acme) == []


# -- create a customer ------------------------------------------------------------------------------------------


def test_customer_create_by_admin_redirects_to_its_page(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    form = client.get(f"{DASHBOARD}/customers/new")
    assert form.status_code == 200
    name = f"Initech {seeded.token}"

    response = client.post(
        f"{DASHBOARD}/customers/new", data={"csrf_token": _csrf(client), "name": f"  {name} ", "status": "active"}
    )

    assert response.status_code == 303
    with Session(engine) as s:
        created = s.scalars(select(Customer).where(Customer.name == name)).one()
    assert created.status == CustomerStatus.ACTIVE
    assert [tag for tag, _ in _audit(engine, "customer", created.id)] == ["admin:customer:created"]
    assert response.headers["location"] == f"{DASHBOARD}/customers/{created.id}?done=created"
    page = client.get(response.headers["location"]).text
    assert "The customer was created" in page
    assert "No entitlement yet" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "   "}, "The customer&#39;s name is required."),
        ({"name": "x" * 201}, "The customer&#39;s name is too long: at most 200 characters"),
        ({"name": "two\nlines"}, "may not hold control characters"),
        ({"name": "acme\u202egpj.exe"}, "may not hold control characters"),
        ({"status": "deleted"}, "Choose the customer&#39;s status from the list."),
    ],
    ids=["empty-name", "name-too-long", "control-character", "bidi-override", "unknown-status"],
)
def test_customer_create_defect_rerenders_the_form(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    engine: Engine,
    fields: dict[str, str],
    message: str,
) -> None:
    client = signed_in(StaffRole.ADMIN)
    data = {"csrf_token": _csrf(client), "name": f"Umbrella {seeded.token}", "status": "active", **fields}
    response = client.post(f"{DASHBOARD}/customers/new", data=data)
    assert response.status_code == 400
    assert message in response.text
    assert 'action="/dashboard/customers/new"' in response.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).where(Customer.name.contains(f"Umbrella {seeded.token}"))) == 0
        assert s.scalar(select(func.count()).where(Customer.name.contains("two\nlines"))) == 0


def test_customer_create_duplicate_name_is_a_conflict_on_the_form(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/new", data={"csrf_token": _csrf(client), "name": f"Acme {seeded.token}"}
    )
    assert response.status_code == 409
    assert "already exists: choose another name" in response.text


def test_customer_rename_by_admin_audited(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    name = f"Renamed {seeded.token}"
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/rename", data={"csrf_token": _csrf(client), "name": f" {name} "}
    )
    assert response.headers["location"] == f"{DASHBOARD}/customers/{seeded.acme}?done=renamed"
    assert _customer(engine, seeded.acme).name == name
    assert [tag for tag, _ in _audit(engine, "customer", seeded.acme)] == ["admin:customer:renamed"]


def test_customer_rename_to_a_taken_name_is_a_conflict(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    before = _customer(engine, seeded.acme).name
    taken = _customer(engine, seeded.globex).name
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/rename", data={"csrf_token": _csrf(client), "name": taken}
    )
    assert response.status_code == 409
    assert "choose another name" in response.text
    assert _customer(engine, seeded.acme).name == before


@pytest.mark.parametrize("role", [StaffRole.VIEWER, StaffRole.OPERATOR])
def test_customer_rename_below_admin_refused(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine, role: StaffRole
) -> None:
    client = signed_in(role)
    before = _customer(engine, seeded.acme).name
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/rename", data={"csrf_token": _csrf(client), "name": "x"}
    )
    assert response.status_code == 403
    assert _customer(engine, seeded.acme).name == before


# -- entitlements -----------------------------------------------------------------------------------------------


def _terms(seeded: SeededCustomers, **change: str) -> dict[str, str]:
    return {
        "model": str(seeded.model),
        "versions": "1.0, 1.1",
        "platform-intel-tdx": "yes",
        "platform-nvidia-gpu": "yes",
        "seats": "4",
        "max_gpus": "8",
        "lease_ttl": "900",
        "policy": str(seeded.policy),
        "status": "active",
        "valid_from": "2026-01-01T00:00",
        "valid_until": "2099-12-31",
        **change,
    }


def test_entitlement_create_by_admin_audited(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    form = client.get(f"{DASHBOARD}/customers/{seeded.globex}/entitlements/new")
    assert form.status_code == 200
    assert seeded.model_name in form.text
    assert "(1.0, 1.1)" in form.text
    assert 'name="platform-amd-sev-snp"' in form.text

    response = client.post(
        f"{DASHBOARD}/customers/{seeded.globex}/entitlements/new",
        data={"csrf_token": _csrf(client), **_terms(seeded)},
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{DASHBOARD}/customers/{seeded.globex}?done=entitlement-created"
    (created,) = _entitlements(engine, seeded.globex)
    assert created.model_id == seeded.model
    assert created.allowed_versions == ["1.0", "1.1"]
    assert created.allowed_platforms == ["intel-tdx", "nvidia-gpu"]
    assert (created.seats, created.max_gpus, created.lease_ttl_seconds) == (4, 8, 900)
    assert created.policy_id == seeded.policy
    assert created.valid_from == datetime(2026, 1, 1, tzinfo=UTC)
    assert created.valid_until == datetime(2099, 12, 31, tzinfo=UTC)
    (event,) = _audit(engine, "entitlement", created.id)
    assert event[0] == "admin:entitlement:created"
    assert event[1].startswith("staff:")
    page = client.get(response.headers["location"]).text
    assert "<strong>0</strong> used of 4" in page
    assert f"tdx-strict-{seeded.token}" in page


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seats": "abc"}, "Seats: &#39;abc&#39; is not a whole number from 1 to 100000."),
        ({"seats": "0"}, "Seats must be from 1 to 100000 (not 0)."),
        ({"seats": "99999999999999"}, "is not a whole number from 1 to 100000"),
        ({"seats": ""}, "Seats: enter a whole number from 1 to 100000."),
        ({"max_gpus": "-1"}, "Max GPUs: &#39;-1&#39; is not a whole number from 0 to 1024."),
        ({"lease_ttl": "59"}, "The lease TTL must be from 60 to 604800 (not 59)."),
        ({"lease_ttl": "1e3"}, "The lease TTL: &#39;1e3&#39; is not a whole number"),
        ({"model": str(uuid.UUID(int=7))}, "Choose a model from the list."),
        ({"model": "llm"}, "Choose a model from the list."),
        ({"policy": str(uuid.UUID(int=9))}, "Choose a policy from the list, or none."),
        ({"platform-intel-tdx": "", "platform-nvidia-gpu": ""}, "Tick at least one platform."),
        ({"versions": "1.0, " + "9" * 65}, "A version is at most 64 characters"),
        ({"versions": ",".join(str(i) for i in range(51))}, "List at most 50 versions (this lists 51)."),
        ({"versions": "1.0," * 1000}, "The versions are too long: at most 50 of 64 characters each."),
        ({"valid_from": "yesterday"}, "&#39;yesterday&#39; is not a date"),
        ({"valid_until": "2026-02-30"}, "&#39;2026-02-30&#39; is not a date"),
        ({"valid_until": "2025-12-31"}, "The end of the validity window must be after its start."),
        ({"valid_from": "", "valid_until": "2000-01-01"}, "The end of the validity window must be after now."),
        ({"status": "revoked"}, "Choose active or suspended."),
        ({"valid_from": "0001-01-01T00:00+05:00"}, "must be from 1970-01-01T00:00:00Z to 9999-01-01T00:00:00Z in UTC"),
        ({"valid_until": "9999-12-31T23:59-05:00"}, "must be from 1970-01-01T00:00:00Z to 9999-01-01T00:00:00Z in UTC"),
        ({"versions": "1.0, 2.0\u202e"}, "A version may not hold control characters"),
    ],
    ids=[
        "seats-not-a-number",
        "seats-zero",
        "seats-too-long",
        "seats-empty",
        "gpus-negative",
        "ttl-too-short",
        "ttl-exponent",
        "model-unknown",
        "model-not-an-id",
        "policy-unknown",
        "no-platform",
        "version-too-long",
        "too-many-versions",
        "versions-field-too-long",
        "from-unreadable",
        "until-no-such-day",
        "until-before-from",
        "until-in-the-past",
        "status-revoked",
        "from-year-1-east-of-utc",  # year 0 in UTC: was a 500 (issue 17, finding 6)
        "until-year-9999-west-of-utc",
        "version-bidi-override",  # issue 17, finding 9
    ],
)
def test_entitlement_create_defect_rerenders_the_form(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    engine: Engine,
    change: dict[str, str],
    message: str,
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.globex}/entitlements/new",
        data={"csrf_token": _csrf(client), **_terms(seeded, **change)},
    )
    assert response.status_code == 400
    assert message in response.text
    assert "The entitlement was not created." in response.text
    assert 'class="field-error"' in response.text
    assert _entitlements(engine, seeded.globex) == []


def test_entitlement_create_for_unknown_customer_is_404(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{uuid.uuid4()}/entitlements/new", data={"csrf_token": _csrf(client), **_terms(seeded)}
    )
    assert response.status_code == 404


def test_entitlement_status_suspend_then_revoke_audited_and_final(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    token = _csrf(client)
    url = f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/status"

    suspended = client.post(url, data={"csrf_token": token, "status": "suspended", "confirm": "yes"})

    assert suspended.headers["location"] == f"{DASHBOARD}/customers/{seeded.acme}?done=entitlement-suspended"
    with Session(engine) as s:
        assert s.get_one(Entitlement, seeded.main).status == EntitlementStatus.SUSPENDED
        assert s.get_one(Lease, seeded.live_leases[0]).status == LeaseStatus.REVOKED
        assert s.get_one(Lease, seeded.live_leases[2]).status == LeaseStatus.LIVE  # the other entitlement's
    revoked = client.post(url, data={"csrf_token": token, "status": "revoked", "confirm": "yes"})
    assert revoked.status_code == 303
    again = client.post(url, data={"csrf_token": token, "status": "active", "confirm": "yes"})
    assert again.status_code == 409
    events = _audit(engine, "entitlement", seeded.main)
    assert [tag for tag, _ in events] == ["admin:entitlement:status_changed"] * 2
    assert all(actor.startswith("staff:") for _, actor in events)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"status": "suspended"}, "Tick the confirmation box to change the entitlement&#39;s status."),
        ({"status": "paused", "confirm": "yes"}, "Choose the entitlement&#39;s new status from the list."),
    ],
    ids=["unconfirmed", "unknown-status"],
)
def test_entitlement_status_defect_changes_nothing(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    engine: Engine,
    data: dict[str, str],
    message: str,
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/status",
        data={"csrf_token": _csrf(client), **data},
    )
    assert response.status_code == 400
    assert message in response.text
    with Session(engine) as s:
        assert s.get_one(Entitlement, seeded.main).status == EntitlementStatus.ACTIVE


def test_entitlement_of_another_customer_is_404(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.globex}/entitlements/{seeded.main}/status",
        data={"csrf_token": _csrf(client), "status": "suspended", "confirm": "yes"},
    )
    assert response.status_code == 404
    with Session(engine) as s:
        assert s.get_one(Entitlement, seeded.main).status == EntitlementStatus.ACTIVE


def _edit_form(client: TestClient, seeded: SeededCustomers) -> dict[str, str]:
    """The edit form's fields as the page fills them (every input with a value, the ticked platforms)."""
    page = client.get(f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/edit")
    assert page.status_code == 200, page.text
    fields = dict(
        re.findall(
            r'<input id="[^"]+" name="([a-z_]+)" type="(?:text|number|datetime-local)"[^>]* value="([^"]*)"', page.text
        )
    )
    fields |= dict.fromkeys(re.findall(r'name="(platform-[a-z-]+)" value="yes" checked', page.text), "yes")
    policy = re.search(r'<option value="([0-9a-f-]{36})" selected>', page.text)
    fields["policy"] = policy.group(1) if policy else ""
    return {k: html.unescape(v) for k, v in fields.items()}


def test_entitlement_edit_terms_by_admin_audited(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    fields = _edit_form(client, seeded)
    (before,) = [e for e in _entitlements(engine, seeded.acme) if e.id == seeded.main]
    assert fields["seats"] == str(before.seats)

    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/edit",
        data={"csrf_token": _csrf(client), **fields, "seats": str(before.seats + 3), "max_gpus": "2"},
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{DASHBOARD}/customers/{seeded.acme}?done=entitlement-edited"
    (after,) = [e for e in _entitlements(engine, seeded.acme) if e.id == seeded.main]
    assert (after.seats, after.max_gpus, after.status) == (before.seats + 3, 2, before.status)
    assert (after.valid_from, after.valid_until, after.model_id) == (
        before.valid_from,
        before.valid_until,
        before.model_id,
    )
    with Session(engine) as s:
        [event] = s.scalars(
            select(AuditEvent).where(
                AuditEvent.tag == "admin:entitlement:terms_changed", AuditEvent.subject_id == str(seeded.main)
            )
        )
    assert event.actor.startswith("staff:")
    assert set(event.data["after"]) == {"seats", "max_gpus"}  # untouched times kept to the microsecond
    with Session(engine) as s:
        assert s.get_one(Lease, seeded.live_leases[0]).status == LeaseStatus.LIVE  # leases run on


def test_entitlement_edit_unchanged_form_records_nothing(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    fields = _edit_form(client, seeded)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/edit",
        data={"csrf_token": _csrf(client), **fields},
    )
    assert response.status_code == 303, response.text
    assert [tag for tag, _ in _audit(engine, "entitlement", seeded.main)] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seats": "0"}, "Seats must be from"),
        ({"valid_from": ""}, "Enter the start of the validity window"),
        ({"valid_until": "2000-01-01"}, "The end of the validity window must be after its start."),
    ],
    ids=["zero-seats", "no-start", "empty-window"],
)
def test_entitlement_edit_defect_rerenders_and_changes_nothing(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    engine: Engine,
    change: dict[str, str],
    message: str,
) -> None:
    client = signed_in(StaffRole.ADMIN)
    fields = _edit_form(client, seeded)
    (before,) = [e for e in _entitlements(engine, seeded.acme) if e.id == seeded.main]
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/edit",
        data={"csrf_token": _csrf(client), **fields, **change},
    )
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert "The terms were not changed." in response.text
    (after,) = [e for e in _entitlements(engine, seeded.acme) if e.id == seeded.main]
    assert (after.seats, after.valid_from, after.valid_until) == (before.seats, before.valid_from, before.valid_until)


@pytest.mark.parametrize("role", [StaffRole.VIEWER, StaffRole.OPERATOR])
def test_entitlement_edit_below_admin_refused(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], role: StaffRole
) -> None:
    client = signed_in(role)
    url = f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/edit"
    assert client.get(url).status_code == 403
    assert client.post(url, data={"csrf_token": _csrf(client), "seats": "9"}).status_code == 403


def test_entitlement_edit_of_another_customer_is_404(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.ADMIN)
    assert client.get(f"{DASHBOARD}/customers/{seeded.globex}/entitlements/{seeded.main}/edit").status_code == 404


def test_entitlement_edit_of_a_revoked_one_conflicts(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.ADMIN)
    token = _csrf(client)
    client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/status",
        data={"csrf_token": token, "status": "revoked", "confirm": "yes"},
    )
    assert client.get(f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.main}/edit").status_code == 409


# -- licence keys -----------------------------------------------------------------------------------------------


def test_licence_key_issued_is_shown_once_and_works(
    seeded: SeededCustomers,
    signed_in: Callable[[StaffRole], TestClient],
    engine: Engine,
    settings: Settings,
) -> None:
    client = signed_in(StaffRole.ADMIN)

    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.small}/licence-keys",
        data={"csrf_token": _csrf(client), "label": "edge cluster"},
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    found = _TOKEN.search(response.text)
    assert found is not None
    token = found.group(1)
    pepper = settings.credential_pepper.get_secret_value().encode()
    with Session(engine) as s:
        row = authenticate(s, pepper, token, {CredentialKind.ENCLAVE}, now=datetime.now(UTC))
        assert row.entitlement_id == seeded.small
        assert row.label == "edge cluster"
        assert row.secret_hash not in token.encode()
    assert row.key_id in response.text
    (event,) = _audit(engine, "credential", row.id)
    assert event[0] == "admin:credential:issued"
    assert event[1].startswith("staff:")
    page = client.get(f"{DASHBOARD}/customers/{seeded.acme}").text
    assert row.key_id in _section(page, seeded.small)
    assert token not in page
    assert token.rsplit("_", 1)[-1] not in page


def test_licence_key_label_too_long_issues_nothing(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/entitlements/{seeded.small}/licence-keys",
        data={"csrf_token": _csrf(client), "label": "k" * 201},
    )
    assert response.status_code == 400
    assert "The key&#39;s label is too long" in response.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).where(ApiCredential.entitlement_id == seeded.small)) == 0


def test_licence_key_revoke_by_admin_audited_then_conflict(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    url = f"{DASHBOARD}/customers/{seeded.acme}/licence-keys/{seeded.key}/revoke"
    data = {"csrf_token": _csrf(client), "confirm": "yes"}

    response = client.post(url, data=data)

    assert response.headers["location"] == f"{DASHBOARD}/customers/{seeded.acme}?done=key-revoked"
    with Session(engine) as s:
        assert s.get_one(ApiCredential, seeded.key).revoked_at is not None
    (event,) = _audit(engine, "credential", seeded.key)
    assert event[0] == "admin:credential:revoked"
    assert event[1].startswith("staff:")
    page = client.get(response.headers["location"]).text
    assert "Licence key revoked" in page
    assert f"/licence-keys/{seeded.key}/revoke" not in page
    assert client.post(url, data=data).status_code == 409


def test_licence_key_revoke_unconfirmed_changes_nothing(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.acme}/licence-keys/{seeded.key}/revoke", data={"csrf_token": _csrf(client)}
    )
    assert response.status_code == 400
    assert "Tick the confirmation box to revoke the licence key." in response.text
    with Session(engine) as s:
        assert s.get_one(ApiCredential, seeded.key).revoked_at is None


def test_licence_key_of_another_customer_is_404(
    seeded: SeededCustomers, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.ADMIN)
    response = client.post(
        f"{DASHBOARD}/customers/{seeded.globex}/licence-keys/{seeded.key}/revoke",
        data={"csrf_token": _csrf(client), "confirm": "yes"},
    )
    assert response.status_code == 404
    with Session(engine) as s:
        assert s.get_one(ApiCredential, seeded.key).revoked_at is None
