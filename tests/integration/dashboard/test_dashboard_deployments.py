"""The deployments list on PostgreSQL: search, filters, the three orders, keyset pages (ties, no repeats or skips),
the page bound and the cursor's checks. Every deployment here has a name holding the test's own token, and each
query searches for it, so rows other tests leave behind never count."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import NOW, make_attestation, make_deployment
from tests.support.factories import make_customer, make_entitlement, make_lease, make_model, make_model_version
from verifier.dashboard.service import (
    MAX_PAGE,
    DeploymentQuery,
    DeploymentSort,
    LeaseState,
    encode_cursor,
    list_deployments,
)
from verifier.db.models import AttestationStatus, LeaseStatus
from verifier.errors import Code, UsageError


def _token() -> str:
    return uuid.uuid4().hex[:10]


def _walk(session: Session, query: DeploymentQuery, sort: DeploymentSort, limit: int) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = list_deployments(session, NOW, query, sort=sort, cursor=cursor, limit=limit)
        pages.append([r.name for r in page.rows])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


@pytest.fixture
def ties(session: Session) -> tuple[str, dict[DeploymentSort, list[str]]]:
    """Ten deployments of two customers: six attested at the same instant, three at others, one never; and each
    order's expected sequence of names."""
    token = _token()
    by_customer = {
        "b": make_entitlement(session, customer=make_customer(session, name=f"b-{token}")),
        "a": make_entitlement(session, customer=make_customer(session, name=f"a-{token}")),
    }
    times = [NOW] * 6 + [NOW - timedelta(hours=1), NOW + timedelta(minutes=1), NOW - timedelta(days=1), None]
    rows = []
    for i, at in enumerate(times):
        customer = "ab"[i % 2]
        dep = make_deployment(session, by_customer[customer], f"{token}-{i % 3}-{i}", last_attested_at=at)
        rows.append((customer, dep))
    far_past = NOW - timedelta(days=10_000)
    expected = {
        DeploymentSort.LAST_ATTESTED: [
            d.name for _, d in sorted(rows, key=lambda r: (r[1].last_attested_at or far_past, r[1].id), reverse=True)
        ],
        DeploymentSort.NAME: [d.name for _, d in sorted(rows, key=lambda r: (r[1].name, r[1].id))],
        DeploymentSort.CUSTOMER: [d.name for _, d in sorted(rows, key=lambda r: (r[0], r[1].name, r[1].id))],
    }
    return token, expected


@pytest.mark.parametrize("sort", list(DeploymentSort), ids=[s.value for s in DeploymentSort])
@pytest.mark.parametrize("limit", [1, 3, 4, 10, 11], ids=lambda n: f"limit{n}")
def test_list_deployments_pages_visit_every_row_once_in_order(
    session: Session, ties: tuple[str, dict[DeploymentSort, list[str]]], sort: DeploymentSort, limit: int
) -> None:
    token, expected = ties
    pages = _walk(session, DeploymentQuery(search=token), sort, limit)
    assert [name for page in pages for name in page] == expected[sort]
    assert all(len(p) == limit for p in pages[:-1])
    assert 1 <= len(pages[-1]) <= limit


def test_list_deployments_last_attested_puts_never_attested_last(
    session: Session, ties: tuple[str, dict[DeploymentSort, list[str]]]
) -> None:
    token, _ = ties
    rows = list_deployments(session, NOW, DeploymentQuery(search=token), limit=10).rows
    assert [r.last_attested_at is None for r in rows] == [False] * 9 + [True]


def test_list_deployments_limit_is_bounded(session: Session) -> None:
    token = _token()
    ent = make_entitlement(session)
    for i in range(MAX_PAGE + 1):
        make_deployment(session, ent, f"{token}-{i:03d}")
    query = DeploymentQuery(search=token)
    assert len(list_deployments(session, NOW, query, limit=10_000).rows) == MAX_PAGE
    assert len(list_deployments(session, NOW, query, limit=0).rows) == 1


def test_list_deployments_empty_result_has_no_cursor(session: Session) -> None:
    page = list_deployments(session, NOW, DeploymentQuery(search=_token()))
    assert (page.rows, page.next_cursor) == ((), None)


@pytest.mark.parametrize(
    "cursor",
    ["not base64 at all!", "W10", encode_cursor(DeploymentSort.NAME, ["x", uuid.uuid4()]), "WyJuYW1lIiwxXQ"],
    ids=["garbage", "empty-list", "another-order", "malformed-key"],
)
def test_list_deployments_foreign_cursor_is_request_invalid(session: Session, cursor: str) -> None:
    with pytest.raises(UsageError) as raised:
        list_deployments(session, NOW, sort=DeploymentSort.LAST_ATTESTED, cursor=cursor)
    assert raised.value.code == Code.REQUEST_INVALID


@pytest.fixture
def fleet(session: Session) -> tuple[str, dict[str, object]]:
    """Four deployments, one property apart (see each comment), and the ids the filters name."""
    token = _token()
    m1, m2 = make_model(session), make_model(session)
    v1, v2 = make_model_version(session, m1, version="1.2"), make_model_version(session, m2, version="2.0")
    acme = make_customer(session, name=f"acme-{token}")
    globex = make_customer(session, name=f"globex-{token}")
    e1 = make_entitlement(session, customer=acme, model=m1)
    e2 = make_entitlement(session, customer=globex, model=m2)
    # live lease, TDX, accepted last
    d1 = make_deployment(session, e1, f"{token}-eu-prod")
    make_attestation(
        session, e1, v1, d1.name, decided_at=NOW, deployment=d1, lease=make_lease(session, d1, v1, now=NOW)
    )
    # a live lease past its expiry (not yet marked), SNP, simulated, rejected last
    d2 = make_deployment(session, e1, f"{token}-us-test", platforms="amd-snp", simulated=True)
    make_attestation(
        session, e1, v1, d2.name, decided_at=NOW - timedelta(hours=2), deployment=d2,
        lease=make_lease(session, d2, v1, now=NOW - timedelta(hours=2)),
    )  # fmt: skip
    make_attestation(session, e1, v1, d2.name, decided_at=NOW, codes=["intel.policy.td_debug"], deployment=d2)
    # revoked lease with 8 GPUs, TDX + NVIDIA
    d3 = make_deployment(session, e2, f"{token}-gpu", platforms="intel-tdx,nvidia")
    make_attestation(
        session, e2, v2, d3.name, decided_at=NOW, deployment=d3, platforms=("intel-tdx", "nvidia"),
        lease=make_lease(session, d3, v2, now=NOW, status=LeaseStatus.REVOKED, gpus=8),
    )  # fmt: skip
    # no lease, no platforms
    make_deployment(session, e2, f"{token}-idle", platforms=None, tcb_status=None, last_attested_at=None)
    return token, {"acme": acme.id, "m2": m2.id}


_NAMES = {"d1": "eu-prod", "d2": "us-test", "d3": "gpu", "d4": "idle"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"customer": "acme"}, {"d1", "d2"}),
        ({"model": "m2"}, {"d3", "d4"}),
        ({"platform": "nvidia"}, {"d3"}),
        ({"platform": "intel-tdx"}, {"d1", "d3"}),
        ({"platform": "intel"}, set()),
        ({"lease_state": LeaseState.LIVE}, {"d1"}),
        ({"lease_state": LeaseState.EXPIRED}, {"d2"}),
        ({"lease_state": LeaseState.REVOKED}, {"d3"}),
        ({"lease_state": LeaseState.RELEASED}, set()),
        ({"lease_state": LeaseState.NONE}, {"d4"}),
        ({"simulated": True}, {"d2"}),
        ({"simulated": False}, {"d1", "d3", "d4"}),
        ({"last_status": AttestationStatus.REJECTED}, {"d2"}),
        ({"last_status": AttestationStatus.ACCEPTED}, {"d1", "d3"}),
        ({"search": "GLOBEX-{t}"}, {"d3", "d4"}),
        ({"search": "{t}-us-"}, {"d2"}),
        ({"search": "%"}, set()),
        ({"customer": "acme", "lease_state": LeaseState.LIVE}, {"d1"}),
    ],
    ids=[
        "customer", "model", "platform-gpu", "platform-exact", "platform-not-a-prefix", "lease-live",
        "lease-past-expiry", "lease-revoked", "lease-released", "no-lease", "simulated", "not-simulated",
        "last-rejected", "last-accepted", "search-customer-any-case", "search-deployment", "search-wildcard-literal",
        "combined",
    ],
)  # fmt: skip
def test_list_deployments_filter_selects_its_rows(
    session: Session, fleet: tuple[str, dict[str, object]], filters: dict[str, object], expected: set[str]
) -> None:
    token, ids = fleet
    search = str(filters.pop("search", "{t}")).replace("{t}", token)
    query = DeploymentQuery(
        search=search,
        customer_id=ids["acme"] if filters.pop("customer", None) else None,  # type: ignore[arg-type]
        model_id=ids["m2"] if filters.pop("model", None) else None,  # type: ignore[arg-type]
        **filters,  # type: ignore[arg-type]
    )
    rows = list_deployments(session, NOW, query, sort=DeploymentSort.NAME).rows
    names = {r.name for r in rows if token in r.name or token in r.customer}
    assert names == {f"{token}-{_NAMES[d]}" for d in expected}


def test_list_deployments_row_reads_lease_model_and_summary(
    session: Session, fleet: tuple[str, dict[str, object]]
) -> None:
    token, _ = fleet
    [row] = list_deployments(session, NOW, DeploymentQuery(search=f"{token}-gpu")).rows
    assert (row.customer, row.model_version, row.platforms, row.gpus) == (
        f"globex-{token}",
        "2.0",
        ("intel-tdx", "nvidia"),
        8,
    )
    assert (row.lease_state, row.last_status, row.tcb_status) == (LeaseState.REVOKED, "accepted", "UpToDate")
