"""The provider staff API (``/v1/admin``): catalogue, reference values, policies, entitlements, credentials,
leases and the attestation record. Every endpoint needs an ``admin`` credential.

Model DEKs are generated (or imported) here and stored only wrapped under the provider KEK, bound to their model
version; no response ever carries a DEK. A new credential's token is returned once, in the issuing response.
Each endpoint reads the clock once (``datetime.now(UTC)``) and commits its own transaction before answering.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, status
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import cast

from verifier.api.admin_schemas import (
    AttestationDetail,
    AttestationSummary,
    CredentialCreate,
    CredentialOut,
    CustomerCreate,
    CustomerOut,
    DeploymentOut,
    EntitlementCreate,
    EntitlementOut,
    IssuedCredential,
    KeyRotate,
    KeyRotated,
    LeaseOut,
    LicenceKeyCreate,
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
from verifier.attestation.flows import model_key_context
from verifier.audit.log import AuditTag, record_event
from verifier.auth.credentials import issue_credential
from verifier.config import Settings
from verifier.db.models import (
    ApiCredential,
    AppraisalPolicy,
    Attestation,
    AttestationStatus,
    CredentialKind,
    Customer,
    Deployment,
    Entitlement,
    Lease,
    LeaseStatus,
    Model,
    ModelKey,
    ModelVersion,
    RecordStatus,
    ReferenceValueSet,
)
from verifier.errors import Code, Conflict, NotFound, UsageError
from verifier.keywrap.kek import LocalAesKek

router = APIRouter(prefix="/v1/admin", tags=["admin"])

_T = TypeVar("_T")
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0)]

#: Allowed reference-value status changes (a draft may also be abandoned straight to retired).
_RV_TRANSITIONS: dict[RecordStatus, frozenset[RecordStatus]] = {
    RecordStatus.DRAFT: frozenset({RecordStatus.ACTIVE, RecordStatus.RETIRED}),
    RecordStatus.ACTIVE: frozenset({RecordStatus.RETIRED}),
    RecordStatus.RETIRED: frozenset(),
}


def _now() -> datetime:
    return datetime.now(UTC)


def _actor(admin: ApiCredential) -> str:
    return f"admin:{admin.key_id}"


def _get(session: Session, cls: type[_T], ident: uuid.UUID, what: str, code: Code = Code.RESOURCE_NOT_FOUND) -> _T:
    row = session.get(cls, ident)
    if row is None:
        raise NotFound(code, f"{what} not found", actual=ident)
    return row


def _insert(session: Session, row: object, what: str) -> None:
    """Add and flush ``row``; a unique-constraint clash becomes a 409."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError as e:
        session.rollback()
        raise Conflict(Code.RESOURCE_CONFLICT, f"{what} already exists") from e


def _kek(settings: Settings) -> LocalAesKek:
    return LocalAesKek(bytes.fromhex(settings.kek_hex.get_secret_value()))


def _dek(dek_b64: str | None) -> bytes:
    if dek_b64 is None:
        return os.urandom(32)
    try:
        dek = base64.b64decode(dek_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise UsageError(Code.USAGE_INVALID, "dek_b64 is not base64") from e
    if len(dek) != 32:
        raise UsageError(Code.USAGE_INVALID, "a model DEK must be 32 bytes", expected=32, actual=len(dek))
    return dek


def _new_key(session: Session, settings: Settings, version: ModelVersion, dek: bytes, now: datetime) -> ModelKey:
    kek = _kek(settings)
    key = ModelKey(
        model_version_id=version.id,
        kek_id=kek.kek_id,
        wrapped_dek=kek.wrap(dek, context=model_key_context(str(version.id))),
        created_at=now,
        retired_at=None,
    )
    session.add(key)
    session.flush()
    return key


def _page(session: Session, query: Select[_T], limit: int, offset: int) -> list[_T]:
    return list(session.scalars(query.limit(limit).offset(offset)))


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
    """Change the status: draft -> active -> retired (or draft -> retired). Values themselves are immutable."""
    rv = session.scalars(select(ReferenceValueSet).where(ReferenceValueSet.id == rv_id).with_for_update()).first()
    if rv is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "reference value set not found", actual=rv_id)
    if body.status != rv.status:
        if body.status not in _RV_TRANSITIONS[rv.status]:
            raise Conflict(
                Code.RESOURCE_CONFLICT,
                f"reference values cannot go from {rv.status.value} to {body.status.value}",
                expected=" | ".join(sorted(s.value for s in _RV_TRANSITIONS[rv.status])) or "(none)",
                actual=body.status.value,
            )
        rv.status = body.status
        session.flush()
    out = ReferenceValueOut.model_validate(rv)
    session.commit()
    return out


# -- policies --------------------------------------------------------------------------------------------------


@router.post("/policies", status_code=status.HTTP_201_CREATED)
def create_policy(body: PolicyCreate, session: SessionDep, _: AdminDep) -> PolicyOut:
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


# -- entitlements and credentials ------------------------------------------------------------------------------


@router.post("/entitlements", status_code=status.HTTP_201_CREATED)
def create_entitlement(body: EntitlementCreate, session: SessionDep, admin: AdminDep) -> EntitlementOut:
    now = _now()
    _get(session, Customer, body.customer_id, "customer")
    _get(session, Model, body.model_id, "model")
    if body.policy_id is not None:
        _get(session, AppraisalPolicy, body.policy_id, "policy")
    entitlement = Entitlement(
        customer_id=body.customer_id,
        model_id=body.model_id,
        allowed_versions=list(body.allowed_versions),
        allowed_platforms=list(dict.fromkeys(body.allowed_platforms)),
        seats=body.seats,
        max_gpus=body.max_gpus,
        lease_ttl_seconds=body.lease_ttl_seconds,
        policy_id=body.policy_id,
        status=body.status,
        valid_from=body.valid_from or now,
        valid_until=body.valid_until,
        created_at=now,
    )
    _insert(session, entitlement, "this entitlement")
    out = EntitlementOut.model_validate(entitlement)
    record_event(
        session,
        tag=AuditTag.ENTITLEMENT_CREATED,
        actor=_actor(admin),
        subject_type="entitlement",
        subject_id=str(entitlement.id),
        data=out.model_dump(mode="json", exclude={"id", "created_at"}),
        at=now,
    )
    session.commit()
    return out


@router.get("/entitlements")
def list_entitlements(
    session: SessionDep,
    _: AdminDep,
    customer_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[EntitlementOut]:
    query = select(Entitlement).order_by(Entitlement.created_at, Entitlement.id)
    if customer_id is not None:
        query = query.where(Entitlement.customer_id == customer_id)
    if model_id is not None:
        query = query.where(Entitlement.model_id == model_id)
    return [EntitlementOut.model_validate(r) for r in _page(session, query, limit, offset)]


def _issued(session: Session, row: ApiCredential, token: str, admin: ApiCredential, now: datetime) -> IssuedCredential:
    record_event(
        session,
        tag=AuditTag.CREDENTIAL_ISSUED,
        actor=_actor(admin),
        subject_type="credential",
        subject_id=str(row.id),
        data={
            "kind": row.kind.value,
            "key_id": row.key_id,
            "label": row.label,
            "customer_id": row.customer_id,
            "entitlement_id": row.entitlement_id,
        },
        at=now,
    )
    return IssuedCredential(credential=CredentialOut.model_validate(row), token=token)


@router.post("/entitlements/{entitlement_id}/licence-keys", status_code=status.HTTP_201_CREATED)
def issue_licence_key(
    entitlement_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminDep,
    body: LicenceKeyCreate | None = None,
) -> IssuedCredential:
    """An ``enclave`` credential bound to the entitlement. The token is in this response only."""
    now = _now()
    entitlement = _get(session, Entitlement, entitlement_id, "entitlement", Code.ENTITLEMENT_NOT_FOUND)
    row, token = issue_credential(
        session,
        settings.credential_pepper.get_secret_value().encode(),
        CredentialKind.ENCLAVE,
        label=(body or LicenceKeyCreate()).label,
        now=now,
        customer_id=entitlement.customer_id,
        entitlement_id=entitlement.id,
    )
    out = _issued(session, row, token, admin, now)
    session.commit()
    return out


@router.post("/credentials", status_code=status.HTTP_201_CREATED)
def issue_staff_credential(
    body: CredentialCreate, session: SessionDep, settings: SettingsDep, admin: AdminDep
) -> IssuedCredential:
    """An ``admin`` or ``billing-read`` credential. The token is in this response only."""
    now = _now()
    if body.customer_id is not None:
        _get(session, Customer, body.customer_id, "customer")
    row, token = issue_credential(
        session,
        settings.credential_pepper.get_secret_value().encode(),
        CredentialKind(body.kind),
        label=body.label,
        now=now,
        customer_id=body.customer_id,
    )
    out = _issued(session, row, token, admin, now)
    session.commit()
    return out


# -- leases, deployments, attestations -------------------------------------------------------------------------


@router.get("/leases")
def list_leases(
    session: SessionDep,
    _: AdminDep,
    entitlement_id: uuid.UUID | None = None,
    status_: Annotated[LeaseStatus | None, Query(alias="status")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[LeaseOut]:
    query = select(Lease).order_by(Lease.issued_at.desc(), Lease.id)
    if entitlement_id is not None:
        query = query.where(Lease.entitlement_id == entitlement_id)
    if status_ is not None:
        query = query.where(Lease.status == status_)
    return [LeaseOut.model_validate(r) for r in _page(session, query, limit, offset)]


@router.post("/leases/{lease_id}/revoke")
def revoke_lease(lease_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> LeaseOut:
    """End a live lease now; its seat frees and it cannot be renewed."""
    now = _now()
    lease = session.scalars(select(Lease).where(Lease.id == lease_id).with_for_update()).first()
    if lease is None:
        raise NotFound(Code.RESOURCE_NOT_FOUND, "lease not found", actual=lease_id)
    if lease.status != LeaseStatus.LIVE:
        raise Conflict(
            Code.RESOURCE_CONFLICT, "only a live lease can be revoked", expected="live", actual=lease.status.value
        )
    lease.status = LeaseStatus.REVOKED
    lease.ended_at = now
    session.flush()
    record_event(
        session,
        tag=AuditTag.LEASE_REVOKED,
        actor=_actor(admin),
        subject_type="lease",
        subject_id=str(lease.id),
        data={"entitlement_id": lease.entitlement_id, "deployment_id": lease.deployment_id},
        at=now,
    )
    out = LeaseOut.model_validate(lease)
    session.commit()
    return out


@router.get("/deployments")
def list_deployments(
    session: SessionDep,
    _: AdminDep,
    entitlement_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[DeploymentOut]:
    query = select(Deployment).order_by(Deployment.name, Deployment.id)
    if entitlement_id is not None:
        query = query.where(Deployment.entitlement_id == entitlement_id)
    return [DeploymentOut.model_validate(r) for r in _page(session, query, limit, offset)]


@router.get("/attestations")
def list_attestations(
    session: SessionDep,
    _: AdminDep,
    customer_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    status_: Annotated[AttestationStatus | None, Query(alias="status")] = None,
    platform: Platform | None = None,
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> list[AttestationSummary]:
    """Newest first. ``from`` is inclusive, ``to`` exclusive (both on ``created_at``)."""
    query = select(Attestation).order_by(Attestation.created_at.desc(), Attestation.id)
    if customer_id is not None:
        query = query.join(Entitlement, Entitlement.id == Attestation.entitlement_id).where(
            Entitlement.customer_id == customer_id
        )
    if model_id is not None:
        query = query.join(ModelVersion, ModelVersion.id == Attestation.model_version_id).where(
            ModelVersion.model_id == model_id
        )
    if status_ is not None:
        query = query.where(Attestation.status == status_)
    if platform is not None:
        query = query.where(cast(Attestation.platforms, JSONB).contains([platform]))
    if from_ is not None:
        query = query.where(Attestation.created_at >= _aware(from_, "from"))
    if to is not None:
        query = query.where(Attestation.created_at < _aware(to, "to"))
    return [AttestationSummary.model_validate(r) for r in _page(session, query, limit, offset)]


@router.get("/attestations/{attestation_id}")
def get_attestation(attestation_id: uuid.UUID, session: SessionDep, _: AdminDep) -> AttestationDetail:
    att = _get(session, Attestation, attestation_id, "attestation", Code.ATTESTATION_NOT_FOUND)
    return AttestationDetail.model_validate(att)


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None:
        raise UsageError(Code.USAGE_INVALID, f"{name} needs a timezone (e.g. 2026-01-01T00:00:00Z)", actual=value)
    return value
