"""All SQL of the catalogue as staff manage it: models, versions, model keys, reference value sets, policies.

The caller owns the session and the transaction; nothing here commits. Inserts go through
:func:`verifier.db.queries.insert_unique` (a clash is a 409 under its own savepoint). The decision's catalog reads
(built once, on the hot path) are in :mod:`verifier.attestation.repository`.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.db.models import AppraisalPolicy, Entitlement, Model, ModelKey, RecordStatus, ReferenceValueSet
from verifier.db.queries import equals, page


def list_models(session: Session, *, limit: int, offset: int) -> list[Model]:
    return page(session, select(Model).order_by(Model.created_at, Model.id), limit=limit, offset=offset)


def add_model_key(session: Session, key: ModelKey) -> None:
    session.add(key)
    session.flush()


def lock_current_keys(session: Session, model_version_id: uuid.UUID) -> list[ModelKey]:
    """The version's unretired keys, locked ``FOR UPDATE``."""
    return list(
        session.scalars(
            select(ModelKey)
            .where(ModelKey.model_version_id == model_version_id, ModelKey.retired_at.is_(None))
            .with_for_update()
        )
    )


def list_reference_values(
    session: Session,
    *,
    model_version_id: uuid.UUID | None,
    platform: str | None,
    status: RecordStatus | None,
    limit: int,
    offset: int,
) -> list[ReferenceValueSet]:
    return page(
        session,
        select(ReferenceValueSet).order_by(ReferenceValueSet.created_at, ReferenceValueSet.id),
        where=(
            equals(ReferenceValueSet.model_version_id, model_version_id),
            equals(ReferenceValueSet.platform, platform),
            equals(ReferenceValueSet.status, status),
        ),
        limit=limit,
        offset=offset,
    )


def list_policies(session: Session, *, limit: int, offset: int) -> list[AppraisalPolicy]:
    return page(
        session,
        select(AppraisalPolicy).order_by(AppraisalPolicy.created_at, AppraisalPolicy.id),
        limit=limit,
        offset=offset,
    )


def entitlements_naming_policy(session: Session, policy_id: uuid.UUID, *, limit: int) -> list[uuid.UUID]:
    """Ids of up to ``limit`` entitlements (any status) whose terms name the policy."""
    query = select(Entitlement.id).where(Entitlement.policy_id == policy_id).order_by(Entitlement.id).limit(limit)
    return list(session.scalars(query))
