"""The staff service on real PostgreSQL, below HTTP: an unknown username costs the same Argon2 verification as a
known one and is not written to the audit log, a taken username is a conflict, the address throttle forgets
failures older than its window, and a successful sign-in clears the account's failures and its expired sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from verifier.db.models import AuditEvent, StaffLoginFailure, StaffRole, StaffSession, StaffUser
from verifier.errors import Code, Conflict
from verifier.staff import service
from verifier.staff.service import LoginOutcome, LoginPolicy, SessionPolicy, create_staff_user, sign_in

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = LoginPolicy(
    max_failures=3,
    failure_window=timedelta(minutes=15),
    lockout=timedelta(minutes=10),
    address_max_failures=2,
    address_window=timedelta(minutes=15),
)
SESSIONS = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
PASSWORD = "correct horse battery"  # noqa: S105 - a test account


def _user(session: Session, role: StaffRole = StaffRole.VIEWER) -> StaffUser:
    return create_staff_user(session, f"u-{uuid.uuid4().hex[:10]}", PASSWORD, role, actor="test", now=NOW)


def _address() -> str:
    return f"192.0.2.{uuid.uuid4().int % 250}-{uuid.uuid4().hex[:6]}"


def _sign_in(session: Session, username: str, password: str, address: str, at: datetime = NOW) -> LoginOutcome:
    result = sign_in(session, username, password, address=address, now=at, policy=POLICY, session_policy=SESSIONS)
    return result.outcome


def test_sign_in_unknown_user_verifies_against_the_dummy_hash(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = _user(session)
    verified: list[str] = []
    real = service.verify_password

    def counting(password_hash: str, password: str) -> bool:
        verified.append(password_hash)
        return real(password_hash, password)

    monkeypatch.setattr(service, "verify_password", counting)

    assert _sign_in(session, f"nobody-{uuid.uuid4().hex[:8]}", PASSWORD, _address()) == LoginOutcome.INVALID
    assert _sign_in(session, "Not A Valid Name!", PASSWORD, _address()) == LoginOutcome.INVALID
    assert _sign_in(session, known.username, "wrong password", _address()) == LoginOutcome.INVALID
    assert verified == [service._dummy_hash(), service._dummy_hash(), known.password_hash]
    assert service._dummy_hash().startswith("$argon2id$")


def test_sign_in_unknown_user_is_audited_without_the_name(session: Session) -> None:
    typed = f"my-password-{uuid.uuid4().hex[:8]}"  # someone typed their password into the username field

    _sign_in(session, typed, PASSWORD, _address())

    events = session.scalars(select(AuditEvent).where(AuditEvent.tag == "dashboard:staff:login_failed")).all()
    last = events[-1]
    assert (last.actor, last.subject_id, last.data["reason"]) == ("staff:?", "?", "unknown_user")
    assert all(typed not in repr((e.actor, e.subject_id, e.data)) for e in events)


def test_create_staff_user_taken_username_is_a_conflict(session: Session) -> None:
    existing = _user(session)
    with pytest.raises(Conflict) as exc:
        create_staff_user(session, existing.username, PASSWORD, StaffRole.ADMIN, actor="test", now=NOW)
    assert exc.value.code == Code.RESOURCE_CONFLICT


def test_sign_in_address_failures_outside_the_window_are_forgotten(session: Session) -> None:
    user, address = _user(session), _address()
    for _ in range(POLICY.address_max_failures):
        _sign_in(session, user.username, "wrong password", address)
    assert _sign_in(session, user.username, PASSWORD, address) == LoginOutcome.THROTTLED

    later = NOW + POLICY.address_window
    assert _sign_in(session, user.username, PASSWORD, address, later) == LoginOutcome.SIGNED_IN
    # the next failure prunes what is out of every window
    after = later + timedelta(seconds=1)
    assert _sign_in(session, user.username, "wrong password", address, after) == LoginOutcome.INVALID
    rows = session.scalars(select(StaffLoginFailure.at).where(StaffLoginFailure.address == address)).all()
    assert rows == [after]


def test_sign_in_success_clears_failures_and_expired_sessions(session: Session) -> None:
    user = _user(session)
    assert _sign_in(session, user.username, PASSWORD, _address()) == LoginOutcome.SIGNED_IN
    assert _sign_in(session, user.username, "wrong password", _address()) == LoginOutcome.INVALID
    assert user.failed_logins == 1

    later = NOW + SESSIONS.idle + timedelta(seconds=1)  # the first session is idle past its expiry
    assert _sign_in(session, user.username, PASSWORD, _address(), later) == LoginOutcome.SIGNED_IN

    assert (user.failed_logins, user.failed_since, user.last_login_at) == (0, None, later)
    rows = session.scalars(select(StaffSession).where(StaffSession.staff_user_id == user.id)).all()
    assert [row.created_at for row in rows] == [later]
