"""The Celery task base every Keyward task runs on (:class:`KeywardTask`), modelled on warehouse's ``WarehouseTask``:
the task base owns the task's transactions, and nothing a task calls commits or rolls back.

* :meth:`KeywardTask.transaction` opens one unit of work (:func:`verifier.db.session.session_scope`): it commits
  when its block ends and rolls back if the block raises. A task body is one such block, or a few in sequence (the
  decide task fetches vendor collateral between two, outside either); never one inside another.
* Follow-up work waits for the commit. A task sent inside the block (:meth:`KeywardTask.apply_async`, so ``delay``
  too) is sent once it has committed, and so is whatever the body hands to :func:`after_commit` (the "decided"
  notification, the decision's metrics), in the order given. After a rollback none of it happens. A retry
  (:meth:`KeywardTask.retry`) is sent at once: it is raised out of the transaction.
* Metrics: a task that fails for good (its retries spent, or none allowed) is counted per task name
  (:meth:`~verifier.observability.metrics.WorkerMetrics.record_task_error`); the decide task counts each decision
  after its commit (:mod:`verifier.worker.tasks`).

Not here: the tasks (:mod:`verifier.worker.tasks`, :mod:`verifier.worker.refresh`), the log context of a task
(:mod:`verifier.observability.worker`), and the API's transactions (one per request, :mod:`verifier.api.deps`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

from celery import Task
from sqlalchemy.orm import Session

from verifier.config import Settings, get_settings
from verifier.db.session import session_scope
from verifier.observability.metrics import WORKER_METRICS

#: What runs once the innermost open task transaction commits; None outside one.
_after_commit: ContextVar[list[Callable[[], object]] | None] = ContextVar("keyward_after_commit", default=None)


def after_commit(fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
    """Call ``fn(*args, **kwargs)`` once the open task transaction commits, never if it rolls back. RuntimeError
    outside a task transaction."""
    hooks = _after_commit.get()
    if hooks is None:
        raise RuntimeError("after_commit() outside a task transaction")
    hooks.append(functools.partial(fn, *args, **kwargs))


@contextmanager
def task_transaction(settings: Settings) -> Iterator[Session]:
    """One task transaction on the service database: committed when the block ends, rolled back if it raises; then
    what :func:`after_commit` and :meth:`KeywardTask.apply_async` deferred runs, in order (an exception there
    propagates: the commit stands). What :meth:`KeywardTask.transaction` opens; tests open it directly."""
    hooks: list[Callable[[], object]] = []
    token = _after_commit.set(hooks)
    try:
        with session_scope(settings) as session:
            yield session
    finally:
        _after_commit.reset(token)
    for hook in hooks:
        hook()


class KeywardTask(Task):  # type: ignore[misc]  # celery ships no type hints: Task is Any to mypy
    """Base of every Keyward task (``celery_app.task(base=KeywardTask, ...)``): see the module docstring."""

    def transaction(self) -> AbstractContextManager[Session]:
        """A new task transaction (:func:`task_transaction`) on the configured database."""
        return task_transaction(get_settings())

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Send the task; inside a task transaction, once that has committed (None is returned then)."""
        hooks = _after_commit.get()
        if hooks is None:
            return super().apply_async(args, kwargs, **options)
        hooks.append(functools.partial(super().apply_async, args, kwargs, **options))
        return None

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Celery's ``retry``, whose message is sent at once even inside a task transaction: the ``Retry`` it raises
        rolls that transaction back, which would drop a deferred send and lose the task."""
        token = _after_commit.set(None)
        try:
            return super().retry(*args, **kwargs)
        finally:
            _after_commit.reset(token)

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Celery's hook when the task has failed for good: counted per task name."""
        WORKER_METRICS.record_task_error(str(self.name))
        super().on_failure(exc, task_id, args, kwargs, einfo)
