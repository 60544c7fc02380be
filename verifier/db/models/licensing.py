"""Entitlements (licences) and the deployments that use them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base, str_enum
from verifier.db.models._types import Timestamp, UuidPk


class EntitlementStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class Entitlement(Base):
    __tablename__ = "entitlements"

    id: Mapped[UuidPk]
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"))
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"))
    allowed_versions: Mapped[list[str]] = mapped_column(JSON)  # empty list: every version
    allowed_platforms: Mapped[list[str]] = mapped_column(JSON)
    seats: Mapped[int] = mapped_column(Integer)  # max concurrent deployments holding live leases
    max_gpus: Mapped[int] = mapped_column(Integer, default=0)
    lease_ttl_seconds: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("appraisal_policies.id"))
    status: Mapped[EntitlementStatus] = mapped_column(str_enum(EntitlementStatus))
    valid_from: Mapped[Timestamp]
    valid_until: Mapped[datetime | None]
    created_at: Mapped[Timestamp]


class Deployment(Base):
    """A customer-named deployment (one attested TEE, or a set of them sharing a name) under an entitlement."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("entitlement_id", "name"),)

    id: Mapped[UuidPk]
    entitlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entitlements.id"))
    name: Mapped[str] = mapped_column(String(200))
    first_attested_at: Mapped[datetime | None]
    last_attested_at: Mapped[datetime | None]
