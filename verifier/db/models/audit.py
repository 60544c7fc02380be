"""Append-only, hash-chained audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base
from verifier.db.models._types import Timestamp


class AuditEvent(Base):
    """``hash = SHA-256(prev_hash || canonical JSON of the event)``; the chain makes silent edits detectable."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[Timestamp]
    tag: Mapped[str] = mapped_column(String(100))  # "source:subject:action"
    actor: Mapped[str] = mapped_column(String(200))
    subject_type: Mapped[str] = mapped_column(String(50))
    subject_id: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
