"""Per-licence limits kept in Redis, shared by every API process: requests per minute and stored bytes per hour,
each a counter per fixed window (``<prefix>keyward:quota:<name>:<window>``, expiring after two windows).

Abuse protection, not a security boundary: with no Redis (the embedded development profile) there is no limit, and
a Redis error lets the request through (logged), as refusing every enclave while Redis restarts would be worse.
"""

from __future__ import annotations

import logging

import redis

from verifier.broker.notify import redis_client, supports_pubsub

log = logging.getLogger(__name__)


def spend(
    broker_url: str, key_prefix: str, name: str, amount: int, *, limit: int, window_seconds: int, now: float
) -> int | None:
    """Add ``amount`` to ``name``'s counter of the window holding ``now``; None while the total stays within
    ``limit``, otherwise the seconds until that window ends (what ``Retry-After`` says)."""
    if not supports_pubsub(broker_url):
        return None
    window = int(now // window_seconds)
    key = f"{key_prefix}keyward:quota:{name}:{window}"
    try:
        pipe = redis_client(broker_url).pipeline()
        pipe.incrby(key, amount)
        pipe.expire(key, 2 * window_seconds)
        total, _ = pipe.execute()
    except redis.RedisError as e:
        log.warning("licence quota not checked (Redis)", extra={"error": type(e).__name__})
        return None
    if int(total) <= limit:
        return None
    return max(1, int((window + 1) * window_seconds - now) + 1)
