"""API credentials. The secret is shown once at issue; only ``HMAC-SHA256(pepper, secret)`` is stored.

Token format: ``kw_<key_id>_<secret>`` (key_id: 16 hex characters, public, indexed; secret: 43 base64url
characters, 256 bits). Kinds: ``enclave`` (a licence key bound to one entitlement), ``admin``, ``billing-read``.
A credential of one kind can never act as another. A revoked credential (``revoked_at`` set) never authenticates,
and a licence key whose customer is suspended is refused (``auth.customer_suspended``); staff kinds bound to a
customer (``admin``, ``billing-read``) keep working, so a suspended customer's usage can still be read and billed.
Takes the caller's session; never commits.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from verifier.db.models import ApiCredential, CredentialKind, Customer, CustomerStatus
from verifier.errors import AuthError, Code, Forbidden

PREFIX = "kw_"
#: (the credential, its customer's status or NULL) in one round trip; built once: every request runs it.
_BY_KEY_ID = (
    select(ApiCredential, Customer.status)
    .outerjoin(Customer, Customer.id == ApiCredential.customer_id)
    .where(ApiCredential.key_id == bindparam("key_id"))
)


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
) -> tuple[ApiCredential, str]:
    """Create a credential; returns the row and the plaintext token (never stored, shown once)."""
    if kind == CredentialKind.ENCLAVE and entitlement_id is None:
        raise ValueError("an enclave licence key is bound to one entitlement")
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
    )
    session.add(row)
    session.flush()
    return row, f"{PREFIX}{key_id}_{secret}"


def authenticate(
    session: Session, pepper: bytes, token: str | None, kinds: Collection[CredentialKind]
) -> ApiCredential:
    """The live credential behind ``token`` if it is one of ``kinds``. Constant-time secret comparison.

    ``auth.missing`` / ``auth.invalid`` (401): no token, a malformed one, an unknown key id, a wrong secret or a
    revoked credential. ``auth.forbidden`` (403): a credential of another kind. ``auth.customer_suspended`` (403):
    a licence key of a suspended customer. One statement reads the credential with its customer's status.
    """
    if not token:
        raise AuthError(Code.AUTH_MISSING, "an API credential is required (Authorization: Bearer kw_...)")
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX[:-1] or len(parts[1]) != 16:
        raise AuthError(Code.AUTH_INVALID, "malformed API credential")
    found = session.execute(_BY_KEY_ID, {"key_id": parts[1]}).first()
    row, customer_status = found if found is not None else (None, None)
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.secret_hash, _hash(pepper, parts[2])):
        raise AuthError(Code.AUTH_INVALID, "unknown, revoked or wrong API credential")
    if row.kind not in kinds:
        raise Forbidden(
            Code.AUTH_FORBIDDEN,
            "this credential may not use this API",
            expected=" | ".join(sorted(k.value for k in kinds)),
            actual=row.kind.value,
        )
    if row.kind == CredentialKind.ENCLAVE and customer_status not in (None, CustomerStatus.ACTIVE):
        raise Forbidden(
            Code.AUTH_CUSTOMER_SUSPENDED,
            "the customer this licence key belongs to is suspended",
            expected=CustomerStatus.ACTIVE.value,
            actual=customer_status.value,
        )
    return row
