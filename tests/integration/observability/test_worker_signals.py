"""The Celery signal receivers: the task's log context from the message headers, the id carried on to tasks sent
from a task; and failures, counted by the task base. Called directly with Celery's keyword arguments (the real worker
path is in tests/integration/api/test_health.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from verifier.observability import worker as wiring
from verifier.observability.logging import CELERY_REQUEST_ID_HEADER, context_fields, log_context
from verifier.observability.metrics import WORKER_METRICS
from verifier.worker.base import KeywardTask


def _task(**request: Any) -> Any:
    return SimpleNamespace(name="keyward.decide_attestation", request=SimpleNamespace(**request))


def test_task_prerun_binds_request_id_from_headers_and_postrun_unbinds() -> None:
    wiring._task_prerun(task_id="t-1", task=_task(**{CELERY_REQUEST_ID_HEADER: "req-9"}))
    assert dict(context_fields()) == {"task_id": "t-1", "task": "keyward.decide_attestation", "request_id": "req-9"}
    wiring._task_postrun(task_id="t-1")
    assert dict(context_fields()) == {}


@pytest.mark.parametrize("header", [None, "bad id\nwith newline", "x" * 200], ids=["absent", "newline", "too-long"])
def test_task_prerun_insane_or_missing_request_id_is_left_out(header: str | None) -> None:
    request = {CELERY_REQUEST_ID_HEADER: header} if header is not None else {}
    wiring._task_prerun(task_id="t-2", task=_task(**request))
    try:
        assert "request_id" not in context_fields()
        assert context_fields()["task_id"] == "t-2"
    finally:
        wiring._task_postrun(task_id="t-2")


def test_before_task_publish_carries_bound_request_id() -> None:
    headers: dict[str, Any] = {}
    wiring._before_task_publish(headers=headers)
    assert headers == {}  # nothing bound, nothing added
    with log_context(request_id="req-7"):
        wiring._before_task_publish(headers=headers)
        explicit = {CELERY_REQUEST_ID_HEADER: "req-explicit"}
        wiring._before_task_publish(headers=explicit)
    assert headers == {CELERY_REQUEST_ID_HEADER: "req-7"}
    assert explicit == {CELERY_REQUEST_ID_HEADER: "req-explicit"}  # never overrides


def test_task_failure_is_counted() -> None:
    def errors() -> int:
        found = [e["count"] for e in WORKER_METRICS.snapshot()["task_errors"] if e["task"] == "keyward.test_failure"]
        return int(found[0]) if found else 0

    class Failing(KeywardTask):
        name = "keyward.test_failure"

    before = errors()
    Failing().on_failure(RuntimeError("boom"), "t-3", (), {}, None)
    assert errors() == before + 1
