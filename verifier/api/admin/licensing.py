"""Admin: entitlements and credentials (licence keys and staff credentials, each shown once), and cutting a
customer off: credential revocation, entitlement and customer status changes.

Suspending or revoking an entitlement, or suspending a customer, revokes the live leases under it in the same
transaction (each audited ``admin:lease:revoked`` with the reason), so their renewals fail. The row whose status
changes is locked first (``SELECT ... FOR UPDATE``): a decision in flight holds the entitlement lock and a share
lock on the customer until it commits, so the status change waits for it and then revokes the lease it issued,
and a decision after it sees the new status and is rejected.
"""

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
    CustomerOut,
    CustomerPatch,
    EntitlementCreate,
    EntitlementOut,
    EntitlementPatch,
    IssuedCredential,
    LicenceKeyCreate,
)
from verifier.api.deps import AdminDep, SessionDep, SettingsDep
from verifier.attestation.leases import revoke_live_leases
from verifier.audit.log import AuditTag, Entry, record_event, record_events
from verifier.auth.credentials import issue_credential
from verifier.db.models import (
    ApiCredential,
    AppraisalPolicy,
    CredentialKind,
    Customer,
    CustomerStatus,
    Entitlement,
    EntitlementStatus,
    Lease,
    Model,
)
from verifier.errors import Code, Conflict

router = APIRouter()

#: Allowed entitlement status changes: suspension can be lifted, revocation is final.
_ENTITLEMENT_TRANSITIONS: dict[EntitlementStatus, frozenset[EntitlementStatus]] = {
    EntitlementStatus.ACTIVE: frozenset({EntitlementStatus.SUSPENDED, EntitlementStatus.REVOKED}),
    EntitlementStatus.SUSPENDED: frozenset({EntitlementStatus.ACTIVE, EntitlementStatus.REVOKED}),
    EntitlementStatus.REVOKED: frozenset(),
}


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


@router.patch("/entitlements/{entitlement_id}")
def update_entitlement(
    entitlement_id: uuid.UUID, body: EntitlementPatch, session: SessionDep, admin: AdminDep
) -> EntitlementOut:
    """Change the status: ``active`` <-> ``suspended``, either -> ``revoked`` (final; 409 otherwise). Leaving it
    anything but ``active`` revokes its live leases now. Audited ``admin:entitlement:status_changed`` with the
    revoked leases. Repeating the current status records nothing, unless it finds a live lease left to revoke."""
    now = _now()
    entitlement = _get(session, Entitlement, entitlement_id, "entitlement", lock=True)
    before = entitlement.status
    if body.status != before and body.status not in _ENTITLEMENT_TRANSITIONS[before]:
        raise Conflict(
            Code.RESOURCE_CONFLICT,
            f"an entitlement cannot go from {before.value} to {body.status.value}",
            expected=" | ".join(sorted(s.value for s in _ENTITLEMENT_TRANSITIONS[before])) or "(none)",
            actual=body.status.value,
        )
    entitlement.status = body.status
    session.flush()
    revoked = (
        []
        if body.status == EntitlementStatus.ACTIVE
        else revoke_live_leases(
            session,
            Lease.entitlement_id == entitlement.id,
            now=now,
            actor=_actor(admin),
            reason=f"entitlement {body.status.value}",
        )
    )
    _record_status_change(session, admin, "entitlement", entitlement.id, before, body.status, revoked, now)
    out = EntitlementOut.model_validate(entitlement)
    session.commit()
    return out


@router.patch("/customers/{customer_id}")
def update_customer(customer_id: uuid.UUID, body: CustomerPatch, session: SessionDep, admin: AdminDep) -> CustomerOut:
    """Suspend or reinstate a customer. Suspended: its licence keys are refused (``auth.customer_suspended``),
    decisions for its entitlements are rejected (``entitlement.customer_suspended``) and the live leases of all its
    entitlements are revoked now. Audited ``admin:customer:status_changed`` with the revoked leases."""
    now = _now()
    customer = _get(session, Customer, customer_id, "customer", lock=True)
    before = customer.status
    customer.status = body.status
    session.flush()
    revoked = (
        revoke_live_leases(
            session,
            Lease.entitlement_id.in_(select(Entitlement.id).where(Entitlement.customer_id == customer.id)),
            now=now,
            actor=_actor(admin),
            reason="customer suspended",
        )
        if body.status == CustomerStatus.SUSPENDED
        else []
    )
    _record_status_change(session, admin, "customer", customer.id, before, body.status, revoked, now)
    out = CustomerOut.model_validate(customer)
    session.commit()
    return out


def _record_status_change(
    session: Session,
    admin: ApiCredential,
    subject_type: str,
    subject_id: uuid.UUID,
    before: EntitlementStatus | CustomerStatus,
    after: EntitlementStatus | CustomerStatus,
    revoked: list[Entry],
    now: datetime,
) -> None:
    """One event for the status change, then one per revoked lease; nothing when nothing changed."""
    if before == after and not revoked:
        return
    tag = AuditTag.ENTITLEMENT_STATUS_CHANGED if subject_type == "entitlement" else AuditTag.CUSTOMER_STATUS_CHANGED
    change = Entry(
        tag,
        _actor(admin),
        subject_type,
        str(subject_id),
        {"from": before.value, "to": after.value, "revoked_leases": [e.subject_id for e in revoked]},
    )
    record_events(session, [change, *revoked], at=now)


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
    entitlement = _get(session, Entitlement, entitlement_id, "entitlement")
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


@router.get("/credentials")
def list_credentials(
    session: SessionDep,
    _: AdminDep,
    customer_id: uuid.UUID | None = None,
    entitlement_id: uuid.UUID | None = None,
    kind: CredentialKind | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[CredentialOut]:
    """Credentials (never their secrets), oldest first, revoked ones included (``revoked_at`` set)."""
    query = select(ApiCredential).order_by(ApiCredential.created_at, ApiCredential.id)
    if customer_id is not None:
        query = query.where(ApiCredential.customer_id == customer_id)
    if entitlement_id is not None:
        query = query.where(ApiCredential.entitlement_id == entitlement_id)
    if kind is not None:
        query = query.where(ApiCredential.kind == kind)
    return [CredentialOut.model_validate(r) for r in _page(session, query, limit, offset)]


@router.post("/credentials/{credential_id}/revoke")
def revoke_credential(credential_id: uuid.UUID, session: SessionDep, admin: AdminDep) -> CredentialOut:
    """Revoke a credential of any kind now (``revoked_at``); it never authenticates again (``auth.invalid``). A
    credential already revoked is a 409. Leases issued under a licence key stay until they expire, are released or
    revoked: they cannot be renewed without a live credential."""
    now = _now()
    row = _get(session, ApiCredential, credential_id, "credential", lock=True)
    if row.revoked_at is not None:
        raise Conflict(
            Code.RESOURCE_CONFLICT,
            "the credential is already revoked",
            expected="not revoked",
            actual=row.revoked_at.isoformat(),
        )
    row.revoked_at = now
    session.flush()
    record_event(
        session,
        tag=AuditTag.CREDENTIAL_REVOKED,
        actor=_actor(admin),
        subject_type="credential",
        subject_id=str(row.id),
        data={
            "kind": row.kind.value,
            "key_id": row.key_id,
            "customer_id": row.customer_id,
            "entitlement_id": row.entitlement_id,
        },
        at=now,
    )
    out = CredentialOut.model_validate(row)
    session.commit()
    return out
