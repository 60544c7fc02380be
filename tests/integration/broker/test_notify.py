"""Decision notifications over real Redis pub/sub: a hint that wakes waiting API requests early."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import pytest

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX
from verifier.broker.notify import DecisionWaiter, channel_for, publish_decided, supports_pubsub


def _publish_until_woken(waiter_id: str, event_is_set: Callable[[], bool], timeout: float = 5.0) -> None:
    # The subscriber thread connects asynchronously; publish until it has heard one (bounded).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not event_is_set():
        publish_decided(TEST_BROKER, waiter_id, key_prefix=TEST_KEY_PREFIX)
        time.sleep(0.05)


def test_decision_waiter_wakes_on_the_matching_id_only() -> None:
    waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    with waiter.waiting(mine) as event, waiter.waiting(other) as other_event:
        _publish_until_woken(mine, event.is_set)
        assert event.is_set()
        assert not other_event.is_set()


def test_decision_waiter_ignores_another_key_prefix() -> None:
    """Two deployments (or test runs) on one Redis: a decision announced under another prefix wakes no waiter."""
    waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
    probe, ident = str(uuid.uuid4()), str(uuid.uuid4())
    with waiter.waiting(probe) as subscribed:  # the subscriber thread is listening once this wakes
        _publish_until_woken(probe, subscribed.is_set)
        assert subscribed.is_set()
    with waiter.waiting(ident) as event:
        for _ in range(5):
            publish_decided(TEST_BROKER, ident, key_prefix=TEST_KEY_PREFIX + "other:")
        assert not event.wait(0.5)


def test_decision_waiter_ignores_another_redis_database() -> None:
    """Two deployments on one Redis server in databases of their own (pub/sub ignores the database number): a
    decision announced by the other wakes no waiter."""
    other_database = TEST_BROKER.rsplit("/", 1)[0] + "/" + str((int(TEST_BROKER.rsplit("/", 1)[1]) + 1) % 16)
    assert channel_for(other_database, TEST_KEY_PREFIX) != channel_for(TEST_BROKER, TEST_KEY_PREFIX)
    waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
    probe, ident = str(uuid.uuid4()), str(uuid.uuid4())
    with waiter.waiting(probe) as subscribed:
        _publish_until_woken(probe, subscribed.is_set)
        assert subscribed.is_set()
    with waiter.waiting(ident) as event:
        for _ in range(5):
            publish_decided(other_database, ident, key_prefix=TEST_KEY_PREFIX)
        assert not event.wait(0.5)


@pytest.mark.parametrize(
    ("url", "channel"),
    [
        ("redis://127.0.0.1:6379/9", "p:keyward:decided:db9"),
        ("redis://127.0.0.1:6379", "p:keyward:decided:db0"),
        ("rediss://cache.example:6380/3", "p:keyward:decided:db3"),
    ],
)
def test_channel_for_names_the_database(url: str, channel: str) -> None:
    assert channel_for(url, "p:") == channel


def test_decision_waiter_forgets_ids_after_the_wait() -> None:
    waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
    ident = str(uuid.uuid4())
    with waiter.waiting(ident):
        pass
    assert ident not in waiter._events


def test_notify_without_pubsub_is_a_no_op() -> None:
    url = "sqla+sqlite:////tmp/never-created.db"
    assert not supports_pubsub(url)
    publish_decided(url, "x")  # nothing to send, nothing raised
    with DecisionWaiter(url).waiting("x") as event:
        assert not event.wait(0.05)


def test_notify_with_redis_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        publish_decided("redis://127.0.0.1:1/0", str(uuid.uuid4()))
    [record] = [r for r in caplog.records if r.getMessage() == "decision notification not sent"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["error"] == "ConnectionError"
