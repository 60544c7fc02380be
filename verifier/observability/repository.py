"""All SQL of the observability package: heartbeat rows, and the few bounded reads behind /readyz and /metrics.

Every read here is cheap on a large database: the heartbeat table has one row per live process; the pending count
and oldest pending attestation use the ``(status, created_at)`` index; the live-lease count and the collateral
summary are single aggregates over tables that grow with customers and platforms, not with traffic. The caller
owns the session and the transaction; the writers flush but never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from verifier.db.models import Attestation, AttestationStatus, CachedCollateral, Lease, LeaseStatus, WorkerHeartbeat

#: Upper bound on heartbeat rows read per scrape (a fleet is far smaller; this only caps a runaway table).
MAX_HEARTBEAT_ROWS = 500


def ping(session: Session) -> None:
    session.execute(text("SELECT 1"))


def write_heartbeat(
    session: Session,
    *,
    hostname: str,
    pid: int,
    role: str,
    started_at: datetime,
    now: datetime,
    metrics: dict[str, Any] | None,
) -> None:
    """Upsert this process's row (UPDATE, else INSERT: portable, and only this process writes this key)."""
    updated = session.execute(
        update(WorkerHeartbeat)
        .where(WorkerHeartbeat.hostname == hostname, WorkerHeartbeat.pid == pid)
        .values(role=role, started_at=started_at, last_seen=now, metrics=metrics)
    )
    if getattr(updated, "rowcount", 0) == 0:
        session.add(
            WorkerHeartbeat(
                hostname=hostname, pid=pid, role=role, started_at=started_at, last_seen=now, metrics=metrics
            )
        )
    session.flush()


def set_aside_earlier_process(session: Session, *, hostname: str, pid: int, started_at: datetime) -> bool:
    """Keep the row an earlier process left under this process's key (its pid reused after it died without a clean
    stop, as in a restarted container: another ``started_at``) under a key of its own,
    ``<hostname>~<its started_at>``, so it goes stale and is pruned like any lost process's row instead of being
    overwritten by this one's first beat. Whether there was one."""
    earlier = session.scalar(
        select(WorkerHeartbeat.started_at).where(
            WorkerHeartbeat.hostname == hostname, WorkerHeartbeat.pid == pid, WorkerHeartbeat.started_at != started_at
        )
    )
    if earlier is None:
        return False
    session.execute(
        update(WorkerHeartbeat)
        .where(WorkerHeartbeat.hostname == hostname, WorkerHeartbeat.pid == pid)
        .values(hostname=f"{hostname[:200]}~{earlier.strftime('%Y%m%dT%H%M%S.%f')}")
    )
    return True


def delete_heartbeat(session: Session, *, hostname: str, pid: int) -> None:
    session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.hostname == hostname, WorkerHeartbeat.pid == pid))


def prune_heartbeats(session: Session, *, older_than: datetime) -> int:
    """Delete rows of processes that stopped beating before ``older_than`` (crashed or killed)."""
    result = session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.last_seen < older_than))
    return int(getattr(result, "rowcount", 0) or 0)


def newest_heartbeat(session: Session, *, role: str, hostname: str | None = None) -> tuple[datetime | None, int]:
    """(newest ``last_seen``, number of rows) for ``role``, optionally of one host."""
    query = select(func.max(WorkerHeartbeat.last_seen), func.count()).where(WorkerHeartbeat.role == role)
    if hostname is not None:
        query = query.where(WorkerHeartbeat.hostname == hostname)
    newest, count = session.execute(query).one()
    return newest, int(count)


def newest_stale_heartbeat(session: Session, *, role: str, before: datetime) -> datetime | None:
    """The newest ``last_seen`` among ``role`` rows last written before ``before`` (processes that stopped beating
    without a clean stop, which deletes the row), or None."""
    query = select(func.max(WorkerHeartbeat.last_seen)).where(
        WorkerHeartbeat.role == role, WorkerHeartbeat.last_seen < before
    )
    return session.scalar(query)


def fresh_heartbeat_count(session: Session, *, role: str, since: datetime, hostname: str | None = None) -> int:
    query = select(func.count()).where(WorkerHeartbeat.role == role, WorkerHeartbeat.last_seen >= since)
    if hostname is not None:
        query = query.where(WorkerHeartbeat.hostname == hostname)
    return int(session.scalar(query) or 0)


def heartbeats(session: Session) -> list[WorkerHeartbeat]:
    query = select(WorkerHeartbeat).order_by(WorkerHeartbeat.last_seen.desc()).limit(MAX_HEARTBEAT_ROWS)
    return list(session.scalars(query))


def live_lease_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Lease.status == LeaseStatus.LIVE)) or 0)


def pending_attestations(session: Session) -> tuple[int, datetime | None]:
    """(count, oldest ``created_at``) of attestations still waiting for a worker."""
    count, oldest = session.execute(
        select(func.count(), func.min(Attestation.created_at)).where(Attestation.status == AttestationStatus.PENDING)
    ).one()
    return int(count), oldest


@dataclass(frozen=True)
class CollateralSummary:
    vendor: str
    kind: str
    documents: int
    oldest_fetched_at: datetime
    soonest_next_update: datetime | None


def collateral_summary(session: Session) -> list[CollateralSummary]:
    """Per (vendor, kind) of cached collateral: how many documents, the oldest fetch, the soonest next update."""
    rows = session.execute(
        select(
            CachedCollateral.vendor,
            CachedCollateral.kind,
            func.count(),
            func.min(CachedCollateral.fetched_at),
            func.min(CachedCollateral.next_update),
        ).group_by(CachedCollateral.vendor, CachedCollateral.kind)
    ).all()
    return [CollateralSummary(v, k, int(n), fetched, nxt) for v, k, n, fetched, nxt in rows]
