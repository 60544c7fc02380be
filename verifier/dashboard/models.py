"""What the dashboard's models pages show, read from the database: every model with its versions (how many
reference-value sets each has by status, how many live leases use it), and one model's versions with their
reference-value sets by platform, which set is in force, and the appraisal policies its entitlements name.

"In force" is the decision's own rule (:func:`verifier.attestation.catalog.load_catalog` and ``policy_document``):
per version and platform, the active set with the newest ``valid_from`` not after now; if that set's
``valid_until`` has passed, none is (the decision then rejects with ``attestation.reference_values_missing``).
Confidential ACI CCE policies are shown by name with the SHA-256 a container group running them reports as
HOST_DATA.

Reads only, through :mod:`verifier.dashboard.repository`, with the caller's session; never commits. Not here:
HTTP, access control, templates, or any write (:mod:`verifier.catalog.service`).
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from verifier.catalog.service import cce_policy_sha256
from verifier.dashboard import repository
from verifier.db.models import Model, ModelVersion, RecordStatus, ReferenceValueSet
from verifier.errors import Code, NotFound

__all__ = [
    "CcePolicyView",
    "ModelDetail",
    "ModelSummary",
    "PlatformSets",
    "PolicyInUse",
    "SetState",
    "SetView",
    "VersionDetail",
    "VersionSummary",
    "list_models",
    "model_detail",
    "model_id_of_version",
]


class SetState(StrEnum):
    """Where a set stands for the decision now."""

    IN_FORCE = "in force"  # the set a decision for this version and platform reads now
    EXPIRED = "expired"  # it would be, but its validity ended: no set is in force
    SUPERSEDED = "superseded"  # active, but a newer active set is in force
    NOT_YET = "not yet valid"  # active, valid from a later time
    DRAFT = "draft"  # awaiting review
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class VersionSummary:
    id: uuid.UUID
    version: str
    created_at: datetime
    sets: Mapping[str, int]  # status -> how many reference-value sets
    live_leases: int


@dataclass(frozen=True, slots=True)
class ModelSummary:
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime
    versions: tuple[VersionSummary, ...]  # newest first


@dataclass(frozen=True, slots=True)
class CcePolicyView:
    name: str
    sha256: str  # the HOST_DATA of a container group running it
    size: int  # characters as stored (rego, or its base64)
    text: str


@dataclass(frozen=True, slots=True)
class SetView:
    id: uuid.UUID
    platform: str
    status: RecordStatus
    state: SetState
    valid_from: datetime
    valid_until: datetime | None
    created_at: datetime
    values: Mapping[str, Any]  # without cce_policies (see ``cce_policies``)
    cce_policies: tuple[CcePolicyView, ...]


@dataclass(frozen=True, slots=True)
class PlatformSets:
    platform: str
    sets: tuple[SetView, ...]  # newest valid_from first
    in_force: SetView | None


@dataclass(frozen=True, slots=True)
class VersionDetail:
    id: uuid.UUID
    version: str
    created_at: datetime
    live_leases: int
    platforms: tuple[PlatformSets, ...]  # by platform name

    def drafts(self, platform: str) -> tuple[SetView, ...]:
        return tuple(s for p in self.platforms if p.platform == platform for s in p.sets if s.state == SetState.DRAFT)


@dataclass(frozen=True, slots=True)
class PolicyInUse:
    name: str
    platform: str
    document: Mapping[str, Any]
    entitlements: int


@dataclass(frozen=True, slots=True)
class ModelDetail:
    id: uuid.UUID
    name: str
    description: str
    created_at: datetime
    versions: tuple[VersionDetail, ...]  # newest first
    policies: tuple[PolicyInUse, ...]


def list_models(session: Session, now: datetime) -> list[ModelSummary]:
    """Every model, by name, with its versions (newest first), their sets by status and their live leases."""
    counts: dict[uuid.UUID, Counter[str]] = defaultdict(Counter)
    for version_id, status, n in repository.reference_set_counts(session):
        counts[version_id][status] += n
    leases = dict(repository.live_leases_by_version(session, now))
    versions = defaultdict(list)
    for v in repository.model_versions(session):
        versions[v.model_id].append(
            VersionSummary(v.id, v.version, v.created_at, dict(counts[v.id]), leases.get(v.id, 0))
        )
    return [
        ModelSummary(m.id, m.name, m.description, m.created_at, tuple(versions[m.id]))
        for m in repository.all_models(session)
    ]


def _cce_policies(values: Mapping[str, Any]) -> tuple[CcePolicyView, ...]:
    policies = values.get("cce_policies")
    if not isinstance(policies, Mapping):
        return ()
    return tuple(
        CcePolicyView(str(name), cce_policy_sha256(str(text)), len(str(text)), str(text))
        for name, text in sorted(policies.items())
    )


def _states(sets: list[ReferenceValueSet], now: datetime) -> dict[uuid.UUID, SetState]:
    """Each set's :class:`SetState` among one version's sets for one platform (newest ``valid_from`` first)."""
    states: dict[uuid.UUID, SetState] = {}
    chosen = False
    for rv in sets:
        if rv.status == RecordStatus.DRAFT:
            states[rv.id] = SetState.DRAFT
        elif rv.status == RecordStatus.RETIRED:
            states[rv.id] = SetState.RETIRED
        elif rv.valid_from > now:
            states[rv.id] = SetState.NOT_YET
        elif chosen:
            states[rv.id] = SetState.SUPERSEDED
        else:
            chosen = True
            expired = rv.valid_until is not None and rv.valid_until <= now
            states[rv.id] = SetState.EXPIRED if expired else SetState.IN_FORCE
    return states


def _set_view(rv: ReferenceValueSet, state: SetState) -> SetView:
    values = {k: v for k, v in rv.values.items() if k != "cce_policies"}
    return SetView(
        rv.id,
        rv.platform,
        RecordStatus(rv.status),
        state,
        rv.valid_from,
        rv.valid_until,
        rv.created_at,
        values,
        _cce_policies(rv.values),
    )


def model_detail(session: Session, model_id: uuid.UUID, now: datetime) -> ModelDetail:
    """One model's versions with their reference-value sets; ``resource.not_found`` if there is no such model."""
    model = session.get(Model, model_id)
    if model is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "model not found", actual=model_id)
    grouped: dict[tuple[uuid.UUID, str], list[ReferenceValueSet]] = defaultdict(list)
    for rv in repository.reference_sets_of_model(session, model_id):
        grouped[(rv.model_version_id, rv.platform)].append(rv)
    leases = dict(repository.live_leases_by_version(session, now))
    versions = []
    for v in repository.model_versions(session, model_id):
        platforms = []
        for (version_id, platform), sets in sorted(grouped.items(), key=lambda item: item[0][1]):
            if version_id != v.id:
                continue
            states = _states(sets, now)
            views = tuple(_set_view(rv, states[rv.id]) for rv in sets)
            in_force = next((s for s in views if s.state == SetState.IN_FORCE), None)
            platforms.append(PlatformSets(platform, views, in_force))
        versions.append(VersionDetail(v.id, v.version, v.created_at, leases.get(v.id, 0), tuple(platforms)))
    policies = tuple(
        PolicyInUse(p.name, p.platform, p.document, n) for p, n in repository.policies_of_model(session, model_id)
    )
    return ModelDetail(model.id, model.name, model.description, model.created_at, tuple(versions), policies)


def model_id_of_version(session: Session, version_id: uuid.UUID) -> uuid.UUID:
    """The model a version belongs to; ``resource.not_found`` if there is no such version."""
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "model version not found", actual=version_id)
    return version.model_id
