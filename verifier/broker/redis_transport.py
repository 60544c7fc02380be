"""kombu's Redis transport, with one fix: a worker survives losing its Redis connection while it holds messages.

When the connection to Redis drops (Redis restarts, its host goes away), Celery's consumer closes the broken
connection before reconnecting. Closing the channel restores the messages the worker had taken but not yet
acknowledged, which needs a Redis client; by then the transport has been collected and has no connection details,
so kombu 5.7 raises ``AttributeError`` (``'NoneType' object has no attribute 'hostname'``), which is not one of the
connection errors the consumer ignores: the worker exits with "Unrecoverable error" instead of reconnecting
(seen in tests/integration/faults/test_restarts.py). Here that case raises redis' ``ConnectionError`` instead, a
connection error, so the close goes on and the worker reconnects. The messages it held are not lost: they stay in
Redis' unacknowledged set until the visibility timeout (if Redis kept them), and their requests stay pending until
beat sends them again (verifier/attestation/pending.py).

Registered for ``redis://`` and ``rediss://`` by :func:`verifier.broker.transport.register_transports`.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:  # the transport was collected: the connection is gone
            raise RedisConnectionError("the broker connection is closed")
        return super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]  # kombu: untyped


class Transport(kombu_redis.Transport):
    Channel = Channel
