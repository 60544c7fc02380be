"""When a cached vendor document is due to be fetched again (one rule for the prefetch and the periodic refresh)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from verifier.collateral.freshness import Freshness, is_due
from verifier.config import Settings

NOW = datetime(2026, 1, 15, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
RULE = Freshness(ahead=DAY, max_age=DAY)


@pytest.mark.parametrize(
    ("kind", "fetched_ago", "next_update_in", "due"),
    [
        ("pck_crl", HOUR, None, True),
        ("tcb_info", HOUR, -HOUR, True),
        ("tcb_info", HOUR, 20 * DAY, False),
        ("tcb_info", DAY, 20 * DAY, True),
        ("qe_identity", 2 * DAY, 20 * DAY, True),
        ("pck_crl", 29 * DAY, DAY + HOUR, True),
        ("root_ca_crl", 360 * DAY, 20 * DAY, True),
        ("crl", 2 * DAY, 20 * DAY, True),
        ("vcek", 400 * DAY, 6 * 365 * DAY, False),
        ("tcb_info", 23 * HOUR, 2 * HOUR, True),
        ("tcb_info", 3 * HOUR, 2 * HOUR, False),
        ("vcek", 3 * HOUR, 2 * HOUR, False),
        ("vcek", 30 * HOUR, 2 * HOUR, True),
    ],
    ids=[
        "no-next-update",
        "past-next-update",
        "fresh",
        "tcb-info-aged",
        "qe-identity-aged",
        "pck-crl-aged",
        "root-ca-crl-aged",
        "amd-crl-aged",
        "vcek-never-aged",
        "window-fetched-before-it-opened",
        "window-fetched-inside",
        "vcek-window-fetched-inside",
        "vcek-window-fetched-before-it-opened",
    ],
)
def test_is_due_rule(kind: str, fetched_ago: timedelta, next_update_in: timedelta | None, due: bool) -> None:
    next_update = None if next_update_in is None else NOW + next_update_in
    assert is_due(kind, NOW - fetched_ago, next_update, NOW, RULE) is due


@pytest.mark.parametrize(
    ("kind", "fetched_days_ago", "lifetime_days"),
    [("pck_crl", 29, 30), ("tcb_info", 29, 30), ("root_ca_crl", 360, 380)],
    ids=["pck-crl", "tcb-info", "root-ca-crl"],
)
def test_is_due_weeks_old_document_inside_next_update_due_with_defaults(
    kind: str, fetched_days_ago: int, lifetime_days: int
) -> None:
    """The auditor's repro: documents fetched weeks ago and still inside their nextUpdate were never due."""
    fetched_at = NOW - fetched_days_ago * DAY
    assert is_due(kind, fetched_at, fetched_at + lifetime_days * DAY, NOW, Freshness.from_settings(Settings()))


def test_is_due_max_age_boundary() -> None:
    rule = Freshness(ahead=HOUR, max_age=6 * HOUR)
    assert not is_due("pck_crl", NOW - 6 * HOUR + timedelta(seconds=1), NOW + 20 * DAY, NOW, rule)
    assert is_due("pck_crl", NOW - 6 * HOUR, NOW + 20 * DAY, NOW, rule)


def test_freshness_defaults_are_the_settings_defaults() -> None:
    assert Freshness.from_settings(Settings()) == Freshness()


def test_freshness_from_settings_reads_both_settings() -> None:
    settings = Settings(collateral_refresh_ahead_hours=2.0, collateral_max_age_seconds=3600.0)
    assert Freshness.from_settings(settings) == Freshness(ahead=2 * HOUR, max_age=HOUR)
