"""Cached vendor collateral (filled by worker fetchers; read by verification)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base
from verifier.db.models._types import Timestamp, UuidPk


class CachedCollateral(Base):
    """One vendor document as served: e.g. (intel, tcb_info, "tdx:b0c06f000000") or (amd, vcek, "<hwid>:<tcb>")."""

    __tablename__ = "collateral_cache"
    __table_args__ = (UniqueConstraint("vendor", "kind", "key"),)

    id: Mapped[UuidPk]
    vendor: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(400))  # NVIDIA OCSP CertID keys are ~240 characters
    body: Mapped[bytes] = mapped_column(LargeBinary)
    issuer_chain: Mapped[str | None] = mapped_column(String(20000))
    fetched_at: Mapped[Timestamp]
    next_update: Mapped[datetime | None]
