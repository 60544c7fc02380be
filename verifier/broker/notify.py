"""Decision announcements, so an API request waiting with ``Prefer: wait`` answers as soon as a worker commits.

After its transaction commits, the worker publishes on its deployment's Redis channel (:func:`channel_for`:
``broker_key_prefix``, :data:`CHANNEL` and the broker's database number, as Redis pub/sub ignores the database
number: two deployments on one Redis server in databases of their own would otherwise hear each other's ids)
``{"id": ..., "answer": ...}``: the attestation id and the answer the enclave gets
(:func:`verifier.attestation.answers.answer_of`), so the waiting request answers without reading the database; a
redelivered task whose decision was made before announces the id alone. Each API process runs one subscriber task
per event loop that wakes the requests waiting for that id (no thread per waiting request). The database stays the
truth: a request whose announcement carries no answer reads it, and a waiting request still polls it at a slow pace,
so a lost message, a broker without pub/sub (the embedded SQLite profile) or a Redis outage only makes the wait
slower, never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

import redis
import redis.asyncio

CHANNEL: Final = "keyward:decided"
log = logging.getLogger(__name__)


def supports_pubsub(broker_url: str) -> bool:
    return broker_url.startswith(("redis://", "rediss://"))


@lru_cache(maxsize=4)
def redis_client(broker_url: str) -> redis.Redis:
    """One Redis client per broker URL and process (pub/sub publishing, licence quotas)."""
    return redis.Redis.from_url(broker_url, socket_timeout=2.0, socket_connect_timeout=2.0)


def channel_for(broker_url: str, key_prefix: str = "") -> str:
    """The decision channel of the deployment whose broker is ``broker_url``: ``<prefix>keyward:decided:db<N>``."""
    path = urlsplit(broker_url).path.strip("/") if supports_pubsub(broker_url) else ""
    database = int(path) if path.isdigit() else 0  # redis-py's own default: database 0
    return f"{key_prefix}{CHANNEL}:db{database}"


def publish_decided(
    broker_url: str, attestation_id: str, *, key_prefix: str = "", answer: Mapping[str, Any] | None = None
) -> None:
    """Best effort, after commit: a failure is logged and the waiting request falls back to polling. With
    ``answer`` (the decision's answer to the enclave, JSON-ready), the message is ``{"id": ..., "answer": ...}`` and
    the waiting request answers from it without reading the database; else it is the id alone."""
    if not supports_pubsub(broker_url):
        return
    message = attestation_id if answer is None else json.dumps({"id": attestation_id, "answer": answer})
    try:
        redis_client(broker_url).publish(channel_for(broker_url, key_prefix), message)
    except redis.RedisError as e:
        log.warning("decision notification not sent", extra={"error": type(e).__name__})


class Wake:
    """One waiting request's slot: ``event`` is set when its id is announced; ``answer`` is the decision's answer
    when the announcement carried one (:func:`publish_decided`'s ``answer``), else None (read the database)."""

    __slots__ = ("answer", "event")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.answer: dict[str, Any] | None = None


class DecisionWaiter:
    """One subscriber task per event loop (an API process's), never a thread per waiting request: ``waiting(id)``
    yields a :class:`Wake` whose event is set when that id is announced."""

    def __init__(self, broker_url: str, *, key_prefix: str = "") -> None:
        self._url = broker_url
        self._channel = channel_for(broker_url, key_prefix)
        self._wakes: dict[str, list[Wake]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    @asynccontextmanager
    async def waiting(self, attestation_id: str) -> AsyncIterator[Wake]:
        """Register before the task is sent (so the announcement cannot be missed); the first wait in a process
        also waits (up to a second) for the subscription itself."""
        wake = Wake()
        self._wakes.setdefault(attestation_id, []).append(wake)
        try:
            if self._ensure_started():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_SECONDS)
            yield wake
        finally:
            wakes = self._wakes.get(attestation_id, [])
            if wake in wakes:
                wakes.remove(wake)
            if not wakes:
                self._wakes.pop(attestation_id, None)

    async def aclose(self) -> None:
        """Stop the subscriber task (its connection closes as it ends)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _ensure_started(self) -> bool:
        if not supports_pubsub(self._url):
            return False
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="keyward-decisions")
        return not self._subscribed.is_set()

    async def _listen(self) -> None:
        while True:
            client = redis.asyncio.Redis.from_url(self._url, socket_connect_timeout=2.0)
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        self._wake(message.get("data"))
            except (redis.RedisError, OSError) as e:
                self._subscribed.clear()
                log.warning("decision subscriber reconnecting", extra={"error": type(e).__name__})
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    def _wake(self, data: object) -> None:
        if not isinstance(data, bytes):
            return
        answer: dict[str, Any] | None = None
        if data.startswith(b"{"):
            try:
                message = json.loads(data)
                ident, answer = str(message["id"]), message.get("answer")
            except (ValueError, KeyError, TypeError):
                return
        else:
            ident = data.decode(errors="replace")
        for wake in self._wakes.get(ident, ()):
            wake.answer = answer if isinstance(answer, dict) else None
            wake.event.set()


#: The longest the first wait of a process waits for its subscription (then polling covers a missed message).
SUBSCRIBE_WAIT_SECONDS: Final = 1.0
_waiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], DecisionWaiter]] = (
    weakref.WeakKeyDictionary()
)


async def close_waiters() -> None:
    """Stop the running event loop's subscriber tasks (an app's lifespan ends)."""
    for waiter in _waiters.pop(asyncio.get_running_loop(), {}).values():
        await waiter.aclose()


def waiter_for(broker_url: str, key_prefix: str = "") -> DecisionWaiter:
    """The running event loop's waiter for the deployment (its subscriber task belongs to that loop)."""
    per_loop = _waiters.setdefault(asyncio.get_running_loop(), {})
    key = (broker_url, key_prefix)
    if key not in per_loop:
        per_loop[key] = DecisionWaiter(broker_url, key_prefix=key_prefix)
    return per_loop[key]
