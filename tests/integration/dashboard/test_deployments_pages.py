"""The deployments pages over HTTP against real PostgreSQL: the list (search, filters, the keyset "Next" link
walked to the end, the empty state, a bad cursor and a bad filter as 400 pages), a deployment's page (timeline,
claims, links to attestations), and the operator's actions: revoke the lease and suspend/reinstate the deployment,
each changing the state and audited as ``staff:<name>``; refused for a viewer (403, and no form shown), without the
CSRF token (403) or without the confirmation box (400, nothing changed).

The rows are committed (the app reads them on its own connections) and removed afterwards; each list request
searches for the seed's token, so rows other tests leave behind never count."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tests.integration.dashboard.deployments_world import SeededDeployments, remove_deployments, seed_deployments
from tests.support.dashboard import DASHBOARD
from verifier.api.dashboard import deployments as deployments_view
from verifier.app import create_app
from verifier.config import Settings
from verifier.db.models import AuditEvent, Deployment, Lease, LeaseStatus, StaffRole

_ROW = re.compile(r'<a href="/dashboard/deployments/([0-9a-f-]{36})">([^<]+)</a>')
_NEXT = re.compile(r'<a class="button button-quiet" rel="next" href="([^"]+)">')


@pytest.fixture(scope="module")
def app(database_url: str) -> FastAPI:
    return create_app(Settings(database_url=database_url, staff_login_address_max_failures=1000))


@pytest.fixture
def seeded(engine: Engine) -> Iterator[SeededDeployments]:
    seeded = seed_deployments(engine, datetime.now(UTC))
    yield seeded
    remove_deployments(engine, seeded)


def _names(html: str) -> list[str]:
    return [name for _, name in _ROW.findall(html)]


def _csrf(client: TestClient) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"{DASHBOARD}/").text)
    assert found is not None
    return found.group(1)


def _lease(engine: Engine, lease_id: uuid.UUID | None) -> Lease:
    with Session(engine) as s:
        return s.get_one(Lease, lease_id)


def _audit(engine: Engine, subject_type: str, subject_id: object) -> list[tuple[str, str]]:
    with Session(engine) as s:
        rows = s.execute(
            select(AuditEvent.tag, AuditEvent.actor)
            .where(AuditEvent.subject_type == subject_type, AuditEvent.subject_id == str(subject_id))
            .order_by(AuditEvent.id)
        ).all()
    return [(tag, actor) for tag, actor in rows]


# -- the list ---------------------------------------------------------------------------------------------------


def test_deployments_list_shows_the_seeded_rows(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/deployments", params={"q": seeded.token})
    assert response.status_code == 200
    assert sorted(_names(response.text)) == sorted(seeded.names)
    assert "8 GPUs" in response.text
    assert "SWHardeningNeeded" in response.text
    assert "simulated" in response.text


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"lease": "live"}, ["gpu", "live"]),
        ({"lease": "expired"}, ["expired"]),
        ({"decision": "rejected"}, ["rejected"]),
        ({"simulated": "yes"}, ["expired"]),
        ({"platform": "nvidia-gpu"}, ["gpu"]),
    ],
    ids=["lease-live", "lease-expired", "last-rejected", "simulated", "platform"],
)
def test_deployments_list_filter_keeps_matching_rows(
    seeded: SeededDeployments,
    signed_in: Callable[[StaffRole], TestClient],
    params: dict[str, str],
    expected: list[str],
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/deployments", params={"q": seeded.token, **params})
    assert response.status_code == 200
    assert sorted(_names(response.text)) == sorted(getattr(seeded, name).name for name in expected)


def test_deployments_list_customer_link_filters_by_customer(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    customer = str(seeded.entitlements[1].customer_id)
    response = client.get(f"{DASHBOARD}/deployments", params={"customer": customer, "q": seeded.token})
    assert sorted(_names(response.text)) == sorted([seeded.gpu.name, seeded.rejected.name])


def test_deployments_list_next_links_walk_every_row_once(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deployments_view, "PAGE_SIZE", 3)
    client = signed_in(StaffRole.VIEWER)
    pages: list[list[str]] = []
    url = f"{DASHBOARD}/deployments?q={seeded.token}&sort=name"
    while True:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(_names(response.text))
        found = _NEXT.search(response.text)
        if found is None:
            break
        url = found.group(1).replace("&amp;", "&")
        url = url if url.startswith(DASHBOARD) else f"{DASHBOARD}/deployments{url}"
    assert [len(p) for p in pages] == [3, 1]
    assert [n for p in pages for n in p] == sorted(seeded.names)


def test_deployments_list_no_match_shows_the_empty_state(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/deployments", params={"q": f"nothing-{seeded.token}"})
    assert response.status_code == 200
    assert "No deployment matches these filters" in response.text


def test_deployments_list_bad_cursor_is_a_400_page(signed_in: Callable[[StaffRole], TestClient]) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/deployments", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "This page link no longer works" in response.text
    assert "text/html" in response.headers["content-type"]


def test_deployments_list_unknown_filter_value_is_a_400_page(signed_in: Callable[[StaffRole], TestClient]) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/deployments", params={"lease": "forever"})
    assert response.status_code == 400
    assert "the filter &#39;lease&#39; has no value" in response.text


def test_deployments_list_signed_out_redirects_to_sign_in(app: FastAPI) -> None:
    with TestClient(app, follow_redirects=False) as client:
        response = client.get(f"{DASHBOARD}/deployments")
    assert response.status_code == 303
    assert response.headers["location"] == f"{DASHBOARD}/login?next=/dashboard/deployments"


# -- a deployment's page ----------------------------------------------------------------------------------------


def test_deployment_page_shows_timeline_and_claims(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.get(f"{DASHBOARD}/deployments/{seeded.live.id}")
    assert response.status_code == 200
    text = response.text
    for label in (
        "Attestation accepted",
        "Attestation rejected",
        "Renewal accepted",
        "Lease superseded",
        "Lease issued",
    ):
        assert label in text, label
    assert "intel.policy.measurement_not_allowed" in text
    assert "5d0a8f1e3c47b9e2a61f08d4c3b27e9a" in text  # the MRTD claim
    with Session(engine) as s:
        last = s.get_one(Deployment, seeded.live.id).last_attestation_id
    assert f'href="/dashboard/attestations/{last}"' in text


def test_deployment_page_viewer_sees_no_action(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient]
) -> None:
    client = signed_in(StaffRole.VIEWER)
    text = client.get(f"{DASHBOARD}/deployments/{seeded.live.id}").text
    assert "revoke-lease" not in text
    assert "/suspend" not in text


def test_deployment_page_unknown_id_is_404(signed_in: Callable[[StaffRole], TestClient]) -> None:
    client = signed_in(StaffRole.VIEWER)
    assert client.get(f"{DASHBOARD}/deployments/{uuid.uuid4()}").status_code == 404


# -- actions ----------------------------------------------------------------------------------------------------


def test_revoke_lease_by_operator_revokes_and_audits(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    page = client.get(f"{DASHBOARD}/deployments/{seeded.live.id}").text
    assert "revoke-lease" in page
    lease_id = seeded.live.lease_id

    response = client.post(
        f"{DASHBOARD}/deployments/{seeded.live.id}/revoke-lease",
        data={"csrf_token": _csrf(client), "lease_id": str(lease_id), "confirm": "yes"},
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"{DASHBOARD}/deployments/{seeded.live.id}?done=revoked"
    assert _lease(engine, lease_id).status == LeaseStatus.REVOKED
    assert _audit(engine, "lease", lease_id)[-1][0] == "admin:lease:revoked"
    operator = client.get(f"{DASHBOARD}/").text
    actor = _audit(engine, "lease", lease_id)[-1][1]
    assert actor.startswith("staff:")
    assert actor.removeprefix("staff:") in operator
    after = client.get(response.headers["location"]).text
    assert "The lease was revoked" in after
    assert "Lease revoked" in after


def test_revoke_lease_by_viewer_refused(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.post(
        f"{DASHBOARD}/deployments/{seeded.live.id}/revoke-lease",
        data={"csrf_token": _csrf(client), "lease_id": str(seeded.live.lease_id), "confirm": "yes"},
    )
    assert response.status_code == 403
    assert _lease(engine, seeded.live.lease_id).status == LeaseStatus.LIVE


def test_revoke_lease_without_csrf_refused(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    response = client.post(
        f"{DASHBOARD}/deployments/{seeded.live.id}/revoke-lease",
        data={"lease_id": str(seeded.live.lease_id), "confirm": "yes"},
    )
    assert response.status_code == 403
    assert "CSRF" in response.text
    assert _lease(engine, seeded.live.lease_id).status == LeaseStatus.LIVE


def test_revoke_lease_unconfirmed_changes_nothing(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    response = client.post(
        f"{DASHBOARD}/deployments/{seeded.live.id}/revoke-lease",
        data={"csrf_token": _csrf(client), "lease_id": str(seeded.live.lease_id)},
    )
    assert response.status_code == 400
    assert "Tick the confirmation box to revoke the lease." in response.text
    assert _lease(engine, seeded.live.lease_id).status == LeaseStatus.LIVE


def test_revoke_lease_of_another_lease_is_a_conflict(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    response = client.post(
        f"{DASHBOARD}/deployments/{seeded.live.id}/revoke-lease",
        data={"csrf_token": _csrf(client), "lease_id": str(seeded.gpu.lease_id), "confirm": "yes"},
    )
    assert response.status_code == 409
    assert _lease(engine, seeded.gpu.lease_id).status == LeaseStatus.LIVE


def test_suspend_then_reinstate_by_operator_audited(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.OPERATOR)
    token = _csrf(client)
    gpu = seeded.gpu

    suspended = client.post(f"{DASHBOARD}/deployments/{gpu.id}/suspend", data={"csrf_token": token, "confirm": "yes"})

    assert suspended.headers["location"] == f"{DASHBOARD}/deployments/{gpu.id}?done=suspended"
    assert _lease(engine, gpu.lease_id).status == LeaseStatus.REVOKED
    page = client.get(suspended.headers["location"]).text
    assert "Deployment suspended" in page
    assert "/reinstate" in page

    reinstated = client.post(
        f"{DASHBOARD}/deployments/{gpu.id}/reinstate", data={"csrf_token": token, "confirm": "yes"}
    )

    assert reinstated.status_code == 303
    with Session(engine) as s:
        assert s.get_one(Deployment, gpu.id).suspended_at is None
    events = _audit(engine, "deployment", gpu.id)
    assert [tag for tag, _ in events] == ["admin:deployment:status_changed"] * 2
    assert all(actor.startswith("staff:") for _, actor in events)


def test_suspend_by_viewer_refused(
    seeded: SeededDeployments, signed_in: Callable[[StaffRole], TestClient], engine: Engine
) -> None:
    client = signed_in(StaffRole.VIEWER)
    response = client.post(
        f"{DASHBOARD}/deployments/{seeded.gpu.id}/suspend", data={"csrf_token": _csrf(client), "confirm": "yes"}
    )
    assert response.status_code == 403
    with Session(engine) as s:
        assert s.get_one(Deployment, seeded.gpu.id).suspended_at is None
