"""Exact usage per (entitlement, period): attested lease time, GPU time, deployments, decisions.

Definitions (the reference with examples is ``docs/billing.md``):

* A lease is *attested* over ``[issued_at, end)``, ``end = min(ended_at, expires_at, now)`` (``ended_at`` when set).
  ``expires_at`` bounds it even when ``ended_at`` is later: beat marks a lease expired with its own run time, and
  a release of a lease already past ``expires_at`` stamps the release time; neither gap is attested.
* Lease time in a period is the overlap of that interval with ``[period.start, period.end)``, in integer
  microseconds; GPU time is that overlap times ``gpus``. Deployments are the distinct deployments of the leases
  with a positive overlap. Decisions (accepted/rejected attestations and renewals) count by ``decided_at``.
* Periods are cut at UTC hour or day boundaries; the first and the last are clipped to the query's ``start`` and
  ``end``. Rows exist only for (entitlement, period) pairs with some activity.

A period is *closed* once ``period.end + SETTLE <= now``; its figures never change afterwards. Every write the
figures depend on records the writer's current time ``t``: a new lease ``issued_at = t``; a renewal moves
``expires_at`` from a value ``> t`` to a later one; a release, revocation or expiry sets ``ended_at = t``; a decision
sets ``decided_at = t``. A closed period ends before any such later ``t``, so its overlaps and counts are the same
before and after the write, and clipping at ``now`` no longer reaches it. ``SETTLE`` covers the gap between the
time a transaction records and its commit (and clock skew between hosts).

Read-only: takes the caller's session and ``now``; never writes or commits, never reads the clock. The SQL is in
:mod:`verifier.billing.repository`.
"""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from verifier.billing import repository
from verifier.db.models import AttestationStatus
from verifier.errors import Code, UsageError

SETTLE = timedelta(minutes=5)
_MICROSECOND = timedelta(microseconds=1)


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


STEP = {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}
#: The longest range one query may cover (744 hourly or 366 daily periods).
MAX_RANGE = {Granularity.HOUR: timedelta(days=31), Granularity.DAY: timedelta(days=366)}
#: Queries stay inside these bounds (far from datetime's limits, so period arithmetic cannot overflow).
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start: datetime
    end: datetime
    granularity: Granularity
    customer_id: uuid.UUID | None = None
    entitlement_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime


@dataclass(slots=True)
class UsageRow:
    """The figures of one entitlement in one period (a running tally while :func:`compute_usage` adds them up)."""

    period: Period
    entitlement_id: uuid.UUID
    customer_id: uuid.UUID
    closed: bool
    lease_us: int = 0
    gpu_us: int = 0
    deployment_ids: set[uuid.UUID] = field(default_factory=set)
    attestations_accepted: int = 0
    attestations_rejected: int = 0
    renewals_accepted: int = 0
    renewals_rejected: int = 0

    @property
    def key(self) -> tuple[datetime, uuid.UUID]:
        """The sort and cursor key: period start, then entitlement id."""
        return self.period.start, self.entitlement_id


def check_query(query: UsageQuery) -> None:
    """Raise ``billing.query.invalid`` unless start and end are timezone-aware, ordered, within EARLIEST..LATEST
    and no further apart than MAX_RANGE."""
    if query.start.tzinfo is None or query.end.tzinfo is None:
        raise UsageError(Code.BILLING_QUERY_INVALID, "from and to need a timezone (e.g. 2026-01-01T00:00:00Z)")
    if query.start < EARLIEST or query.end > LATEST:
        raise UsageError(
            Code.BILLING_QUERY_INVALID,
            "from and to must lie between 1970 and 9999",
            expected=f"{EARLIEST.isoformat()} .. {LATEST.isoformat()}",
            actual=f"{query.start.isoformat()} .. {query.end.isoformat()}",
        )
    if query.start >= query.end:
        raise UsageError(Code.BILLING_QUERY_INVALID, "from must be before to", actual=f"{query.start} >= {query.end}")
    limit = MAX_RANGE[query.granularity]
    if query.end - query.start > limit:
        raise UsageError(
            Code.BILLING_QUERY_INVALID,
            f"a {query.granularity.value} query covers at most {limit.days} days",
            expected=f"<= {limit.days} days",
            actual=query.end - query.start,
        )


def periods(start: datetime, end: datetime, granularity: Granularity) -> list[Period]:
    """``[start, end)`` cut at UTC hour or day boundaries, the first and last period clipped to start and end."""
    out: list[Period] = []
    cursor = start.astimezone(UTC)
    end = end.astimezone(UTC)
    while cursor < end:
        boundary = min(_floor(cursor, granularity) + STEP[granularity], end)
        out.append(Period(cursor, boundary))
        cursor = boundary
    return out


def _floor(t: datetime, granularity: Granularity) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if granularity == Granularity.DAY else t


def attested_end(issued_at: datetime, expires_at: datetime, ended_at: datetime | None, now: datetime) -> datetime:
    """Where a lease's attested time ends (never before it starts)."""
    end = min(expires_at, now) if ended_at is None else min(ended_at, expires_at, now)
    return max(end, issued_at)


def compute_usage(
    session: Session,
    query: UsageQuery,
    *,
    now: datetime,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int | None = None,
) -> list[UsageRow]:
    """The usage rows of ``query`` in key order (period start, entitlement id), those after ``after`` only.

    Raises:
        UsageError: ``billing.query.invalid`` (see :func:`check_query`).
    """
    check_query(query)
    cut = [p for p in periods(query.start, query.end, query.granularity) if after is None or p.start >= after[0]]
    if not cut:
        return []
    tally = _Tally(cut, now)
    for lease in _leases(session, query, cut[0].start, cut[-1].end, now):
        tally.add_lease(lease)
    for decision in _decisions(session, query, cut[0].start, cut[-1].end):
        tally.add_decision(decision)
    rows = sorted(tally.rows.values(), key=lambda r: r.key)
    if after is not None:
        rows = [r for r in rows if r.key > after]
    return rows if limit is None else rows[:limit]


class _Tally:
    """Adds leases and decisions into rows keyed by (period index, entitlement id)."""

    def __init__(self, cut: list[Period], now: datetime) -> None:
        self.cut, self.now = cut, now
        self.starts = [p.start for p in cut]
        self.rows: dict[tuple[int, uuid.UUID], UsageRow] = {}

    def _row(self, index: int, entitlement_id: uuid.UUID, customer_id: uuid.UUID) -> UsageRow:
        row = self.rows.get((index, entitlement_id))
        if row is None:
            period = self.cut[index]
            row = UsageRow(period, entitlement_id, customer_id, closed=period.end + SETTLE <= self.now)
            self.rows[index, entitlement_id] = row
        return row

    def _index(self, t: datetime) -> int:
        return max(bisect.bisect_right(self.starts, t) - 1, 0)

    def add_lease(self, lease: Any) -> None:
        begin = lease.issued_at
        end = attested_end(lease.issued_at, lease.expires_at, lease.ended_at, self.now)
        for index in range(self._index(begin), len(self.cut)):
            period = self.cut[index]
            if period.start >= end:
                break
            overlap = (min(end, period.end) - max(begin, period.start)) // _MICROSECOND
            if overlap > 0:
                row = self._row(index, lease.entitlement_id, lease.customer_id)
                row.lease_us += overlap
                row.gpu_us += overlap * lease.gpus
                row.deployment_ids.add(lease.deployment_id)

    def add_decision(self, decision: Any) -> None:
        index = self._index(decision.decided_at)
        row = self._row(index, decision.entitlement_id, decision.customer_id)
        accepted = int(decision.status == AttestationStatus.ACCEPTED)
        if decision.kind == "renew":
            row.renewals_accepted += accepted
            row.renewals_rejected += 1 - accepted
        else:
            row.attestations_accepted += accepted
            row.attestations_rejected += 1 - accepted


def _leases(session: Session, usage: UsageQuery, start: datetime, end: datetime, now: datetime) -> Iterable[Any]:
    """Leases whose attested time may overlap ``[start, end)``."""
    return repository.leases_overlapping(
        session, customer_id=usage.customer_id, entitlement_id=usage.entitlement_id, start=start, end=end, now=now
    )


def _decisions(session: Session, usage: UsageQuery, start: datetime, end: datetime) -> Iterable[Any]:
    """Accepted and rejected attestations and renewals decided in ``[start, end)``."""
    return repository.decisions_between(
        session, customer_id=usage.customer_id, entitlement_id=usage.entitlement_id, start=start, end=end
    )


def exact_seconds(microseconds: int) -> str:
    """Microseconds as an exact decimal string of seconds with six places: ``5400000001`` -> ``"5400.000001"``."""
    whole, fraction = divmod(microseconds, 1_000_000)
    return f"{whole}.{fraction:06d}"


def rounded_hours(microseconds: int) -> str:
    """Microseconds as hours, rounded half-to-even to six places (derived; sum the exact seconds instead)."""
    hours = Decimal(microseconds) / Decimal(3_600_000_000)
    return str(hours.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))
