"""The worker tally, its snapshot as exported per worker, and the exposition when sources fail."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from verifier.observability.metrics import ServiceCollector, WorkerMetrics, exposition, worker_families

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class _Rows(Collector):
    def __init__(self, rows: list[Any]) -> None:
        self.rows = rows

    def collect(self) -> Any:
        return worker_families(self.rows, NOW)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _row(metrics: dict[str, Any] | None, *, pid: int = 7, age: float = 3.0, role: str = "worker") -> Any:
    return SimpleNamespace(hostname="w1", pid=pid, role=role, last_seen=NOW - timedelta(seconds=age), metrics=metrics)


def _expose(rows: list[Any]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Rows(rows))
    return _samples(generate_latest(registry).decode())


def test_worker_metrics_snapshot_is_json() -> None:
    tally = WorkerMetrics()
    tally.record_decision(platform="intel-tdx", outcome="accepted", verification_s=0.02, latency_s=0.4)
    tally.record_task_error("keyward.decide_attestation")
    snapshot = tally.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["decided"] == [{"platform": "intel-tdx", "outcome": "accepted", "count": 1}]
    assert snapshot["task_errors"] == [{"task": "keyward.decide_attestation", "count": 1}]


def test_worker_families_counters_and_cumulative_buckets() -> None:
    tally = WorkerMetrics()
    for seconds in (0.004, 0.02, 0.02, 30.0):  # first bucket, 0.025 bucket twice, beyond the last bound
        tally.record_decision(platform="intel-tdx", outcome="accepted", verification_s=seconds, latency_s=1.0)
    tally.record_decision(platform="amd-sev-snp", outcome="rejected", verification_s=0.1, latency_s=None)
    samples = _expose([_row(tally.snapshot())])
    w = ("worker", "w1:7")

    def get(name: str, **labels: str) -> float:
        return samples[name, frozenset({w, *labels.items()})]

    assert get("keyward_attestations_decided_total", platform="intel-tdx", outcome="accepted") == 4
    assert get("keyward_attestations_decided_total", platform="amd-sev-snp", outcome="rejected") == 1
    assert get("keyward_verification_seconds_bucket", platform="intel-tdx", le="0.005") == 1
    assert get("keyward_verification_seconds_bucket", platform="intel-tdx", le="0.025") == 3
    assert get("keyward_verification_seconds_bucket", platform="intel-tdx", le="10.0") == 3
    assert get("keyward_verification_seconds_bucket", platform="intel-tdx", le="+Inf") == 4
    assert get("keyward_verification_seconds_count", platform="intel-tdx") == 4
    assert abs(get("keyward_verification_seconds_sum", platform="intel-tdx") - 30.044) < 1e-9
    assert get("keyward_decision_latency_seconds_count", platform="intel-tdx") == 4
    # No latency was known for the rejection: no latency series for that platform.
    assert ("keyward_decision_latency_seconds_count", frozenset({w, ("platform", "amd-sev-snp")})) not in samples
    assert samples["keyward_worker_heartbeat_age_seconds", frozenset({w, ("role", "worker")})] == 3.0


def test_worker_families_unreadable_snapshot_is_skipped() -> None:
    broken = {"decided": [{"platform": "intel-tdx"}]}  # no outcome, no count
    mismatched = {"histograms": [{"name": "verification_seconds", "platform": "p", "bounds": [1], "counts": [1]}]}
    samples = _expose([_row(broken, pid=1), _row(mismatched, pid=2), _row(None, pid=3, role="beat")])
    names = {name for name, _ in samples}
    assert "keyward_attestations_decided_total" not in names
    assert "keyward_verification_seconds_count" not in names
    assert len([n for n in names if n == "keyward_worker_heartbeat_age_seconds"]) == 1
    assert samples["keyward_worker_heartbeat_age_seconds", frozenset({("worker", "w1:3"), ("role", "beat")})] == 3.0


def _failing_session() -> Session:
    raise OperationalError("SELECT 1", None, Exception("connection refused"))


def test_exposition_names_and_source_failures() -> None:
    text = exposition(ServiceCollector(_failing_session, lambda: None, NOW)).decode()
    samples = _samples(text)
    assert samples["keyward_metrics_source_up", frozenset({("source", "database")})] == 0
    assert samples["keyward_metrics_source_up", frozenset({("source", "broker")})] == 0
    assert "# TYPE keyward_http_requests_total counter" in text
    assert "# TYPE keyward_http_request_duration_seconds histogram" in text
    assert "process_cpu_seconds_total" in text or "python_info" in text
    assert "keyward_queue_depth" not in text


def test_exposition_queue_depth_when_broker_answers() -> None:
    text = exposition(ServiceCollector(_failing_session, lambda: 42, NOW)).decode()
    samples = _samples(text)
    assert samples["keyward_queue_depth", frozenset({("queue", "celery")})] == 42
    assert samples["keyward_metrics_source_up", frozenset({("source", "broker")})] == 1
