"""Readiness checks (database, broker, a fresh worker heartbeat), broker queue depth, and the container healthcheck.

``/readyz`` is ready when the database answers ``SELECT 1``, the broker accepts a connection, and some worker
process wrote its heartbeat within ``heartbeat_max_age_seconds``: then an attestation sent now would be decided.
Each check reports ``ok`` and a little detail; failures name the exception class only (the full error goes to the
log), so a public probe learns nothing about hosts or credentials.

``python -m verifier.observability.health worker`` (or ``beat``) is the worker and beat containers' healthcheck: it
exits 0 if a process of that role *on this host* beat recently, 1 otherwise, printing one line either way.

Brokers are reached through kombu, so the same code serves Redis and the embedded profile's SQLAlchemy transport.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kombu.connection import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verifier.broker.transport import register_transports
from verifier.observability import repository
from verifier.observability.heartbeat import heartbeat_freshness

log = logging.getLogger(__name__)

#: Celery's default queue (``task_default_queue``), which the shared app (verifier.broker.app) keeps.
DEFAULT_QUEUE = "celery"
#: Seconds a readiness probe or a scrape waits for the broker.
BROKER_TIMEOUT = 2.0


@dataclass(frozen=True)
class Readiness:
    ok: bool
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": "ready" if self.ok else "not ready", "checks": self.checks}


def _failure(what: str, e: Exception) -> dict[str, Any]:
    log.warning("readiness: %s check failed", what, extra={"error": type(e).__name__, "detail": str(e)[:500]})
    return {"ok": False, "error": type(e).__name__}


def broker_connection(broker_url: str, key_prefix: str = "") -> Connection:
    """A kombu connection with a short connect timeout, through Keyward's transport aliases."""
    register_transports()
    options = {"global_keyprefix": key_prefix} if key_prefix else {}
    return Connection(  # type: ignore[no-untyped-call]
        broker_url, connect_timeout=BROKER_TIMEOUT, transport_options=options
    )


def check_broker(broker_url: str) -> dict[str, Any]:
    try:
        with broker_connection(broker_url) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)
    except Exception as e:  # any transport error means "not reachable"; the class is reported
        return _failure("broker", e)
    return {"ok": True}


def broker_queue_depth(broker_url: str, queue: str = DEFAULT_QUEUE, *, key_prefix: str = "") -> int | None:
    """Messages waiting in ``queue`` (``LLEN`` of its priority lists on Redis, visible rows on the SQLAlchemy
    transport); 0 if the queue does not exist yet; None if the broker cannot be reached."""
    try:
        with broker_connection(broker_url, key_prefix) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, interval_max=0)
            channel = conn.default_channel
            if key_prefix:
                # kombu's passive declare asks Redis EXISTS without the global key prefix, so a prefixed queue always
                # looks missing; its size (LLEN, which kombu does prefix) is what the declare would report anyway.
                return int(channel._size(queue))
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except conn.channel_errors:  # NOT_FOUND: nothing was ever queued (Redis deletes empty lists)
                return 0
    except Exception as e:  # the scrape goes on without the broker; the class is logged
        log.warning("metrics: broker unavailable", extra={"error": type(e).__name__})
        return None


def readiness(
    session_factory: Callable[[], Session], broker_url: str, *, max_heartbeat_age: float, now: datetime
) -> Readiness:
    """Run the three checks; the worker check needs the database, so it is skipped when that fails."""
    checks: dict[str, dict[str, Any]] = {}
    try:
        with session_factory() as session:
            repository.ping(session)
            checks["database"] = {"ok": True}
            fresh = heartbeat_freshness(session, role="worker", max_age=max_heartbeat_age, now=now)
            checks["worker"] = {**fresh.to_json(), "max_age_seconds": max_heartbeat_age}
    except SQLAlchemyError as e:
        if "database" not in checks:
            checks["database"] = _failure("database", e)
            checks["worker"] = {"ok": False, "error": "skipped: database unavailable"}
        else:
            checks["worker"] = _failure("worker heartbeat", e)
    checks["broker"] = check_broker(broker_url)
    return Readiness(ok=all(c["ok"] for c in checks.values()), checks=checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Container healthcheck: a fresh heartbeat of ``role`` from this host (exit 0), else exit 1."""
    parser = argparse.ArgumentParser(prog="python -m verifier.observability.health")
    parser.add_argument("role", choices=["worker", "beat"])
    args = parser.parse_args(argv)

    from verifier.config import get_settings  # noqa: PLC0415 - keep the module importable without settings
    from verifier.db.engine import make_engine  # noqa: PLC0415

    settings = get_settings()
    engine = make_engine(settings.database_url)
    hostname = socket.gethostname()
    try:
        with Session(engine) as session:
            fresh = heartbeat_freshness(
                session,
                role=args.role,
                max_age=settings.heartbeat_max_age_seconds,
                now=datetime.now(UTC),
                hostname=hostname,
            )
    except SQLAlchemyError as e:
        print(f"unhealthy: database unavailable ({type(e).__name__})")
        return 1
    finally:
        engine.dispose()
    status = "healthy" if fresh.ok else "unhealthy"
    print(f"{status}: {args.role} heartbeats on {hostname}: {fresh.to_json()}")
    return 0 if fresh.ok else 1


if __name__ == "__main__":
    sys.exit(main())
