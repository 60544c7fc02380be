"""The overview, kept for a few seconds in the API process: computed at most once per ``ttl``, whoever asks.

The overview reads the whole fleet (counts over the last 30 days of decisions, the cache of vendor documents, the
warnings); finished days come from the decisions' day counters, but today's and the last 24 hours' decisions, the
live leases and the warnings are still counted on each computation (a few tens of ms with 100,000 attestations),
more than a page view should pay each time. It changes slowly, so the dashboard shows one computed at most ``ttl``
ago and says when ("as of HH:MM:SS"). Concurrent requests that find it stale wait for one computation instead of
each running their own.

Not here: what the overview holds (:func:`verifier.dashboard.service.overview`), nor where the cache lives (one
per dashboard application, made by its view).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session

from verifier.dashboard.service import Overview, overview

__all__ = ["DEFAULT_TTL", "OverviewCache"]

DEFAULT_TTL: Final = timedelta(seconds=30)


class OverviewCache:
    """One overview, recomputed when it is older than ``ttl`` on the monotonic clock (never by the decision clock,
    which a development run may stop)."""

    def __init__(
        self,
        ttl: timedelta = DEFAULT_TTL,
        *,
        compute: Callable[[Session, datetime], Overview] = overview,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._compute = compute
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._entry: tuple[float, Overview] | None = None

    def get(self, session: Session, now: datetime) -> Overview:
        """The overview computed at most ``ttl`` ago, else a new one at ``now`` with ``session`` (its ``now``
        says which)."""
        with self._lock:
            entry = self._entry
            if entry is not None and self._monotonic() - entry[0] < self.ttl.total_seconds():
                return entry[1]
            computed = self._compute(session, now)
            self._entry = (self._monotonic(), computed)
            return computed

    def clear(self) -> None:
        """Forget the kept overview: the next :meth:`get` computes one."""
        with self._lock:
            self._entry = None
