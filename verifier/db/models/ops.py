"""Operational state of the service itself (not of customers): which worker and beat processes are alive.

Each Celery worker and beat process upserts its own row every ``heartbeat_interval_seconds``
(:mod:`verifier.observability.heartbeat`); ``/readyz``, the container healthchecks and ``/metrics`` read them. A row
lives in the database, not in the broker, so the same check works with Redis and with the embedded profile's
SQLite broker, where Celery's remote control (ping, inspect) is not available.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base
from verifier.db.models._types import Timestamp


class WorkerHeartbeat(Base):
    """One live (or recently live) process. A clean shutdown deletes its row; a crashed one goes stale and is pruned.

    ``metrics`` is the process's own counters and histograms since it started (decisions by platform and outcome,
    verification latency): the API's ``/metrics`` exposes them with a ``worker`` label
    (:mod:`verifier.observability.metrics`).
    """

    __tablename__ = "worker_heartbeats"

    hostname: Mapped[str] = mapped_column(String(255), primary_key=True)
    pid: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    role: Mapped[str] = mapped_column(String(16))  # "worker" | "beat"
    started_at: Mapped[Timestamp]
    last_seen: Mapped[Timestamp]
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
