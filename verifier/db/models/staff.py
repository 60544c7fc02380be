"""Provider staff who sign in to the dashboard: accounts, their server-side sessions, and failed sign-ins per client
address. Separate from API credentials (:mod:`verifier.db.models.tenancy`): a staff account is a person with a
password and a role, never a bearer token.

Only hashes are stored: an Argon2id hash of each password (its parameters and salt inside the encoded string) and
the SHA-256 of each session's cookie token. The rules are in :mod:`verifier.staff.service`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from verifier.db.base import Base, str_enum
from verifier.db.models._types import Timestamp, UuidPk


class StaffRole(StrEnum):
    """What a staff user may do; each role may do everything the roles before it may."""

    VIEWER = "viewer"  # read everything
    OPERATOR = "operator"  # and revoke leases, suspend deployments and customers
    ADMIN = "admin"  # and everything else: credentials, models, reference values


class StaffStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"  # never signs in; its sessions stop working


class StaffUser(Base):
    """One staff account. ``failed_logins`` counts failed sign-ins since ``failed_since`` (the start of the current
    failure window); at the limit the account is locked until ``locked_until``."""

    __tablename__ = "staff_users"

    id: Mapped[UuidPk]
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # Argon2id, PHC string format
    role: Mapped[StaffRole] = mapped_column(str_enum(StaffRole))
    status: Mapped[StaffStatus] = mapped_column(str_enum(StaffStatus))
    failed_logins: Mapped[int] = mapped_column(default=0)
    failed_since: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    created_at: Mapped[Timestamp]
    last_login_at: Mapped[datetime | None]


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored. ``csrf_token`` is the
    session's own secret every dashboard form sends back. Expiry (idle and absolute) is computed from
    ``last_seen_at`` and ``created_at`` with the settings of the moment; signing out deletes the row."""

    __tablename__ = "staff_sessions"

    id: Mapped[UuidPk]
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    staff_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[Timestamp]
    last_seen_at: Mapped[Timestamp]


class StaffLoginFailure(Base):
    """One failed sign-in from a client address (any username, known or not): the per-address throttle counts
    these in a sliding window. Rows older than the window are pruned as new failures arrive."""

    __tablename__ = "staff_login_failures"
    __table_args__ = (Index(None, "address", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[Timestamp] = mapped_column(index=True)
