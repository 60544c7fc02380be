"""What a decision reads about the licence and the model: the catalog (model version, model, entitlement, its
appraisal policy, the newest model key) and the active reference values, in two statements; and the appraisal
policy document one evidence item is appraised against.

Reads only; nothing here writes or commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    Entitlement,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.errors import Code, NotFound, PolicyRejected
from verifier.platforms.registry import PLATFORMS, require_identifying_reference_values

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a decision reads about the licence and the model, in two statements (see :func:`load_catalog`)."""

    version: ModelVersion
    model: Model
    entitlement: Entitlement  # as read before the lock; the seat step locks and reads it again
    policy: AppraisalPolicy | None
    model_key: ModelKey | None  # the newest unretired one
    reference_values: dict[str, ReferenceValueSet]  # per platform: the newest active set with valid_from <= now


#: The decision's two catalog reads, built once (statement construction and its cache key cost more than the
#: round trip on this path); parameters: version, entitlement, platforms, now.
_NEWEST_KEY = (
    select(ModelKey.id)
    .where(ModelKey.model_version_id == bindparam("version"), ModelKey.retired_at.is_(None))
    .order_by(ModelKey.created_at.desc())
    .limit(1)
    .scalar_subquery()
)
_CATALOG = (
    select(ModelVersion, Model, Entitlement, AppraisalPolicy, ModelKey)
    .join(Model, Model.id == ModelVersion.model_id)
    .join(Entitlement, Entitlement.id == bindparam("entitlement"))
    .outerjoin(AppraisalPolicy, AppraisalPolicy.id == Entitlement.policy_id)
    .outerjoin(ModelKey, ModelKey.id == _NEWEST_KEY)
    .where(ModelVersion.id == bindparam("version"))
)
_REFERENCE_VALUES = (
    select(ReferenceValueSet)
    .where(
        ReferenceValueSet.model_version_id == bindparam("version"),
        ReferenceValueSet.platform.in_(bindparam("platforms", expanding=True)),
        ReferenceValueSet.status == RecordStatus.ACTIVE,
        ReferenceValueSet.valid_from <= bindparam("now"),
    )
    .order_by(ReferenceValueSet.valid_from.desc())
)


def load_catalog(session: Session, att: Attestation, now: datetime) -> Catalog:
    """The model version, its model, the entitlement, the entitlement's policy and the newest unretired model key in
    one statement; the active reference values for the attestation's platforms in a second."""
    row = session.execute(_CATALOG, {"version": att.model_version_id, "entitlement": att.entitlement_id}).one_or_none()
    if row is None:
        raise NotFound(Code.MODEL_VERSION_NOT_FOUND, "model version or entitlement vanished")
    version, model, entitlement, policy, model_key = row
    platforms = sorted({str(i.get("type")) for i in att.evidence})
    reference_values: dict[str, ReferenceValueSet] = {}
    for rv in session.scalars(_REFERENCE_VALUES, {"version": version.id, "platforms": platforms, "now": now}):
        reference_values.setdefault(rv.platform, rv)
    return Catalog(version, model, entitlement, policy, model_key, reference_values)


def policy_document(catalog: Catalog, platform: str, now: datetime, *, production: bool) -> dict[str, Any]:
    """The entitlement's appraisal policy for the platform, overlaid with the active reference values; in
    production, without any allowance for debug TEEs."""
    entry = PLATFORMS.get(platform)
    family = None if entry is None else entry.family
    rv = catalog.reference_values.get(platform)
    if rv is None or (rv.valid_until is not None and rv.valid_until <= now):
        raise PolicyRejected(
            Code.ATTESTATION_REFERENCE_VALUES_MISSING,
            f"no active reference values for {platform} on this model version",
            actual=platform,
        )
    require_identifying_reference_values(platform, rv.values)  # a set that pins no workload accepts any guest
    document: dict[str, Any] = {}
    policy = catalog.policy
    if policy is not None and policy.platform in (platform, family):
        document.update(policy.document)
    document.update(rv.values)
    if production and document.get("allow_debug"):
        _log.warning("policy for %s asks to accept debug TEEs: ignored in production", platform)
        document["allow_debug"] = False
    return document
