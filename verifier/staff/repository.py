"""All SQL of staff accounts: users by name, sessions by token hash, failed sign-ins per client address.

The caller owns the session and the transaction; nothing here commits. The rules (passwords, lockout, expiry,
roles) are in :mod:`verifier.staff.service`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from verifier.db.models import StaffLoginFailure, StaffSession, StaffUser

#: (the session, its user) by the SHA-256 of the cookie token: every dashboard request runs it.
_BY_TOKEN_HASH: Final = (
    select(StaffSession, StaffUser)
    .join(StaffUser, StaffUser.id == StaffSession.staff_user_id)
    .where(StaffSession.token_hash == bindparam("token_hash"))
)


def user_by_username(session: Session, username: str, *, lock: bool = False) -> StaffUser | None:
    """The account named ``username``; ``lock``: ``FOR UPDATE`` until the transaction ends and read afresh (a
    sign-in updates its failure counter, and concurrent sign-ins must not lose a failure)."""
    query = select(StaffUser).where(StaffUser.username == username)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def session_by_token_hash(session: Session, token_hash: bytes) -> tuple[StaffSession, StaffUser] | None:
    found = session.execute(_BY_TOKEN_HASH, {"token_hash": token_hash}).first()
    return None if found is None else (found[0], found[1])


def add_session(session: Session, row: StaffSession) -> None:
    session.add(row)
    session.flush()


def delete_session(session: Session, session_id: uuid.UUID) -> None:
    session.execute(delete(StaffSession).where(StaffSession.id == session_id))


def delete_expired_sessions(
    session: Session, staff_user_id: uuid.UUID, *, seen_before: datetime, created_before: datetime
) -> None:
    """Delete the user's sessions idle since before ``seen_before`` or created before ``created_before``."""
    session.execute(
        delete(StaffSession).where(
            StaffSession.staff_user_id == staff_user_id,
            or_(StaffSession.last_seen_at < seen_before, StaffSession.created_at < created_before),
        )
    )


def address_failures_since(session: Session, address: str, since: datetime) -> int:
    """Failures from ``address`` after ``since`` (one exactly ``since`` old is out of the window)."""
    query = select(func.count()).where(StaffLoginFailure.address == address, StaffLoginFailure.at > since)
    return int(session.scalar(query) or 0)


def add_address_failure(session: Session, address: str, at: datetime) -> None:
    session.add(StaffLoginFailure(address=address, at=at))
    session.flush()


def prune_address_failures(session: Session, before: datetime) -> None:
    """Delete failures older than ``before`` (outside every window): the table holds one window's worth."""
    session.execute(delete(StaffLoginFailure).where(StaffLoginFailure.at < before))
