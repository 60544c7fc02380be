"""The decisions' day counters (``decision_days``, ``rejection_reason_days``): kept by the real decision
(:func:`verifier.attestation.flows.record`), equal to a direct count of ``attestations``; and the overview that reads
finished days from them gives the same figures as counting the attestations directly, around midnight UTC, with
renewals, requeued requests and pending ones in the world."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, func, select
from sqlalchemy.orm import Session

from tests.integration.attestation import test_flows as flows
from tests.integration.dashboard.world import make_attestation
from tests.support.databases import migrated_database
from tests.support.factories import make_entitlement, make_model, make_model_version
from tests.support.tools import ROOT
from verifier.attestation.flows import decide_attestation
from verifier.attestation.repository import rebuild_decision_days
from verifier.audit.log import verify_chain
from verifier.clock import Clock
from verifier.dashboard.service import Bucket, Count, overview
from verifier.db.engine import make_engine, upgrade_database
from verifier.db.models import Attestation, AttestationStatus, DecisionDay, RejectionReasonDay
from verifier.simulation.intel_quote_builder import TdReport
from verifier.testing.databases import scratch_database
from verifier.testing.fleet import seed_fleet

world = flows.world  # the fixture


def _day_counts(session: Session, day: date) -> tuple[dict[str, int], dict[str, int]]:
    session.flush()
    decided = dict(
        session.execute(select(DecisionDay.status, DecisionDay.decisions).where(DecisionDay.day == day)).all()
    )
    reasons = dict(
        session.execute(
            select(RejectionReasonDay.code, RejectionReasonDay.rejections).where(RejectionReasonDay.day == day)
        ).all()
    )
    return {AttestationStatus(k).value: v for k, v in decided.items()}, reasons


def _direct(session: Session, day: date) -> dict[str, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = session.execute(
        select(Attestation.status, func.count())
        .where(Attestation.decided_at >= start, Attestation.decided_at < start + timedelta(days=1))
        .group_by(Attestation.status)
    ).all()
    return {AttestationStatus(s).value: n for s, n in rows}


# -- kept by the real decision ------------------------------------------------------------------------------------


def test_record_counts_acceptance_renewal_and_rejection_on_their_day(session: Session, world: flows.World) -> None:
    day = flows.NOW.astimezone(UTC).date()
    before, reasons_before = _day_counts(session, day)
    att, enclave = flows._submit(session, world)
    first = decide_attestation(session, att.id, world.ctx, Clock.fixed(flows.NOW))
    later = flows.NOW + timedelta(minutes=8)
    decide_attestation(
        session, flows._renew(session, world, first, enclave, at=later).id, world.ctx, Clock.fixed(later)
    )
    bad, _ = flows._submit(session, world, td=TdReport(mrtd=bytes(48)))
    rejected = decide_attestation(session, bad.id, world.ctx, Clock.fixed(later))
    assert rejected.reason_codes == "intel.policy.measurement_not_allowed"
    after, reasons_after = _day_counts(session, day)
    assert after.get("accepted", 0) - before.get("accepted", 0) == 2
    assert after.get("rejected", 0) - before.get("rejected", 0) == 1
    code = "intel.policy.measurement_not_allowed"
    assert reasons_after.get(code, 0) - reasons_before.get(code, 0) == 1


def test_record_counts_a_decision_once_when_its_task_runs_again(session: Session, world: flows.World) -> None:
    day = flows.NOW.astimezone(UTC).date()
    att, _ = flows._submit(session, world)
    before, _ = _day_counts(session, day)
    decide_attestation(session, att.id, world.ctx, Clock.fixed(flows.NOW))
    decide_attestation(session, att.id, world.ctx, Clock.fixed(flows.NOW + timedelta(seconds=5)))  # redelivered
    after, _ = _day_counts(session, day)
    assert after.get("accepted", 0) - before.get("accepted", 0) == 1


def test_record_counts_a_decision_at_midnight_on_the_new_day(session: Session, world: flows.World) -> None:
    midnight = flows.NOW.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    last_instant = midnight - timedelta(microseconds=1)
    counts = {d: _day_counts(session, d)[0] for d in (last_instant.date(), midnight.date())}
    direct = {d: _direct(session, d) for d in counts}
    for at in (last_instant, midnight):
        bad, _ = flows._submit(session, world, td=TdReport(mrtd=bytes(48)))
        decide_attestation(session, bad.id, world.ctx, Clock.fixed(at))
    for d, was in counts.items():
        now_counts, now_direct = _day_counts(session, d)[0], _direct(session, d)
        delta = {k: now_counts.get(k, 0) - was.get(k, 0) for k in ("accepted", "rejected")}
        delta_direct = {k: now_direct.get(k, 0) - direct[d].get(k, 0) for k in ("accepted", "rejected")}
        assert delta == delta_direct
        assert sum(delta.values()) == 1


# -- the overview equals a direct count ----------------------------------------------------------------------------

MIDNIGHT = datetime(2032, 5, 20, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """This module's own database for the overview's tests (the overview counts the whole database)."""
    with migrated_database("keyward_day_counts") as url:
        eng = create_engine(url)
        yield eng
        eng.dispose()


_CODES = [(), ("challenge.expired",), ("intel.policy.td_debug", "challenge.expired"), ("entitlement.seats_exhausted",)]


def _seeded(session: Session) -> list[tuple[datetime, str, tuple[str, ...]]]:
    """Decisions over 32 days around ``MIDNIGHT``, heavy at the edges of days and of the 30-day window, with
    renewals, requeued requests and pending ones; returns what was decided, to count directly."""
    model = make_model(session)
    version = make_model_version(session, model)
    entitlement = make_entitlement(session, model=model, seats=5, valid_until=MIDNIGHT + timedelta(days=100))
    times = [MIDNIGHT - timedelta(days=d, hours=h) for d in range(-1, 32) for h in (0, 5, 13)]
    for edge in (MIDNIGHT, MIDNIGHT + timedelta(seconds=30), MIDNIGHT + timedelta(hours=14)):
        times += [edge - timedelta(microseconds=1), edge, edge + timedelta(microseconds=1)]
        window = edge - timedelta(days=30)
        times += [window - timedelta(microseconds=1), window, window + timedelta(microseconds=1)]
    decided = []
    for i, at in enumerate(times):
        codes = _CODES[i % len(_CODES)]
        att = make_attestation(
            session, entitlement, version, f"dep-{i % 7}", decided_at=at, codes=codes,
            kind="renew" if i % 3 == 0 and not codes else "attest",
        )  # fmt: skip
        if i % 5 == 0:
            att.requeued_at = at - timedelta(minutes=2)  # decided after its task was sent again
        decided.append((at, "rejected" if codes else "accepted", codes))
    for _ in range(3):
        make_attestation(session, entitlement, version, "waiting", decided_at=None).requeued_at = MIDNIGHT
    session.flush()
    return decided


def _expected(decided: list[tuple[datetime, str, tuple[str, ...]]], now: datetime) -> tuple[list[Bucket], list[Count]]:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    daily = []
    for i in range(30):
        start = today - timedelta(days=29 - i)
        days = [s for at, s, _ in decided if start <= at < start + timedelta(days=1)]
        daily.append(Bucket(start, days.count("accepted"), days.count("rejected")))
    reasons: Counter[str] = Counter()
    for at, status, codes in decided:
        if status == "rejected" and now - timedelta(days=30) <= at < now:
            reasons.update(set(codes))
    return daily, [Count(c, n) for c, n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))]


@pytest.mark.parametrize(
    "now",
    [
        MIDNIGHT,
        MIDNIGHT + timedelta(microseconds=1),
        MIDNIGHT + timedelta(seconds=30),
        MIDNIGHT + timedelta(hours=14),
        MIDNIGHT - timedelta(microseconds=1),
    ],
    ids=["at-midnight", "just-after-midnight", "half-a-minute-in", "afternoon", "just-before-midnight"],
)
def test_overview_series_equal_a_direct_count(session: Session, now: datetime) -> None:
    decided = _seeded(session)
    ov = overview(session, now)
    daily, reasons = _expected(decided, now)
    assert list(ov.daily) == daily
    assert list(ov.rejection_reasons) == reasons
    today = [s for at, s, _ in decided if daily[-1].start <= at < now.replace(minute=0, second=0, microsecond=0)
             + timedelta(hours=1)]  # fmt: skip
    assert (ov.accepted_today, ov.rejected_today) == (today.count("accepted"), today.count("rejected"))


def test_overview_series_equal_a_direct_count_after_a_rebuild(session: Session) -> None:
    decided = _seeded(session)
    rebuild_decision_days(session)
    now = MIDNIGHT + timedelta(seconds=30)
    daily, reasons = _expected(decided, now)
    ov = overview(session, now)
    assert (list(ov.daily), list(ov.rejection_reasons)) == (daily, reasons)


def test_overview_reads_finished_days_from_the_counters(session: Session) -> None:
    decided = _seeded(session)
    session.execute(delete(DecisionDay))
    ov = overview(session, MIDNIGHT + timedelta(hours=14))
    assert sum(b.accepted + b.rejected for b in ov.daily[:-1]) == 0  # the finished days came from the counters
    assert ov.daily[-1] == _expected(decided, MIDNIGHT + timedelta(hours=14))[0][-1]  # today from attestations


FLEET_NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Engine]:
    """A small seeded fleet in a database of its own (:func:`verifier.testing.fleet.seed_fleet`)."""
    with migrated_database("keyward_fleet_counts") as url:
        fleet_engine = create_engine(url)
        seed_fleet(fleet_engine, now=FLEET_NOW, deployments=40, attestations=800, customers=4)
        yield fleet_engine
        fleet_engine.dispose()


def test_seeded_fleet_counters_equal_a_direct_count(fleet: Engine) -> None:
    with Session(fleet) as s:
        rows = s.execute(select(Attestation.decided_at, Attestation.status, Attestation.reason_codes)).all()
        decided = [(at, AttestationStatus(st).value, tuple((codes or "").split())) for at, st, codes in rows if at]
        daily, reasons = _expected(decided, FLEET_NOW)
        ov = overview(s, FLEET_NOW)
    assert (list(ov.daily), list(ov.rejection_reasons)) == (daily, reasons[:10])


def test_seeded_fleet_audit_chain_verifies(fleet: Engine) -> None:
    with Session(fleet) as s:
        accepted = s.scalar(select(func.count()).where(Attestation.status == AttestationStatus.ACCEPTED))
        check = verify_chain(s)
    assert check.intact
    assert check.events == 800 + (accepted or 0)  # a decision each, and a lease event per acceptance


def test_migration_backfills_the_counters_from_stored_decisions() -> None:
    with scratch_database("keyward_days_backfill") as url:
        cfg = Config(str(ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(ROOT / "migrations"))
        cfg.set_main_option("sqlalchemy.url", url)
        command.upgrade(cfg, "head")
        eng = create_engine(url)
        try:
            seed_fleet(eng, now=MIDNIGHT, deployments=30, attestations=600, customers=3)  # counted by the seeder

            def counters() -> tuple[list[Any], list[Any]]:
                with eng.connect() as conn:
                    days = conn.execute(select(DecisionDay.day, DecisionDay.status, DecisionDay.decisions)).all()
                    codes = conn.execute(
                        select(RejectionReasonDay.day, RejectionReasonDay.code, RejectionReasonDay.rejections)
                    ).all()
                return sorted(map(tuple, days)), sorted(map(tuple, codes))

            seeded = counters()
            command.downgrade(cfg, "c15susp00001")
            command.upgrade(cfg, "head")
            assert counters() == seeded
            assert sum(n for _, _, n in seeded[0]) == 600
        finally:
            eng.dispose()


def test_day_counters_on_sqlite(tmp_path: Path) -> None:
    """The embedded profile: the same upsert counts, and the overview reads them back."""
    url = f"sqlite:///{tmp_path / 'keyward.db'}"
    upgrade_database(url)
    engine = make_engine(url)
    now = MIDNIGHT + timedelta(hours=3)
    try:
        with Session(engine) as s, s.begin():
            decided = _seeded(s)
            ov = overview(s, now)
            daily, reasons = _expected(decided, now)
            assert (list(ov.daily), list(ov.rejection_reasons)) == (daily, reasons)
            rebuild_decision_days(s)
            assert list(overview(s, now).daily) == daily
    finally:
        engine.dispose()
