"""The pure parts of verifier.billing.usage: periods, query checks, attested time, exact figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from verifier.billing.usage import (
    Granularity,
    Period,
    UsageQuery,
    attested_end,
    check_query,
    exact_seconds,
    periods,
    rounded_hours,
)
from verifier.errors import Code, UsageError

T = datetime(2026, 3, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def test_periods_days_aligned() -> None:
    assert periods(T, T + timedelta(days=2), Granularity.DAY) == [
        Period(T, T + timedelta(days=1)),
        Period(T + timedelta(days=1), T + timedelta(days=2)),
    ]


def test_periods_hours_clipped_to_start_and_end() -> None:
    start, end = T + timedelta(minutes=30), T + timedelta(hours=2, seconds=1)
    assert periods(start, end, Granularity.HOUR) == [
        Period(start, T + timedelta(hours=1)),
        Period(T + timedelta(hours=1), T + timedelta(hours=2)),
        Period(T + timedelta(hours=2), end),
    ]


def test_periods_cut_at_utc_boundaries_for_other_offsets() -> None:
    start = datetime(2026, 3, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 2026-02-28T23:30Z
    cut = periods(start, T + timedelta(hours=12), Granularity.DAY)
    assert cut == [Period(T - timedelta(minutes=30), T), Period(T, T + timedelta(hours=12))]
    assert all(p.start.tzinfo == UTC for p in cut)


@pytest.mark.parametrize(
    ("start", "end", "granularity"),
    [
        (T.replace(tzinfo=None), T + timedelta(days=1), Granularity.DAY),
        (T, (T + timedelta(days=1)).replace(tzinfo=None), Granularity.DAY),
        (T, T, Granularity.DAY),
        (T + timedelta(days=1), T, Granularity.DAY),
        (T, T + timedelta(days=31) + US, Granularity.HOUR),
        (T, T + timedelta(days=366) + US, Granularity.DAY),
        (datetime(1969, 12, 31, tzinfo=UTC), datetime(1970, 1, 2, tzinfo=UTC), Granularity.DAY),
        (datetime(9998, 12, 31, tzinfo=UTC), datetime(9999, 1, 1, 1, tzinfo=UTC), Granularity.HOUR),
    ],
    ids=["naive_start", "naive_end", "empty", "reversed", "hours_too_long", "days_too_long", "too_early", "too_late"],
)
def test_check_query_refuses(start: datetime, end: datetime, granularity: Granularity) -> None:
    with pytest.raises(UsageError) as exc:
        check_query(UsageQuery(start, end, granularity))
    assert exc.value.code == Code.BILLING_QUERY_INVALID
    assert exc.value.http_status == 400


@pytest.mark.parametrize(("granularity", "days"), [(Granularity.HOUR, 31), (Granularity.DAY, 366)])
def test_check_query_accepts_longest_range(granularity: Granularity, days: int) -> None:
    check_query(UsageQuery(T, T + timedelta(days=days), granularity))
    assert len(periods(T, T + timedelta(days=days), granularity)) == days * (24 if granularity == "hour" else 1)


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("expires", "ended", "now", "end"),
    [
        (T + 2 * H, None, T + H, T + H),  # live: up to now
        (T + 2 * H, None, T + 3 * H, T + 2 * H),  # live past expiry (beat not run yet): up to expires_at
        (T + 2 * H, T + H, T + 3 * H, T + H),  # released or revoked early: up to ended_at
        (T + 2 * H, T + 3 * H, T + 4 * H, T + 2 * H),  # expired by a late beat: up to expires_at
        (T + 2 * H, T + H, T, T),  # seen before the release time: up to now
        (T + 2 * H, None, T - H, T),  # issued after now: empty, never negative
    ],
    ids=["live", "live_past_expiry", "ended_early", "late_beat", "before_release", "not_yet_issued"],
)
def test_attested_end(expires: datetime, ended: datetime | None, now: datetime, end: datetime) -> None:
    assert attested_end(T, expires, ended, now) == end


@pytest.mark.parametrize(
    ("microseconds", "text"),
    [(0, "0.000000"), (1, "0.000001"), (5_400_000_001, "5400.000001"), (10**18, "1000000000000.000000")],
)
def test_exact_seconds(microseconds: int, text: str) -> None:
    assert exact_seconds(microseconds) == text


@pytest.mark.parametrize(
    ("microseconds", "text"),
    [
        (3_600_000_000, "1.000000"),
        (4_500_000_000, "1.250000"),
        (1_000_000, "0.000278"),  # 1 s = 0.000277... h
        (1_800, "0.000000"),  # exactly 0.0000005 h: half to even
        (5_400, "0.000002"),  # exactly 0.0000015 h: half to even
    ],
)
def test_rounded_hours(microseconds: int, text: str) -> None:
    assert rounded_hours(microseconds) == text
