"""All SQL of API credentials: the authentication read (built once: every request runs it), inserts, the staff
list, and the row a revocation locks.

The caller owns the session and the transaction; nothing here commits. The rules (token format, kinds, suspended
customers, revocation) are in :mod:`verifier.auth.credentials`.
"""

from __future__ import annotations

import uuid
from typing import Final

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

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
