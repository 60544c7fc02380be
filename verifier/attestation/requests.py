"""What the enclave API checks before it stores a request: the licensed model version a request names.

Takes a session; never commits. The SQL is in :mod:`verifier.attestation.repository` (also the request's one
autocommit INSERT, ``store_request``); the decision itself is :mod:`verifier.attestation.flows`.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from verifier.attestation import repository
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
