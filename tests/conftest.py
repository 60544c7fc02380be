"""Shared fixtures, and this run's own broker keys.

Two test runs on one machine (two clones, or CI beside a developer) share the local Redis and PostgreSQL servers.
Each run has its own PostgreSQL databases (``scratch_database``) and puts its own prefix before every Redis key and
channel: set here, before anything reads Settings, so the in-process Celery app and every worker, API and beat process
a test starts (they inherit the environment) use it. The run's keys are deleted when it ends."""

from __future__ import annotations

import contextlib
import os
import uuid

os.environ["KEYWARD_BROKER_KEY_PREFIX"] = f"keyward-test-{uuid.uuid4().hex[:12]}:"

from collections.abc import Iterator

import pytest

from verifier.trust.store import TrustStore, load_trust_store


@pytest.fixture(scope="session")
def trust() -> TrustStore:
    return load_trust_store()


@pytest.fixture(scope="session", autouse=True)
def run_broker_keys() -> Iterator[None]:
    """Delete this run's Redis keys at the end (those of tests that stopped before cleaning up)."""
    yield
    from redis.exceptions import RedisError

    from tests.support.service import TEST_BROKER, TEST_KEY_PREFIX
    from verifier.testing.databases import purge_keys

    with contextlib.suppress(RedisError):  # no Redis on this machine: nothing was written
        purge_keys(TEST_BROKER, TEST_KEY_PREFIX)
