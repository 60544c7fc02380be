"""Attestations (every decision, pass or fail), leases, consumed nonces, and the decisions counted per day."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base, str_enum
from verifier.db.models._types import Timestamp, UuidPk


class AttestationStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Attestation(Base):
    __tablename__ = "attestations"
    __table_args__ = (
        Index(None, "entitlement_id", "created_at"),
        Index(None, "status", "created_at"),
        Index(None, "decided_at"),  # billing usage by period
        # The staff dashboard: a deployment's accepted attestations, every decision naming a deployment (a rejection
        # has no deployment_id), and the overview's counts by period and outcome (read from the index alone).
        Index("ix_attestations_deployment_decided", "deployment_id", "decided_at"),
        Index("ix_attestations_named_decided", "entitlement_id", "deployment_name", "decided_at"),
        Index("ix_attestations_decided_status", "decided_at", "status"),
    )

    id: Mapped[UuidPk]
    entitlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entitlements.id"))
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("deployments.id"))
    lease_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("leases.id"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    deployment_name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # "attest" | "renew"
    platforms: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[AttestationStatus] = mapped_column(str_enum(AttestationStatus))
    nonce: Mapped[bytes] = mapped_column(LargeBinary(64))
    #: The key id of the licence key the request came with, which the nonce's MAC names (None: a request stored
    #: before nonces were bound to licence keys, or by a caller binding none; verifier/attestation/challenges.py).
    nonce_holder: Mapped[str | None] = mapped_column(String(32))
    enclave_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # as received (base64 fields)
    claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # every reason, full detail (staff)
    #: A rejection's distinct reason codes, sorted, space-separated (the dashboard counts rejections by reason
    #: without reading ``verdict``); NULL for an acceptance.
    reason_codes: Mapped[str | None] = mapped_column(Text)
    collateral: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    timings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    simulated: Mapped[bool] = mapped_column(default=False)
    wrapped_key: Mapped[str | None] = mapped_column(Text)  # compact JWE of the model DEK (accepted only)
    result_token: Mapped[str | None] = mapped_column(Text)  # signed EAR attestation-result JWT
    created_at: Mapped[Timestamp]
    decided_at: Mapped[datetime | None]
    #: When the decide task was last sent again for a request still pending (see verifier/attestation/pending.py).
    requeued_at: Mapped[datetime | None]


class LeaseStatus(StrEnum):
    LIVE = "live"
    EXPIRED = "expired"
    REVOKED = "revoked"
    RELEASED = "released"


class Lease(Base):
    __tablename__ = "leases"
    __table_args__ = (
        Index(None, "entitlement_id", "status"),
        Index("ix_leases_deployment_issued", "deployment_id", "issued_at"),  # a deployment's leases (dashboard)
        Index(None, "expires_at"),  # lease expiry (beat) and billing usage by period
        Index(None, "issued_at"),
    )

    id: Mapped[UuidPk]
    entitlement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("entitlements.id"))
    deployment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deployments.id"))
    model_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    enclave_key_thumbprint: Mapped[str] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(default=0)
    status: Mapped[LeaseStatus] = mapped_column(str_enum(LeaseStatus))
    issued_at: Mapped[Timestamp]
    expires_at: Mapped[Timestamp]
    renew_after: Mapped[Timestamp]
    ended_at: Mapped[datetime | None]


class UsedNonce(Base):
    """A challenge nonce that has been consumed (single use across workers and restarts)."""

    __tablename__ = "used_nonces"

    nonce: Mapped[bytes] = mapped_column(LargeBinary(64), primary_key=True)
    used_at: Mapped[Timestamp]
    expires_at: Mapped[Timestamp]


class DecisionDay(Base):
    """Decisions per UTC day of ``decided_at`` and outcome, counted by the decision in the transaction that records
    it (:func:`verifier.attestation.flows.record`). The dashboard's 30-day series reads finished days here instead
    of counting ``attestations``; each row equals ``count(*)`` of that day's decisions with that status."""

    __tablename__ = "decision_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    status: Mapped[AttestationStatus] = mapped_column(str_enum(AttestationStatus), primary_key=True)
    decisions: Mapped[int] = mapped_column(BigInteger)


class RejectionReasonDay(Base):
    """Rejections per UTC day of ``decided_at`` and reason code (a rejection counts once under each distinct code
    of ``attestations.reason_codes``, under ``""`` when it has none), kept with :class:`DecisionDay`."""

    __tablename__ = "rejection_reason_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), primary_key=True)
    rejections: Mapped[int] = mapped_column(BigInteger)
