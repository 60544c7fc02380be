"""Admin: entitlements and credentials (licence keys and staff credentials, each shown once), and cutting a
customer off: credential revocation, entitlement and customer status changes.

HTTP only: the status rules and the lease revocations they bring are in :mod:`verifier.entitlement.licensing`,
issuing and revoking credentials in :mod:`verifier.auth.credentials`; the request's dependency
(:mod:`verifier.api.deps`) commits each endpoint's transaction before answering.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from fastapi import APIRouter, status

from verifier.api.admin.common import PREFIX, Limit, Offset, actor, now
from verifier.api.admin_schemas import (
    CredentialCreate,
    CredentialOut,
    CredentialRotate,
    CustomerOut,
    CustomerPatch,
    EntitlementCreate,
    EntitlementOut,
    EntitlementPatch,
    IssuedCredential,
    LicenceKeyCreate,
)
from verifier.api.deps import SessionDep, SettingsDep
from verifier.api.roles import AdminRoleDep, OperatorDep, ViewerDep, ensure_role
from verifier.auth import credentials
from verifier.auth import repository as credential_repository
from verifier.db.models import ApiCredential, CredentialKind, StaffRole
from verifier.entitlement import licensing
from verifier.entitlement import repository as licensing_repository

router = APIRouter(prefix=PREFIX)


# -- entitlements and customers --------------------------------------------------------------------------------


@router.post("/entitlements", status_code=status.HTTP_201_CREATED)
def create_entitlement(body: EntitlementCreate, session: SessionDep, admin: AdminRoleDep) -> EntitlementOut:
    entitlement = licensing.create_entitlement(
        session,
        customer_id=body.customer_id,
        model_id=body.model_id,
        allowed_versions=body.allowed_versions,
        allowed_platforms=body.allowed_platforms,
        seats=body.seats,
        max_gpus=body.max_gpus,
        lease_ttl_seconds=body.lease_ttl_seconds,
        policy_id=body.policy_id,
        status=body.status,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        actor=actor(admin),
        now=now(),
    )
    return EntitlementOut.model_validate(entitlement)


@router.get("/entitlements")
def list_entitlements(
    session: SessionDep,
    _: ViewerDep,
    customer_id: uuid.UUID | None = None,
    model_id: uuid.UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[EntitlementOut]:
    rows = licensing_repository.list_entitlements(
        session, customer_id=customer_id, model_id=model_id, limit=limit, offset=offset
    )
    return [EntitlementOut.model_validate(r) for r in rows]


@router.patch("/entitlements/{entitlement_id}")
def update_entitlement(
    entitlement_id: uuid.UUID, body: EntitlementPatch, session: SessionDep, admin: AdminRoleDep
) -> EntitlementOut:
    """Change the terms (the fields given; audited ``admin:entitlement:terms_changed``; live leases run on to
    their expiry), then the status: ``active`` <-> ``suspended``, either -> ``revoked`` (final; 409 otherwise).
    Leaving it anything but ``active`` revokes its live leases now. Audited ``admin:entitlement:status_changed``
    with the revoked leases. Repeating the current status records nothing, unless it finds a live lease left to
    revoke."""
    at = now()
    if body.changes_terms():
        given = body.model_dump(include=body.model_fields_set - {"status"})
        terms = replace(licensing.entitlement_terms(session, entitlement_id), **given)
        entitlement = licensing.change_entitlement_terms(session, entitlement_id, terms, actor=actor(admin), now=at)
    if body.status is not None:  # the schema wants at least one field: terms, the status or both
        entitlement = licensing.change_entitlement_status(
            session, entitlement_id, body.status, actor=actor(admin), now=at
        )
    return EntitlementOut.model_validate(entitlement)


@router.patch("/customers/{customer_id}")
def update_customer(
    customer_id: uuid.UUID, body: CustomerPatch, session: SessionDep, admin: OperatorDep
) -> CustomerOut:
    """Suspend or reinstate a customer. Suspended: its licence keys are refused (``auth.customer_suspended``),
    decisions for its entitlements are rejected (``entitlement.customer_suspended``) and the live leases of all its
    entitlements are revoked now. Audited ``admin:customer:status_changed`` with the revoked leases. A new name is
    audited ``admin:customer:renamed`` (409 if another customer has it). A status change needs the operator role,
    a new name the admin role."""
    at = now()
    if body.name is not None:
        ensure_role(admin, StaffRole.ADMIN)
        customer = licensing.rename_customer(session, customer_id, body.name, actor=actor(admin), now=at)
    if body.status is not None:  # the schema wants a name, a status or both
        customer = licensing.change_customer_status(session, customer_id, body.status, actor=actor(admin), now=at)
    return CustomerOut.model_validate(customer)


# -- credentials -----------------------------------------------------------------------------------------------


def _issued(row: ApiCredential, token: str) -> IssuedCredential:
    return IssuedCredential(credential=CredentialOut.model_validate(row), token=token)


@router.post("/entitlements/{entitlement_id}/licence-keys", status_code=status.HTTP_201_CREATED)
def issue_licence_key(
    entitlement_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminRoleDep,
    body: LicenceKeyCreate | None = None,
) -> IssuedCredential:
    """An ``enclave`` credential bound to the entitlement, expiring at ``expires_at`` if given. The token is in
    this response only."""
    request = body or LicenceKeyCreate()
    row, token = credentials.issue_licence_key(
        session,
        settings.credential_pepper.get_secret_value().encode(),
        entitlement_id,
        label=request.label,
        actor=actor(admin),
        now=now(),
        expires_at=request.expires_at,
    )
    return _issued(row, token)


@router.post("/credentials", status_code=status.HTTP_201_CREATED)
def issue_staff_credential(
    body: CredentialCreate, session: SessionDep, settings: SettingsDep, admin: AdminRoleDep
) -> IssuedCredential:
    """An ``admin`` credential with ``role`` (default ``admin``; never of one customer: 400 ``usage.invalid``), or
    a ``billing-read`` credential, of one customer if given; expiring at ``expires_at`` if given. The token is in
    this response only."""
    row, token = credentials.issue_staff_credential(
        session,
        settings.credential_pepper.get_secret_value().encode(),
        CredentialKind(body.kind),
        label=body.label,
        customer_id=body.customer_id,
        actor=actor(admin),
        now=now(),
        expires_at=body.expires_at,
        role=StaffRole(body.role) if body.role else None,
    )
    return _issued(row, token)


@router.get("/credentials")
def list_credentials(
    session: SessionDep,
    _: ViewerDep,
    customer_id: uuid.UUID | None = None,
    entitlement_id: uuid.UUID | None = None,
    kind: CredentialKind | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[CredentialOut]:
    """Credentials (never their secrets), oldest first, revoked ones included (``revoked_at`` set)."""
    rows = credential_repository.list_credentials(
        session, customer_id=customer_id, entitlement_id=entitlement_id, kind=kind, limit=limit, offset=offset
    )
    return [CredentialOut.model_validate(r) for r in rows]


@router.post("/credentials/{credential_id}/rotate", status_code=status.HTTP_201_CREATED)
def rotate_credential(
    credential_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    admin: AdminRoleDep,
    body: CredentialRotate | None = None,
) -> IssuedCredential:
    """A successor of a live credential (same kind, customer, entitlement and label); the old one keeps working
    ``grace_seconds`` more, then expires (``auth.invalid``). A revoked or expired credential is a 409. The token is
    in this response only."""
    request = body or CredentialRotate()
    row, token = credentials.rotate_credential(
        session,
        settings.credential_pepper.get_secret_value().encode(),
        credential_id,
        grace=timedelta(seconds=request.grace_seconds),
        expires_at=request.expires_at,
        actor=actor(admin),
        now=now(),
    )
    return _issued(row, token)


@router.post("/credentials/{credential_id}/revoke")
def revoke_credential(credential_id: uuid.UUID, session: SessionDep, admin: AdminRoleDep) -> CredentialOut:
    """Revoke a credential of any kind now (``revoked_at``); it never authenticates again (``auth.invalid``). A
    credential already revoked is a 409. Leases issued under a licence key stay until they expire, are released or
    revoked: they cannot be renewed without a live credential."""
    row = credentials.revoke_credential(session, credential_id, actor=actor(admin), now=now())
    return CredentialOut.model_validate(row)
