"""The audit log page (``GET /dashboard/audit``): the hash-chained audit events, newest first, filtered by actor,
tag, subject and time range, in keyset pages; and whether the chain verifies, and if not, from which event on it
does not.

Query parameters: ``actor`` (case-insensitive, whole), ``tag`` (exact), ``subject`` (``type:id`` or just an id),
``since`` and ``until`` (``YYYY-MM-DDTHH:MM[:SS]`` or a date, UTC; ``since <= at < until``, a date ``until``
includes its day), ``before`` (the next page's key, from the page) and ``verify=full``. The chain is checked on
every view by the dashboard application's :class:`~verifier.audit.checkpoint.ChainWatch`: in full on the first view
of the process, then only the events appended since the last verified one (the page says so, and what that cannot
see); ``verify=full`` walks the whole chain again. HTTP only: the reads are :mod:`verifier.audit.log`'s.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from verifier.api.dashboard.deps import StaffDep
from verifier.api.dashboard.rendering import render
from verifier.api.deps import SessionDep, SettingsDep
from verifier.audit.checkpoint import ChainWatch
from verifier.audit.log import AuditQuery, AuditTag, read_events
from verifier.clock import Clock
from verifier.db.models import AuditEvent
from verifier.errors import Code, UsageError

router = APIRouter()

PAGE_SIZE: Final = 50
_MAX_FIELD: Final = 200
_DATA_PREVIEW: Final = 240  # characters of an event's data shown in the row; the rest is one click away
_WATCH_LOCK: Final = threading.Lock()


def chain_watch(request: Request) -> ChainWatch:
    """The dashboard application's chain checkpoint, made on first use."""
    state = request.app.state
    with _WATCH_LOCK:
        watch: ChainWatch | None = getattr(state, "chain_watch", None)
        if watch is None:
            watch = ChainWatch()
            state.chain_watch = watch
    return watch


@dataclass(frozen=True, slots=True)
class Filters:
    """The page's filters as typed in the form (kept to fill the form again and to build the page links)."""

    actor: str = ""
    tag: str = ""
    subject: str = ""
    since: str = ""
    until: str = ""

    def params(self) -> dict[str, str]:
        return {
            k: v
            for k, v in (
                ("actor", self.actor),
                ("tag", self.tag),
                ("subject", self.subject),
                ("since", self.since),
                ("until", self.until),
            )
            if v
        }

    @property
    def any(self) -> bool:
        return bool(self.params())


def _instant(name: str, text: str, *, end: bool) -> datetime | None:
    """A form's time (UTC): a date, or a date and time; a date as ``until`` means the end of that day."""
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as e:
        raise UsageError(
            Code.REQUEST_INVALID, f"'{name}' is not a date or time", expected="YYYY-MM-DD[THH:MM]", actual=text
        ) from e
    if end and len(text) == 10:  # a bare date: up to the end of that day
        at += timedelta(days=1)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _query(filters: Filters) -> AuditQuery:
    subject_type, colon, subject_id = filters.subject.partition(":")
    if not colon:  # just an id, of any type
        subject_type, subject_id = "", filters.subject
    return AuditQuery(
        actor=filters.actor or None,
        tag=filters.tag or None,
        subject_type=subject_type or None,
        subject_id=subject_id or None,
        since=_instant("since", filters.since, end=False),
        until=_instant("until", filters.until, end=True),
    )


def _data_text(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(", ", ": "), default=str)


@dataclass(frozen=True, slots=True)
class Row:
    event: AuditEvent
    data: str
    long: bool
    state: str  # "verified", "broken" (the first event that does not hold) or "unverified" (after it)


@router.get("/audit", name="audit")
def audit_log(
    request: Request,
    signed_in: StaffDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: str = "",
    tag: str = "",
    subject: str = "",
    since: str = "",
    until: str = "",
    before: int | None = None,
    verify: str = "",
) -> Response:
    filters = Filters(*(v.strip()[:_MAX_FIELD] for v in (actor, tag, subject, since, until)))
    page = read_events(session, _query(filters), before=before, limit=PAGE_SIZE)
    watch = chain_watch(request)
    if verify == "full":
        watch.reset()
    chain = watch.check(session, Clock.from_settings(settings).wall_time())
    broken = chain.first_broken_id
    rows = []
    for event in page.events:
        text = _data_text(event.data)
        state = "verified" if broken is None or event.id < broken else "broken" if event.id == broken else "unverified"
        rows.append(Row(event, text, len(text) > _DATA_PREVIEW, state))
    tags = sorted({t.value for t in AuditTag} | ({filters.tag} if filters.tag else set()))
    return render(
        request,
        "audit.html",
        signed_in=signed_in,
        current="/audit",
        filters=filters,
        tags=tags,
        rows=rows,
        preview=_DATA_PREVIEW,
        chain=chain,
        full_walk_at=watch.full_walk_at,
        full_link="?" + urlencode({**filters.params(), "verify": "full"}),
        first_page=before is None,
        newest_link="?" + urlencode(filters.params()),
        older_link=None
        if page.next_before is None
        else "?" + urlencode({**filters.params(), "before": page.next_before}),
        break_link=None if broken is None else "?" + urlencode({"before": broken + 1}),
    )
