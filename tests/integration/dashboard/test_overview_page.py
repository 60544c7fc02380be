"""The overview page (``GET /dashboard/``) over HTTP, on a small seeded fleet in a database of its own (the overview
counts the whole fleet): the key figures and warnings as the service computes them, the charts' data block, the
tables that carry the same numbers without JavaScript, the period switch, the cache's "as of" time, no inline script
or style, and the vendored Chart.js."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from tests.integration.dashboard.world import make_deployment
from tests.support.dashboard import DASHBOARD, StaffLogin, create_staff, post_login
from tests.support.databases import migrated_database
from tests.support.factories import (
    delete_entitlement_tree,
    make_entitlement,
    make_lease,
    make_model,
    make_model_version,
)
from verifier.app import create_app
from verifier.config import Settings
from verifier.dashboard.service import Overview, overview
from verifier.db.models import StaffRole
from verifier.db.session import engine_for
from verifier.testing.fleet import seed_fleet

_DATA = re.compile(r'<script type="application/json" id="overview-data">(.*?)</script>', re.S)


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """This module's database, empty until :func:`fleet_url` seeds it (the app's engine cache holds four URLs:
    one database per module keeps it from dropping, undisposed, the engines of other modules)."""
    with migrated_database("keyward_overview_page") as url:
        yield url
        engine_for(url).dispose()  # the apps' pool, before the database is dropped


@pytest.fixture(scope="module")
def fleet_engine(database: str) -> Iterator[Engine]:
    engine = create_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def fleet_url(database: str, fleet_engine: Engine) -> str:
    seed_fleet(fleet_engine, now=datetime.now(UTC), deployments=40, attestations=400, customers=5)
    return database


@pytest.fixture(scope="module")
def viewer(fleet_engine: Engine) -> StaffLogin:
    return create_staff(fleet_engine, StaffRole.VIEWER, prefix="ov")


@pytest.fixture
def client(fleet_url: str, viewer: StaffLogin) -> Iterator[TestClient]:
    """A signed-in viewer on a new app (and so a new overview cache)."""
    with TestClient(create_app(Settings(database_url=fleet_url))) as c:
        assert post_login(c, viewer.username, viewer.password).status_code == 200
        yield c


def _expected(engine: Engine) -> Overview:
    with Session(engine) as s:
        return overview(s, datetime.now(UTC))


def _data(html: str) -> dict[str, object]:
    found = _DATA.search(html)
    assert found is not None, "no overview-data block"
    doc = json.loads(unescape(found.group(1)))
    assert isinstance(doc, dict)
    return doc


def _kpi(html: str, label: str) -> str:
    found = re.search(rf'<p class="kpi-label">{label}</p>\s*<p class="kpi-value[^"]*">([^<]*)</p>', html)
    assert found is not None, label
    return found.group(1)


def test_overview_page_on_an_empty_database_says_so(database: str, fleet_engine: Engine) -> None:
    """First in this module: it runs before the fleet is seeded."""
    login = create_staff(fleet_engine, StaffRole.VIEWER, prefix="empty")
    with TestClient(create_app(Settings(database_url=database))) as c:
        post_login(c, login.username, login.password)
        html = c.get(f"{DASHBOARD}/").text

    assert _kpi(html, "Live deployments") == "0"
    assert _kpi(html, "Rejection rate today") == "—"
    assert "No rejections in the last 30 days." in html
    assert "No deployment has been attested yet." in html
    assert "No vendor collateral is cached yet." in html
    assert "No warnings" in html


def test_overview_page_shows_the_live_counts_and_today(client: TestClient, fleet_engine: Engine) -> None:
    want = _expected(fleet_engine)

    html = client.get(f"{DASHBOARD}/").text

    assert _kpi(html, "Live deployments") == f"{want.live_deployments:,}"
    assert _kpi(html, "Live leases") == f"{want.live_leases:,}"
    assert _kpi(html, "Attestations today") == f"{want.attestations_today:,}"
    assert want.live_deployments > 0


def test_overview_page_rejection_rate_is_a_percentage(client: TestClient, fleet_engine: Engine) -> None:
    want = _expected(fleet_engine)
    assert want.rejection_rate is not None

    html = client.get(f"{DASHBOARD}/").text

    assert _kpi(html, "Rejection rate today") == f"{want.rejection_rate * 100:.1f}%"


def test_overview_page_charts_data_matches_the_service(client: TestClient, fleet_engine: Engine) -> None:
    want = _expected(fleet_engine)

    data = _data(client.get(f"{DASHBOARD}/").text)

    timeline = data["timeline"]
    assert isinstance(timeline, dict)
    assert len(timeline["labels"]) == 24
    assert sum(timeline["accepted"]) == sum(b.accepted for b in want.hourly)
    assert data["reasons"] == {
        "labels": [c.label for c in want.rejection_reasons],
        "counts": [c.count for c in want.rejection_reasons],
    }
    assert data["tcb"] == {
        "labels": [c.label for c in want.tcb_statuses],
        "counts": [c.count for c in want.tcb_statuses],
    }
    collateral = data["collateral"]
    assert isinstance(collateral, dict)
    assert collateral["labels"] == [v.vendor for v in want.collateral] == ["amd", "intel"]


def test_overview_page_30_days_period_draws_daily_buckets(client: TestClient) -> None:
    html = client.get(f"{DASHBOARD}/?period=30d").text

    timeline = _data(html)["timeline"]
    assert isinstance(timeline, dict)
    assert len(timeline["labels"]) == 30
    assert '<a href="/dashboard/?period=30d" aria-current="true">Last 30 days</a>' in html
    assert "Day (UTC)" in html


def test_overview_page_unknown_period_falls_back_to_24_hours(client: TestClient) -> None:
    response = client.get(f"{DASHBOARD}/?period=forever")

    assert response.status_code == 200
    timeline = _data(response.text)["timeline"]
    assert isinstance(timeline, dict)
    assert len(timeline["labels"]) == 24


def test_overview_page_numbers_are_tables_without_javascript(client: TestClient, fleet_engine: Engine) -> None:
    want = _expected(fleet_engine)

    html = client.get(f"{DASHBOARD}/").text

    top = want.rejection_reasons[0]
    assert f'<tr><th scope="row"><code>{top.label}</code></th><td class="num">{top.count:,}</td></tr>' in html
    for status in want.tcb_statuses:
        assert f'<tr><th scope="row">{status.label}</th><td class="num">{status.count:,}</td></tr>' in html
    assert html.count('<details class="numbers" open>') == 4  # open until a chart is drawn


def test_overview_page_lists_the_warnings(client: TestClient, fleet_engine: Engine) -> None:
    want = _expected(fleet_engine)
    assert want.entitlement_warnings  # the fleet has each kind
    assert want.stale_collateral
    assert want.tcb_warnings

    html = client.get(f"{DASHBOARD}/").text

    assert "Entitlements near their end or seat limit" in html
    assert "Collateral that could not be refreshed" in html
    assert "Live deployments one TCB recovery from refusal" in html
    for warning in want.tcb_warnings:
        assert f'href="/dashboard/deployments/{warning.deployment_id}">{warning.deployment}</a>' in html
    total = len(want.entitlement_warnings) + len(want.stale_collateral) + len(want.tcb_warnings)
    total += len(want.eval_number_warnings)
    assert f'<span class="count count-warn">{total}</span>' in html


def test_overview_page_names_both_evaluation_numbers(client: TestClient, fleet_engine: Engine) -> None:
    want = _expected(fleet_engine)
    assert want.eval_number_warnings  # the fleet judged some deployments before their FMSPC's newest
    behind = next(w for w in want.eval_number_warnings if not w.fleet_wide)

    html = client.get(f"{DASHBOARD}/").text

    assert "Live deployments on a TCB evaluation number about to stop being accepted" in html
    link = f'<td><a href="/dashboard/deployments/{behind.deployment_id}">{behind.deployment}</a></td>'
    row = html.split(link, 1)[1].split("</tr>", 1)[0]
    assert f"<code>{behind.tcb_info}</code>" in row
    assert f'<span class="tag tag-warn">#{behind.judged_with}</span>' in row
    assert f'<td class="num">#{behind.newest}</td>' in row


def test_overview_page_says_as_of_when_it_is_cached(client: TestClient, fleet_engine: Engine) -> None:
    first = client.get(f"{DASHBOARD}/").text
    as_of = re.search(r"Figures as of <time datetime=\"([^\"]+)\">", first)
    assert as_of is not None
    now = datetime.now(UTC)
    with Session(fleet_engine, expire_on_commit=False) as s:  # one more live deployment, committed
        model = make_model(s)
        version = make_model_version(s, model)
        entitlement = make_entitlement(s, model=model, now=now, valid_until=now + timedelta(days=365))
        make_lease(s, make_deployment(s, entitlement, "cached-later", last_attested_at=now), version, now=now)
        s.commit()
    try:
        again = client.get(f"{DASHBOARD}/").text

        assert f'Figures as of <time datetime="{as_of.group(1)}">' in again  # the kept overview, not a new one
        assert _kpi(again, "Live deployments") == _kpi(first, "Live deployments")
    finally:
        with Session(fleet_engine) as s:
            delete_entitlement_tree(s, entitlement, version)
            s.commit()


def test_overview_page_has_no_inline_script_or_style(client: TestClient) -> None:
    html = client.get(f"{DASHBOARD}/").text

    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts, "no script at all"
    for attributes in scripts:
        assert "src=" in attributes or 'type="application/json"' in attributes, attributes
    assert " style=" not in html
    assert "<style" not in html
    assert "http://" not in html  # nothing from another site
    assert "https://" not in html


def test_overview_page_chartjs_is_vendored(client: TestClient) -> None:
    html = client.get(f"{DASHBOARD}/").text
    assert '<script src="/dashboard/static/vendor/chartjs/chart.umd.min.js" defer></script>' in html

    script = client.get(f"{DASHBOARD}/static/vendor/chartjs/chart.umd.min.js")

    assert script.status_code == 200
    assert "Chart.js v4.6.2" in script.text[:200]
    assert client.get(f"{DASHBOARD}/static/overview.js").status_code == 200


def test_overview_page_without_session_redirects_to_login(fleet_url: str) -> None:
    with TestClient(create_app(Settings(database_url=fleet_url))) as c:
        response = c.get(f"{DASHBOARD}/", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == f"{DASHBOARD}/login"
