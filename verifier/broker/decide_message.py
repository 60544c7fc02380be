"""The decide task's message, pushed by the API onto its Redis list itself: what ``celery_app.send_task`` writes
there, without the ~0.2 ms of producer machinery (a pooled producer, connection ``ensure`` wrappers, publish retry
policies, queue declaration, signals) it spends per request on one ``LPUSH``, and on the API's own async Redis
client (:class:`verifier.broker.quota.RedisClients`), so sending takes no threadpool hop either.

The message is the one Celery and kombu write, built by their own code where it is Celery's (the protocol 2
headers, properties and body: ``celery_app.amqp.as_task_v2``) and as kombu's virtual transport frames it
(``Channel.prepare_message`` and ``basic_publish``: the JSON envelope, the body base64-encoded, ``delivery_info``
and a ``delivery_tag``), onto the list kombu's Redis transport pushes to for the task's queue (``lpush(<global key
prefix><queue>)``; priority 0). tests/integration/broker/test_decide_message.py checks it against what
``send_task`` itself writes. Only a plain route qualifies: a queue of a direct exchange, which Celery sends to through
the anonymous exchange (straight onto the queue's list), on a Redis broker. Anything else (the embedded SQLite
broker, a topic or fanout exchange) has no route here, and the caller sends through Celery.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from verifier.broker.app import DECIDE_TASK, celery_app
from verifier.broker.notify import supports_pubsub


@dataclass(frozen=True, slots=True)
class DecideRoute:
    """Where a decide message goes: the Redis list (the queue's name after the global key prefix) and the queue's
    routing key as ``delivery_info`` records it."""

    key: str
    queue: str


@cache
def decide_route(broker_url: str, key_prefix: str) -> DecideRoute | None:
    """The list decide messages go to on ``broker_url`` under ``key_prefix`` (kombu's ``global_keyprefix``), or None
    when the API must send through Celery (not Redis, or not a plain queue)."""
    if not supports_pubsub(broker_url):
        return None
    queue = celery_app.amqp.router.route({}, DECIDE_TASK)["queue"]
    if queue.exchange.type != "direct":
        return None  # Celery sends a direct queue's tasks through the anonymous exchange; others go through bindings
    return DecideRoute(key=f"{key_prefix}{queue.name}", queue=queue.name)


def decide_message(attestation_id: str, headers: Mapping[str, str] | None, route: DecideRoute) -> bytes:
    """The message ``send_task(DECIDE_TASK, args=[attestation_id], headers=headers, ignore_result=True)`` would push
    onto ``route.key``: a new task id, the extra ``headers`` merged into Celery's."""
    task_id = str(uuid.uuid4())
    task = celery_app.amqp.as_task_v2(task_id, DECIDE_TASK, args=[attestation_id], kwargs={}, ignore_result=True)
    task_headers: dict[str, Any] = task.headers
    if headers:
        task_headers.update(headers)
    body = json.dumps(task.body).encode()
    envelope = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": task_headers,
        "properties": {
            **task.properties,
            "reply_to": celery_app.thread_oid,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": route.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope).encode()


__all__ = ["DecideRoute", "decide_message", "decide_route"]
