"""Two deployments or test runs sharing one Redis: each one's tasks wait under its own key prefix, where no worker
or queue-depth probe of the other looks."""

from __future__ import annotations

import pytest
import redis
from celery import Celery

from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX
from verifier.broker.transport import transport_options
from verifier.observability.health import broker_queue_depth
from verifier.testing.databases import purge_keys


def _app(prefix: str) -> Celery:
    app = Celery("isolation", broker=TEST_BROKER)
    app.conf.broker_transport_options = transport_options(TEST_BROKER, 60, prefix)
    return app


def test_broker_task_queued_under_its_key_prefix_only() -> None:
    mine, theirs = TEST_KEY_PREFIX + "a:", TEST_KEY_PREFIX + "b:"
    try:
        _app(mine).send_task("keyward.isolation_probe", args=["x"])
        assert redis.Redis.from_url(TEST_BROKER).llen(mine + "celery") == 1
        assert broker_queue_depth(TEST_BROKER, key_prefix=mine) == 1
        assert broker_queue_depth(TEST_BROKER, key_prefix=theirs) == 0
    finally:
        purge_keys(TEST_BROKER, mine)
        purge_keys(TEST_BROKER, theirs)
    assert broker_queue_depth(TEST_BROKER, key_prefix=mine) == 0


def test_purge_keys_refuses_an_empty_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        purge_keys(TEST_BROKER, "")
