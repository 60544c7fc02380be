"""The audit log page (``GET /dashboard/audit``) over HTTP, on a database of its own (the chain is the whole log):
the events newest first, each filter (actor, tag, subject, time range), keyset pages, the chain's verdict, and
where and why it breaks once a stored event is edited or removed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, delete, update
from sqlalchemy.orm import Session

from tests.support.dashboard import DASHBOARD, StaffLogin, create_staff, post_login
from tests.support.databases import migrated_database
from verifier.api.dashboard.audit import PAGE_SIZE
from verifier.app import create_app
from verifier.audit.log import AuditTag, Entry, record_events
from verifier.config import Settings
from verifier.db.models import AuditEvent, StaffRole
from verifier.db.session import engine_for

T = datetime(2030, 5, 1, 9, 0, tzinfo=UTC)
_ROW_IDS = re.compile(r'<tr class="row-[a-z]+">\s*<td class="num">(\d+)</td>')


def _record(engine: Engine, entries: list[Entry], at: datetime) -> list[int]:
    with Session(engine) as s:
        events = record_events(s, entries, at=at)
        ids = [e.id for e in events]
        s.commit()
    return ids


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[str, Engine, StaffLogin]]:
    """A database of its own with a viewer (its creation is audited too) and a known run of events. One for the
    module (the app's engine cache holds four URLs); the tests that break the chain mend it after."""
    with migrated_database("keyward_audit_page") as url:
        engine = create_engine(url)
        viewer = create_staff(engine, StaffRole.VIEWER, prefix="aud")
        _record(engine, [Entry(AuditTag.LEASE_REVOKED, "staff:ops", "lease", f"L{i}", {"n": i}) for i in range(3)], T)
        _record(
            engine,
            [Entry(AuditTag.CUSTOMER_STATUS_CHANGED, "admin:root", "customer", "C1", {"to": "suspended"})],
            T + timedelta(days=2),
        )
        yield url, engine, viewer
        engine.dispose()
        engine_for(url).dispose()  # the app's pool, before the database is dropped


@pytest.fixture
def client(world: tuple[str, Engine, StaffLogin]) -> Iterator[TestClient]:
    url, _, viewer = world
    with TestClient(create_app(Settings(database_url=url))) as c:
        assert post_login(c, viewer.username, viewer.password).status_code == 200
        yield c


def _ids(html: str) -> list[int]:
    return [int(i) for i in _ROW_IDS.findall(html)]


def _all_ids(engine: Engine) -> list[int]:
    with Session(engine) as s:
        return sorted((e.id for e in s.query(AuditEvent)), reverse=True)


def test_audit_page_lists_every_event_newest_first(client: TestClient, world: tuple[str, Engine, StaffLogin]) -> None:
    html = client.get(f"{DASHBOARD}/audit").text

    assert _ids(html) == _all_ids(world[1])
    assert "admin:customer:status_changed" in html


def test_audit_page_shows_the_chain_verifies(client: TestClient, world: tuple[str, Engine, StaffLogin]) -> None:
    events = len(_all_ids(world[1]))

    html = client.get(f"{DASHBOARD}/audit").text

    assert "The hash chain verifies" in html
    assert f"All {events} events were recomputed" in html
    assert "breaks" not in html


def test_audit_page_later_view_reads_only_new_events_and_says_so(
    client: TestClient, world: tuple[str, Engine, StaffLogin]
) -> None:
    client.get(f"{DASHBOARD}/audit")  # the process's first view walks the whole chain
    head = max(_all_ids(world[1]))

    html = client.get(f"{DASHBOARD}/audit").text

    assert "The hash chain verifies" in html
    assert f"no event was appended after #{head} since the last check, and #{head} still matches its hash" in html
    [added] = _record(world[1], [Entry(AuditTag.LEASE_REVOKED, "staff:ops", "lease", "L9", {})], T + timedelta(days=3))
    try:
        later = client.get(f"{DASHBOARD}/audit").text
    finally:
        with Session(world[1]) as s:  # the head removed: the rest of the chain still verifies
            s.execute(delete(AuditEvent).where(AuditEvent.id == added))
            s.commit()
    assert f"the 1 event after #{head} was recomputed just now" in later
    assert "an edit among them since then shows only after a full check" in html
    assert 'href="?verify=full">Verify the whole chain now</a>' in html
    full = client.get(f"{DASHBOARD}/audit?verify=full").text
    assert f"All {len(_all_ids(world[1]))} events were recomputed just now" in full


@pytest.mark.parametrize(
    ("query", "subjects"),
    [
        ("actor=STAFF:OPS", ["L2", "L1", "L0"]),
        ("tag=admin:customer:status_changed", ["C1"]),
        ("subject=lease:L1", ["L1"]),
        ("subject=L1", ["L1"]),
        ("subject=customer:L1", []),
        ("since=2030-05-02", ["C1"]),
        ("until=2030-05-01", ["L2", "L1", "L0"]),  # a date: that day included
        ("since=2030-05-01T09:00&until=2030-05-01T09:01&actor=staff:ops", ["L2", "L1", "L0"]),
    ],
    ids=["actor-any-case", "tag", "subject-type-and-id", "subject-id", "subject-wrong-type", "since", "until", "all"],
)
def test_audit_page_filter_keeps_matching_events(client: TestClient, query: str, subjects: list[str]) -> None:
    html = client.get(f"{DASHBOARD}/audit?{query}").text

    shown = re.findall(r'<span class="muted">([a-z_]+)</span> <code>([^<]+)</code>', html)
    # the viewer's own creation and the paging test's events aside
    assert [i for t, i in shown if t != "staff_user" and not i.startswith("X")] == subjects
    if not subjects:
        assert "No event matches these filters." in html


def test_audit_page_filters_fill_the_form_again(client: TestClient) -> None:
    html = client.get(f"{DASHBOARD}/audit?actor=staff:ops&tag=admin:lease:revoked&since=2030-05-01T08:00").text

    assert 'id="actor" name="actor" type="text" value="staff:ops"' in html
    assert '<option value="admin:lease:revoked" selected>' in html
    assert 'name="since" type="datetime-local" value="2030-05-01T08:00"' in html


def test_audit_page_keyset_pages_cover_the_log_once(client: TestClient, world: tuple[str, Engine, StaffLogin]) -> None:
    _, engine, _ = world
    _record(engine, [Entry(AuditTag.LEASE_EXPIRED, "beat", "lease", f"X{i}", {}) for i in range(PAGE_SIZE + 5)], T)
    # (other tests leave these "X" events out of what they compare)
    seen: list[int] = []
    path = f"{DASHBOARD}/audit"
    for _ in range(5):
        html = client.get(path).text
        seen += _ids(html)
        older = re.search(r'<a class="button button-quiet" href="([^"]+)">Older →</a>', html)
        if older is None:
            break
        path = older.group(1).replace("&amp;", "&")

    assert seen == _all_ids(engine)
    assert len(_ids(client.get(f"{DASHBOARD}/audit").text)) == PAGE_SIZE
    assert len(seen) > PAGE_SIZE


def test_audit_page_bad_time_is_a_400(client: TestClient) -> None:
    response = client.get(f"{DASHBOARD}/audit?since=yesterday")

    assert response.status_code == 400
    assert "&#39;since&#39; is not a date or time" in response.text


def test_audit_page_bad_page_key_is_a_400(client: TestClient) -> None:
    assert client.get(f"{DASHBOARD}/audit?before=abc").status_code == 400


def test_audit_page_edited_event_shows_where_the_chain_breaks(
    client: TestClient, world: tuple[str, Engine, StaffLogin]
) -> None:
    _, engine, _ = world
    ids = sorted(_all_ids(engine))
    edited = ids[2]
    with Session(engine) as s:
        actor = s.get_one(AuditEvent, edited).actor
        s.execute(update(AuditEvent).where(AuditEvent.id == edited).values(actor="staff:someone-else"))
        s.commit()
    try:
        html = client.get(f"{DASHBOARD}/audit?before={edited + 1}").text
    finally:
        with Session(engine) as s:
            s.execute(update(AuditEvent).where(AuditEvent.id == edited).values(actor=actor))
            s.commit()

    assert f"The hash chain breaks at event #{edited}" in html
    assert f"Event #{edited} no longer matches its own hash: it was edited after it was written." in html
    assert f"The 2 events before it verify; from #{edited} on, none can be trusted." in html
    assert f'<a class="button button-quiet" href="?before={edited + 1}">' in html
    assert html.count('class="row-broken"') == 1
    assert html.count('class="row-verified"') == 2
    assert "The hash chain verifies" in client.get(f"{DASHBOARD}/audit").text  # mended


def test_audit_page_removed_event_breaks_the_next_link(
    client: TestClient, world: tuple[str, Engine, StaffLogin]
) -> None:
    _, engine, _ = world
    ids = sorted(_all_ids(engine))
    with Session(engine) as s:
        removed = s.get_one(AuditEvent, ids[1])
        s.expunge(removed)
        s.execute(delete(AuditEvent).where(AuditEvent.id == ids[1]))
        s.commit()
    try:
        html = client.get(f"{DASHBOARD}/audit").text
    finally:
        with Session(engine) as s:
            s.merge(removed)
            s.commit()

    assert f"The hash chain breaks at event #{ids[2]}" in html
    assert f"does not link to the event before it (#{ids[0]})" in html
