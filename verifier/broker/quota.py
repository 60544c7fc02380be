"""An API request's one Redis round trip: per-licence limits kept in Redis, shared by every API process (requests per
minute and stored bytes per hour, each a counter per fixed window, ``<prefix>keyward:quota:<name>:<window>``,
expiring after two windows), and the configuration generation that says whether the process's cached credentials
and catalog are current (:mod:`verifier.broker.invalidation`), read in the same pipeline.

Async (``redis.asyncio``, the app's clients, :class:`RedisClients`): the request's event loop is never blocked on
Redis and no thread is held. The limits are abuse protection, not a security boundary: with no Redis (the embedded
development profile) there is no limit, and a Redis error lets the request through (logged), as refusing every
enclave while Redis restarts would be worse. The generation fails closed instead: no reading means no cached entry
is trusted (:attr:`Reading.generation_known` is False).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio

from verifier.broker.invalidation import generation_key
from verifier.broker.notify import supports_pubsub

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Spend:
    """Add ``amount`` to counter ``name`` of the window of ``window_seconds`` holding now; at most ``limit``."""

    name: str
    amount: int
    limit: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Reading:
    """What the round trip read: the generation token (``None``: no key) if ``generation_known``, and per spend
    None (within its limit) or the seconds until its window ends (``Retry-After``)."""

    generation_known: bool
    generation: str | None
    waits: tuple[int | None, ...]


_NOT_READ = Reading(generation_known=False, generation=None, waits=())


class RedisClients:
    """An application's async Redis clients, one per broker URL, made on first use in the event loop of its
    lifespan (where it is made) and closed when that lifespan ends. A client's connections belong to one loop:
    :meth:`for_this_loop` says whether the running loop is this one."""

    def __init__(self) -> None:
        self._clients: dict[str, redis.asyncio.Redis] = {}
        self._loop = asyncio.get_running_loop()

    def for_this_loop(self) -> bool:
        return asyncio.get_running_loop() is self._loop

    def get(self, broker_url: str) -> redis.asyncio.Redis:
        client = self._clients.get(broker_url)
        if client is None:
            client = self._clients[broker_url] = _new_client(broker_url)
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def _new_client(broker_url: str) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(broker_url, socket_timeout=2.0, socket_connect_timeout=2.0)


async def round_trip(
    broker_url: str, key_prefix: str, spends: Sequence[Spend], *, now: float, clients: RedisClients | None
) -> Reading:
    """Read the generation and make ``spends``, in one pipeline, on ``clients``' client (an app's, for its
    lifespan, in its loop), or on a connection of its own closed after (an app run without its lifespan, or a
    request in another event loop than the lifespan's: test clients). Without Redis, or when it fails: nothing
    known, nothing limited."""
    if not supports_pubsub(broker_url):
        return _NOT_READ
    if clients is not None and clients.for_this_loop():
        return await _round_trip(clients.get(broker_url), key_prefix, spends, now=now)
    client = _new_client(broker_url)
    try:
        return await _round_trip(client, key_prefix, spends, now=now)
    finally:
        await client.aclose()


async def _round_trip(client: redis.asyncio.Redis, key_prefix: str, spends: Sequence[Spend], *, now: float) -> Reading:
    windows = [int(now // s.window_seconds) for s in spends]
    try:
        pipe = client.pipeline(transaction=False)
        pipe.get(generation_key(key_prefix))
        for spend, window in zip(spends, windows, strict=True):
            key = f"{key_prefix}keyward:quota:{spend.name}:{window}"
            pipe.incrby(key, spend.amount)
            pipe.expire(key, 2 * spend.window_seconds)
        results = await pipe.execute()
    except (redis.RedisError, OSError) as e:
        log.warning("licence quota and cache generation not read (Redis)", extra={"error": type(e).__name__})
        return _NOT_READ
    generation = results[0].decode() if isinstance(results[0], bytes) else None
    if generation is None:  # never set since Redis started (or flushed): set one, unless another process just did
        try:
            generation = await _first_generation(client, generation_key(key_prefix))
        except (redis.RedisError, OSError) as e:
            log.warning("cache generation not set (Redis)", extra={"error": type(e).__name__})
            return Reading(generation_known=False, generation=None, waits=_waits(spends, windows, results, now))
    return Reading(generation_known=True, generation=generation, waits=_waits(spends, windows, results, now))


def _waits(spends: Sequence[Spend], windows: list[int], results: list[Any], now: float) -> tuple[int | None, ...]:
    return tuple(
        None if int(total) <= spend.limit else max(1, int((window + 1) * spend.window_seconds - now) + 1)
        for spend, window, total in zip(spends, windows, results[1::2], strict=True)
    )


async def _first_generation(client: redis.asyncio.Redis, key: str) -> str | None:
    """Set a fresh token where none is (``SET NX``), then read what is there (ours or a racing process's)."""
    await client.set(key, secrets.token_hex(16), nx=True)
    value = await client.get(key)
    return value.decode() if isinstance(value, bytes) else None
