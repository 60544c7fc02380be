"""The decision clock and the wall clock: which one the settings give, a running simulation clock, and a stored real
instant mapped to the decision clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from verifier.clock import Clock, DecisionTime, WallTime
from verifier.config import Settings

SIM = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
REAL = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def _real_clock(at: datetime, **simulation: datetime) -> Clock:
    return Clock(**simulation, real_time=lambda: at)


def test_clock_without_simulation_reads_the_real_time_twice() -> None:
    clock = _real_clock(REAL)
    assert clock.decision_time() == clock.wall_time() == REAL


def test_clock_simulation_time_stops_the_decision_clock_only() -> None:
    clock = _real_clock(REAL, simulation_time=SIM)
    assert (clock.decision_time(), clock.wall_time()) == (SIM, REAL)


def test_clock_simulation_anchor_runs_the_decision_clock_from_it() -> None:
    clock = _real_clock(REAL, simulation_time=SIM, simulation_anchor=REAL - timedelta(minutes=5))
    assert clock.decision_time() == SIM + timedelta(minutes=5)
    assert clock.wall_time() == REAL


def test_clock_fixed_stops_both_clocks() -> None:
    clock = Clock.fixed(SIM)
    assert clock.decision_time() == clock.wall_time() == SIM


@pytest.mark.parametrize(
    ("settings", "simulated"),
    [
        (Settings(), False),
        (Settings(simulation_time=SIM), True),
        (Settings(simulation_time=SIM, simulation_anchor=REAL), True),
    ],
    ids=["real", "stopped", "anchored"],
)
def test_clock_from_settings_simulates_only_when_told(settings: Settings, simulated: bool) -> None:
    clock = Clock.from_settings(settings)
    assert (clock.simulation_time, clock.simulation_anchor) == (
        (settings.simulation_time, settings.simulation_anchor) if simulated else (None, None)
    )


def test_clock_from_settings_without_simulation_is_the_real_time() -> None:
    before = datetime.now(UTC)
    now = Clock.from_settings(Settings()).decision_time()
    assert before <= now <= datetime.now(UTC)


def test_clock_decision_time_of_keeps_the_real_time_elapsed() -> None:
    """Stored 7 real minutes ago, decided on a simulation clock months earlier: 7 minutes before its ``now``."""
    clock = _real_clock(REAL, simulation_time=SIM)
    stored = WallTime(REAL - timedelta(minutes=7))
    assert clock.decision_time_of(stored, clock.decision_time()) == SIM - timedelta(minutes=7)


def test_clock_decision_time_of_a_future_instant_is_now() -> None:
    """A row stamped ahead of this host's clock (skew between hosts) counts as stored now, never later."""
    clock = _real_clock(REAL, simulation_time=SIM)
    stored = WallTime(REAL + timedelta(seconds=3))
    assert clock.decision_time_of(stored, DecisionTime(SIM)) == SIM


def test_clock_fixed_decision_time_of_is_the_instant_itself() -> None:
    clock = Clock.fixed(SIM)
    stored = WallTime(SIM - timedelta(minutes=4))
    assert clock.decision_time_of(stored, clock.decision_time()) == stored
