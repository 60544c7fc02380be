"""The base of every request body model, and the checks every admin input shares: text the database can store,
names staff can read, instants both databases hold.

PostgreSQL text and varchar columns cannot hold NUL characters, which JSON can carry (``"\\u0000"``); without this
check such a request reached the database and failed there (a 500, found by the API fuzz test). Every string in the
body, nested ones and object keys included, is checked before any endpoint runs; a hit is a 400 ``request.invalid``.

:func:`name_problem` is the one rule for every name and label staff give (customers, models, versions, policies,
licence-key and credential labels), in the admin API (:data:`Name`, :data:`VersionLabel`) and on the dashboard
alike. :func:`instant_problem` bounds every timestamp staff give (:data:`Instant` in bodies, the time filters of the
admin routes) to :data:`verifier.limits.EARLIEST_TIMESTAMP`..:data:`verifier.limits.LATEST_TIMESTAMP` in UTC. Free-
form JSON documents (policies, reference values) are bounded where they are stored,
:func:`verifier.catalog.service.check_document`. Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator

from verifier import limits

#: Bounds the walk over nested request JSON (bodies are already size-limited: limits.MAX_REQUEST_BODY_BYTES for
#: the whole body, enforced in verifier.app, and max_length on the models' fields). Deeper free-form documents are
#: refused where they are stored (limits.MAX_ADMIN_DOCUMENT_DEPTH).
MAX_DEPTH = 64

#: Bidirectional controls: embeddings and overrides (U+202A-U+202E), isolates (U+2066-U+2069), the implicit marks
#: (LRM, RLM, ALM). In a name they reorder what staff read ("acme\u202egpj.exe" shows as "acmeexe.jpg").
BIDI_CONTROLS: Final = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: Unicode categories a name may not hold: controls (Cc), format characters (Cf: invisible, such as the zero-width
#: space and the BOM, and the bidi controls), surrogates, private use, unassigned, line and paragraph separators.
_REFUSED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Format characters that are text: ZWNJ and ZWJ join or part letters in Persian, Indic scripts and emoji.
_JOINERS: Final = frozenset("\u200c\u200d")


def _has_nul(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False  # deeper structures are refused by the fields that accept free-form JSON
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


class ApiInput(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def no_nul_characters(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data


def name_problem(value: str) -> str | None:
    """What makes ``value`` unfit as a name or label (a phrase: "is blank"), or None. Refused: blank, whitespace
    at either end, and any character that is not visible text (:data:`BIDI_CONTROLS`, controls, invisible format
    characters, unassigned code points, line breaks). Any script is fine, and so are spaces inside."""
    if not value.strip():
        return "is blank"
    if value != value.strip():
        return "starts or ends with whitespace"
    for ch in value:
        if ch in _JOINERS:
            continue
        if ch in BIDI_CONTROLS:
            return f"holds a bidirectional control character (U+{ord(ch):04X})"
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return f"holds a control, invisible or unassigned character (U+{ord(ch):04X})"
    return None


def _checked_name(value: str) -> str:
    if problem := name_problem(value):
        raise ValueError(f"a name or label {problem}")
    return value


def instant_problem(value: datetime) -> str | None:
    """What makes ``value`` unfit as a stored or compared timestamp, or None: it needs a timezone, and must lie
    within :data:`verifier.limits.EARLIEST_TIMESTAMP`..:data:`verifier.limits.LATEST_TIMESTAMP` once in UTC (year 1
    with an offset east of UTC is year 0 in UTC, which no database driver converts)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return "needs a timezone (e.g. 2026-01-01T00:00:00Z)"
    if not limits.EARLIEST_TIMESTAMP <= value <= limits.LATEST_TIMESTAMP:  # compared without converting
        return f"must be from {_iso(limits.EARLIEST_TIMESTAMP)} to {_iso(limits.LATEST_TIMESTAMP)} in UTC"
    return None


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def in_utc(value: datetime) -> datetime:
    """``value`` in UTC, once :func:`instant_problem` found nothing wrong with it."""
    return value.astimezone(UTC)


def _checked_instant(value: datetime) -> datetime:
    if problem := instant_problem(value):
        raise ValueError(f"a timestamp {problem}")
    return in_utc(value)


#: A name or label staff give (customers, models, policies, licence keys, credentials): :func:`name_problem`.
Name = Annotated[str, Field(min_length=1, max_length=limits.MAX_NAME_CHARS), AfterValidator(_checked_name)]
#: A model version label, in a new version and in an entitlement's ``allowed_versions``: :func:`name_problem`.
VersionLabel = Annotated[str, Field(min_length=1, max_length=limits.MAX_VERSION_CHARS), AfterValidator(_checked_name)]
#: A timestamp in a request body: with a timezone, within the limits, normalised to UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_checked_instant)]
