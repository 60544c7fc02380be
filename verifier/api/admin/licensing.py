"""Admin: entitlements and credentials (licence keys and staff credentials, each shown once)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.api.admin._common import (
    Limit,
    Offset,
    _actor,
    _get,
    _insert,
    _now,
    _page,
)
from verifier.api.admin_schemas import (
    CredentialCreate,
    CredentialOut,
    EntitlementCreate,
    EntitlementOut,
    IssuedCredential,
    LicenceKeyCreate,
)
from verifier.api.deps import AdminDep, SessionDep, SettingsDep
from verifier.audit.log import AuditTag, record_event
from verifier.auth.credentials import issue_credential
from verifier.db.models import (
    ApiCredential,
    AppraisalPolicy,
    CredentialKind,
    Customer,
    Entitlement,
    Model,
)
from verifier.errors import Code

router = APIRouter()


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
