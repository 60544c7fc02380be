"""Decision notifications, so an API request waiting with ``Prefer: wait`` answers as soon as a worker commits.

The worker publishes the attestation id on its deployment's Redis channel (:func:`channel_for`: ``broker_key_prefix``,
:data:`CHANNEL` and the broker's database number, as Redis pub/sub ignores the database number: two deployments on
one Redis server in databases of their own would otherwise hear each other's ids) after its transaction commits.
Each API process runs one subscriber thread that wakes the requests waiting for that id. The message is only a hint:
the API always re-reads the attestation from the database, and still polls it at a slow pace, so a lost message, a
broker without pub/sub (the embedded SQLite profile) or a Redis outage only makes the wait slower, never wrong.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Final
from urllib.parse import urlsplit

import redis

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


def publish_decided(broker_url: str, attestation_id: str, *, key_prefix: str = "") -> None:
    """Best effort, after commit: a failure is logged and the waiting request falls back to polling."""
    if not supports_pubsub(broker_url):
        return
    try:
        redis_client(broker_url).publish(channel_for(broker_url, key_prefix), attestation_id)
    except redis.RedisError as e:
        log.warning("decision notification not sent", extra={"error": type(e).__name__})


class DecisionWaiter:
    """One subscriber thread per process; ``waiting(id)`` yields an Event set when that id is announced."""

    def __init__(self, broker_url: str, *, key_prefix: str = "") -> None:
        self._url = broker_url
        self._channel = channel_for(broker_url, key_prefix)
        self._events: dict[str, list[threading.Event]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @contextmanager
    def waiting(self, attestation_id: str) -> Iterator[threading.Event]:
        event = threading.Event()
        self._ensure_started()
        with self._lock:
            self._events.setdefault(attestation_id, []).append(event)
        try:
            yield event
        finally:
            with self._lock:
                events = self._events.get(attestation_id, [])
                if event in events:
                    events.remove(event)
                if not events:
                    self._events.pop(attestation_id, None)

    def _ensure_started(self) -> None:
        if self._thread is not None or not supports_pubsub(self._url):
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._listen, name="keyward-decisions", daemon=True)
                self._thread.start()

    def _listen(self) -> None:
        stop = threading.Event()
        while not stop.is_set():
            try:
                client = redis.Redis.from_url(self._url, socket_connect_timeout=2.0)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self._channel)
                for message in pubsub.listen():  # type: ignore[no-untyped-call]  # redis-py leaves listen() unannotated
                    self._wake(message.get("data"))
            except redis.RedisError as e:
                log.warning("decision subscriber reconnecting", extra={"error": type(e).__name__})
                stop.wait(1.0)

    def _wake(self, data: object) -> None:
        if not isinstance(data, bytes):
            return
        with self._lock:
            events = list(self._events.get(data.decode(errors="replace"), []))
        for event in events:
            event.set()


@lru_cache(maxsize=4)
def waiter_for(broker_url: str, key_prefix: str = "") -> DecisionWaiter:
    return DecisionWaiter(broker_url, key_prefix=key_prefix)
