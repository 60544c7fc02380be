"""The Celery application. Tasks ack late and are rejected back to the queue if the worker dies, so a worker
killed mid-task never loses an attestation; the decision itself is idempotent (see attestation/flows.py).

Brokers: Redis in production; in the embedded development profile kombu's SQLAlchemy transport on a SQLite file
(``sqla+sqlite:///...``), which needs no server and is polled every 50 ms.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

from verifier.config import get_settings, warn_development_profile

# ``sqla+sqlite:///...`` brokers use Keyward's fixed copy of kombu's SQLAlchemy transport (see sqla_transport.py).
TRANSPORT_ALIASES["sqla"] = TRANSPORT_ALIASES["sqlalchemy"] = "verifier.worker.sqla_transport:Transport"


def transport_options(broker_url: str, visibility_timeout: int, key_prefix: str = "") -> dict[str, Any]:
    if broker_url.startswith("sqla+"):
        return {"polling_interval": 0.05}
    return {"visibility_timeout": visibility_timeout, "global_keyprefix": key_prefix}


def make_celery(broker_url: str | None = None) -> Celery:
    settings = get_settings()
    broker = broker_url or settings.broker_url
    app = Celery(
        "keyward",
        broker=broker,
        include=["verifier.worker.tasks", "verifier.worker.refresh"],
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options=transport_options(
            broker, settings.broker_visibility_timeout, settings.broker_key_prefix
        ),
        beat_schedule={
            "expire-leases": {"task": "keyward.expire_leases", "schedule": 30.0},
            "requeue-pending": {"task": "keyward.requeue_pending", "schedule": 60.0},
            "refresh-collateral": {"task": "keyward.refresh_collateral", "schedule": 3600.0},
            "purge-used-nonces": {"task": "keyward.purge_used_nonces", "schedule": 3600.0},
        },
    )
    return app


def _warn_development_profile(**_: Any) -> None:
    warn_development_profile(get_settings())


celery_app = make_celery()
# At start-up, once logging is set up: the worker's main process, and beat.
signals.celeryd_after_setup.connect(_warn_development_profile, weak=False)
signals.beat_init.connect(_warn_development_profile, weak=False)
