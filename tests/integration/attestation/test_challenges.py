"""Challenge nonces on real PostgreSQL: MAC, expiry, and single use across sessions and connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from verifier.attestation.challenges import (
    MAX_DECISION_DELAY,
    NONCE_BYTES,
    check_nonce,
    decode_nonce,
    issue_challenge,
    purge_used_nonces,
    redeem_challenge,
)
from verifier.db.models import UsedNonce
from verifier.errors import Code, KeywardError, VerificationFailed

SECRET = b"k" * 32
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.fixture(autouse=True)
def no_used_nonces(session: Session) -> None:
    """Each test starts from an empty ``used_nonces``: suites that run before this one commit real redemptions
    through the API and the worker. Deleted inside the test's transaction, so rolled back with it."""
    session.execute(delete(UsedNonce))


@pytest.fixture
def committed_nonces(engine: Engine) -> Iterator[list[bytes]]:
    """Nonces a test commits through its own connections; deleted afterwards."""
    nonces: list[bytes] = []
    yield nonces
    with Session(engine) as s, s.begin():
        s.execute(delete(UsedNonce).where(UsedNonce.nonce.in_(nonces)))


def test_challenge_layout_and_round_trip(session: Session) -> None:
    challenge = issue_challenge(SECRET, T0)
    assert len(challenge.nonce) == NONCE_BYTES
    assert challenge.expires_at == T0 + timedelta(minutes=5)
    assert int.from_bytes(challenge.nonce[:8], "big") == int(challenge.expires_at.timestamp())
    assert decode_nonce(challenge.nonce_b64) == challenge.nonce
    assert issue_challenge(SECRET, T0).nonce != challenge.nonce

    redeem_challenge(session, SECRET, challenge.nonce, T0 + timedelta(minutes=4, seconds=59))

    row = session.get(UsedNonce, challenge.nonce)
    assert row is not None
    assert row.expires_at == challenge.expires_at


def test_challenge_ttl_rounds_expiry_down_to_seconds() -> None:
    challenge = issue_challenge(SECRET, T0 + timedelta(microseconds=999_999), ttl=timedelta(seconds=30))
    assert challenge.expires_at == T0 + timedelta(seconds=30)


@pytest.mark.parametrize(
    "after", [timedelta(minutes=5), timedelta(minutes=5, seconds=1), timedelta(days=1)], ids=["at", "after", "day"]
)
def test_challenge_expired(session: Session, after: timedelta) -> None:
    challenge = issue_challenge(SECRET, T0)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, SECRET, challenge.nonce, T0 + after)
    assert exc.value.code is Code.CHALLENGE_EXPIRED
    assert session.scalar(select(func.count()).select_from(UsedNonce)) == 0


@pytest.mark.parametrize(
    ("index", "secret"),
    [(0, SECRET), (7, SECRET), (8, SECRET), (15, SECRET), (16, SECRET), (31, SECRET), (None, b"x" * 32)],
    ids=["expiry-msb", "expiry-lsb", "random-first", "random-last", "mac-first", "mac-last", "other-secret"],
)
def test_challenge_bad_mac(session: Session, index: int | None, secret: bytes) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    if index is not None:
        nonce = _flip(nonce, index)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, secret, nonce, T0)
    assert exc.value.code is Code.CHALLENGE_INVALID


def test_challenge_forged_expiry_is_invalid_not_expired(session: Session) -> None:
    """An expiry field that fails the MAC is not believed, even when it says the nonce has expired."""
    nonce = _flip(issue_challenge(SECRET, T0).nonce, 7)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, SECRET, nonce, T0 + timedelta(days=1))
    assert exc.value.code is Code.CHALLENGE_INVALID


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64], ids=["empty", "half", "short", "long", "double"])
def test_challenge_wrong_length(session: Session, length: int) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    nonce = (nonce * 2)[:length]
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, SECRET, nonce, T0)
    assert exc.value.code is Code.CHALLENGE_INVALID
    assert exc.value.actual == str(length)


@pytest.mark.parametrize("text", ["not base64!", "é", "A"], ids=["symbols", "non-ascii", "bad-padding"])
def test_challenge_decode_rejects_garbage(text: str) -> None:
    with pytest.raises(VerificationFailed) as exc:
        decode_nonce(text)
    assert exc.value.code is Code.CHALLENGE_INVALID


def test_challenge_replay_in_same_session(session: Session) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    redeem_challenge(session, SECRET, nonce, T0)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, SECRET, nonce, T0 + timedelta(seconds=1))
    assert exc.value.code is Code.CHALLENGE_REPLAYED
    # The caller's transaction stays usable and the first redemption stays in place.
    assert session.scalar(select(func.count()).select_from(UsedNonce)) == 1


def test_challenge_replay_across_connections(engine: Engine, committed_nonces: list[bytes]) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    committed_nonces.append(nonce)
    with Session(engine) as first, first.begin():
        redeem_challenge(first, SECRET, nonce, T0)
    with Session(engine) as second, second.begin():
        with pytest.raises(VerificationFailed) as exc:
            redeem_challenge(second, SECRET, nonce, T0 + timedelta(seconds=1))
        assert exc.value.code is Code.CHALLENGE_REPLAYED


def test_challenge_replay_while_first_redemption_uncommitted(engine: Engine, committed_nonces: list[bytes]) -> None:
    """Two workers redeem at once: the second waits on the first's open transaction, then is refused."""
    nonce = issue_challenge(SECRET, T0).nonce
    committed_nonces.append(nonce)
    outcome: list[KeywardError | None] = []

    def second_worker() -> None:
        with Session(engine) as s, s.begin():
            try:
                redeem_challenge(s, SECRET, nonce, T0)
            except KeywardError as e:
                outcome.append(e)
            else:
                outcome.append(None)

    with Session(engine) as first, first.begin():
        redeem_challenge(first, SECRET, nonce, T0)
        worker = threading.Thread(target=second_worker)
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive()  # blocked on the first transaction's uncommitted row
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(outcome) == 1
    assert outcome[0] is not None
    assert outcome[0].code is Code.CHALLENGE_REPLAYED


def test_challenge_rolled_back_redemption_leaves_nonce_unused(engine: Engine, committed_nonces: list[bytes]) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    committed_nonces.append(nonce)
    with Session(engine) as s:
        redeem_challenge(s, SECRET, nonce, T0)
        s.rollback()
    with Session(engine) as s, s.begin():
        redeem_challenge(s, SECRET, nonce, T0)


def test_purge_used_nonces_keeps_rows_for_the_decision_delay(session: Session) -> None:
    old = issue_challenge(SECRET, T0, ttl=timedelta(minutes=1))
    fresh = issue_challenge(SECRET, T0, ttl=timedelta(minutes=10))
    redeem_challenge(session, SECRET, old.nonce, T0)
    redeem_challenge(session, SECRET, fresh.nonce, T0)

    # Expired, but a copy received before the expiry may still be decided until MAX_DECISION_DELAY after it.
    assert purge_used_nonces(session, T0 + timedelta(minutes=1)) == 0
    assert purge_used_nonces(session, T0 + timedelta(minutes=1) + MAX_DECISION_DELAY) == 1
    session.expire_all()
    assert session.scalars(select(UsedNonce.nonce)).all() == [fresh.nonce]
    assert purge_used_nonces(session, T0 + timedelta(minutes=1) + MAX_DECISION_DELAY) == 0


def test_challenge_expiry_counts_from_arrival_not_decision(session: Session) -> None:
    """Evidence received in time is decided later (collateral fetch, requeue) without expiring on the way."""
    nonce = issue_challenge(SECRET, T0).nonce
    redeem_challenge(session, SECRET, nonce, T0 + timedelta(minutes=20), received_at=T0 + timedelta(minutes=4))
    assert session.get(UsedNonce, nonce) is not None


def test_challenge_received_after_expiry_is_rejected(session: Session) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, SECRET, nonce, T0 + timedelta(minutes=6), received_at=T0 + timedelta(minutes=5))
    assert exc.value.code is Code.CHALLENGE_EXPIRED


def test_challenge_decided_too_long_after_arrival_is_rejected(session: Session) -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    received = T0 + timedelta(minutes=1)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(
            session, SECRET, nonce, received + MAX_DECISION_DELAY + timedelta(seconds=1), received_at=received
        )
    assert exc.value.code is Code.CHALLENGE_EXPIRED
    assert session.get(UsedNonce, nonce) is None


def test_challenge_late_copy_of_a_purgeable_nonce_is_still_a_replay(session: Session) -> None:
    """Two copies received before the expiry: the second, decided as late as allowed, still meets the first's row."""
    nonce = issue_challenge(SECRET, T0).nonce
    received = T0 + timedelta(minutes=4)
    redeem_challenge(session, SECRET, nonce, received, received_at=received)
    late = received + MAX_DECISION_DELAY
    purge_used_nonces(session, late)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(session, SECRET, nonce, late, received_at=received)
    assert exc.value.code is Code.CHALLENGE_REPLAYED


def test_challenge_received_after_now_counts_as_now(session: Session) -> None:
    """Another host's clock a little ahead: the arrival is taken as the decision time, never later."""
    challenge = issue_challenge(SECRET, T0)
    with pytest.raises(VerificationFailed) as exc:
        redeem_challenge(
            session,
            SECRET,
            challenge.nonce,
            challenge.expires_at,
            received_at=challenge.expires_at + timedelta(hours=2),
        )
    assert exc.value.code is Code.CHALLENGE_EXPIRED  # not "waited too long": the arrival was clamped to now
    assert "expired when the evidence arrived" in str(exc.value)


@pytest.mark.parametrize(
    ("secret", "now", "message"),
    [
        (b"short", T0, "at least 16 bytes"),
        (SECRET, datetime(2026, 1, 1), "timezone-aware"),  # noqa: DTZ001 - the naive datetime is the defect
    ],
    ids=["short-secret", "naive-now"],
)
def test_challenge_rejects_programming_errors(secret: bytes, now: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        issue_challenge(secret, now)


HOLDER, OTHER = "0123456789abcdef", "fedcba9876543210"


def test_challenge_redeemed_by_its_holder(session: Session) -> None:
    nonce = issue_challenge(SECRET, T0, holder=HOLDER).nonce
    redeem_challenge(session, SECRET, nonce, T0, holder=HOLDER)
    assert session.get(UsedNonce, nonce) is not None


def test_challenge_other_holder_invalid(session: Session) -> None:
    """Issue 17, finding 8: the MAC names the licence key the nonce was issued to."""
    nonce = issue_challenge(SECRET, T0, holder=HOLDER).nonce
    with pytest.raises(VerificationFailed) as e:
        redeem_challenge(session, SECRET, nonce, T0, holder=OTHER)
    assert e.value.code == Code.CHALLENGE_INVALID
    assert session.get(UsedNonce, nonce) is None  # refused before it is consumed: its holder can still use it


def test_challenge_holder_needed_when_issued_to_one(session: Session) -> None:
    nonce = issue_challenge(SECRET, T0, holder=HOLDER).nonce
    with pytest.raises(VerificationFailed) as e:
        redeem_challenge(session, SECRET, nonce, T0)
    assert e.value.code == Code.CHALLENGE_INVALID


def test_challenge_unbound_nonce_invalid_for_a_holder() -> None:
    nonce = issue_challenge(SECRET, T0).nonce
    with pytest.raises(VerificationFailed) as e:
        check_nonce(SECRET, nonce, T0, holder=HOLDER)
    assert e.value.code == Code.CHALLENGE_INVALID
