"""The customer pages' pure rules: the seat bar's width class and the list's cursor (no database)."""

from __future__ import annotations

import base64
import uuid

import pytest

from verifier.dashboard.customers.service import decode_cursor, encode_cursor, seat_percent
from verifier.errors import Code, UsageError


@pytest.mark.parametrize(
    ("used", "allowed", "percent"),
    [(0, 5, 0), (1, 5, 20), (1, 3, 35), (2, 3, 70), (5, 5, 100), (6, 5, 100), (1, 0, 100), (0, 0, 0), (1, 1000, 5)],
    ids=["none", "exact-step", "third-rounds-up", "two-thirds", "full", "over", "no-seats-used", "no-seats", "tiny"],
)
def test_seat_percent_rounds_up_to_a_step_of_five(used: int, allowed: int, percent: int) -> None:
    assert seat_percent(used, allowed) == percent


def test_customers_cursor_round_trips() -> None:
    ident = uuid.uuid4()
    assert decode_cursor(encode_cursor("Acme, Inc.", ident)) == ("Acme, Inc.", ident)


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        _b64("{}"),
        _b64('["deployments", "Acme", "00000000-0000-0000-0000-000000000000"]'),
        _b64('["customers", 7, "00000000-0000-0000-0000-000000000000"]'),
        _b64('["customers", "Acme", "not-a-uuid"]'),
        _b64('["customers", "Acme"]'),
    ],
    ids=["not-base64-json", "not-a-list", "another-list", "name-not-text", "id-not-a-uuid", "key-too-short"],
)
def test_customers_cursor_not_given_by_the_list_is_request_invalid(cursor: str) -> None:
    with pytest.raises(UsageError) as caught:
        decode_cursor(cursor)
    assert caught.value.code == Code.REQUEST_INVALID
