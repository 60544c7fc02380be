"""Decision notifications over real Redis pub/sub: a hint that wakes waiting API requests early."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX
from verifier.broker.notify import DecisionWaiter, Wake, channel_for, publish_decided, supports_pubsub, waiter_for


async def _publish_until_woken(waiter_id: str, wake: Wake, timeout: float = 5.0, **kwargs: object) -> None:
    # The subscriber task connects asynchronously; publish until it has heard one (bounded).
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not wake.event.is_set():
        publish_decided(TEST_BROKER, waiter_id, key_prefix=TEST_KEY_PREFIX, **kwargs)  # type: ignore[arg-type]
        await asyncio.sleep(0.05)


async def _not_woken(wake: Wake, seconds: float = 0.5) -> bool:
    try:
        await asyncio.wait_for(wake.event.wait(), seconds)
    except TimeoutError:
        return True
    return False


def test_decision_waiter_wakes_on_the_matching_id_only() -> None:
    async def scenario() -> None:
        waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
        mine, other = str(uuid.uuid4()), str(uuid.uuid4())
        async with waiter.waiting(mine) as wake, waiter.waiting(other) as other_wake:
            await _publish_until_woken(mine, wake)
            assert wake.event.is_set()
            assert wake.answer is None  # the id alone: the waiting request reads the database
            assert not other_wake.event.is_set()

    asyncio.run(scenario())


def test_decision_waiter_hands_over_the_announced_answer() -> None:
    """A worker that announces the answer with the id spares the waiting request its database read."""

    async def scenario() -> None:
        waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
        ident = str(uuid.uuid4())
        answer = {"id": ident, "status": "accepted", "status_url": f"/v1/attestations/{ident}"}
        async with waiter.waiting(ident) as wake:
            await _publish_until_woken(ident, wake, answer=answer)
            assert wake.answer == answer

    asyncio.run(scenario())


def test_decision_waiter_malformed_announcement_ignored() -> None:
    """A message that is neither an id nor a well-formed announcement wakes nobody and stops nothing."""

    async def scenario() -> None:
        waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
        ident = str(uuid.uuid4())
        async with waiter.waiting(ident) as wake:
            from verifier.broker.notify import redis_client

            for _ in range(5):
                redis_client(TEST_BROKER).publish(channel_for(TEST_BROKER, TEST_KEY_PREFIX), b"{not json")
                redis_client(TEST_BROKER).publish(
                    channel_for(TEST_BROKER, TEST_KEY_PREFIX), json.dumps({"answer": {}}).encode()
                )
            assert await _not_woken(wake)
            await _publish_until_woken(ident, wake)  # still listening
            assert wake.event.is_set()

    asyncio.run(scenario())


def test_decision_waiter_ignores_another_key_prefix() -> None:
    """Two deployments (or test runs) on one Redis: a decision announced under another prefix wakes no waiter."""

    async def scenario() -> None:
        waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
        probe, ident = str(uuid.uuid4()), str(uuid.uuid4())
        async with waiter.waiting(probe) as subscribed:  # the subscriber task is listening once this wakes
            await _publish_until_woken(probe, subscribed)
            assert subscribed.event.is_set()
        async with waiter.waiting(ident) as wake:
            for _ in range(5):
                publish_decided(TEST_BROKER, ident, key_prefix=TEST_KEY_PREFIX + "other:")
            assert await _not_woken(wake)

    asyncio.run(scenario())


def test_decision_waiter_ignores_another_redis_database() -> None:
    """Two deployments on one Redis server in databases of their own (pub/sub ignores the database number): a
    decision announced by the other wakes no waiter."""
    other_database = TEST_BROKER.rsplit("/", 1)[0] + "/" + str((int(TEST_BROKER.rsplit("/", 1)[1]) + 1) % 16)
    assert channel_for(other_database, TEST_KEY_PREFIX) != channel_for(TEST_BROKER, TEST_KEY_PREFIX)

    async def scenario() -> None:
        waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
        probe, ident = str(uuid.uuid4()), str(uuid.uuid4())
        async with waiter.waiting(probe) as subscribed:
            await _publish_until_woken(probe, subscribed)
            assert subscribed.event.is_set()
        async with waiter.waiting(ident) as wake:
            for _ in range(5):
                publish_decided(other_database, ident, key_prefix=TEST_KEY_PREFIX)
            assert await _not_woken(wake)

    asyncio.run(scenario())


def test_decision_waiter_one_per_event_loop() -> None:
    """A waiter's subscriber task belongs to its event loop: each loop gets its own, a loop keeps its own."""

    async def get() -> DecisionWaiter:
        first = waiter_for(TEST_BROKER, TEST_KEY_PREFIX)
        assert waiter_for(TEST_BROKER, TEST_KEY_PREFIX) is first
        return first

    assert asyncio.run(get()) is not asyncio.run(get())


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
    async def scenario() -> None:
        waiter = DecisionWaiter(TEST_BROKER, key_prefix=TEST_KEY_PREFIX)
        ident = str(uuid.uuid4())
        async with waiter.waiting(ident):
            assert ident in waiter._wakes
        assert ident not in waiter._wakes

    asyncio.run(scenario())


def test_notify_without_pubsub_is_a_no_op() -> None:
    url = "sqla+sqlite:////tmp/never-created.db"
    assert not supports_pubsub(url)
    publish_decided(url, "x")  # nothing to send, nothing raised

    async def scenario() -> None:
        async with DecisionWaiter(url).waiting("x") as wake:
            assert await _not_woken(wake, 0.05)

    asyncio.run(scenario())


def test_notify_with_redis_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        publish_decided("redis://127.0.0.1:1/0", str(uuid.uuid4()))
    [record] = [r for r in caplog.records if r.getMessage() == "decision notification not sent"]
    assert record.levelno == logging.WARNING
    assert record.__dict__["error"] == "ConnectionError"
