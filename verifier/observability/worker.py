"""Observability for Celery processes, wired through Celery's signals (:func:`connect_worker_signals`).

* ``setup_logging``: Celery leaves logging to us (it skips its own set-up when this signal has a receiver), so the
  worker and beat write the same JSON lines as the API, at ``KEYWARD_LOG_LEVEL`` (``--loglevel`` is not used).
* ``task_prerun`` / ``task_postrun``: the log context of each task is its ``task_id``, ``task`` name and the
  ``request_id`` the API put in the message headers (sanitised again: anyone who can publish can set it).
* ``before_task_publish``: a task sent while a request id is bound (a retry, or a task a task sends) carries it
  on; Celery does not copy custom headers into a retry's message by itself.
* Heartbeats: each process that runs tasks beats, and beat does. ``worker_process_init`` fires in each prefork
  child and in the solo pool's only process; ``worker_ready`` starts it in the main process of the other pools
  (threads, gevent, eventlet), but not under prefork, whose main process stays off the database so that a child
  it forks never shares a live connection; ``beat_init`` fires in beat. The heartbeat is kept per pid, so a process
  never starts two and a child never inherits its parent's; a forked child first drops the pooled connections it
  inherited. ``worker_process_shutdown``, ``worker_shutdown`` and exit stop it and delete the row.

Not here: what the tasks record (the task base :mod:`verifier.worker.base` counts failures, :mod:`verifier.worker.tasks`
decisions), the table (:mod:`verifier.db.models.ops`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Mapping
from contextvars import Token
from typing import Any

from celery import signals

from verifier.config import get_settings
from verifier.db.session import engine_for
from verifier.observability import logging as obs_logging
from verifier.observability.heartbeat import Heartbeat
from verifier.observability.metrics import WORKER_METRICS

_lock = threading.Lock()
_heartbeats: dict[int, Heartbeat] = {}  # by pid: a forked child finds its parent's entry and ignores it
_task_tokens: dict[str, Token[Mapping[str, str]]] = {}
_connected = False


def start_heartbeat(role: str, *, after_fork: bool = False) -> Heartbeat:
    """Start this process's heartbeat (idempotent per process)."""
    settings = get_settings()
    engine = engine_for(settings.database_url)  # the one engine cache the tasks use too
    with _lock:
        pid = os.getpid()
        current = _heartbeats.get(pid)
        if current is not None:
            return current
        if after_fork:
            engine.dispose(close=False)  # the parent's pooled connections must not be shared with a child
        heartbeat = _heartbeats[pid] = Heartbeat(
            engine,
            role=role,
            interval=settings.heartbeat_interval_seconds,
            metrics=WORKER_METRICS.snapshot if role == "worker" else None,
        )
    heartbeat.start()
    return heartbeat


def stop_heartbeat() -> None:
    with _lock:
        heartbeat = _heartbeats.pop(os.getpid(), None)
    if heartbeat is not None:
        heartbeat.stop()


def _setup_logging(**_: Any) -> None:
    settings = get_settings()
    # The signal does not say which program is starting; ``celery ... beat`` has it on its command line.
    service = "beat" if "beat" in sys.argv[1:] else "worker"
    obs_logging.setup_logging(level=settings.log_level, fmt=settings.log_format, service=service)


def _task_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None:
        return
    fields = {"task_id": task_id, "task": str(getattr(task, "name", ""))}
    request_id = obs_logging.sanitize_request_id(
        getattr(getattr(task, "request", None), obs_logging.CELERY_REQUEST_ID_HEADER, None)
    )
    if request_id is not None:
        fields["request_id"] = request_id
    _task_tokens[task_id] = obs_logging.bind(**fields)


def _task_postrun(task_id: str | None = None, **_: Any) -> None:
    token = _task_tokens.pop(task_id or "", None)
    if token is not None:
        # ValueError: bound in another context (a pool that moved the task); there is nothing to undo here.
        with contextlib.suppress(ValueError):
            obs_logging.unbind(token)


def _before_task_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    request_id = obs_logging.current_request_id()
    if headers is not None and request_id is not None:
        headers.setdefault(obs_logging.CELERY_REQUEST_ID_HEADER, request_id)


def _worker_process_init(**_: Any) -> None:
    start_heartbeat("worker", after_fork=True)


def _worker_ready(sender: Any = None, **_: Any) -> None:
    from celery.concurrency.prefork import TaskPool as PreforkPool  # noqa: PLC0415 - only in a worker

    if not isinstance(getattr(sender, "pool", None), PreforkPool):  # prefork: the children beat
        start_heartbeat("worker")


def _beat_init(**_: Any) -> None:
    start_heartbeat("beat")


def _shutdown(**_: Any) -> None:
    stop_heartbeat()


def connect_worker_signals() -> None:
    """Connect the receivers above (idempotent; harmless in the API, where these signals never fire)."""
    global _connected  # noqa: PLW0603 - one process-wide switch
    if _connected:
        return
    _connected = True
    signals.setup_logging.connect(_setup_logging, weak=False)
    signals.task_prerun.connect(_task_prerun, weak=False)
    signals.task_postrun.connect(_task_postrun, weak=False)
    signals.before_task_publish.connect(_before_task_publish, weak=False)
    signals.worker_process_init.connect(_worker_process_init, weak=False)
    signals.worker_ready.connect(_worker_ready, weak=False)
    signals.beat_init.connect(_beat_init, weak=False)
    signals.worker_process_shutdown.connect(_shutdown, weak=False)
    signals.worker_shutdown.connect(_shutdown, weak=False)
    atexit.register(stop_heartbeat)
