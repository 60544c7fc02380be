"""Entitlements (licences) and the deployments that use them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, Uuid, false, text
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base, str_enum
from verifier.db.models._types import NewestFirst, Timestamp, UuidPk


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
    """A customer-named deployment (one attested TEE, or a set of them sharing a name) under an entitlement.

        Beside its name it carries a summary the staff dashboard lists, filters and sorts by without reading the
        attestations (:mod:`verifier.dashboard`), kept by the decision that records an attestation naming it
        (:func:`verifier.attestation.flows.record`): ``first_attested_at`` / ``last_attested_at`` (accepted, new lease
        or renewal), its newest lease, and the platforms, TCB status (and for Intel evidence the TCB evaluation data
    number and TCB Info judged with) and simulated flag of its last acceptance; and the
        last decision naming it, accepted or rejected. ``lease_id`` and ``last_attestation_id`` have no foreign key:
        leases and attestations name the deployment, and a cycle would order every insert and delete.
    """

    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("entitlement_id", "name"),
        # The dashboard's default order, newest first and never-attested last: the index runs in that order so a
        # page is an index scan. SQLite's CREATE INDEX refuses NULLS LAST (and orders NULL lowest, so DESC already
        # puts them last): NewestFirst and the migration write DESC alone there, and ``alembic check`` compares this
        # index on PostgreSQL only (migrations/env.py).
        Index(
            "ix_deployments_last_attested",
            NewestFirst("last_attested_at"),
            text("id DESC"),
            info={"compared_on": ("postgresql",)},
        ),
        Index("ix_deployments_name_id", "name", "id"),
    )

    id: Mapped[UuidPk]
    entitlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entitlements.id"))
    name: Mapped[str] = mapped_column(String(200))
    first_attested_at: Mapped[datetime | None]
    last_attested_at: Mapped[datetime | None]
    lease_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # its newest lease
    platforms: Mapped[str | None] = mapped_column(String(200))  # of its last acceptance: sorted, comma-separated
    tcb_status: Mapped[str | None] = mapped_column(String(40))  # of its last acceptance (the CPU evidence's)
    #: Of its last acceptance, when Intel evidence was judged: the TCB evaluation data number it was judged with
    #: (the lower of the TCB Info's and the QE Identity's), and which TCB Info that was, named as the document
    #: names itself (``"TDX:b0c06f000000"``: its id and FMSPC; NULL when the decision did not record the FMSPC).
    tcb_eval_number: Mapped[int | None] = mapped_column(Integer)
    tcb_info_id: Mapped[str | None] = mapped_column(String(40))
    simulated: Mapped[bool] = mapped_column(default=False, server_default=false())  # its last acceptance was
    last_attestation_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the last decision naming it
    last_status: Mapped[str | None] = mapped_column(String(16))  # that decision's AttestationStatus
    last_decided_at: Mapped[datetime | None]
    #: Set while staff have suspended the deployment: its live lease was revoked and new leases for it are refused
    #: (``entitlement.deployment_suspended``) until it is reinstated (:mod:`verifier.entitlement.licensing`).
    suspended_at: Mapped[datetime | None]
