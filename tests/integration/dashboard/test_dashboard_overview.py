"""The overview on PostgreSQL, on a known world in a database of its own: the overview counts the whole fleet, and
other tests (real workers among them) commit rows to the shared test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import make_attestation, make_deployment
from tests.support.databases import migrated_database
from tests.support.factories import make_entitlement, make_lease, make_model, make_model_version
from verifier.dashboard.service import Bucket, Count, overview
from verifier.db.models import CachedCollateral, LeaseStatus

NOW = datetime(2031, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """This module's own database (the ``session`` fixture runs on it)."""
    with migrated_database("keyward_overview") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


TODAY = datetime(2031, 3, 10, tzinfo=UTC)


def _world(session: Session) -> dict[str, Any]:
    model = make_model(session)
    version = make_model_version(session, model)
    expiring = make_entitlement(session, model=model, seats=3, valid_until=NOW + timedelta(days=5))
    roomy = make_entitlement(session, model=model, seats=10, valid_until=NOW + timedelta(days=100))
    full = make_entitlement(session, model=model, seats=1, valid_until=NOW + timedelta(days=400))
    hardening = make_deployment(session, expiring, "hardening", tcb_status="SWHardeningNeeded")
    current = make_deployment(session, expiring, "current", tcb_status="UpToDate")
    outdated = make_deployment(session, full, "outdated", tcb_status="OutOfDate")
    lapsed = make_deployment(session, roomy, "lapsed", tcb_status="UpToDate")
    for dep in (hardening, current, outdated):
        dep.lease_id = make_lease(session, dep, version, now=NOW - timedelta(minutes=10)).id
    make_lease(session, lapsed, version, now=NOW - timedelta(days=2), status=LeaseStatus.EXPIRED)
    lapsed.lease_id = make_lease(session, lapsed, version, now=NOW - timedelta(hours=2)).id  # live, past expiry
    for at, codes in [
        (TODAY + timedelta(hours=1), ()),
        (TODAY + timedelta(hours=9, minutes=5), ("intel.policy.td_debug", "challenge.expired")),
        (TODAY + timedelta(hours=11, minutes=10), ()),
        (TODAY + timedelta(hours=12, minutes=10), ()),
        (TODAY - timedelta(minutes=30), ("challenge.expired",)),
    ]:
        make_attestation(session, roomy, version, "lapsed", decided_at=at, codes=codes)
    make_attestation(session, roomy, version, "lapsed", decided_at=None)  # pending: counted nowhere
    vendor = f"t-{uuid.uuid4().hex[:8]}"
    for kind, fetched, next_update in [
        ("vcek", NOW - timedelta(days=1), NOW - timedelta(hours=1)),  # past its next update
        ("vcek", NOW - timedelta(hours=1), NOW + timedelta(hours=2)),  # due within a day
        ("tcb_info", NOW - timedelta(days=3), NOW + timedelta(days=10)),  # TCB data not fetched for 3 days
    ]:
        session.add(
            CachedCollateral(
                vendor=vendor, kind=kind, key=uuid.uuid4().hex, body=b"x", fetched_at=fetched, next_update=next_update
            )
        )
    session.flush()
    return {
        "vendor": vendor,
        "expiring": expiring.id,
        "full": full.id,
        "roomy": roomy.id,
        "deployments": {hardening.id, current.id, outdated.id, lapsed.id},
    }


def test_overview_counts_today_and_live(session: Session) -> None:
    before = overview(session, NOW)
    _world(session)
    after = overview(session, NOW)
    assert (after.live_deployments - before.live_deployments, after.live_leases - before.live_leases) == (3, 3)
    assert (after.accepted_today, after.rejected_today, after.attestations_today) == (3, 1, 4)
    assert after.rejection_rate == 0.25


def test_overview_rejection_rate_none_without_decisions(session: Session) -> None:
    assert overview(session, datetime(2040, 1, 1, tzinfo=UTC)).rejection_rate is None


def test_overview_hourly_series(session: Session) -> None:
    _world(session)
    hourly = overview(session, NOW).hourly
    assert len(hourly) == 24
    assert (hourly[0].start, hourly[-1].start) == (TODAY - timedelta(hours=11), TODAY + timedelta(hours=12))
    busy = {b.start: b for b in hourly if b.accepted or b.rejected}
    assert busy == {
        TODAY - timedelta(hours=1): Bucket(TODAY - timedelta(hours=1), 0, 1),
        TODAY + timedelta(hours=1): Bucket(TODAY + timedelta(hours=1), 1, 0),
        TODAY + timedelta(hours=9): Bucket(TODAY + timedelta(hours=9), 0, 1),
        TODAY + timedelta(hours=11): Bucket(TODAY + timedelta(hours=11), 1, 0),
        TODAY + timedelta(hours=12): Bucket(TODAY + timedelta(hours=12), 1, 0),
    }


def test_overview_daily_series(session: Session) -> None:
    _world(session)
    daily = overview(session, NOW).daily
    assert len(daily) == 30
    assert daily[-1] == Bucket(TODAY, 3, 1)
    assert daily[-2] == Bucket(TODAY - timedelta(days=1), 0, 1)
    assert sum(b.accepted + b.rejected for b in daily[:-2]) == 0


def test_overview_rejections_by_reason_code(session: Session) -> None:
    _world(session)
    reasons = overview(session, NOW).rejection_reasons
    assert reasons == (Count("challenge.expired", 2), Count("intel.policy.td_debug", 1))
    assert overview(session, NOW, top_reasons=1).rejection_reasons == (Count("challenge.expired", 2),)


def test_overview_tcb_status_across_the_fleet(session: Session) -> None:
    before = {c.label: c.count for c in overview(session, NOW).tcb_statuses}
    _world(session)
    after = {c.label: c.count for c in overview(session, NOW).tcb_statuses}
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert delta == {"UpToDate": 2, "SWHardeningNeeded": 1, "OutOfDate": 1}


def test_overview_collateral_freshness_per_vendor(session: Session) -> None:
    vendor = _world(session)["vendor"]
    [row] = [v for v in overview(session, NOW).collateral if v.vendor == vendor]
    assert (row.documents, row.expired, row.due_soon, row.undated) == (3, 1, 1, 0)
    assert (row.oldest_fetch, row.next_expiry) == (NOW - timedelta(days=3), NOW + timedelta(hours=2))


def test_overview_warns_of_stale_collateral(session: Session) -> None:
    vendor = _world(session)["vendor"]
    stale = [(d.kind, d.expired) for d in overview(session, NOW).stale_collateral if d.vendor == vendor]
    assert stale == [("vcek", True), ("tcb_info", False)]


def test_overview_warns_of_entitlements_near_expiry_or_seat_limit(session: Session) -> None:
    world = _world(session)
    warned = {
        w.entitlement_id: (w.expiring, w.seats_near_limit, w.seats_used)
        for w in overview(session, NOW).entitlement_warnings
    }
    assert warned.get(world["expiring"]) == (True, False, 2)
    assert warned.get(world["full"]) == (False, True, 1)
    assert world["roomy"] not in warned


def test_overview_warns_of_live_deployments_off_current_tcb(session: Session) -> None:
    world = _world(session)
    warned = {(w.deployment, w.tcb_status) for w in overview(session, NOW).tcb_warnings}
    assert {("hardening", "SWHardeningNeeded"), ("outdated", "OutOfDate")} <= warned
    assert not {n for n, _ in warned} & {"current", "lapsed"}
    assert world  # the world's ids are not needed here
