"""The staff rules that need no database: passwords and usernames, the lockout window, session expiry, the CSRF
comparison, the sign-in form token and the role matrix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from verifier.db.models import StaffRole
from verifier.errors import Code, UsageError
from verifier.staff.service import (
    LOGIN_FORM_MAX_AGE,
    FailureState,
    LoginPolicy,
    SessionPolicy,
    after_failure,
    check_password,
    check_username,
    csrf_matches,
    hash_password,
    issue_login_form_token,
    login_form_token_valid,
    role_allows,
    verify_password,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = LoginPolicy(
    max_failures=3,
    failure_window=timedelta(minutes=15),
    lockout=timedelta(minutes=10),
    address_max_failures=30,
    address_window=timedelta(minutes=15),
)
SESSIONS = SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
KEY = b"k" * 32


# -- passwords and usernames ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["short-pw-11", "", " " * 20, "alice.example", "x" * 1025],
    ids=["eleven-characters", "empty", "only-whitespace", "the-username", "over-the-maximum"],
)
def test_check_password_weak_refused(password: str) -> None:
    with pytest.raises(UsageError) as exc:
        check_password("alice.example", password)
    assert exc.value.code == Code.STAFF_PASSWORD_WEAK


def test_check_password_twelve_characters_accepted() -> None:
    check_password("alice", "twelve-chars")


@pytest.mark.parametrize(
    "username",
    ["", "Alice", "-alice", "al ice", "a" * 65, "alice@example.com"],
    ids=["empty", "upper-case", "leading-dash", "space", "too-long", "at-sign"],
)
def test_check_username_invalid_refused(username: str) -> None:
    with pytest.raises(UsageError) as exc:
        check_username(username)
    assert exc.value.code == Code.STAFF_USERNAME_INVALID


def test_check_username_valid_accepted() -> None:
    check_username("alice.o-brien_2")


def test_verify_password_right_wrong_and_garbage_hash() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery")
    assert not verify_password(stored, "correct horse batterY")
    assert not verify_password("not-a-hash", "correct horse battery")


# -- lockout window ---------------------------------------------------------------------------------------------

CLEAN = FailureState(0, None, None)


def test_after_failure_first_failure_opens_a_window() -> None:
    assert after_failure(CLEAN, T0, POLICY) == FailureState(1, T0, None)


def test_after_failure_within_the_window_counts_on() -> None:
    state = FailureState(1, T0, None)
    assert after_failure(state, T0 + timedelta(minutes=14), POLICY) == FailureState(2, T0, None)


def test_after_failure_outside_the_window_starts_again() -> None:
    state = FailureState(2, T0, None)
    later = T0 + timedelta(minutes=15)
    assert after_failure(state, later, POLICY) == FailureState(1, later, None)


def test_after_failure_max_failures_within_the_window_locks() -> None:
    state = FailureState(2, T0, None)
    at = T0 + timedelta(minutes=5)
    locked = after_failure(state, at, POLICY)
    assert locked == FailureState(0, None, at + POLICY.lockout)
    assert locked.locked_at(at + POLICY.lockout - timedelta(seconds=1))
    assert not locked.locked_at(at + POLICY.lockout)


def test_after_failure_spread_over_windows_never_locks() -> None:
    state, at = CLEAN, T0
    for _ in range(10):
        state = after_failure(state, at, POLICY)
        at += timedelta(minutes=8)  # two failures per 15-minute window at most
    assert not state.locked_at(at)


# -- sessions ---------------------------------------------------------------------------------------------------


def test_session_live_before_idle_expiry() -> None:
    assert not SESSIONS.expired(T0, T0 + timedelta(minutes=20), T0 + timedelta(minutes=49))


def test_session_expired_when_idle() -> None:
    assert SESSIONS.expired(T0, T0 + timedelta(minutes=20), T0 + timedelta(minutes=50))


def test_session_expired_at_absolute_expiry_though_active() -> None:
    last_seen = T0 + timedelta(hours=11, minutes=59)
    assert SESSIONS.expired(T0, last_seen, T0 + timedelta(hours=12))
    assert SESSIONS.expires_at(T0, last_seen) == T0 + timedelta(hours=12)


# -- CSRF -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "given", "matches"),
    [
        ("token-a", "token-a", True),
        ("token-a", "token-b", False),
        ("token-a", "token-", False),
        ("token-a", None, False),
        ("token-a", "", False),
        ("", "", False),
    ],
    ids=["equal", "different", "prefix", "missing", "empty", "both-empty"],
)
def test_csrf_matches(expected: str, given: str | None, matches: bool) -> None:
    assert csrf_matches(expected, given) is matches


def test_login_form_token_round_trip() -> None:
    cookie, token = issue_login_form_token(KEY, T0)
    assert login_form_token_valid(KEY, cookie, token, T0 + timedelta(minutes=1))


@pytest.mark.parametrize(
    "defect",
    ["other-key", "tampered-token", "tampered-time", "form-token-differs", "expired", "from-the-future", "no-cookie"],
)
def test_login_form_token_defect_refused(defect: str) -> None:
    cookie, token = issue_login_form_token(KEY, T0)
    nonce, issued, mac = cookie.split(".")
    key, at, form = KEY, T0 + timedelta(minutes=1), token
    sent: str | None = cookie
    if defect == "other-key":
        key = b"o" * 32
    elif defect == "tampered-token":
        tampered = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
        sent, form = f"{tampered}.{issued}.{mac}", tampered
    elif defect == "tampered-time":
        sent = f"{nonce}.{int(issued) + 3600}.{mac}"
        at = T0 + LOGIN_FORM_MAX_AGE + timedelta(minutes=1)
    elif defect == "form-token-differs":
        form = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif defect == "expired":
        at = T0 + LOGIN_FORM_MAX_AGE
    elif defect == "from-the-future":
        at = T0 - timedelta(minutes=1)
    else:
        sent = None
    assert not login_form_token_valid(key, sent, form, at)


# -- roles ------------------------------------------------------------------------------------------------------

VIE, OPE, ADM = StaffRole.VIEWER, StaffRole.OPERATOR, StaffRole.ADMIN


@pytest.mark.parametrize(
    ("have", "need", "allowed"),
    [(VIE, VIE, True), (VIE, OPE, False), (VIE, ADM, False), (OPE, VIE, True), (OPE, OPE, True),
     (OPE, ADM, False), (ADM, VIE, True), (ADM, OPE, True), (ADM, ADM, True)],
    ids=lambda v: v.value if isinstance(v, StaffRole) else str(v),
)  # fmt: skip
def test_role_allows_matrix(have: StaffRole, need: StaffRole, allowed: bool) -> None:
    assert role_allows(have, need) is allowed
