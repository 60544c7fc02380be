"""What a request's credential is, once read: the records authentication works on, detached from any session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from verifier.db.models import CredentialKind, CustomerStatus, StaffRole


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request's credential is, as the routes read it: detached from any session, safe to share between
    requests (the credential cache holds these)."""

    id: uuid.UUID
    key_id: str
    kind: CredentialKind
    customer_id: uuid.UUID | None
    entitlement_id: uuid.UUID | None
    role: StaffRole | None = None  # an admin credential's (verifier/api/roles.py)


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """What authentication reads of a credential (:func:`verifier.auth.repository.record_by_key_id`: one
    statement, with its customer's status): enough to decide without the database again."""

    principal: Principal
    secret_hash: bytes
    revoked_at: datetime | None
    expires_at: datetime | None
    customer_status: CustomerStatus | None
