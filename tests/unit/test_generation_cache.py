"""The generation-tagged cache (verifier/broker/invalidation.py) behind the API's credential and catalog caches and
the worker's collateral rows."""

from __future__ import annotations

import pytest

from verifier.broker.invalidation import GenerationCache


def test_generation_cache_hit_under_the_same_token() -> None:
    cache: GenerationCache[str] = GenerationCache(max_entries=10, ttl_seconds=30)
    cache.put("k", "g1", "v")
    assert cache.get("k", "g1") == "v"


def test_generation_cache_miss_under_another_token() -> None:
    cache: GenerationCache[str] = GenerationCache(max_entries=10, ttl_seconds=30)
    cache.put("k", "g1", "v")
    assert cache.get("k", "g2") is None


def test_generation_cache_no_token_trusts_nothing() -> None:
    cache: GenerationCache[str] = GenerationCache(max_entries=10, ttl_seconds=30)
    cache.put("k", "g1", "v")
    assert cache.get("k", None) is None


def test_generation_cache_filled_without_a_token_keeps_nothing() -> None:
    cache: GenerationCache[str] = GenerationCache(max_entries=10, ttl_seconds=30)
    cache.put("k", None, "v")
    assert cache.get("k", "g1") is None


def test_generation_cache_entry_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("verifier.broker.invalidation.time.monotonic", lambda: clock[0])
    cache: GenerationCache[str] = GenerationCache(max_entries=10, ttl_seconds=30)
    cache.put("k", "g1", "v")
    clock[0] += 30.5
    assert cache.get("k", "g1") is None


def test_generation_cache_bounded_oldest_evicted() -> None:
    cache: GenerationCache[int] = GenerationCache(max_entries=2, ttl_seconds=30)
    for i in range(3):
        cache.put(i, "g", i)
    assert (cache.get(0, "g"), cache.get(1, "g"), cache.get(2, "g")) == (None, 1, 2)


def test_generation_cache_clear_empties() -> None:
    cache: GenerationCache[str] = GenerationCache(max_entries=10, ttl_seconds=30)
    cache.put("k", "g1", "v")
    cache.clear()
    assert cache.get("k", "g1") is None
