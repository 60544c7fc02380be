"""Prometheus metrics. The API's ``GET /metrics`` is the one scrape target for the whole service.

Design. The API and the workers are separate processes, often separate containers (and in production the worker's
default prefork pool decides in child processes), so in-process counters in a worker are invisible to the API, and
prometheus_client's multiprocess mode only merges processes that share a directory on one host. Instead:

* **Events are counted where they happen.** Each worker process keeps :data:`WORKER_METRICS` (attestations decided
  by platform and outcome, failed tasks, and two latency histograms: the verification itself, and the time from
  the stored request to the committed decision) and writes a snapshot of it into its ``worker_heartbeats`` row with
  every heartbeat (:mod:`verifier.observability.heartbeat`, ~10 s). ``/metrics`` exposes each row's snapshot as
  counters and histograms with a ``worker`` label (``host:pid``). That is what scraping every worker would give:
  every series is a per-process counter starting at zero, so ``rate()`` and ``sum by (platform, outcome)`` work as
  usual, and a restarted worker is a new series. Increments after a crashed worker's last beat are lost (at most one
  interval); its last snapshot stays exported until its row is pruned. The attestations table, not these
  counters, is the record of every decision.
* **State is read from the source at scrape time**, with bounded queries (:mod:`verifier.observability.repository`):
  live leases, pending attestations and the age of the oldest, cached collateral age and time to its next update
  by vendor and kind, the age of each process's last heartbeat, and the broker queue depth.
* **The API's own requests** are counted in-process (requests by method, route template and status; latency).
  Run one API process per container, as docker-compose does: with ``uvicorn --workers N`` a scrape reaches one
  of the N processes and sees only its requests.

Queue depth is a passive ``queue_declare`` through kombu, which answers for any transport: ``LLEN`` of the queue's
priority lists on Redis, a count of visible rows with the embedded SQLAlchemy broker. If several API replicas are
scraped, the database-derived series repeat on each: aggregate them with ``max without (instance)``.

Not here: the HTTP endpoint (:mod:`verifier.api.health`) and the request middleware
(:mod:`verifier.observability.middleware`).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from verifier.observability import repository

log = logging.getLogger(__name__)

#: Seconds: verifying and appraising the evidence, taking the seat and wrapping the key (one decision).
VERIFICATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Seconds: from the stored request to the committed decision (queueing included).
DECISION_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_HISTOGRAMS = {"verification_seconds": VERIFICATION_BUCKETS, "decision_latency_seconds": DECISION_LATENCY_BUCKETS}
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# ---------------------------------------------------------------------------------------------------------------
# Worker side: a process-local, thread-safe tally, serialised into the heartbeat row.
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Histogram:
    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)  # per bucket, not cumulative; the last one is +Inf
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class WorkerMetrics:
    """Counters and histograms of one worker process since it started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decided: Tally[tuple[str, str]] = Tally()
        self._task_errors: Tally[str] = Tally()
        self._histograms: dict[tuple[str, str], _Histogram] = {}

    def record_decision(self, *, platform: str, outcome: str, verification_s: float, latency_s: float | None) -> None:
        with self._lock:
            self._decided[platform, outcome] += 1
            self._observe("verification_seconds", platform, verification_s)
            if latency_s is not None and latency_s >= 0:
                self._observe("decision_latency_seconds", platform, latency_s)

    def record_task_error(self, task: str) -> None:
        with self._lock:
            self._task_errors[task] += 1

    def _observe(self, name: str, platform: str, value: float) -> None:
        hist = self._histograms.get((name, platform))
        if hist is None:
            hist = self._histograms[name, platform] = _Histogram(_HISTOGRAMS[name])
        hist.observe(value)

    def snapshot(self) -> dict[str, Any]:
        """JSON for the heartbeat row: ``{"decided": [...], "task_errors": [...], "histograms": [...]}``."""
        with self._lock:
            return {
                "decided": [{"platform": p, "outcome": o, "count": n} for (p, o), n in sorted(self._decided.items())],
                "task_errors": [{"task": t, "count": n} for t, n in sorted(self._task_errors.items())],
                "histograms": [
                    {"name": name, "platform": p, "bounds": list(h.bounds), "counts": list(h.counts), "sum": h.total}
                    for (name, p), h in sorted(self._histograms.items())
                ],
            }


#: This process's tally (every worker process has its own).
WORKER_METRICS = WorkerMetrics()

# ---------------------------------------------------------------------------------------------------------------
# API side: the process's HTTP metrics, and the collector that reads the database and the broker per scrape.
# ---------------------------------------------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "keyward_http_requests",
    "HTTP requests answered by this API process.",
    ["method", "route", "status"],
    registry=None,
)
HTTP_LATENCY = Histogram(
    "keyward_http_request_duration_seconds",
    "Time to answer an HTTP request in this API process.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=None,
)


def observe_http_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one request; ``route`` is the route's path template (``/v1/attestations/{attestation_id}``)."""
    method = method if method in _HTTP_METHODS else "OTHER"
    count, latency = _http_children(method, route, status)
    count.inc()
    latency.observe(seconds)


@lru_cache(maxsize=4096)
def _http_children(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The labelled counter and histogram of one (method, route, status), looked up once (``labels()`` hashes and
    locks on every call); bounded: routes are templates, methods and statuses few."""
    return HTTP_REQUESTS.labels(method, route, str(status)), HTTP_LATENCY.labels(method, route)


QueueDepth = Callable[[], int | None]


class ServiceCollector(Collector):
    """The database- and broker-derived metrics, read when Prometheus scrapes.

    Args:
        session_factory: opens a session on the service database (one per scrape, closed after).
        queue_depth: returns the broker queue length, or None if the broker cannot tell or cannot be reached.
        now: the real UTC clock.
    """

    def __init__(self, session_factory: Callable[[], Session], queue_depth: QueueDepth, now: datetime) -> None:
        self.session_factory = session_factory
        self.queue_depth = queue_depth
        self.now = now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("keyward_metrics_source_up", "1 if the source answered this scrape.", labels=["source"])
        try:
            with self.session_factory() as session:
                metrics = list(self._from_database(session))
            up.add_metric(["database"], 1)
        except SQLAlchemyError as e:
            log.warning("metrics: database unavailable", extra={"error": type(e).__name__})
            metrics = []
            up.add_metric(["database"], 0)
        yield from metrics
        depth = self.queue_depth()
        up.add_metric(["broker"], 0 if depth is None else 1)
        if depth is not None:
            queue = GaugeMetricFamily("keyward_queue_depth", "Tasks waiting in the broker queue.", labels=["queue"])
            queue.add_metric(["celery"], depth)
            yield queue
        yield up

    def _from_database(self, session: Session) -> Iterator[Metric]:
        now = self.now
        yield GaugeMetricFamily(
            "keyward_leases_live", "Leases live now (seats in use).", value=repository.live_lease_count(session)
        )
        pending, oldest = repository.pending_attestations(session)
        yield GaugeMetricFamily("keyward_attestations_pending", "Attestations waiting for a decision.", value=pending)
        yield GaugeMetricFamily(
            "keyward_attestation_oldest_pending_seconds",
            "Age of the oldest attestation waiting for a decision (0 if none).",
            value=0.0 if oldest is None else max(0.0, (now - oldest).total_seconds()),
        )
        age = GaugeMetricFamily(
            "keyward_collateral_age_seconds",
            "Age of the oldest cached vendor collateral document of each vendor and kind.",
            labels=["vendor", "kind"],
        )
        expires = GaugeMetricFamily(
            "keyward_collateral_next_update_seconds",
            "Seconds until the soonest next update of cached collateral of each vendor and kind (negative: overdue).",
            labels=["vendor", "kind"],
        )
        documents = GaugeMetricFamily(
            "keyward_collateral_documents", "Cached vendor collateral documents.", labels=["vendor", "kind"]
        )
        for c in repository.collateral_summary(session):
            labels = [c.vendor, c.kind]
            age.add_metric(labels, (now - c.oldest_fetched_at).total_seconds())
            documents.add_metric(labels, c.documents)
            if c.soonest_next_update is not None:
                expires.add_metric(labels, (c.soonest_next_update - now).total_seconds())
        yield from (age, expires, documents)
        yield from worker_families(repository.heartbeats(session), now)


def worker_families(rows: Iterable[Any], now: datetime) -> Iterator[Metric]:
    """Heartbeat ages, and each process's metrics snapshot as per-worker counters and histograms."""
    heartbeat_age = GaugeMetricFamily(
        "keyward_worker_heartbeat_age_seconds",
        "Seconds since each worker or beat process last wrote its heartbeat.",
        labels=["worker", "role"],
    )
    decided = CounterMetricFamily(
        "keyward_attestations_decided",
        "Attestations decided, by platform (evidence types joined by '+') and outcome, per worker process.",
        labels=["worker", "platform", "outcome"],
    )
    errors = CounterMetricFamily(
        "keyward_worker_task_errors", "Tasks that raised, per worker process.", labels=["worker", "task"]
    )
    histograms = {
        "verification_seconds": HistogramMetricFamily(
            "keyward_verification_seconds",
            "Time to decide one attestation (verify, appraise, entitle, wrap), per worker process.",
            labels=["worker", "platform"],
        ),
        "decision_latency_seconds": HistogramMetricFamily(
            "keyward_decision_latency_seconds",
            "Time from the stored request to the committed decision (queueing included), per worker process.",
            labels=["worker", "platform"],
        ),
    }
    for row in rows:
        worker = f"{row.hostname}:{row.pid}"
        heartbeat_age.add_metric([worker, row.role], max(0.0, (now - row.last_seen).total_seconds()))
        try:
            counts, task_errors, series = _read_snapshot(row.metrics or {})
        except (KeyError, TypeError, ValueError):  # a snapshot from another version: skip it, keep the scrape
            log.warning("metrics: unreadable worker snapshot", extra={"worker": worker})
            continue
        for (platform, outcome), n in counts.items():
            decided.add_metric([worker, platform, outcome], n)
        for task, n in task_errors.items():
            errors.add_metric([worker, task], n)
        for name, platform, buckets, total in series:
            if name in histograms:
                histograms[name].add_metric([worker, platform], buckets, total)
    yield from (heartbeat_age, decided, errors, *histograms.values())


_Buckets = list[tuple[str, float]]


def _read_snapshot(
    snapshot: dict[str, Any],
) -> tuple[dict[tuple[str, str], float], dict[str, float], list[tuple[str, str, _Buckets, float]]]:
    """A :meth:`WorkerMetrics.snapshot` read back whole (or an exception: nothing of it is exported)."""
    counts = {(str(d["platform"]), str(d["outcome"])): float(d["count"]) for d in snapshot.get("decided", [])}
    task_errors = {str(t["task"]): float(t["count"]) for t in snapshot.get("task_errors", [])}
    series = []
    for h in snapshot.get("histograms", []):
        bounds = [float(b) for b in h["bounds"]]
        per_bucket = [int(c) for c in h["counts"]]
        if len(per_bucket) != len(bounds) + 1:
            raise ValueError("bucket count mismatch")
        cumulative, buckets = 0, []
        for le, n in zip([*map(repr, bounds), "+Inf"], per_bucket, strict=True):
            cumulative += n
            buckets.append((le, float(cumulative)))
        series.append((str(h["name"]), str(h["platform"]), buckets, float(h["sum"])))
    return counts, task_errors, series


def exposition(collector: ServiceCollector) -> bytes:
    """The Prometheus text exposition: this API process (``process_*``, ``python_*``, HTTP) plus ``collector``."""
    registry = CollectorRegistry(auto_describe=False)
    for c in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, HTTP_REQUESTS, HTTP_LATENCY, collector):
        registry.register(c)
    return generate_latest(registry)
