"""The checks every admin input shares (verifier.api.inputs): the one rule for names and labels, and the instants
both databases hold. Pure; the HTTP behaviour is in tests/integration/api/test_admin_api.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel, ValidationError

from verifier import limits
from verifier.api.inputs import Instant, Name, in_utc, instant_problem, name_problem


@pytest.mark.parametrize(
    "name",
    [
        "acme",
        "Acme Corp. (EU)",
        "Ünïcode GmbH",
        "名前 株式会社",
        "مرحبا",
        "x\u200cy",
        "👩\u200d💻",
        "a\u00a0b",
        "x" * 500,
    ],
    ids=["ascii", "punctuation", "latin", "cjk", "arabic", "zwnj", "zwj-emoji", "nbsp-inside", "long-is-not-its-job"],
)
def test_name_problem_none_for_text_in_any_script(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "blank"),
        (" \t\u3000", "blank"),
        (" acme", "whitespace"),
        ("acme\u00a0", "whitespace"),
        ("ac\nme", "U+000A"),
        ("ac\x7fme", "U+007F"),
        ("ac\x85me", "U+0085"),
        ("acme\u202egpj.exe", "bidirectional"),
        ("\u2066acme\u2069", "bidirectional"),
        ("ac\u200eme", "bidirectional"),
        ("ac\u061cme", "bidirectional"),
        ("ac\u200bme", "U+200B"),
        ("\ufeffacme", "U+FEFF"),
        ("ac\u2029me", "U+2029"),
        ("ac\ue000me", "U+E000"),
        ("ac\U000e0001me", "U+E0001"),
        ("ac\u0378me", "U+0378"),  # unassigned
    ],
    ids=[
        "empty",
        "whitespace-only",
        "leading-space",
        "trailing-nbsp",
        "newline",
        "del",
        "c1-next-line",
        "rlo",
        "isolates",
        "lrm",
        "alm",
        "zero-width-space",
        "bom",
        "paragraph-separator",
        "private-use",
        "language-tag",
        "unassigned",
    ],
)
def test_name_problem_says_what_is_wrong(name: str, says: str) -> None:
    problem = name_problem(name)
    assert problem is not None
    assert says in problem


class _Body(BaseModel):
    name: Name
    at: Instant


def test_name_and_instant_types_refuse_and_normalise() -> None:
    body = _Body(name="acme", at=datetime(2030, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))))
    assert body.at == datetime(2030, 1, 1, tzinfo=UTC)
    assert body.at.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError, match="bidirectional"):
        _Body(name="a\u202eb", at=datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="in UTC"):
        _Body.model_validate({"name": "acme", "at": "0001-01-01T00:00:00+05:00"})


@pytest.mark.parametrize(
    "at",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))),  # year 0 in UTC
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5))),  # year 10000 in UTC
        limits.EARLIEST_TIMESTAMP - timedelta(microseconds=1),
        limits.LATEST_TIMESTAMP + timedelta(microseconds=1),
        datetime(2030, 1, 1, tzinfo=UTC).replace(tzinfo=None),  # naive
    ],
    ids=["year-1-east", "year-9999-west", "before-earliest", "after-latest", "naive"],
)
def test_instant_problem_outside_what_both_databases_hold(at: datetime) -> None:
    assert instant_problem(at) is not None


def test_instant_problem_none_at_the_bounds() -> None:
    for at in (
        limits.EARLIEST_TIMESTAMP,
        limits.LATEST_TIMESTAMP,
        datetime(1970, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))),
    ):
        assert instant_problem(at) is None
        assert in_utc(at).tzinfo == UTC
