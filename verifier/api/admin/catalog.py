"""Admin: customers, models, versions and their keys, reference values, policies."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from sqlalchemy import select

from verifier.api.admin._common import (
    _RV_TRANSITIONS,
    Limit,
    Offset,
    _dek,
    _get,
    _insert,
    _new_key,
    _now,
    _page,
)
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
from verifier.api.deps import AdminDep, SessionDep, SettingsDep
from verifier.db.models import (
    AppraisalPolicy,
    Customer,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.errors import Code, Conflict, NotFound, UsageError
from verifier.platforms.registry import PLATFORMS, reference_values_problem, required_reference_values

router = APIRouter()


# -- customers -----------------------------------------------------------------------------------------------


@router.post("/customers", status_code=status.HTTP_201_CREATED)
def create_customer(body: CustomerCreate, session: SessionDep, _: AdminDep) -> CustomerOut:
    customer = Customer(name=body.name, status=body.status, created_at=_now())
    _insert(session, customer, "a customer with this name")
    out = CustomerOut.model_validate(customer)
    session.commit()
    return out


@router.get("/customers")
def list_customers(session: SessionDep, _: AdminDep, limit: Limit = 100, offset: Offset = 0) -> list[CustomerOut]:
    rows = _page(session, select(Customer).order_by(Customer.created_at, Customer.id), limit, offset)
    return [CustomerOut.model_validate(r) for r in rows]


@router.get("/customers/{customer_id}")
def get_customer(customer_id: uuid.UUID, session: SessionDep, _: AdminDep) -> CustomerOut:
    return CustomerOut.model_validate(_get(session, Customer, customer_id, "customer"))


# -- models, versions, keys ------------------------------------------------------------------------------------


@router.post("/models", status_code=status.HTTP_201_CREATED)
def create_model(body: ModelCreate, session: SessionDep, _: AdminDep) -> ModelOut:
    model = Model(name=body.name, description=body.description, created_at=_now())
    _insert(session, model, "a model with this name")
    out = ModelOut.model_validate(model)
    session.commit()
    return out


@router.get("/models")
def list_models(session: SessionDep, _: AdminDep, limit: Limit = 100, offset: Offset = 0) -> list[ModelOut]:
    rows = _page(session, select(Model).order_by(Model.created_at, Model.id), limit, offset)
    return [ModelOut.model_validate(r) for r in rows]


@router.post("/models/{model_id}/versions", status_code=status.HTTP_201_CREATED)
def create_model_version(
    model_id: uuid.UUID, body: ModelVersionCreate, session: SessionDep, settings: SettingsDep, _: AdminDep
) -> ModelVersionOut:
    """A new version with its DEK (imported from ``dek_b64`` or generated), stored wrapped under the KEK."""
    now = _now()
    _get(session, Model, model_id, "model")
    dek = _dek(body.dek_b64)  # a bad import is refused before anything is written
    version = ModelVersion(model_id=model_id, version=body.version, created_at=now)
    _insert(session, version, "this version of the model")
    key = _new_key(session, settings, version, dek, now)
    out = ModelVersionOut(
        id=version.id,
        model_id=version.model_id,
        version=version.version,
        created_at=version.created_at,
        active_key=ModelKeyOut.model_validate(key),
    )
    session.commit()
    return out


@router.post("/models/{model_id}/versions/{version_id}/rotate-key")
def rotate_model_key(
    model_id: uuid.UUID,
    version_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    _: AdminDep,
    body: KeyRotate | None = None,
) -> KeyRotated:
    """Retire every current key of the version and store a new one (generated, or imported from ``dek_b64``)."""
    now = _now()
    version = _get(session, ModelVersion, version_id, "model version")
    if version.model_id != model_id:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "model version not found under this model", actual=version_id)
    dek = _dek(body.dek_b64 if body else None)
    current = list(
        session.scalars(
            select(ModelKey)
            .where(ModelKey.model_version_id == version.id, ModelKey.retired_at.is_(None))
            .with_for_update()
        )
    )
    for old in current:
        old.retired_at = now
    session.flush()
    key = _new_key(session, settings, version, dek, now)
    out = KeyRotated(
        model_version_id=version.id,
        active_key=ModelKeyOut.model_validate(key),
        retired_key_ids=[k.id for k in current],
    )
    session.commit()
    return out


# -- reference values ------------------------------------------------------------------------------------------


@router.post("/reference-values", status_code=status.HTTP_201_CREATED)
def create_reference_values(body: ReferenceValueCreate, session: SessionDep, _: AdminDep) -> ReferenceValueOut:
    """A new set; its values must pin the platform's guest identity (appraisal/reference_values.py)."""
    _check_identifies(body.platform, body.values)
    now = _now()
    _get(session, ModelVersion, body.model_version_id, "model version")
    rv = ReferenceValueSet(
        model_version_id=body.model_version_id,
        platform=body.platform,
        status=body.status,
        values=body.values,
        valid_from=body.valid_from or now,
        valid_until=body.valid_until,
        created_at=now,
    )
    _insert(session, rv, "this reference value set")
    out = ReferenceValueOut.model_validate(rv)
    session.commit()
    return out


@router.get("/reference-values")
def list_reference_values(
    session: SessionDep,
    _: AdminDep,
    model_version_id: uuid.UUID | None = None,
    platform: Platform | None = None,
    status_: Annotated[RecordStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ReferenceValueOut]:
    query = select(ReferenceValueSet).order_by(ReferenceValueSet.created_at, ReferenceValueSet.id)
    if model_version_id is not None:
        query = query.where(ReferenceValueSet.model_version_id == model_version_id)
    if platform is not None:
        query = query.where(ReferenceValueSet.platform == platform)
    if status_ is not None:
        query = query.where(ReferenceValueSet.status == status_)
    return [ReferenceValueOut.model_validate(r) for r in _page(session, query, limit, offset)]


@router.patch("/reference-values/{rv_id}")
def update_reference_values(
    rv_id: uuid.UUID, body: ReferenceValuePatch, session: SessionDep, _: AdminDep
) -> ReferenceValueOut:
    """Change the status: draft -> active -> retired (or draft -> retired). Values themselves are immutable; a set
    stored before values had to pin a guest identity can be retired but not activated."""
    rv = _get(session, ReferenceValueSet, rv_id, "reference value set", lock=True)
    if body.status != rv.status:
        if body.status not in _RV_TRANSITIONS[rv.status]:
            raise Conflict(
                Code.RESOURCE_CONFLICT,
                f"reference values cannot go from {rv.status.value} to {body.status.value}",
                expected=" | ".join(sorted(s.value for s in _RV_TRANSITIONS[rv.status])) or "(none)",
                actual=body.status.value,
            )
        if body.status == RecordStatus.ACTIVE:
            _check_identifies(rv.platform, rv.values)
        rv.status = body.status
        session.flush()
    out = ReferenceValueOut.model_validate(rv)
    session.commit()
    return out


def _check_identifies(platform: str, values: dict[str, Any]) -> None:
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


# -- policies --------------------------------------------------------------------------------------------------


def _check_policy(scope: str, document: dict[str, Any]) -> None:
    """Parse ``document`` with the registry's parser for ``scope``, a platform or its family: the decision's own."""
    for entry in PLATFORMS.values():
        if scope in (entry.name, entry.family):
            entry.policy(document)
            return


@router.post("/policies", status_code=status.HTTP_201_CREATED)
def create_policy(body: PolicyCreate, session: SessionDep, _: AdminDep) -> PolicyOut:
    """400 ``policy.invalid`` for a document the decision could not parse (an unknown key, a wrong type): the admin
    who wrote it hears of a typo once, instead of every customer's decision being rejected for it."""
    _check_policy(body.platform, body.document)
    policy = AppraisalPolicy(name=body.name, platform=body.platform, document=body.document, created_at=_now())
    _insert(session, policy, "a policy with this name")
    out = PolicyOut.model_validate(policy)
    session.commit()
    return out


@router.get("/policies")
def list_policies(session: SessionDep, _: AdminDep, limit: Limit = 100, offset: Offset = 0) -> list[PolicyOut]:
    rows = _page(
        session, select(AppraisalPolicy).order_by(AppraisalPolicy.created_at, AppraisalPolicy.id), limit, offset
    )
    return [PolicyOut.model_validate(r) for r in rows]
