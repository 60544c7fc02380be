"""The two clocks, told apart by type.

* :data:`DecisionTime`: the time a decision is made at, and everything it writes (a nonce's expiry, a lease's
  ``issued_at`` / ``expires_at`` / ``ended_at``, ``decided_at``, the audit events). It is the real time, except in
  a development run with ``simulation_time`` set, where it is the simulation clock: stopped at ``simulation_time``,
  or running from it since the real instant ``simulation_anchor``. Simulated evidence and collateral are dated
  there, so the decision clock must be too.
* :data:`WallTime`: the real time, whatever the profile: when a request was stored (``created_at``), how long it
  has waited (requeue, latency metrics).

A :class:`Clock` gives both and converts a stored real instant to the decision clock (:meth:`Clock.decision_time_of`).
It is built from settings (:meth:`Clock.from_settings`) and handed to what needs the time; :meth:`Clock.fixed`
stops both clocks at one instant, for tests. No I/O; reads the real time only through the function it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, NewType

if TYPE_CHECKING:
    from verifier.config import Settings

__all__ = ["Clock", "DecisionTime", "WallTime"]

#: An instant on the decision clock (the simulation clock in a development run that sets one).
DecisionTime = NewType("DecisionTime", datetime)
#: A real instant (``datetime.now(UTC)``), whatever the profile.
WallTime = NewType("WallTime", datetime)


def _real_time() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Clock:
    """The decision clock and the wall clock. Without ``simulation_time`` they read the same real time."""

    simulation_time: datetime | None = None
    simulation_anchor: datetime | None = None  # the real instant at which the simulation clock read simulation_time
    real_time: Callable[[], datetime] = field(default=_real_time, repr=False, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Clock:
        """The real clocks; in development, the decision clock is the simulation clock when ``simulation_time`` is
        set (settings refuse ``simulation_time`` and ``simulation_anchor`` in production)."""
        if settings.simulation_time is None or settings.environment != "development":
            return cls()
        return cls(settings.simulation_time, settings.simulation_anchor)

    @classmethod
    def fixed(cls, at: datetime) -> Clock:
        """Both clocks stopped at ``at`` (tests: rows stored "at" ``at`` are on the decision clock too)."""
        return cls(real_time=lambda: at)

    def wall_time(self) -> WallTime:
        """The real time now."""
        return WallTime(self.real_time())

    def decision_time(self) -> DecisionTime:
        """The decision clock now: the real time, or the simulation clock."""
        if self.simulation_time is None:
            return DecisionTime(self.real_time())
        if self.simulation_anchor is None:
            return DecisionTime(self.simulation_time)
        return DecisionTime(self.simulation_time + (self.real_time() - self.simulation_anchor))

    def decision_time_of(self, stored_at: WallTime, now: DecisionTime) -> DecisionTime:
        """A real instant in the past (a row's ``created_at``) on the decision clock that reads ``now``: ``now`` less
        the real time elapsed since, never after ``now``. The simulation clock runs apart from the real time, so
        the instant itself cannot be compared with ``now``; the time elapsed since can."""
        return DecisionTime(now - max(timedelta(0), self.wall_time() - stored_at))
