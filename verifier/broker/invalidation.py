"""The Redis keys that say whether a process's cached credentials and licence catalog, or its cached vendor
collateral rows, are still current.

``<prefix>keyward:config:generation`` holds a random token, replaced (:func:`bump`) after every commit that changes
a credential, a customer, an entitlement, a model or a model version (:mod:`verifier.auth.cache` watches the
commits). An API process tags each cached entry with the token it read *before* the database read that filled it,
and uses the entry only while the token it reads for the request (one ``GET`` in the request's one Redis round trip,
beside the licence quotas) is the same. So a revocation, a suspension or a catalog edit is seen by every API process
from the moment its commit's :func:`bump` returns, which is before the staff member's request is answered.

A random token, not a counter: a Redis restart empties the key, and a counter started again could come back to a
value some process cached under. No key at all (a restart, a flush) is a token too (``None``), different from
every token :func:`bump` writes.

The vendor-collateral rows a worker keeps (:mod:`verifier.worker.collateral_rows`) follow the same rule under a key
of their own, ``<prefix>keyward:collateral:generation`` (:func:`bump_collateral`, :func:`read_collateral_generation`),
replaced after every commit that changes ``collateral_cache``: the two change at different paces, and a collateral
refresh need not empty every API process's credential cache.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final, Generic, TypeVar

import redis

from verifier.broker.notify import redis_client, supports_pubsub

GENERATION_KEY: Final = "keyward:config:generation"
COLLATERAL_GENERATION_KEY: Final = "keyward:collateral:generation"
log = logging.getLogger(__name__)


def generation_key(key_prefix: str) -> str:
    return f"{key_prefix}{GENERATION_KEY}"


def collateral_generation_key(key_prefix: str) -> str:
    return f"{key_prefix}{COLLATERAL_GENERATION_KEY}"


def bump(broker_url: str, key_prefix: str) -> bool:
    """Replace the generation token; False (logged as an error) if Redis cannot be reached. Then no API process
    trusts a cached entry before it reads a token again, and with Redis unreachable they read none and use the
    database (:mod:`verifier.auth.cache`); entries also expire on their own (``ENTRY_TTL_SECONDS``)."""
    if not supports_pubsub(broker_url):
        return True  # no Redis: nothing is cached anywhere
    try:
        redis_client(broker_url).set(generation_key(key_prefix), secrets.token_hex(16))
    except redis.RedisError as e:
        log.error("cached credentials not invalidated (Redis); they expire on their own", extra={"error": str(e)})
        return False
    return True


def bump_collateral(broker_url: str, key_prefix: str) -> bool:
    """Replace the collateral generation token; False (logged as an error) if Redis cannot be reached. Then no
    worker trusts its cached rows before it reads a token again, and with Redis unreachable they read none and use
    the database; cached rows also expire on their own."""
    if not supports_pubsub(broker_url):
        return True  # no Redis: no worker caches collateral rows
    try:
        redis_client(broker_url).set(collateral_generation_key(key_prefix), secrets.token_hex(16))
    except redis.RedisError as e:
        log.error("cached collateral rows not invalidated (Redis); they expire on their own", extra={"error": str(e)})
        return False
    return True


def read_collateral_generation(broker_url: str, key_prefix: str) -> str | None:
    """The collateral generation token now (one ``GET``), or None when none can be read (no Redis, or Redis
    failing: trust no cached row). No key yet (a Redis restart, a flush): a fresh token is set (``SET NX``) and read
    back, so a token some process cached under before the key vanished never comes back."""
    if not supports_pubsub(broker_url):
        return None
    key = collateral_generation_key(key_prefix)
    client = redis_client(broker_url)
    try:
        value = client.get(key)
        if value is None:
            client.set(key, secrets.token_hex(16), nx=True)
            value = client.get(key)
    except (redis.RedisError, OSError) as e:
        log.warning("collateral generation not read (Redis)", extra={"error": type(e).__name__})
        return None
    return value.decode() if isinstance(value, bytes) else None


V = TypeVar("V")


class GenerationCache(Generic[V]):
    """A bounded map whose entries count only under the generation token they were filled under, for at most
    ``ttl_seconds``, least recently used dropped first past ``max_entries``. Thread-safe (the API's threadpool fills
    one while its event loop reads it)."""

    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self._entries: OrderedDict[Hashable, tuple[str, float, V]] = OrderedDict()
        self._max, self._ttl = max_entries, ttl_seconds
        self._lock = threading.Lock()

    def get(self, key: Hashable, generation: str | None) -> V | None:
        """The value under ``generation`` (a token read just now), or None: absent, filled under another token,
        expired, or ``generation`` is None (no token: trust nothing)."""
        if generation is None:
            return None
        with self._lock:
            entry = self._entries.get(key)
        if entry is None:
            return None
        tag, filled, value = entry
        if tag != generation or time.monotonic() - filled > self._ttl:
            return None
        return value

    def put(self, key: Hashable, generation: str | None, value: V) -> None:
        """Keep ``value`` under ``generation``, the token read *before* the read that produced it (None: not
        kept)."""
        if generation is None:
            return
        with self._lock:
            self._entries[key] = (generation, time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
