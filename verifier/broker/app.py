"""The Celery app both services share, configured from Settings on first use, and sending tasks by name.

Brokers: Redis in production; in the embedded development profile kombu's SQLAlchemy transport on a SQLite file
(``sqla+sqlite:///...``), which needs no server and is polled every 50 ms.

Importing this module reads no settings and changes no global: the broker URL and its transport options are read from
Settings when Celery first reads its configuration (its ``on_configure`` signal, :func:`_configure`), and whatever is
set on ``celery_app.conf`` before or after that wins (tests point the app at their own broker). Keyward's transport
aliases (:mod:`verifier.broker.transport`) are registered then too.

The API sends the decision by name (:func:`send_decide`), so it needs neither the task modules nor Celery's task
registry. Not here: the tasks and the worker's own options and beat schedule (:mod:`verifier.worker.celery_app`).
"""

from __future__ import annotations

from typing import Any, Final

from celery import Celery

from verifier.broker.transport import register_transports, transport_options
from verifier.config import get_settings

#: The decide task's registered name (:mod:`verifier.worker.tasks` registers it under this name).
DECIDE_TASK: Final = "keyward.decide_attestation"


def _configure(sender: Celery, **_: Any) -> None:
    """``on_configure``: the broker from Settings, when Celery first reads its configuration (never at import).
    Values already set on ``conf`` win."""
    register_transports()
    settings = get_settings()
    sender.conf.setdefault("broker_url", settings.broker_url)
    sender.conf.setdefault(
        "broker_transport_options",
        transport_options(settings.broker_url, settings.broker_visibility_timeout, settings.broker_key_prefix),
    )


celery_app = Celery("keyward")
celery_app.conf.task_ignore_result = True  # no result backend: the database holds every outcome
celery_app.on_configure.connect(_configure, weak=False)


def send_decide(attestation_id: str, headers: dict[str, str] | None = None) -> None:
    """Send the decide task for a committed attestation. Raises what the broker raises (kombu, redis, OSError)."""
    celery_app.send_task(DECIDE_TASK, args=[attestation_id], headers=headers, ignore_result=True)
