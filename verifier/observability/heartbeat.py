"""The heartbeat a worker or beat process writes to ``worker_heartbeats``, and the freshness check that reads it.

A daemon thread upserts the process's row (hostname, pid, role, started_at, last_seen, and the process's metrics
snapshot) at once and then every ``interval`` seconds, each in its own short transaction, and prunes rows that
stopped beating more than :data:`STALE_ROW_RETENTION` ago. Each beat owns its transaction
(:func:`~verifier.db.session.session_scope`); the repository never commits. :meth:`Heartbeat.stop` ends the thread
and deletes the row, so a cleanly stopped worker disappears from /readyz at once; a killed one goes stale after
``heartbeat_max_age_seconds`` (beat then sends the requests it may have held to a worker again:
:func:`last_seen_of_lost`), also when a restarted process gets its pid (a container's): its first write keeps the
earlier row under a key of its own. A failed write (database briefly away, SQLite busy) is logged and retried at the
next beat; it never stops the thread or the worker.

Times are the processes' own UTC clocks (``datetime.now(UTC)``), not the database's, because SQLite has no
timezone-aware ``now()``; the hosts must keep NTP time, as attestation validity windows need anyway. The decision
clock (``simulation_time``) is never used here.

Not here: which Celery signals start and stop it (:mod:`verifier.observability.worker`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verifier.db.session import session_scope
from verifier.observability import repository

log = logging.getLogger(__name__)

#: Rows whose process stopped beating this long ago are deleted (their metrics stop being exported then too).
STALE_ROW_RETENTION = timedelta(hours=1)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Heartbeat:
    """This process's heartbeat row, written from a daemon thread until :meth:`stop`."""

    def __init__(
        self,
        engine: Engine,
        *,
        role: str,
        interval: float,
        metrics: Callable[[], dict[str, Any]] | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self.engine = engine
        self.role = role
        self.interval = interval
        self.metrics = metrics
        self.clock = clock
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = False

    def beat(self) -> bool:
        """Write the row once (and prune stale ones); False if the database refused. The first write keeps a row an
        earlier process with this pid left (it died without a clean stop) under a key of its own, so that it is
        seen as lost (:func:`last_seen_of_lost`) rather than overwritten."""
        now = self.clock()
        try:
            with session_scope(self.engine) as session:
                if not self._written:
                    repository.set_aside_earlier_process(
                        session, hostname=self.hostname, pid=self.pid, started_at=self.started_at
                    )
                repository.write_heartbeat(
                    session,
                    hostname=self.hostname,
                    pid=self.pid,
                    role=self.role,
                    started_at=self.started_at,
                    now=now,
                    metrics=self.metrics() if self.metrics else None,
                )
                repository.prune_heartbeats(session, older_than=now - STALE_ROW_RETENTION)
        except SQLAlchemyError as e:
            log.warning("heartbeat not written", extra={"error": type(e).__name__, "role": self.role})
            return False
        self._written = True
        return True

    def start(self) -> None:
        """Start the thread; it writes the first beat at once (not here: a slow database must not hold up the
        signal handler that starts it, such as a prefork child's start-up, which Celery times out)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"keyward-heartbeat-{self.role}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.beat()
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        """End the thread and delete this process's row (best effort: a stale row is pruned later anyway)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 5)
            self._thread = None
        try:
            with session_scope(self.engine) as session:
                repository.delete_heartbeat(session, hostname=self.hostname, pid=self.pid)
        except SQLAlchemyError as e:
            log.warning("heartbeat row not deleted", extra={"error": type(e).__name__, "role": self.role})


@dataclass(frozen=True)
class Freshness:
    """How the heartbeats of one role look right now."""

    ok: bool
    fresh: int
    known: int
    newest_age_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        age = None if self.newest_age_seconds is None else round(self.newest_age_seconds, 3)
        return {"ok": self.ok, "fresh": self.fresh, "known": self.known, "newest_age_seconds": age}


def heartbeat_freshness(
    session: Session, *, role: str, max_age: float, now: datetime, hostname: str | None = None
) -> Freshness:
    """Whether some ``role`` process (of ``hostname``, if given) beat within ``max_age`` seconds of ``now``."""
    newest, known = repository.newest_heartbeat(session, role=role, hostname=hostname)
    fresh = repository.fresh_heartbeat_count(
        session, role=role, since=now - timedelta(seconds=max_age), hostname=hostname
    )
    age = None if newest is None else (now - newest).total_seconds()
    return Freshness(ok=fresh > 0, fresh=fresh, known=known, newest_age_seconds=age)


def last_seen_of_lost(session: Session, *, role: str, max_age: float, now: datetime) -> datetime | None:
    """When the most recently lost ``role`` process last beat: the newest row older than ``max_age`` seconds (a
    cleanly stopped process deletes its row; a killed one leaves it to go stale), or None if none was lost within
    :data:`STALE_ROW_RETENTION`. Beat's requeue sends again the pending requests it may have been holding
    (:mod:`verifier.attestation.pending`)."""
    return repository.newest_stale_heartbeat(session, role=role, before=now - timedelta(seconds=max_age))
