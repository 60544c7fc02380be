"""Admin: customers, models, versions and their keys, reference values, policies.

HTTP only: the rules (key wrapping and rotation, reference-value status transitions, policy and reference-value
checks, deleting a policy no entitlement names, and the audit events of each change, with the credential as actor)
are in :mod:`verifier.catalog.service` and :mod:`verifier.entitlement.licensing`; the request's dependency
(:mod:`verifier.api.deps`) commits each endpoint's transaction after its response is rendered, before answering.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from verifier.api.admin.common import PREFIX, Limit, Offset, actor, now
from verifier.api.admin_schemas import (
    CustomerCreate,
    CustomerOut,
    KeyRotate,
    KeyRotated,
    ModelCreate,
    ModelKeyOut,
    ModelOut,
    ModelVersionCreate,
    ModelVersionOut,
    Platform,
    PolicyCreate,
    PolicyOut,
    ReferenceValueCreate,
    ReferenceValueOut,
    ReferenceValuePatch,
)
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.roles import AdminRoleDep, ViewerDep
from verifier.catalog import repository as catalog_repository
from verifier.catalog import service as catalog
from verifier.db.models import RecordStatus
from verifier.entitlement import licensing
from verifier.entitlement import repository as licensing_repository
from verifier.wiring import kek_for

router = APIRouter(prefix=PREFIX)


# -- customers -----------------------------------------------------------------------------------------------


@router.post("/customers", status_code=status.HTTP_201_CREATED)
def create_customer(body: CustomerCreate, session: SessionDep, admin: AdminRoleDep) -> CustomerOut:
    customer = licensing.create_customer(session, name=body.name, status=body.status, actor=actor(admin), now=now())
    return CustomerOut.model_validate(customer)


@router.get("/customers")
def list_customers(session: SessionDep, _: ViewerDep, limit: Limit = 100, offset: Offset = 0) -> list[CustomerOut]:
    rows = licensing_repository.list_customers(session, limit=limit, offset=offset)
    return [CustomerOut.model_validate(r) for r in rows]


@router.get("/customers/{customer_id}")
def get_customer(customer_id: uuid.UUID, session: SessionDep, _: ViewerDep) -> CustomerOut:
    return CustomerOut.model_validate(licensing.get_customer(session, customer_id))


# -- models, versions, keys ------------------------------------------------------------------------------------


@router.post("/models", status_code=status.HTTP_201_CREATED)
def create_model(body: ModelCreate, session: SessionDep, admin: AdminRoleDep) -> ModelOut:
    model = catalog.create_model(session, name=body.name, description=body.description, actor=actor(admin), now=now())
    return ModelOut.model_validate(model)


@router.get("/models")
def list_models(session: SessionDep, _: ViewerDep, limit: Limit = 100, offset: Offset = 0) -> list[ModelOut]:
    return [ModelOut.model_validate(r) for r in catalog_repository.list_models(session, limit=limit, offset=offset)]


@router.post("/models/{model_id}/versions", status_code=status.HTTP_201_CREATED)
def create_model_version(
    model_id: uuid.UUID, body: ModelVersionCreate, session: SessionDep, settings: SettingsDep, admin: AdminRoleDep
) -> ModelVersionOut:
    """A new version with its DEK (imported from ``dek_b64`` or generated), stored wrapped under the KEK."""
    version, key = catalog.create_model_version(
        session,
        kek_for(settings),
        model_id,
        version=body.version,
        dek_b64=body.dek_b64,
        actor=actor(admin),
        now=now(),
    )
    return ModelVersionOut(
        id=version.id,
        model_id=version.model_id,
        version=version.version,
        created_at=version.created_at,
        active_key=ModelKeyOut.model_validate(key),
    )


@router.post("/models/{model_id}/versions/{version_id}/rotate-key")
def rotate_model_key(
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminRoleDep,
    body: KeyRotate | None = None,
) -> KeyRotated:
    """Retire every current key of the version and store a new one (generated, or imported from ``dek_b64``)."""
    rotation = catalog.rotate_model_key(
        session, kek_for(settings), model_id, version_id, dek_b64=body.dek_b64 if body else None, now=now()
    )
    return KeyRotated(
        model_version_id=rotation.version.id,
        active_key=ModelKeyOut.model_validate(rotation.active_key),
        retired_key_ids=[k.id for k in rotation.retired],
    )


# -- reference values ------------------------------------------------------------------------------------------


@router.post("/reference-values", status_code=status.HTTP_201_CREATED)
def create_reference_values(body: ReferenceValueCreate, session: SessionDep, admin: AdminRoleDep) -> ReferenceValueOut:
    """A new set; its values must pin the platform's guest identity (appraisal/reference_values.py)."""
    rv = catalog.create_reference_values(
        session,
        model_version_id=body.model_version_id,
        platform=body.platform,
        status=body.status,
        values=body.values,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        actor=actor(admin),
        now=now(),
    )
    return ReferenceValueOut.model_validate(rv)


@router.get("/reference-values")
def list_reference_values(
    session: SessionDep,
    _: ViewerDep,
    model_version_id: uuid.UUID | None = None,
    platform: Platform | None = None,
    status_: Annotated[RecordStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ReferenceValueOut]:
    rows = catalog_repository.list_reference_values(
        session, model_version_id=model_version_id, platform=platform, status=status_, limit=limit, offset=offset
    )
    return [ReferenceValueOut.model_validate(r) for r in rows]


@router.patch("/reference-values/{rv_id}")
def update_reference_values(
    rv_id: uuid.UUID, body: ReferenceValuePatch, session: SessionDep, admin: AdminRoleDep
) -> ReferenceValueOut:
    """Change the status: draft -> active -> retired (or draft -> retired). Values themselves are immutable; a set
    stored before values had to pin a guest identity can be retired but not activated."""
    rv = catalog.change_reference_values_status(session, rv_id, body.status, actor=actor(admin), now=now())
    return ReferenceValueOut.model_validate(rv)


# -- policies --------------------------------------------------------------------------------------------------


@router.post("/policies", status_code=status.HTTP_201_CREATED)
def create_policy(body: PolicyCreate, session: SessionDep, admin: AdminRoleDep) -> PolicyOut:
    """400 ``policy.invalid`` for a document the decision could not parse (an unknown key, a wrong type): the admin
    who wrote it hears of a typo once, instead of every customer's decision being rejected for it. 400
    ``request.invalid`` for one nested too deep or too large (``verifier.limits``). Audited."""
    policy = catalog.create_policy(
        session, name=body.name, platform=body.platform, document=body.document, actor=actor(admin), now=now()
    )
    return PolicyOut.model_validate(policy)


@router.get("/policies")
def list_policies(session: SessionDep, _: ViewerDep, limit: Limit = 100, offset: Offset = 0) -> list[PolicyOut]:
    return [PolicyOut.model_validate(r) for r in catalog_repository.list_policies(session, limit=limit, offset=offset)]


@router.delete("/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_policy(policy_id: uuid.UUID, session: SessionDep, admin: AdminRoleDep) -> None:
    """Delete a policy no entitlement names; 409 ``resource.conflict`` naming the entitlements that do (it is part of
    their terms: suspend or revoke them instead). Audited ``admin:policy:deleted``."""
    catalog.delete_policy(session, policy_id, actor=actor(admin), now=now())
