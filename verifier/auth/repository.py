"""All SQL of API credentials: the authentication read (built once: every request runs it), inserts, the staff
list, and the row a revocation locks.

The caller owns the session and the transaction; nothing here commits. The rules (token format, kinds, suspended
customers, revocation) are in :mod:`verifier.auth.credentials`.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from verifier.auth.records import CredentialRecord, Principal
from verifier.db.models import ApiCredential, CredentialKind, Customer, CustomerStatus
from verifier.db.queries import equals, page

#: (the credential, its customer's status or NULL) in one round trip; parameter: key_id.
_BY_KEY_ID: Final = (
    select(ApiCredential, Customer.status)
    .outerjoin(Customer, Customer.id == ApiCredential.customer_id)
    .where(ApiCredential.key_id == bindparam("key_id"))
)


def by_key_id(session: Session, key_id: str) -> tuple[ApiCredential | None, CustomerStatus | None]:
    """(the credential with ``key_id``, its customer's status), or (None, None)."""
    found = session.execute(_BY_KEY_ID, {"key_id": key_id}).first()
    return (None, None) if found is None else (found[0], found[1])


#: What authentication needs, as plain columns (no entity to build, track or detach); parameter: key_id.
_RECORD_BY_KEY_ID: Final = (
    select(
        ApiCredential.id,
        ApiCredential.key_id,
        ApiCredential.kind,
        ApiCredential.customer_id,
        ApiCredential.entitlement_id,
        ApiCredential.secret_hash,
        ApiCredential.revoked_at,
        ApiCredential.expires_at,
        ApiCredential.role,
        Customer.status,
    )
    .outerjoin(Customer, Customer.id == ApiCredential.customer_id)
    .where(ApiCredential.key_id == bindparam("key_id"))
)


def record_by_key_id(connection: Connection | Session, key_id: str) -> CredentialRecord | None:
    """The :class:`~verifier.auth.credentials.CredentialRecord` of ``key_id`` (with its customer's status), or
    None; one statement."""
    found = connection.execute(_RECORD_BY_KEY_ID, {"key_id": key_id}).first()
    if found is None:
        return None
    id_, key, kind, customer_id, entitlement_id, secret_hash, revoked_at, expires_at, role, status = found
    principal = Principal(id_, key, kind, customer_id, entitlement_id, role)
    return CredentialRecord(principal, bytes(secret_hash), revoked_at, expires_at, status)


def add_credential(session: Session, row: ApiCredential) -> None:
    session.add(row)
    session.flush()


def list_credentials(
    session: Session,
    *,
    customer_id: uuid.UUID | None,
    entitlement_id: uuid.UUID | None,
    kind: CredentialKind | None,
    limit: int,
    offset: int,
) -> list[ApiCredential]:
    """Oldest first, revoked ones included."""
    return page(
        session,
        select(ApiCredential).order_by(ApiCredential.created_at, ApiCredential.id),
        where=(
            equals(ApiCredential.customer_id, customer_id),
            equals(ApiCredential.entitlement_id, entitlement_id),
            equals(ApiCredential.kind, kind),
        ),
        limit=limit,
        offset=offset,
    )
