"""The audit chain's digest: an append hashes the canonical JSON it serialised once, the same bytes as the digest
every stored event is verified with (old chains keep verifying)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from verifier.audit.log import GENESIS, _body, _digest, _json, canonical_json

T0 = datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "subject_id", "data"),
    [
        (T0, "a1", {}),
        (T0, "a1", {"lease_id": None, "reasons": ["x.y"], "simulated": True, "n": 2**70, "f": [0.1, -0.0, 1e16]}),
        (T0, str(uuid.uuid4()), {"entitlement_id": uuid.uuid4(), "expires_at": T0 + timedelta(minutes=5)}),
        (T0, "é ✓", {"text": 'é ✓ "q" \\ \u0001 \u2028', "nested": {"b": 1, "a": [{"z": 1, "y": 2}]}}),
        (T0.astimezone(timezone(timedelta(hours=2))), "L-odd", {"z": 1, "A": 2, "_": 3}),
    ],
    ids=["empty", "json-values", "uuid-and-datetime", "non-ascii-and-escapes", "offset-time-and-key-order"],
)
def test_body_is_what_the_digest_hashes(at: datetime, subject_id: str, data: dict[str, Any]) -> None:
    prev = hashlib.sha256(b"previous").digest()
    body = _body(_json(at.isoformat()), "worker:lease:issued", "worker", "lease", subject_id, canonical_json(data))
    assert hashlib.sha256(prev + body).digest() == _digest(
        prev, at, "worker:lease:issued", "worker", "lease", subject_id, data
    )


def test_body_digest_matches_the_stored_data_as_read_back() -> None:
    """What verification digests is the stored data as the driver decodes it: strings for ids and times."""
    data = {"entitlement_id": uuid.uuid4(), "at": T0}
    stored = {"entitlement_id": str(data["entitlement_id"]), "at": str(T0)}
    body = _body(_json(T0.isoformat()), "t", "a", "s", "i", canonical_json(data))
    assert hashlib.sha256(GENESIS + body).digest() == _digest(GENESIS, T0, "t", "a", "s", "i", stored)
