"""The overview page (``GET /dashboard/``, the landing page; its view is :func:`verifier.api.dashboard.access.home`):
the fleet's live counts, today's decisions, four charts and the warnings.

The figures come from :func:`verifier.dashboard.service.overview` through the dashboard application's
:class:`~verifier.dashboard.overview_cache.OverviewCache` (the page says when they were computed). Each chart's
series go into the page as a JSON data block (``<script type="application/json">``, never executed) that
``web/static/overview.js`` draws with the vendored Chart.js; the same numbers are tables, so the page reads without
JavaScript. HTTP and presentation only: no data access here.
"""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import Any, Final

from fastapi import Request
from fastapi.responses import Response

from verifier.api.dashboard.rendering import render
from verifier.clock import Clock
from verifier.config import Settings
from verifier.dashboard.overview_cache import OverviewCache
from verifier.dashboard.service import Bucket, Overview
from verifier.db.session import Session
from verifier.staff.service import SignedIn

_CACHE_LOCK: Final = threading.Lock()


class Period(StrEnum):
    """The attestations chart's span: the last 24 hours by hour, or the last 30 days by day."""

    DAY = "24h"
    MONTH = "30d"


def overview_cache(request: Request) -> OverviewCache:
    """The dashboard application's overview cache, made on first use."""
    state = request.app.state
    with _CACHE_LOCK:
        cache: OverviewCache | None = getattr(state, "overview_cache", None)
        if cache is None:
            cache = OverviewCache()
            state.overview_cache = cache
    return cache


def _series(buckets: tuple[Bucket, ...], period: Period) -> dict[str, Any]:
    label = "%H:00" if period is Period.DAY else "%d %b"
    return {
        "labels": [b.start.strftime(label) for b in buckets],
        "accepted": [b.accepted for b in buckets],
        "rejected": [b.rejected for b in buckets],
    }


def chart_data(ov: Overview, period: Period) -> dict[str, Any]:
    """What ``overview.js`` draws: one entry per chart, plain JSON."""
    return {
        "timeline": _series(ov.hourly if period is Period.DAY else ov.daily, period),
        "reasons": {
            "labels": [c.label for c in ov.rejection_reasons],
            "counts": [c.count for c in ov.rejection_reasons],
        },
        "tcb": {"labels": [c.label for c in ov.tcb_statuses], "counts": [c.count for c in ov.tcb_statuses]},
        "collateral": {
            "labels": [v.vendor for v in ov.collateral],
            "fresh": [v.documents - v.expired - v.due_soon - v.undated for v in ov.collateral],
            "due_soon": [v.due_soon for v in ov.collateral],
            "expired": [v.expired for v in ov.collateral],
            "undated": [v.undated for v in ov.collateral],
        },
    }


def overview_page(request: Request, signed_in: SignedIn, session: Session, settings: Settings, period: str) -> Response:
    """The overview page for ``signed_in``; ``period`` picks the attestations chart's span (unknown: 24 hours)."""
    span = Period(period) if period in Period._value2member_map_ else Period.DAY
    cache = overview_cache(request)
    ov = cache.get(session, Clock.from_settings(settings).decision_time())
    return render(
        request,
        "overview.html",
        signed_in=signed_in,
        current="/",
        ov=ov,
        period=span,
        periods=list(Period),
        timeline=ov.hourly if span is Period.DAY else ov.daily,
        charts=chart_data(ov, span),
        ttl_seconds=int(cache.ttl.total_seconds()),
        warnings=len(ov.entitlement_warnings)
        + len(ov.stale_collateral)
        + len(ov.tcb_warnings)
        + len(ov.eval_number_warnings),
    )
