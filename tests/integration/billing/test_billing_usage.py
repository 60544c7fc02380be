"""Billing figures from real PostgreSQL rows (verifier.billing): the hand-computed scenario of
tests/unit/billing/scenario.py, clipping, closed-period reproducibility, filters, pagination and entitlement
summaries."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.support.factories import make_lease
from tests.unit.billing.scenario import NOW, Scenario, at, decision, seed
from verifier.attestation.leases import expire_leases
from verifier.billing.entitlements import get_entitlement, list_entitlements
from verifier.billing.usage import SETTLE, Granularity, UsageQuery, UsageRow, compute_usage, exact_seconds
from verifier.db.models import AttestationStatus, LeaseStatus

DAYS = UsageQuery(at(1, 0), at(4, 0), Granularity.DAY)


@pytest.fixture
def scenario(session: Session) -> Scenario:
    return seed(session)


def _figures(row: UsageRow) -> dict[str, Any]:
    return {
        "start": row.period.start,
        "end": row.period.end,
        "closed": row.closed,
        "lease_seconds": exact_seconds(row.lease_us),
        "gpu_seconds": exact_seconds(row.gpu_us),
        "deployments": len(row.deployment_ids),
        "decisions": (
            row.attestations_accepted,
            row.attestations_rejected,
            row.renewals_accepted,
            row.renewals_rejected,
        ),
    }


def _usage(session: Session, query: UsageQuery, entitlement_id: uuid.UUID, now: datetime = NOW) -> list[dict[str, Any]]:
    query = UsageQuery(query.start, query.end, query.granularity, entitlement_id=entitlement_id)
    return [_figures(r) for r in compute_usage(session, query, now=now)]


def test_compute_usage_daily_figures_match_hand_computation(session: Session, scenario: Scenario) -> None:
    assert _usage(session, DAYS, scenario.main.id) == [
        # L1 22:00-24:00 = 7200 s; attest accepted 22:00, rejected 23:59:59.999999.
        {
            "start": at(1, 0),
            "end": at(2, 0),
            "closed": True,
            "lease_seconds": "7200.000000",
            "gpu_seconds": "0.000000",
            "deployments": 1,
            "decisions": (1, 1, 0, 0),
        },
        # L1 00:00-02:00 (not the 30 s beat lag) 7200 + L2 1800.5 + L3 900 = 9900.5 s; L3 900 s x 4 GPUs.
        {
            "start": at(2, 0),
            "end": at(3, 0),
            "closed": True,
            "lease_seconds": "9900.500000",
            "gpu_seconds": "3600.000000",
            "deployments": 3,
            "decisions": (2, 1, 0, 1),
        },
        # L4 09:00-NOW (12:00) = 10800 s x 2 GPUs; the pending attestation is not counted.
        {
            "start": at(3, 0),
            "end": at(4, 0),
            "closed": False,
            "lease_seconds": "10800.000000",
            "gpu_seconds": "21600.000000",
            "deployments": 1,
            "decisions": (1, 0, 1, 0),
        },
    ]
    # L5 is still "live" but expired at 06:00: attested 05:00-06:00 only.
    [other] = _usage(session, DAYS, scenario.other.id)
    assert (other["start"], other["lease_seconds"], other["deployments"], other["decisions"]) == (
        at(1, 0),
        "3600.000000",
        1,
        (1, 0, 0, 0),
    )


def test_compute_usage_hourly_periods_clipped_to_range(session: Session, scenario: Scenario) -> None:
    query = UsageQuery(at(1, 22, 30), at(2, 1, 15), Granularity.HOUR)
    rows = _usage(session, query, scenario.main.id)
    assert [(r["start"], r["end"], r["lease_seconds"], r["decisions"]) for r in rows] == [
        (at(1, 22, 30), at(1, 23), "1800.000000", (0, 0, 0, 0)),
        (at(1, 23), at(2, 0), "3600.000000", (0, 1, 0, 0)),
        (at(2, 0), at(2, 1), "3600.000000", (0, 1, 0, 0)),
        (at(2, 1), at(2, 1, 15), "900.000000", (0, 0, 0, 1)),
    ]


def test_compute_usage_period_closes_after_settle(session: Session, scenario: Scenario) -> None:
    query = UsageQuery(at(2, 0), at(3, 0), Granularity.DAY, entitlement_id=scenario.main.id)
    [just_open] = compute_usage(session, query, now=at(3, 0) + SETTLE - timedelta(microseconds=1))
    [closed] = compute_usage(session, query, now=at(3, 0) + SETTLE)
    assert (just_open.closed, closed.closed) == (False, True)
    assert just_open.lease_us == closed.lease_us == 9_900_500_000


def test_compute_usage_closed_periods_unchanged_by_later_activity(session: Session, scenario: Scenario) -> None:
    query = UsageQuery(at(1, 0), at(3, 0), Granularity.DAY)
    before = [r for r in compute_usage(session, query, now=NOW) if r.entitlement_id in _ids(scenario)]
    assert compute_usage(session, query, now=NOW) == compute_usage(session, query, now=NOW)
    # Later: L4 renewed at 12:30 and released at 13:00, a new lease and a rejection on 03-03, and beat expiring L5
    # at 13:10 (ended_at two days after its expires_at).
    live = scenario.live_lease
    live.expires_at = at(3, 13, 30)
    decision(session, scenario.main, scenario.versions[0], "renew", AttestationStatus.ACCEPTED, at(3, 12, 30))
    live.status, live.ended_at = LeaseStatus.RELEASED, at(3, 13)
    make_lease(session, scenario.deployments[1], scenario.versions[0], now=at(3, 13), gpus=1)
    decision(session, scenario.main, scenario.versions[0], "attest", AttestationStatus.REJECTED, at(3, 13))
    assert expire_leases(session, at(3, 13, 10)) >= 1
    later = at(9, 0)
    after = [r for r in compute_usage(session, query, now=later) if r.entitlement_id in _ids(scenario)]
    assert after == before
    assert all(r.closed for r in after)


def test_compute_usage_filters_by_customer_and_entitlement(session: Session, scenario: Scenario) -> None:
    by_customer = UsageQuery(DAYS.start, DAYS.end, DAYS.granularity, customer_id=scenario.other.customer_id)
    assert {r.entitlement_id for r in compute_usage(session, by_customer, now=NOW)} == {scenario.other.id}
    both = UsageQuery(
        DAYS.start, DAYS.end, DAYS.granularity, customer_id=scenario.other.customer_id, entitlement_id=scenario.main.id
    )
    assert compute_usage(session, both, now=NOW) == []


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_compute_usage_pages_walk_every_row_once(session: Session, scenario: Scenario, limit: int) -> None:
    everything = compute_usage(session, DAYS, now=NOW)
    assert _ids(scenario) <= {r.entitlement_id for r in everything}
    walked: list[UsageRow] = []
    after = None
    while page := compute_usage(session, DAYS, now=NOW, after=after, limit=limit):
        walked.extend(page)
        after = page[-1].key
    assert walked == everything


def test_list_entitlements_summaries_and_live_leases(session: Session, scenario: Scenario) -> None:
    main = get_entitlement(session, scenario.main.id, now=NOW)
    assert main is not None
    assert (main.customer.id, main.seats, main.max_gpus, main.live_leases) == (scenario.main.customer_id, 3, 4, 1)
    assert main.model.id == scenario.main.model_id
    other = get_entitlement(session, scenario.other.id, now=NOW)
    assert other is not None
    assert other.live_leases == 0  # L5 is "live" but past expires_at
    assert get_entitlement(session, scenario.main.id, now=at(3, 15)).live_leases == 0  # type: ignore[union-attr]
    assert get_entitlement(session, scenario.main.id, now=NOW, customer_id=scenario.other.customer_id) is None


def test_list_entitlements_pages_in_id_order(session: Session, scenario: Scenario) -> None:
    everything = list_entitlements(session, now=NOW, limit=10_000)
    assert [e.id for e in everything] == sorted(e.id for e in everything)
    assert _ids(scenario) <= {e.id for e in everything}
    walked, after = [], None
    while page := list_entitlements(session, now=NOW, after=after, limit=2):
        walked.extend(page)
        after = page[-1].id
    assert walked == everything
    only = list_entitlements(session, now=NOW, customer_id=scenario.main.customer_id, limit=10)
    assert [e.id for e in only] == [scenario.main.id]


def _ids(scenario: Scenario) -> set[uuid.UUID]:
    return {scenario.main.id, scenario.other.id}
