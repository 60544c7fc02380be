"""The catalogue's rules, as staff change it: models and their versions, each version's DEK stored only wrapped
under the provider KEK (generated, or imported once), key rotation, reference value sets and their status
transitions, and appraisal policies checked with the decision's own parser.

Takes the caller's session and ``now`` (and the KEK where a key is stored); never commits and never returns a DEK.
The SQL is in :mod:`verifier.catalog.repository`; HTTP is in :mod:`verifier.api.admin.catalog`.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.catalog import repository
from verifier.db.models import AppraisalPolicy, Model, ModelKey, ModelVersion, RecordStatus, ReferenceValueSet
from verifier.db.queries import get_or_404, insert_unique
from verifier.errors import Code, Conflict, NotFound, UsageError
from verifier.keywrap.kek import KeyEncryptionKey, model_key_context
from verifier.platforms.registry import PLATFORMS, reference_values_problem, required_reference_values

#: Allowed reference-value status changes (a draft may also be abandoned straight to retired).
RV_TRANSITIONS: dict[RecordStatus, frozenset[RecordStatus]] = {
    RecordStatus.DRAFT: frozenset({RecordStatus.ACTIVE, RecordStatus.RETIRED}),
    RecordStatus.ACTIVE: frozenset({RecordStatus.RETIRED}),
    RecordStatus.RETIRED: frozenset(),
}

# -- models, versions, keys --------------------------------------------------------------------------------------


def create_model(session: Session, *, name: str, description: str, now: datetime) -> Model:
    model = Model(name=name, description=description, created_at=now)
    insert_unique(session, model, "a model with this name")
    return model


def model_dek(dek_b64: str | None) -> bytes:
    """The DEK to import (32 bytes of standard base64), or a fresh random one; ``usage.invalid`` otherwise."""
    if dek_b64 is None:
        return os.urandom(32)
    try:
        dek = base64.b64decode(dek_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(Code.USAGE_INVALID, "dek_b64 is not base64") from e
    if len(dek) != 32:
        raise UsageError(Code.USAGE_INVALID, "a model DEK must be 32 bytes", expected=32, actual=len(dek))
    return dek


def _new_key(session: Session, kek: KeyEncryptionKey, version: ModelVersion, dek: bytes, now: datetime) -> ModelKey:
    key = ModelKey(
        model_version_id=version.id,
        kek_id=kek.kek_id,
        wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
        created_at=now,
        retired_at=None,
    )
    repository.add_model_key(session, key)
    return key


def create_model_version(
    session: Session, kek: KeyEncryptionKey, model_id: uuid.UUID, *, version: str, dek_b64: str | None, now: datetime
) -> tuple[ModelVersion, ModelKey]:
    """A new version with its DEK (imported from ``dek_b64`` or generated), stored wrapped under the KEK."""
    get_or_404(session, Model, model_id, "model")
    dek = model_dek(dek_b64)  # a bad import is refused before anything is written
    row = ModelVersion(model_id=model_id, version=version, created_at=now)
    insert_unique(session, row, "this version of the model")
    return row, _new_key(session, kek, row, dek, now)


@dataclass(frozen=True, slots=True)
class Rotation:
    version: ModelVersion
    active_key: ModelKey
    retired: list[ModelKey]


def rotate_model_key(
    session: Session,
    kek: KeyEncryptionKey,
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    *,
    dek_b64: str | None,
    now: datetime,
) -> Rotation:
    """Retire every current key of the version and store a new one (generated, or imported from ``dek_b64``)."""
    version = get_or_404(session, ModelVersion, version_id, "model version")
    if version.model_id != model_id:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "model version not found under this model", actual=version_id)
    dek = model_dek(dek_b64)
    current = repository.lock_current_keys(session, version.id)
    for old in current:
        old.retired_at = now
    session.flush()
    return Rotation(version, _new_key(session, kek, version, dek, now), current)


# -- reference values --------------------------------------------------------------------------------------------


def check_identifies(platform: str, values: dict[str, Any]) -> None:
    """400 ``request.invalid`` unless ``values`` parse as the platform's policy fields and pin its guest identity."""
    try:
        problem = reference_values_problem(platform, values)
    except UsageError as e:
        raise UsageError(
            Code.REQUEST_INVALID,
            f"values are not valid {platform} reference values: {e.message}",
            expected=e.expected,
            actual=e.actual,
        ) from e
    if problem is not None:
        raise UsageError(Code.REQUEST_INVALID, problem, expected=required_reference_values(platform), actual=platform)


def create_reference_values(
    session: Session,
    *,
    model_version_id: uuid.UUID,
    platform: str,
    status: RecordStatus,
    values: dict[str, Any],
    valid_from: datetime | None,
    valid_until: datetime | None,
    now: datetime,
) -> ReferenceValueSet:
    """A new set; its values must pin the platform's guest identity (appraisal/reference_values.py)."""
    check_identifies(platform, values)
    get_or_404(session, ModelVersion, model_version_id, "model version")
    rv = ReferenceValueSet(
        model_version_id=model_version_id,
        platform=platform,
        status=status,
        values=values,
        valid_from=valid_from or now,
        valid_until=valid_until,
        created_at=now,
    )
    insert_unique(session, rv, "this reference value set")
    return rv


def change_reference_values_status(session: Session, rv_id: uuid.UUID, status: RecordStatus) -> ReferenceValueSet:
    """Draft -> active -> retired (or draft -> retired), the row locked; ``resource.conflict`` for any other change.
    Values themselves are immutable; a set stored before values had to pin a guest identity can be retired but not
    activated. The current status again changes nothing."""
    rv = get_or_404(session, ReferenceValueSet, rv_id, "reference value set", lock=True)
    if status == rv.status:
        return rv
    if status not in RV_TRANSITIONS[rv.status]:
        raise Conflict(
            Code.RESOURCE_CONFLICT,
            f"reference values cannot go from {rv.status.value} to {status.value}",
            expected=" | ".join(sorted(s.value for s in RV_TRANSITIONS[rv.status])) or "(none)",
            actual=status.value,
        )
    if status == RecordStatus.ACTIVE:
        check_identifies(rv.platform, rv.values)
    rv.status = status
    session.flush()
    return rv


# -- policies ----------------------------------------------------------------------------------------------------


def check_policy(scope: str, document: dict[str, Any]) -> None:
    """Parse ``document`` with the registry's parser for ``scope``, a platform or its family: the decision's own."""
    for entry in PLATFORMS.values():
        if scope in (entry.name, entry.family):
            entry.policy(document)
            return


def create_policy(
    session: Session, *, name: str, platform: str, document: dict[str, Any], now: datetime
) -> AppraisalPolicy:
    """``policy.invalid`` for a document the decision could not parse (an unknown key, a wrong type): the admin who
    wrote it hears of a typo once, instead of every customer's decision being rejected for it."""
    check_policy(platform, document)
    policy = AppraisalPolicy(name=name, platform=platform, document=document, created_at=now)
    insert_unique(session, policy, "a policy with this name")
    return policy
