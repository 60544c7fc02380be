"""The overview cache (verifier.dashboard.overview_cache): one computation per TTL on the monotonic clock, whoever
asks, and a clear forces the next."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from verifier.dashboard.overview_cache import OverviewCache
from verifier.dashboard.service import Overview

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


class Ticker:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _overview(at: datetime) -> Overview:
    return Overview(at, 0, 0, 0, 0, None, (), (), (), (), (), (), (), ())


class Counting:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[datetime] = []
        self.delay = delay

    def __call__(self, _session: Any, now: datetime) -> Overview:
        time.sleep(self.delay)
        self.calls.append(now)
        return _overview(now)


def test_overview_cache_within_ttl_returns_the_kept_overview() -> None:
    compute, clock = Counting(), Ticker()
    cache = OverviewCache(timedelta(seconds=30), compute=compute, monotonic=clock)
    first = cache.get(None, NOW)  # type: ignore[arg-type]
    clock.t += 29.9

    again = cache.get(None, NOW + timedelta(seconds=29))  # type: ignore[arg-type]

    assert again is first
    assert compute.calls == [NOW]


def test_overview_cache_after_ttl_recomputes() -> None:
    compute, clock = Counting(), Ticker()
    cache = OverviewCache(timedelta(seconds=30), compute=compute, monotonic=clock)
    cache.get(None, NOW)  # type: ignore[arg-type]
    clock.t += 30

    again = cache.get(None, NOW + timedelta(seconds=30))  # type: ignore[arg-type]

    assert again.now == NOW + timedelta(seconds=30)
    assert len(compute.calls) == 2


def test_overview_cache_clear_forces_a_computation() -> None:
    compute = Counting()
    cache = OverviewCache(timedelta(seconds=30), compute=compute, monotonic=Ticker())
    cache.get(None, NOW)  # type: ignore[arg-type]

    cache.clear()
    cache.get(None, NOW)  # type: ignore[arg-type]

    assert len(compute.calls) == 2


def test_overview_cache_concurrent_misses_compute_once() -> None:
    compute = Counting(delay=0.05)
    cache = OverviewCache(timedelta(seconds=30), compute=compute)
    results: list[Overview] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(None, NOW))) for _ in range(8)]  # type: ignore[arg-type]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(compute.calls) == 1
    assert len({id(r) for r in results}) == 1
