"""Probes and metrics, without credentials: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

* ``GET /healthz``: 200 while the process serves HTTP; it touches nothing else, so a database outage never gets
  the API restarted.
* ``GET /readyz``: 200 ``{"status": "ready", "checks": {...}}`` when the database, the broker and a fresh worker
  heartbeat are all there, else 503 with the same body naming what failed (:mod:`verifier.observability.health`).
* ``GET /metrics``: the Prometheus text exposition (:mod:`verifier.observability.metrics` says what and why).

Keep ``/metrics`` and ``/readyz`` off the public internet (they reveal counts and health, never secrets); with
``KEYWARD_METRICS_TOKEN`` set, ``/metrics`` also wants that bearer token.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from verifier.auth.credentials import bearer_token
from verifier.db.session import session_factory
from verifier.errors import AuthError, Code
from verifier.observability.health import broker_queue_depth, readiness
from verifier.observability.metrics import ServiceCollector, exposition

from .deps import SettingsDep

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is missing; the body says which"}})
def readyz(settings: SettingsDep) -> JSONResponse:
    """Readiness: the database answers, the broker accepts a connection, and a worker beat recently."""
    result = readiness(
        session_factory(settings),
        settings.broker_url,
        max_heartbeat_age=settings.heartbeat_max_age_seconds,
        now=datetime.now(UTC),
    )
    return JSONResponse(result.to_json(), status_code=200 if result.ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    if settings.metrics_token is not None:
        _check_metrics_token(settings.metrics_token.get_secret_value(), authorization)
    collector = ServiceCollector(
        session_factory(settings),
        partial(broker_queue_depth, settings.broker_url, key_prefix=settings.broker_key_prefix),
        now=datetime.now(UTC),
    )
    return Response(exposition(collector), media_type=CONTENT_TYPE_LATEST)


def _check_metrics_token(token: str, authorization: str | None) -> None:
    given = bearer_token(authorization)
    if given is None:
        raise AuthError(Code.AUTH_MISSING, "the metrics token is required (Authorization: Bearer ...)")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthError(Code.AUTH_INVALID, "wrong metrics token")
