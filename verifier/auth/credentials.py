"""API credentials. The secret is shown once at issue; only ``HMAC-SHA256(pepper, secret)`` is stored.

Token format: ``kw_<key_id>_<secret>`` (key_id: 16 hex characters, public, indexed; secret: 43 base64url
characters, 256 bits). Kinds: ``enclave`` (a licence key bound to one entitlement), ``admin``, ``billing-read``.
A credential of one kind can never act as another. A revoked credential (``revoked_at`` set) never authenticates,
and a licence key whose customer is suspended is refused (``auth.customer_suspended``); staff kinds bound to a
customer (``admin``, ``billing-read``) keep working, so a suspended customer's usage can still be read and billed.
Staff issue and revoke credentials here too, each audited (``admin:credential:issued`` / ``revoked``).
Takes the caller's session; never commits. The SQL is in :mod:`verifier.auth.repository`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from verifier.audit.log import AuditTag, record_event
from verifier.auth import repository
from verifier.auth.records import CredentialRecord, Principal
from verifier.db.models import ApiCredential, CredentialKind, Customer, CustomerStatus, Entitlement, StaffRole
from verifier.db.queries import get_or_404
from verifier.errors import AuthError, Code, Conflict, Forbidden, UsageError

PREFIX = "kw_"


def _hash(pepper: bytes, secret: str) -> bytes:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).digest()


def issue_credential(
    session: Session,
    pepper: bytes,
    kind: CredentialKind,
    *,
    label: str,
    now: datetime,
    customer_id: uuid.UUID | None = None,
    entitlement_id: uuid.UUID | None = None,
    expires_at: datetime | None = None,
    role: StaffRole | None = None,
) -> tuple[ApiCredential, str]:
    """Create a credential; returns the row and the plaintext token (never stored, shown once). ``expires_at``
    must be after ``now`` (``usage.invalid``).

    An ``admin`` credential has a ``role`` (default ``admin``: the whole admin API) and is never scoped to a
    customer: no admin route limits what it reads or changes to one customer, so one "bound" to a customer would
    still act on all of them (issue 17, finding 4); it is refused here (``usage.invalid``), as is a role on any
    other kind."""
    if kind == CredentialKind.ENCLAVE and entitlement_id is None:
        raise ValueError("an enclave licence key is bound to one entitlement")
    if kind == CredentialKind.ADMIN:
        if customer_id is not None:
            raise UsageError(
                Code.USAGE_INVALID,
                "an admin credential cannot be scoped to a customer: the admin API acts on every customer",
                expected="no customer_id",
                actual=str(customer_id),
            )
        role = role or StaffRole.ADMIN
    elif role is not None:
        raise UsageError(
            Code.USAGE_INVALID, "only an admin credential has a role", expected="no role", actual=role.value
        )
    if expires_at is not None and expires_at <= now:
        raise UsageError(
            Code.USAGE_INVALID,
            "a credential's expiry must be in the future",
            expected=f"> {now.isoformat()}",
            actual=expires_at.isoformat(),
        )
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = ApiCredential(
        kind=kind,
        key_id=key_id,
        secret_hash=_hash(pepper, secret),
        customer_id=customer_id,
        entitlement_id=entitlement_id,
        label=label,
        created_at=now,
        revoked_at=None,
        expires_at=expires_at,
        role=role,
    )
    repository.add_credential(session, row)
    return row, f"{PREFIX}{key_id}_{secret}"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme in any case (RFC 7235 schemes are
    case-insensitive). None for no header, another scheme, a bare token without one, or no token."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def split_token(token: str | None) -> tuple[str, str]:
    """``(key_id, secret)`` of a ``kw_<key_id>_<secret>`` token; ``auth.missing`` without one, ``auth.invalid``
    for a malformed one. Nothing is read: the key id is public, the secret is checked by :func:`check_record`."""
    if not token:
        raise AuthError(Code.AUTH_MISSING, "an API credential is required (Authorization: Bearer kw_...)")
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX[:-1] or len(parts[1]) != 16:
        raise AuthError(Code.AUTH_INVALID, "malformed API credential")
    return parts[1], parts[2]


def check_record(
    record: CredentialRecord | None,
    pepper: bytes,
    secret: str,
    kinds: Collection[CredentialKind],
    *,
    now: datetime,
) -> Principal:
    """The rules of :func:`authenticate` over a record already read (pure; ``None``: no such key id)."""
    if (
        record is None
        or record.revoked_at is not None
        or not hmac.compare_digest(record.secret_hash, _hash(pepper, secret))
    ):
        raise AuthError(Code.AUTH_INVALID, "unknown, revoked or wrong API credential")
    if record.expires_at is not None and record.expires_at <= now:
        raise AuthError(Code.AUTH_INVALID, "the API credential has expired", actual=record.expires_at.isoformat())
    principal = record.principal
    if principal.kind not in kinds:
        raise Forbidden(
            Code.AUTH_FORBIDDEN,
            "this credential may not use this API",
            expected=" | ".join(sorted(k.value for k in kinds)),
            actual=principal.kind.value,
        )
    if principal.kind == CredentialKind.ENCLAVE and record.customer_status not in (None, CustomerStatus.ACTIVE):
        raise Forbidden(
            Code.AUTH_CUSTOMER_SUSPENDED,
            "the customer this licence key belongs to is suspended",
            expected=CustomerStatus.ACTIVE.value,
            actual=record.customer_status.value if record.customer_status else None,
        )
    return principal


def authenticate(
    session: Session, pepper: bytes, token: str | None, kinds: Collection[CredentialKind], *, now: datetime
) -> ApiCredential:
    """The live credential behind ``token`` if it is one of ``kinds``. Constant-time secret comparison.

    ``auth.missing`` / ``auth.invalid`` (401): no token, a malformed one, an unknown key id, a wrong secret, a
    revoked credential or one expired at ``now``. ``auth.forbidden`` (403): a credential of another kind.
    ``auth.customer_suspended`` (403): a licence key of a suspended customer. One statement reads the credential
    with its customer's status. (The API authenticates through its cache, :mod:`verifier.auth.cache`, with the same
    rules: :func:`check_record`.)
    """
    key_id, secret = split_token(token)
    row, customer_status = repository.by_key_id(session, key_id)
    if row is None:
        raise AuthError(Code.AUTH_INVALID, "unknown, revoked or wrong API credential")
    check_record(record_of(row, customer_status), pepper, secret, kinds, now=now)
    return row


def record_of(row: ApiCredential, customer_status: CustomerStatus | None) -> CredentialRecord:
    """The :class:`CredentialRecord` of a credential row."""
    principal = Principal(row.id, row.key_id, row.kind, row.customer_id, row.entitlement_id, row.role)
    return CredentialRecord(principal, row.secret_hash, row.revoked_at, row.expires_at, customer_status)


# -- staff: issue and revoke -------------------------------------------------------------------------------------


def issue_licence_key(
    session: Session,
    pepper: bytes,
    entitlement_id: uuid.UUID,
    *,
    label: str,
    actor: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[ApiCredential, str]:
    """An ``enclave`` credential bound to the entitlement (404 if there is none), audited; the token is returned
    here only."""
    entitlement = get_or_404(session, Entitlement, entitlement_id, "entitlement")
    row, token = issue_credential(
        session,
        pepper,
        CredentialKind.ENCLAVE,
        label=label,
        now=now,
        customer_id=entitlement.customer_id,
        entitlement_id=entitlement.id,
        expires_at=expires_at,
    )
    _record_issued(session, row, actor, now)
    return row, token


def issue_staff_credential(
    session: Session,
    pepper: bytes,
    kind: CredentialKind,
    *,
    label: str,
    customer_id: uuid.UUID | None,
    actor: str,
    now: datetime,
    expires_at: datetime | None = None,
    role: StaffRole | None = None,
) -> tuple[ApiCredential, str]:
    """An ``admin`` credential with ``role`` (default ``admin``; never of one customer), or a ``billing-read``
    credential, of one (existing) customer if given; audited; the token is returned here only."""
    if customer_id is not None:
        get_or_404(session, Customer, customer_id, "customer")
    row, token = issue_credential(
        session, pepper, kind, label=label, now=now, customer_id=customer_id, expires_at=expires_at, role=role
    )
    _record_issued(session, row, actor, now)
    return row, token


def _record_issued(session: Session, row: ApiCredential, actor: str, now: datetime) -> None:
    record_event(
        session,
        tag=AuditTag.CREDENTIAL_ISSUED,
        actor=actor,
        subject_type="credential",
        subject_id=str(row.id),
        data={
            "kind": row.kind.value,
            "key_id": row.key_id,
            "label": row.label,
            "customer_id": row.customer_id,
            "entitlement_id": row.entitlement_id,
            "expires_at": row.expires_at,
            "role": row.role.value if row.role else None,
        },
        at=now,
    )


#: The longest a rotated credential keeps working beside its successor.
MAX_ROTATION_GRACE = timedelta(days=7)


def rotate_credential(
    session: Session,
    pepper: bytes,
    credential_id: uuid.UUID,
    *,
    grace: timedelta,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
) -> tuple[ApiCredential, str]:
    """A successor of a live credential (same kind, role, customer, entitlement and label; ``expires_at`` its
    own), and the old one cut to expire ``grace`` from now (sooner if it already expires sooner), so clients switch
    without an outage. The old row is locked; a revoked or expired one is ``resource.conflict``; ``grace`` is 0 to
    :data:`MAX_ROTATION_GRACE` (``usage.invalid``). Audited ``admin:credential:issued`` for the successor and
    ``admin:credential:rotated`` on the old one; the token is returned here only."""
    if not timedelta(0) <= grace <= MAX_ROTATION_GRACE:
        raise UsageError(
            Code.USAGE_INVALID,
            "the rotation's grace period is out of range",
            expected=f"0 to {int(MAX_ROTATION_GRACE.total_seconds())} seconds",
            actual=int(grace.total_seconds()),
        )
    old = get_or_404(session, ApiCredential, credential_id, "credential", lock=True)
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise Conflict(Code.RESOURCE_CONFLICT, "only a live credential can be rotated", actual=old.key_id)
    new, token = issue_credential(
        session,
        pepper,
        old.kind,
        label=old.label,
        now=now,
        customer_id=old.customer_id,
        entitlement_id=old.entitlement_id,
        expires_at=expires_at,
        role=old.role,
    )
    _record_issued(session, new, actor, now)
    cut = now + grace
    old.expires_at = cut if old.expires_at is None else min(old.expires_at, cut)
    session.flush()
    record_event(
        session,
        tag=AuditTag.CREDENTIAL_ROTATED,
        actor=actor,
        subject_type="credential",
        subject_id=str(old.id),
        data={
            "key_id": old.key_id,
            "successor": str(new.id),
            "successor_key_id": new.key_id,
            "expires_at": old.expires_at,
        },
        at=now,
    )
    return new, token


def revoke_credential(session: Session, credential_id: uuid.UUID, *, actor: str, now: datetime) -> ApiCredential:
    """Revoke a credential of any kind now (``revoked_at``), its row locked; it never authenticates again. One
    already revoked is ``resource.conflict``. Leases issued under a licence key stay until they expire, are released
    or revoked: they cannot be renewed without a live credential. Audited ``admin:credential:revoked``."""
    row = get_or_404(session, ApiCredential, credential_id, "credential", lock=True)
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
        actor=actor,
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
    return row
