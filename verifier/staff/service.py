"""Staff accounts: password rules, accounts, sign-in (lockout per account, throttle per client address), sessions
and roles. Takes the caller's session and never commits; the SQL is in :mod:`verifier.staff.repository`.

Sign-in, in order (:func:`sign_in`):

1. A client address with ``address_max_failures`` failed sign-ins within ``address_window`` is refused before any
   password is checked (THROTTLED): a password spray across many usernames is slowed as much as a guess at one.
2. The account is read and locked ``FOR UPDATE``, so concurrent failures all count.
3. The password is verified with Argon2id; an unknown or malformed username is verified against a dummy hash of
   the same parameters, so it costs the same time as a known one and does not tell which usernames exist.
4. A locked account (``locked_until`` in the future) is refused (LOCKED) whatever the password; a disabled account
   or a wrong password is a failure (INVALID), counted for the account and for the address. The
   ``max_failures``-th failure within ``failure_window`` locks the account for ``lockout`` (LOCKED).
5. Success resets the account's counter, rehashes a password stored with older Argon2 parameters, deletes the
   user's expired sessions and opens a new one (SIGNED_IN, with the cookie token, which is never stored).

Every outcome but THROTTLED is an audit event (``dashboard:staff:*``, actor ``staff:<username>``). A username that
names no account is not written to the log (people type passwords into the username field): its actor is
``staff:?``. A session ends when idle for ``idle`` or ``absolute`` after sign-in (:class:`SessionPolicy`), when its
user is disabled, or at sign-out, which deletes it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from verifier.audit.log import AuditTag, record_event
from verifier.config import Settings
from verifier.db.models import StaffRole, StaffSession, StaffStatus, StaffUser
from verifier.db.queries import insert_unique
from verifier.errors import Code, UsageError
from verifier.staff import repository

MIN_PASSWORD_LENGTH: Final = 12
#: Longer passwords are refused: each sign-in hashes what it is sent.
MAX_PASSWORD_LENGTH: Final = 1024
USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
#: A session's ``last_seen_at`` is written at most this often (and at least four times per idle period), so a
#: page view is not always a write.
TOUCH_EVERY: Final = timedelta(seconds=60)
_RANK: Final = {StaffRole.VIEWER: 0, StaffRole.OPERATOR: 1, StaffRole.ADMIN: 2}
#: Argon2id with argon2-cffi's defaults (RFC 9106's second recommended option: t=3, m=64 MiB, p=4).
_HASHER: Final = PasswordHasher()


# -- passwords and usernames ----------------------------------------------------------------------------------


def check_username(username: str) -> None:
    """``staff.username_invalid`` unless 1-64 of lower-case letters, digits, ``.``, ``_``, ``-`` (not first)."""
    if not USERNAME.fullmatch(username):
        raise UsageError(
            Code.STAFF_USERNAME_INVALID,
            "a username is 1 to 64 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit",
            actual=username[:80],
        )


def check_password(username: str, password: str) -> None:
    """``staff.password_weak``: shorter than :data:`MIN_PASSWORD_LENGTH` characters, longer than
    :data:`MAX_PASSWORD_LENGTH`, only whitespace, or the username itself."""
    problem = None
    if len(password) < MIN_PASSWORD_LENGTH:
        problem = f"at least {MIN_PASSWORD_LENGTH} characters"
    elif len(password) > MAX_PASSWORD_LENGTH:
        problem = f"at most {MAX_PASSWORD_LENGTH} characters"
    elif not password.strip():
        problem = "not only whitespace"
    elif password.casefold() == username.casefold():
        problem = "not the username"
    if problem is not None:
        raise UsageError(Code.STAFF_PASSWORD_WEAK, f"the password is too weak: it must be {problem}")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """What an unknown username is verified against: a hash of a random password, same parameters."""
    return _HASHER.hash(secrets.token_urlsafe(24))


# -- roles ------------------------------------------------------------------------------------------------------


def role_allows(have: StaffRole, need: StaffRole) -> bool:
    """Whether a user with role ``have`` may do what needs ``need`` (viewer < operator < admin)."""
    return _RANK[have] >= _RANK[need]


# -- accounts ---------------------------------------------------------------------------------------------------


def create_staff_user(
    session: Session, username: str, password: str, role: StaffRole, *, actor: str, now: datetime
) -> StaffUser:
    """A new active account (``staff.username_invalid``, ``staff.password_weak``, or ``resource.conflict`` if
    the username is taken), audited ``cli:staff:created``."""
    check_username(username)
    check_password(username, password)
    user = StaffUser(
        username=username,
        password_hash=hash_password(password),
        role=role,
        status=StaffStatus.ACTIVE,
        failed_logins=0,
        failed_since=None,
        locked_until=None,
        created_at=now,
        last_login_at=None,
    )
    insert_unique(session, user, "a staff user with this username")
    record_event(
        session,
        tag=AuditTag.STAFF_CREATED,
        actor=actor,
        subject_type="staff_user",
        subject_id=str(user.id),
        data={"username": username, "role": role.value},
        at=now,
    )
    return user


# -- sign-in ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int
    failure_window: timedelta
    lockout: timedelta
    address_max_failures: int
    address_window: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        return cls(
            max_failures=settings.staff_login_max_failures,
            failure_window=timedelta(seconds=settings.staff_login_failure_window_seconds),
            lockout=timedelta(seconds=settings.staff_lockout_seconds),
            address_max_failures=settings.staff_login_address_max_failures,
            address_window=timedelta(seconds=settings.staff_login_address_window_seconds),
        )


@dataclass(frozen=True, slots=True)
class FailureState:
    """An account's failed sign-ins: how many since ``failed_since``, and until when it is locked."""

    failed_logins: int
    failed_since: datetime | None
    locked_until: datetime | None

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until


def after_failure(state: FailureState, now: datetime, policy: LoginPolicy) -> FailureState:
    """The state after one more failed sign-in at ``now``: a failure outside the current window starts a new one;
    the ``max_failures``-th within the window locks the account for ``lockout`` and clears the count."""
    if state.failed_since is None or now - state.failed_since >= policy.failure_window:
        count, since = 1, now
    else:
        count, since = state.failed_logins + 1, state.failed_since
    if count >= policy.max_failures:
        return FailureState(0, None, now + policy.lockout)
    return FailureState(count, since, state.locked_until)


class LoginOutcome(StrEnum):
    SIGNED_IN = "signed_in"
    INVALID = "invalid"  # unknown user, wrong password or disabled account: one answer for all three
    LOCKED = "locked"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class LoginResult:
    outcome: LoginOutcome
    #: SIGNED_IN: the session's cookie token (shown to the browser only; its SHA-256 is stored).
    token: str | None = None
    #: LOCKED or THROTTLED: how long until a sign-in may be tried again.
    retry_after: timedelta | None = None


def sign_in(
    session: Session,
    username: str,
    password: str,
    *,
    address: str,
    now: datetime,
    policy: LoginPolicy,
    session_policy: SessionPolicy,
) -> LoginResult:
    """One sign-in attempt from client ``address`` (the numbered steps are in the module docstring)."""
    address = address[:64]
    # 1. the client address's throttle, before any (costly) password check
    since = now - policy.address_window
    if repository.address_failures_since(session, address, since) >= policy.address_max_failures:
        return LoginResult(LoginOutcome.THROTTLED, retry_after=policy.address_window)
    # 2. the account, locked so that concurrent failures all count
    user = repository.user_by_username(session, username, lock=True) if USERNAME.fullmatch(username) else None
    # 3. always one Argon2 verification, against the dummy hash when there is no account
    password_ok = verify_password(user.password_hash if user else _dummy_hash(), password[:MAX_PASSWORD_LENGTH])
    password_ok = password_ok and len(password) <= MAX_PASSWORD_LENGTH
    if user is None:
        _failed_from(session, address, now, policy)
        _audit(session, AuditTag.STAFF_LOGIN_FAILED, None, now, address=address, reason="unknown_user")
        return LoginResult(LoginOutcome.INVALID)
    # 4. locked, disabled, wrong password
    state = FailureState(user.failed_logins, user.failed_since, user.locked_until)
    if state.locked_at(now):
        _failed_from(session, address, now, policy)
        _audit(session, AuditTag.STAFF_LOGIN_FAILED, user, now, address=address, reason="locked")
        return LoginResult(LoginOutcome.LOCKED, retry_after=_remaining(state, now))
    if not password_ok or user.status != StaffStatus.ACTIVE:
        reason = "disabled" if user.status != StaffStatus.ACTIVE else "wrong_password"
        _failed_from(session, address, now, policy)
        state = after_failure(state, now, policy)
        user.failed_logins, user.failed_since = state.failed_logins, state.failed_since
        user.locked_until = state.locked_until
        session.flush()
        _audit(session, AuditTag.STAFF_LOGIN_FAILED, user, now, address=address, reason=reason)
        if state.locked_at(now):
            _audit(session, AuditTag.STAFF_LOCKED_OUT, user, now, address=address, until=state.locked_until)
            return LoginResult(LoginOutcome.LOCKED, retry_after=_remaining(state, now))
        return LoginResult(LoginOutcome.INVALID)
    # 5. signed in
    user.failed_logins, user.failed_since, user.locked_until = 0, None, None
    user.last_login_at = now
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    repository.delete_expired_sessions(
        session,
        user.id,
        seen_before=now - session_policy.idle,
        created_before=now - session_policy.absolute,
    )
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        token_hash=token_hash(token),
        staff_user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    repository.add_session(session, row)
    _audit(session, AuditTag.STAFF_LOGIN_SUCCEEDED, user, now, address=address, session_id=row.id)
    return LoginResult(LoginOutcome.SIGNED_IN, token=token)


def _failed_from(session: Session, address: str, now: datetime, policy: LoginPolicy) -> None:
    repository.prune_address_failures(session, now - policy.address_window)
    repository.add_address_failure(session, address, now)


def _remaining(state: FailureState, now: datetime) -> timedelta:
    return state.locked_until - now if state.locked_until is not None else timedelta(0)


def _audit(session: Session, tag: AuditTag, user: StaffUser | None, now: datetime, **data: object) -> None:
    record_event(
        session,
        tag=tag,
        actor=f"staff:{user.username}" if user else "staff:?",
        subject_type="staff_user",
        subject_id=str(user.id) if user else "?",
        data=dict(data),
        at=now,
    )


# -- sessions ---------------------------------------------------------------------------------------------------


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta
    absolute: timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(
            idle=timedelta(seconds=settings.staff_session_idle_seconds),
            absolute=timedelta(seconds=settings.staff_session_max_seconds),
        )

    def expires_at(self, created_at: datetime, last_seen_at: datetime) -> datetime:
        """When a session created at ``created_at`` and last seen at ``last_seen_at`` ends."""
        return min(last_seen_at + self.idle, created_at + self.absolute)

    def expired(self, created_at: datetime, last_seen_at: datetime, now: datetime) -> bool:
        return now >= self.expires_at(created_at, last_seen_at)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The staff user behind a live session, as the dashboard needs it."""

    user_id: uuid.UUID
    username: str
    role: StaffRole
    session_id: uuid.UUID
    csrf_token: str
    signed_in_at: datetime
    expires_at: datetime

    @property
    def actor(self) -> str:
        """The audit actor for what this user does."""
        return f"staff:{self.username}"

    def may(self, need: StaffRole) -> bool:
        return role_allows(self.role, need)


def resolve_session(session: Session, token: str | None, *, now: datetime, policy: SessionPolicy) -> SignedIn | None:
    """The signed-in user behind cookie ``token``, or None: no or unknown token, a session past its idle or
    absolute expiry, or a user who is no longer active. A live session's ``last_seen_at`` moves to ``now`` (at most
    every :data:`TOUCH_EVERY`)."""
    if not token or len(token) > 128:
        return None
    found = repository.session_by_token_hash(session, token_hash(token))
    if found is None:
        return None
    row, user = found
    if user.status != StaffStatus.ACTIVE or policy.expired(row.created_at, row.last_seen_at, now):
        return None
    if now - row.last_seen_at >= min(TOUCH_EVERY, policy.idle / 4):
        row.last_seen_at = now
        session.flush()
    return SignedIn(
        user_id=user.id,
        username=user.username,
        role=user.role,
        session_id=row.id,
        csrf_token=row.csrf_token,
        signed_in_at=row.created_at,
        expires_at=policy.expires_at(row.created_at, row.last_seen_at),
    )


def sign_out(session: Session, signed_in: SignedIn, *, address: str, now: datetime) -> None:
    """Delete the session (its cookie never works again), audited ``dashboard:staff:logged_out``."""
    repository.delete_session(session, signed_in.session_id)
    record_event(
        session,
        tag=AuditTag.STAFF_LOGGED_OUT,
        actor=signed_in.actor,
        subject_type="staff_user",
        subject_id=str(signed_in.user_id),
        data={"address": address[:64], "session_id": signed_in.session_id},
        at=now,
    )


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the expected one; a missing one never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


# -- the sign-in form's CSRF token (before there is a session) ------------------------------------------------------

#: A sign-in form must be sent back within this long after it was served.
LOGIN_FORM_MAX_AGE: Final = timedelta(minutes=30)
_LOGIN_KEY_LABEL: Final = b"keyward dashboard sign-in form"


def login_form_key(pepper: bytes) -> bytes:
    """The key that signs sign-in form cookies, derived from the credential pepper (a production secret)."""
    return hmac.new(pepper, _LOGIN_KEY_LABEL, hashlib.sha256).digest()


def _login_mac(key: bytes, nonce: str, issued: int) -> str:
    return hmac.new(key, f"{nonce}.{issued}".encode(), hashlib.sha256).hexdigest()


def issue_login_form_token(key: bytes, now: datetime) -> tuple[str, str]:
    """(the cookie value, the form's ``csrf_token``) for one sign-in form: the cookie carries the token, when it
    was issued and an HMAC of both, so the server keeps nothing before sign-in."""
    nonce, issued = secrets.token_urlsafe(32), int(now.timestamp())
    return f"{nonce}.{issued}.{_login_mac(key, nonce, issued)}", nonce


def login_form_token_valid(key: bytes, cookie: str | None, form_token: str | None, now: datetime) -> bool:
    """Whether ``form_token`` is the token of a sign-in form cookie this server signed less than
    :data:`LOGIN_FORM_MAX_AGE` ago (constant-time comparisons)."""
    if not cookie or not form_token or len(cookie) > 256:
        return False
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return False
    nonce, issued, mac = parts[0], int(parts[1]), parts[2]
    if not hmac.compare_digest(mac.encode(), _login_mac(key, nonce, issued).encode()):
        return False
    age = now.timestamp() - issued
    return 0 <= age < LOGIN_FORM_MAX_AGE.total_seconds() and csrf_matches(nonce, form_token)
