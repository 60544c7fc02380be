"""The Celery application. Tasks ack late and are rejected back to the queue if the worker dies, so a worker
killed mid-task never loses an attestation; the decision itself is idempotent (see attestation/flows.py)."""

from __future__ import annotations

from celery import Celery

from verifier.config import get_settings


def make_celery(broker_url: str | None = None) -> Celery:
    settings = get_settings()
    app = Celery(
        "keyward",
        broker=broker_url or settings.broker_url,
        include=["verifier.worker.tasks", "verifier.worker.refresh"],
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout},
        beat_schedule={"expire-leases": {"task": "keyward.expire_leases", "schedule": 30.0}},
    )
    return app


celery_app = make_celery()
