"""The worker's Celery app: the shared app (:mod:`verifier.broker.app`) with the worker's options, its task modules
and the beat schedule. ``celery -A verifier.worker.celery_app:celery_app worker`` (or ``beat``) starts it.

Tasks ack late and are rejected back to the queue if the worker dies, so a worker killed mid-task never loses an
attestation; the decision itself is idempotent (see attestation/flows.py). The broker hands a dead worker's
messages out again only after its visibility timeout; beat's requeue sends them again within seconds, once the
worker's heartbeat is stale (attestation/pending.py). Importing this module reads no settings:
the broker and the beat schedule come from Settings when Celery first reads its configuration.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from verifier.broker.app import celery_app
from verifier.config import Settings, get_settings, warn_development_profile

__all__ = ["celery_app"]

celery_app.conf.update(
    include=["verifier.worker.tasks", "verifier.worker.refresh"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's periodic tasks; the requeue of pending requests every ``pending_requeue_interval_seconds`` (it finds
    the requests of a lost worker: verifier/attestation/pending.py)."""
    return {
        "expire-leases": {"task": "keyward.expire_leases", "schedule": 30.0},
        "requeue-pending": {"task": "keyward.requeue_pending", "schedule": settings.pending_requeue_interval_seconds},
        "refresh-collateral": {"task": "keyward.refresh_collateral", "schedule": 3600.0},
        "purge-used-nonces": {"task": "keyward.purge_used_nonces", "schedule": 3600.0},
        "purge-evidence": {"task": "keyward.purge_evidence", "schedule": 3600.0},
    }


def _configure_beat(sender: Any, **_: Any) -> None:
    """``on_configure``: the beat schedule from Settings, when Celery first reads its configuration (never at
    import). A schedule already set on ``conf`` wins."""
    sender.conf.setdefault("beat_schedule", beat_schedule(get_settings()))


celery_app.on_configure.connect(_configure_beat, weak=False)


def _warn_development_profile(**_: Any) -> None:
    warn_development_profile(get_settings())


# At start-up, once logging is set up: the worker's main process, and beat.
signals.celeryd_after_setup.connect(_warn_development_profile, weak=False)
signals.beat_init.connect(_warn_development_profile, weak=False)
