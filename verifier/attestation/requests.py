"""What the enclave API checks and stores before a worker decides: the licensed model version a request names,
and the stored pending request.

Runs in the API's request session; never commits (the request's transaction commits, then the decide task is
sent). The SQL is in :mod:`verifier.attestation.repository`; the decision itself is :mod:`verifier.attestation.flows`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from verifier.attestation import repository
from verifier.db.models import Attestation
from verifier.errors import Code, Forbidden, NotEntitled, NotFound


def licensed_model_version(
    session: Session, entitlement_id: uuid.UUID, model: str, version: str | None
) -> tuple[uuid.UUID, uuid.UUID]:
    """(entitlement id, model version id) for the licence's entitlement and the named model (the newest version
    unless one is named), in one statement. ``entitlement.not_found`` if the entitlement is gone,
    ``auth.forbidden`` for a model the licence does not cover, ``model_version.not_found`` for no such version."""
    found = repository.licensed_version(session, entitlement_id, model, version)
    if found is None:
        raise NotEntitled(Code.ENTITLEMENT_NOT_FOUND, "the licence's entitlement does not exist")
    entitlement, licensed_model, model_id, version_id = found
    if model_id != licensed_model:  # no such model (None), or not the licensed one
        raise Forbidden(Code.AUTH_FORBIDDEN, "this licence does not cover that model", actual=model)
    if version_id is None:
        raise NotFound(Code.MODEL_VERSION_NOT_FOUND, "no such model version", actual=version)
    return entitlement, version_id


def store_request(session: Session, att: Attestation) -> None:
    """Stage the pending request; the caller's commit makes it durable before any worker can see its task."""
    repository.add_attestation(session, att)
