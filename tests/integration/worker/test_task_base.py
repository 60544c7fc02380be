"""The Celery task base (verifier/worker/base.py) on real PostgreSQL: a task transaction commits or rolls back, and
what waits for the commit (follow-up tasks, after_commit calls) runs only after it; and the decide task, called in
process, decides a warm-cache attestation in one transaction and fetches missing collateral between two."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Task
from celery.exceptions import Retry
from sqlalchemy import Engine, delete, event
from sqlalchemy.orm import Session

from tests.support.service import seed, service_settings, store_pending_tdx
from verifier.config import Settings
from verifier.db.models import Attestation, AttestationStatus, CachedCollateral, UsedNonce
from verifier.db.session import engine_for
from verifier.simulation.intel_pki import QuoteOptions, default_pki
from verifier.testing.fake_vendor_services import FakeVendorServices
from verifier.worker import base, refresh, tasks, vendor_documents
from verifier.worker.base import KeywardTask, after_commit, task_transaction
from verifier.worker.celery_app import celery_app


def _nonce_row(nonce: bytes) -> UsedNonce:
    now = datetime.now(UTC)
    return UsedNonce(nonce=nonce, used_at=now, expires_at=now + timedelta(minutes=5))


def _committed(engine: Engine, nonce: bytes) -> bool:
    with Session(engine) as s:
        return s.get(UsedNonce, nonce) is not None


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ``args`` KeywardTask.apply_async hands to Celery (nothing reaches the broker)."""
    calls: list[Any] = []
    monkeypatch.setattr(Task, "apply_async", lambda self, args=None, kwargs=None, **_: calls.append(args))
    return calls


def test_task_transaction_runs_follow_ups_after_commit(database_url: str, engine: Engine, sent: list[Any]) -> None:
    nonce = uuid.uuid4().bytes * 2
    seen: list[tuple[bool, list[Any]]] = []
    with task_transaction(service_settings(database_url)) as session:
        session.add(_nonce_row(nonce))
        tasks.decide_task.apply_async(args=["follow-up"])
        after_commit(lambda: seen.append((_committed(engine, nonce), list(sent))))
        assert sent == []  # not before the commit
    assert seen == [(True, [["follow-up"]])]  # committed, the task sent, then the call (in order)


def test_task_transaction_rolled_back_sends_nothing(database_url: str, engine: Engine, sent: list[Any]) -> None:
    nonce = uuid.uuid4().bytes * 2
    seen: list[str] = []

    def body() -> None:
        with task_transaction(service_settings(database_url)) as session:
            session.add(_nonce_row(nonce))
            session.flush()
            tasks.decide_task.apply_async(args=["never"])
            after_commit(seen.append, "never")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        body()
    assert not _committed(engine, nonce)
    assert (sent, seen) == ([], [])


def test_retry_inside_a_task_transaction_is_sent_at_once(database_url: str, sent: list[Any]) -> None:
    """Retry is raised out of the transaction, which rolls back: a deferred retry would never be sent."""
    tasks.decide_task.push_request(id="t-retry", args=["again"], kwargs={}, retries=0, called_directly=False)
    try:
        with pytest.raises(Retry), task_transaction(service_settings(database_url)):
            tasks.decide_task.retry(countdown=1)
    finally:
        tasks.decide_task.pop_request()
    assert sent == [("again",)]


def test_apply_async_outside_a_task_transaction_sends_at_once(sent: list[Any]) -> None:
    tasks.decide_task.apply_async(args=["now"])
    assert sent == [["now"]]


def test_after_commit_outside_a_task_transaction_refused() -> None:
    with pytest.raises(RuntimeError, match="outside a task transaction"):
        after_commit(print)


def test_every_keyward_task_runs_on_the_task_base() -> None:
    assert refresh.refresh_collateral_task.name in celery_app.tasks
    names = [name for name in celery_app.tasks if name.startswith("keyward.")]
    assert len(names) == len(celery_app.conf.beat_schedule) + 1  # the beat tasks and the decide task
    assert all(isinstance(celery_app.tasks[name], KeywardTask) for name in names)


# ----------------------------------------------------------------------------------------------------------
# The decide task in process: its transactions


@pytest.fixture
def transactions(database_url: str) -> Iterator[list[str]]:
    """Each transaction the worker's engine begins, commits or rolls back, in order."""
    events: list[str] = []
    worker_engine = engine_for(database_url)
    listeners = {name: (lambda _conn, name=name: events.append(name)) for name in ("begin", "commit", "rollback")}
    for name, fn in listeners.items():
        event.listen(worker_engine, name, fn)
    yield events
    for name, fn in listeners.items():
        event.remove(worker_engine, name, fn)


def _status(engine: Engine, attestation_id: str) -> AttestationStatus:
    with Session(engine) as s:
        att = s.get(Attestation, uuid.UUID(attestation_id))
        assert att is not None
        return att.status


def _decide_in_process(monkeypatch: pytest.MonkeyPatch, settings: Settings, attestation_id: str) -> str:
    for module in (tasks, base, refresh):
        monkeypatch.setattr(module, "get_settings", lambda: settings)
    return str(tasks.decide_task(attestation_id))


def test_decide_task_fetches_between_the_check_and_the_decision_then_warm_cache_is_one_transaction(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch, transactions: list[str]
) -> None:
    """Cold cache: the check's transaction, the store's, the decision's, each committed, none open while PCS is
    asked. Warm cache: the check and the decision share one transaction."""
    _clear_cache(engine)
    with FakeVendorServices() as server:
        server.add_intel(default_pki().build(QuoteOptions()))
        settings = service_settings(database_url, pcs_base_url=server.base_url, kds_base_url=server.base_url)
        seeded = seed(engine, settings, seats=2)
        first = str(
            store_pending_tdx(
                engine,
                settings,
                seeded.entitlement_id,
                deployment=f"task-base-{uuid.uuid4().hex[:8]}",
                with_collateral=False,
            )
        )
        second = str(
            store_pending_tdx(
                engine,
                settings,
                seeded.entitlement_id,
                deployment=f"task-base-{uuid.uuid4().hex[:8]}",
                with_collateral=False,
            )
        )
        open_when_asked: list[list[str]] = []
        monkeypatch.setattr(
            refresh,
            "fetch_and_store",
            _spy(vendor_documents.fetch_and_store, lambda: open_when_asked.append(list(transactions))),
        )
        try:
            transactions.clear()
            assert _decide_in_process(monkeypatch, settings, first) == "accepted"
            assert len(server.requests) == 4
            assert open_when_asked == [["begin", "commit"]]  # the check's transaction had ended
            assert transactions == ["begin", "commit"] * 3

            transactions.clear()
            assert _decide_in_process(monkeypatch, settings, second) == "accepted"
            assert len(server.requests) == 4  # nothing asked again
            assert transactions == ["begin", "commit"]
        finally:
            _clear_cache(engine)
    assert _status(engine, first) == _status(engine, second) == AttestationStatus.ACCEPTED


def _clear_cache(engine: Engine) -> None:
    with Session(engine) as s:
        s.execute(delete(CachedCollateral))
        s.commit()


def _spy(fn: Any, before: Any) -> Any:
    def spied(*args: Any, **kwargs: Any) -> Any:
        before()
        return fn(*args, **kwargs)

    return spied
