"""Challenge nonces: stateless to issue, single use to redeem.

Layout of a nonce (32 bytes)::

    offset  size  field
    0       8     expiry, unix seconds, unsigned big-endian
    8       8     random bytes (os.urandom)
    16      16    HMAC-SHA256(secret, bytes 0..15 || holder), first 16 bytes

``holder`` is the key id of the licence key that asked for the challenge (ASCII; empty for a nonce bound to no
one): it is in the MAC, not in the nonce, so a nonce verifies only for the licence key it was issued to, and one
licence's nonce used in another licence's attestation is ``challenge.invalid`` (issue 17, finding 8). The API
checks it with the caller's key id before it stores a request, and stores that key id with it for the decision.

Issuing touches no storage: any worker holding ``secret`` can check a nonce it did not issue. Redeeming checks,
in order: (1) the length, (2) the MAC, compared in constant time, before anything in the nonce is trusted,
(3) the expiry, as of when the evidence carrying it arrived (the worker may decide later: it waited for vendor
collateral, or the request was requeued after a lost dispatch), and that the decision comes within
:data:`MAX_DECISION_DELAY` of that arrival, then (4) consumes the nonce by inserting a
:class:`~verifier.db.models.UsedNonce` row; the primary key makes a second redemption fail in any worker, before or
after a restart, and even while the first redemption's transaction is still open (the second insert waits for it,
then fails).

The caller owns the session and commits; nothing here commits. The SQL is in
:mod:`verifier.attestation.repository`. Consuming the nonce is part of the caller's
transaction, so a rolled-back attestation leaves its nonce unused. Errors are
:class:`~verifier.errors.VerificationFailed` with ``challenge.*`` codes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session

from verifier.attestation import repository
from verifier.errors import Code, VerificationFailed

NONCE_BYTES: Final = 32
DEFAULT_TTL: Final = timedelta(minutes=5)
#: The longest a received request may wait for its decision; an older one is rejected ``challenge.expired``.
#: Consumed nonces are kept this long past their expiry, so a copy received in time but decided late still
#: finds its twin's row (see :func:`purge_used_nonces`).
MAX_DECISION_DELAY: Final = timedelta(hours=1)
_EXPIRY: Final = struct.Struct(">Q")
_RANDOM_BYTES: Final = 8
_SIGNED_BYTES: Final = _EXPIRY.size + _RANDOM_BYTES  # 16
_MAC_BYTES: Final = NONCE_BYTES - _SIGNED_BYTES  # 16
_MIN_SECRET_BYTES: Final = 16


@dataclass(frozen=True, slots=True)
class Challenge:
    """A fresh nonce for an attester to bind into its evidence (``nonce_b64`` is unpadded base64url)."""

    nonce: bytes
    nonce_b64: str
    expires_at: datetime


def _mac(secret: bytes, signed: bytes, holder: str) -> bytes:
    # ``signed`` has a fixed length, so signed || holder is unambiguous.
    return hmac.new(secret, signed + holder.encode("ascii"), hashlib.sha256).digest()[:_MAC_BYTES]


def _check_inputs(secret: bytes, now: datetime) -> None:
    if len(secret) < _MIN_SECRET_BYTES:
        raise ValueError(f"challenge secret must be at least {_MIN_SECRET_BYTES} bytes")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def issue_challenge(secret: bytes, now: datetime, ttl: timedelta = DEFAULT_TTL, *, holder: str = "") -> Challenge:
    """A new nonce for ``holder`` (a licence key id) that expires ``ttl`` after ``now`` (rounded down to whole
    seconds). No I/O."""
    _check_inputs(secret, now)
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    expiry = int((now + ttl).timestamp())
    signed = _EXPIRY.pack(expiry) + os.urandom(_RANDOM_BYTES)
    nonce = signed + _mac(secret, signed, holder)
    return Challenge(
        nonce=nonce,
        nonce_b64=base64.urlsafe_b64encode(nonce).rstrip(b"=").decode("ascii"),
        expires_at=datetime.fromtimestamp(expiry, UTC),
    )


def decode_nonce(text: str) -> bytes:
    """The bytes of a ``nonce_b64`` as sent back by an attester; ``challenge.invalid`` if it is not base64url."""
    try:
        raw = text.encode("ascii")
        return base64.b64decode(raw + b"=" * (-len(raw) % 4), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as e:
        raise VerificationFailed(Code.CHALLENGE_INVALID, "nonce is not base64url") from e


def check_nonce(secret: bytes, nonce: bytes, received: datetime, *, holder: str = "") -> datetime:
    """Steps 1-3 of :func:`redeem_challenge`, statelessly (no database, no single-use check): ``nonce`` has the
    right length, carries this service's MAC for ``holder`` and had not expired when the evidence was
    ``received``. The API runs
    this before it stores anything, so a forged or stale nonce is refused at once; the decision runs it again and
    then consumes the nonce. Returns the nonce's expiry. ``challenge.invalid`` / ``challenge.expired``."""
    # 1. Length.
    if len(nonce) != NONCE_BYTES:
        raise VerificationFailed(
            Code.CHALLENGE_INVALID, "nonce has the wrong length", expected=NONCE_BYTES, actual=len(nonce)
        )
    signed, mac = nonce[:_SIGNED_BYTES], nonce[_SIGNED_BYTES:]
    # 2. MAC, in constant time. A nonce that fails it is reported as invalid whatever its expiry field says:
    #    nothing in an unauthenticated nonce is trusted.
    if not hmac.compare_digest(mac, _mac(secret, signed, holder)):
        raise VerificationFailed(
            Code.CHALLENGE_INVALID, "nonce MAC does not verify (not issued by this service to this licence key)"
        )
    # 3. Expiry.
    (expiry,) = _EXPIRY.unpack_from(signed)
    expires_at = datetime.fromtimestamp(expiry, UTC)
    if received >= expires_at:
        raise VerificationFailed(
            Code.CHALLENGE_EXPIRED,
            "nonce had expired when the evidence arrived",
            expected=f"before {expires_at.isoformat()}",
            actual=received,
        )
    return expires_at


def redeem_challenge(
    session: Session,
    secret: bytes,
    nonce: bytes,
    now: datetime,
    *,
    received_at: datetime | None = None,
    holder: str = "",
) -> None:
    """Check ``nonce`` and consume it for good (one INSERT in the caller's transaction; never commits).

    ``received_at`` is when the service received the evidence carrying the nonce (server time, stored with the
    request; default ``now``); it must be before the nonce's expiry. ``holder``: the key id of the licence key the
    request came with (stored with it), which the nonce's MAC must name. A replay is a new request, received later.

    Raises ``challenge.invalid`` (wrong length or MAC), ``challenge.expired`` (received at or past its expiry) or
    ``challenge.replayed`` (already redeemed, possibly by another worker whose transaction is still open).
    """
    expires_at = redeemable(secret, nonce, now, received_at=received_at, holder=holder)  # steps 1-3
    # 4. Single use: the primary key on used_nonces.nonce, in one round trip. ON CONFLICT DO NOTHING inserts no row
    #    for a nonce already there (or waits for an open transaction that inserted it, then inserts nothing if that
    #    one commits); the caller's transaction stays usable either way, so no SAVEPOINT is needed.
    if not repository.insert_used_nonce(session, bytes(nonce), now, expires_at):
        raise replayed()


def redeemable(
    secret: bytes, nonce: bytes, now: datetime, *, received_at: datetime | None = None, holder: str = ""
) -> datetime:
    """Steps 1-3 of :func:`redeem_challenge` (no database), and that the decision comes within
    :data:`MAX_DECISION_DELAY` of the arrival: the nonce's expiry, which its used-nonce row keeps. A caller that
    consumes the nonce in a statement of its own raises :func:`replayed` when that inserted no row."""
    _check_inputs(secret, now)
    received = now if received_at is None else received_at
    if received.tzinfo is None:  # SQLite hands back naive UTC
        received = received.replace(tzinfo=UTC)
    received = min(received, now)  # a host's clock a little ahead of the deciding worker's
    if now - received > MAX_DECISION_DELAY:
        raise VerificationFailed(
            Code.CHALLENGE_EXPIRED,
            "the request waited too long for its decision; attest again with a fresh nonce",
            expected=f"decided within {MAX_DECISION_DELAY} of arrival",
            actual=now - received,
        )
    return check_nonce(secret, nonce, received, holder=holder)


def replayed() -> VerificationFailed:
    """``challenge.replayed``: the nonce's used-nonce row was already there."""
    return VerificationFailed(Code.CHALLENGE_REPLAYED, "nonce has already been used")


def purge_used_nonces(session: Session, now: datetime) -> int:
    """Delete consumed nonces that have expired; returns how many. Never commits.

    A row is kept until :data:`MAX_DECISION_DELAY` after its nonce's expiry: a copy of the nonce received after
    the expiry fails step 3 anyway, and one received before it must be decided within the delay, while the row
    that catches it as a replay still exists."""
    return repository.delete_used_nonces(session, expired_before=now - MAX_DECISION_DELAY)
