"""Customers and their API credentials (stored only as hashes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base, str_enum
from verifier.db.models._types import Name, Timestamp, UuidPk
from verifier.db.models.staff import StaffRole


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[UuidPk]
    name: Mapped[Name] = mapped_column(unique=True)
    status: Mapped[CustomerStatus] = mapped_column(str_enum(CustomerStatus))
    created_at: Mapped[Timestamp]


class CredentialKind(StrEnum):
    ENCLAVE = "enclave"  # a licence key: bound to one entitlement
    ADMIN = "admin"  # provider staff
    BILLING_READ = "billing-read"  # the billing system: entitlement/usage API only


class ApiCredential(Base):
    """An API secret. Only ``key_id`` (public prefix) and a keyed hash of the secret are stored."""

    __tablename__ = "api_credentials"
    __table_args__ = (UniqueConstraint("key_id"),)

    id: Mapped[UuidPk]
    kind: Mapped[CredentialKind] = mapped_column(str_enum(CredentialKind))
    key_id: Mapped[str] = mapped_column(String(32))
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(64))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    entitlement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("entitlements.id"))
    label: Mapped[Name]
    created_at: Mapped[Timestamp]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # never authenticates from then on (None: no expiry)
    #: What an ``admin`` credential may do on the admin API, as a staff account's role (viewer < operator < admin);
    #: None for the other kinds.
    role: Mapped[StaffRole | None] = mapped_column(str_enum(StaffRole))
