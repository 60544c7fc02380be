"""What a decision reads about the licence and the model: the catalog (model version, model, entitlement, its
appraisal policy, the newest model key) and the active reference values, in one statement (with the nonce's
redemption, on PostgreSQL); and the appraisal policy document one evidence item is appraised against.

Writes nothing but the redeemed nonce; never commits. The statements are built once, in
:mod:`verifier.attestation.repository`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from verifier.attestation import repository
from verifier.attestation.challenges import redeemable, replayed
from verifier.db.models import (
    AppraisalPolicy,
    Attestation,
    Entitlement,
    Model,
    ModelKey,
    ModelVersion,
    ReferenceValueSet,
)
from verifier.errors import Code, NotFound, PolicyRejected
from verifier.platforms.registry import PLATFORMS, require_identifying_reference_values

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a decision reads about the licence and the model, in one statement (see :func:`load_catalog`)."""

    version: ModelVersion
    model: Model
    entitlement: Entitlement  # as read before the lock; the seat step locks and reads it again
    policy: AppraisalPolicy | None
    model_key: ModelKey | None  # the newest unretired one
    reference_values: dict[str, ReferenceValueSet]  # per platform: the newest active set with valid_from <= now


def load_catalog(session: Session, att: Attestation, now: datetime) -> Catalog:
    """The model version, its model, the entitlement, the entitlement's policy, the newest unretired model key and
    the active reference values for the attestation's platforms, in one statement."""
    catalog = _catalog(repository.read_catalog(session, att.model_version_id, att.entitlement_id, _platforms(att), now))
    if catalog is None:
        raise NotFound(Code.MODEL_VERSION_NOT_FOUND, "model version or entitlement vanished")
    return catalog


def redeem_and_load_catalog(
    session: Session, secret: bytes, att: Attestation, now: datetime, received: datetime
) -> Catalog | None:
    """Redeem the attestation's nonce as :func:`~verifier.attestation.challenges.redeem_challenge` does (checked
    here, consumed for good in the caller's transaction) and read its catalog as :func:`load_catalog` does, in one
    statement on PostgreSQL. None if the model version or entitlement is gone (the nonce is consumed either way).
    Raises the nonce's ``challenge.*`` errors (nothing is written for an invalid or expired one)."""
    expires_at = redeemable(secret, att.nonce, now, received_at=received, holder=att.nonce_holder or "")
    redeemed, rows = repository.redeem_nonce_and_read_catalog(
        session,
        nonce=bytes(att.nonce),
        used_at=now,
        expires_at=expires_at,
        version_id=att.model_version_id,
        entitlement_id=att.entitlement_id,
        platforms=_platforms(att),
        now=now,
    )
    if not redeemed:
        raise replayed()
    return _catalog(rows)


def _platforms(att: Attestation) -> list[str]:
    """The attestation's platforms, and those whose rules run on every attestation (a model version's NVIDIA policy
    can require GPUs of evidence that brings none)."""
    return sorted(
        {str(i.get("type")) for i in att.evidence} | {e.name for e in PLATFORMS.values() if e.attestation_rules}
    )


def _catalog(rows: repository.CatalogRows) -> Catalog | None:
    found, sets = rows
    if found is None:
        return None
    reference_values: dict[str, ReferenceValueSet] = {}
    for rv in sets:  # newest valid_from first
        reference_values.setdefault(rv.platform, rv)
    return Catalog(*found, reference_values)


@dataclass(frozen=True, slots=True)
class PolicyInputs:
    """What one platform's evidence is appraised against: the policy document, and the stored rows it was built
    from (recorded with the decision, so staff later see exactly which set and policy judged it)."""

    document: dict[str, Any]
    reference_values: ReferenceValueSet
    policy: AppraisalPolicy | None  # the entitlement's policy, when it is for this platform (or its family)

    def recorded(self) -> dict[str, str | None]:
        """The ids the decision stores (:attr:`~verifier.platforms.evaluation.Evaluation.appraised_with`)."""
        policy = None if self.policy is None else str(self.policy.id)
        return {"reference_values": str(self.reference_values.id), "policy": policy}


def policy_document(catalog: Catalog, platform: str, now: datetime, *, production: bool) -> dict[str, Any]:
    """The entitlement's appraisal policy for the platform, overlaid with the active reference values; in
    production, without any allowance for debug TEEs."""
    return policy_inputs(catalog, platform, now, production=production).document


def policy_inputs(catalog: Catalog, platform: str, now: datetime, *, production: bool) -> PolicyInputs:
    """:func:`policy_document` with the reference-value set and the policy it was built from."""
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
    else:
        policy = None
    document.update(rv.values)
    if production and document.get("allow_debug"):
        _log.warning("policy for %s asks to accept debug TEEs: ignored in production", platform)
        document["allow_debug"] = False
    return PolicyInputs(document, rv, policy)
