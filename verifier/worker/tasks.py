"""Thin tasks: ids in, a service call, one commit. Sent only after the commit that made their input visible."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import sessionmaker

from verifier.api.deps import engine_for
from verifier.attestation.flows import decide_attestation
from verifier.attestation.leases import expire_leases
from verifier.config import current_time, get_settings
from verifier.worker.celery_app import celery_app
from verifier.worker.context import decision_context


def decide(attestation_id: str) -> str:
    """Decide one pending attestation in its own transaction; returns the resulting status."""
    settings = get_settings()
    factory = sessionmaker(bind=engine_for(settings.database_url), expire_on_commit=False)
    with factory() as session:
        att = decide_attestation(session, uuid.UUID(attestation_id), decision_context(settings), current_time(settings))
        session.commit()
        return att.status.value


decide_task = celery_app.task(name="keyward.decide_attestation", acks_late=True)(decide)


def expire() -> int:
    """Beat task body: expire due leases in one transaction."""
    settings = get_settings()
    factory = sessionmaker(bind=engine_for(settings.database_url), expire_on_commit=False)
    with factory() as session:
        count = expire_leases(session, current_time(settings))
        session.commit()
        return count


expire_task = celery_app.task(name="keyward.expire_leases")(expire)
