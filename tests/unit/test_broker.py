"""The broker package: the shared Celery app reads Settings only when first configured, the API sends the decide
task by the name the worker registers, and Keyward's transport aliases are registered explicitly."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

from tests.support.tools import ROOT
from verifier.broker import app as broker_app
from verifier.broker import redis_transport
from verifier.broker.transport import REDIS_TRANSPORT, SQLA_TRANSPORT, register_transports
from verifier.config import Settings

#: Imported in a fresh interpreter whose Settings refuse to load (production without its secrets): importing must
#: neither read Settings nor touch kombu's transport aliases.
_IMPORT_CHECK = """
import kombu.transport
before = dict(kombu.transport.TRANSPORT_ALIASES)
import verifier.app, verifier.broker.app, verifier.observability.health
import verifier.worker.celery_app, verifier.worker.refresh, verifier.worker.tasks
assert kombu.transport.TRANSPORT_ALIASES == before, "an import changed kombu's transport aliases"
"""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWARD_")} | {"KEYWARD_ENVIRONMENT": "production"}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_broker_and_worker_modules_import_without_reading_settings() -> None:
    assert _python("from verifier.config import get_settings; get_settings()").returncode != 0  # Settings refuse
    result = _python(_IMPORT_CHECK)
    assert result.returncode == 0, result.stderr


def test_celery_broker_from_settings_when_first_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(broker_url="redis://h:6379/0", broker_key_prefix="p:")
    monkeypatch.setattr(broker_app, "get_settings", lambda: settings)
    monkeypatch.delitem(TRANSPORT_ALIASES, "sqla", raising=False)
    app = Celery("test")
    app.on_configure.connect(broker_app._configure, weak=False)
    app.conf.broker_url = "redis://mine:6379/0"  # set before the configuration is read: it wins

    assert app.conf.broker_transport_options["global_keyprefix"] == "p:"
    assert app.conf.broker_url == "redis://mine:6379/0"
    assert TRANSPORT_ALIASES["sqla"] == SQLA_TRANSPORT


def test_register_transports_is_idempotent() -> None:
    register_transports()
    register_transports()
    assert TRANSPORT_ALIASES["sqla"] == TRANSPORT_ALIASES["sqlalchemy"] == SQLA_TRANSPORT
    assert TRANSPORT_ALIASES["redis"] == TRANSPORT_ALIASES["rediss"] == REDIS_TRANSPORT


def test_redis_channel_of_a_collected_transport_raises_a_connection_error() -> None:
    """A worker whose Redis connection dropped closes its channel after the transport was collected (no client):
    restoring the unacknowledged messages then needs connection details that are gone. That must be a connection
    error, which Celery's consumer ignores before reconnecting, not kombu's AttributeError, which kills the worker."""
    channel = redis_transport.Channel.__new__(redis_transport.Channel)  # no connection: only the guard runs
    channel.connection = type("CollectedTransport", (), {"client": None})()
    with pytest.raises(redis_transport.Transport.connection_errors):
        channel._connparams()


def test_send_decide_sends_the_task_the_worker_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    from verifier.worker.celery_app import celery_app
    from verifier.worker.tasks import decide_task

    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(broker_app.celery_app, "send_task", lambda name, **kw: sent.append((name, kw)))

    broker_app.send_decide("0b5e", {"x-request-id": "r1"})

    assert celery_app is broker_app.celery_app
    assert decide_task.name == broker_app.DECIDE_TASK
    headers = {"x-request-id": "r1"}
    assert sent == [(broker_app.DECIDE_TASK, {"args": ["0b5e"], "headers": headers, "ignore_result": True})]
