"""Policy documents: JSON objects whose keys are all known. Shared by the Intel and SNP policy parsers so both
fail the same way (``policy.invalid``): not JSON, too deeply nested, not an object, or a key the policy does not
know (a typo must never silently weaken policy)."""

from __future__ import annotations

import json
from collections.abc import Set
from typing import Any

from verifier.errors import Code, UsageError


def policy_object(source: Any, known_keys: Set[str], *, what: str) -> dict[str, Any]:
    """``source`` (JSON text/bytes or an already parsed value) as a dict with only ``known_keys``."""
    doc = source
    if isinstance(source, str | bytes):
        try:
            doc = json.loads(source)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise UsageError(Code.POLICY_INVALID, f"{what} is not JSON: {type(e).__name__}") from e
    if not isinstance(doc, dict):
        raise UsageError(Code.POLICY_INVALID, f"{what} must be a JSON object")
    unknown = set(doc) - set(known_keys)
    if unknown:
        raise UsageError(
            Code.POLICY_INVALID,
            f"unknown {what} keys",
            expected=", ".join(sorted(known_keys)),
            actual=", ".join(sorted(map(str, unknown))),
        )
    return doc
