"""Probes and metrics, without credentials: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

* ``GET /healthz``: 200 while the process serves HTTP; it touches nothing else, so a database outage never gets
  the API restarted.
* ``GET /readyz``: 200 ``{"status": "ready", "checks": {...}}`` when the database, the broker and a fresh worker
  heartbeat are all there, else 503 with the same body naming what failed (:mod:`verifier.observability.health`).
* ``GET /metrics``: the Prometheus text exposition (:mod:`verifier.observability.metrics` says what and why).

Keep ``/metrics`` and ``/readyz`` off the public internet (they reveal counts and health, never secrets).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.orm import Session, sessionmaker

from verifier.observability.health import broker_queue_depth, readiness
from verifier.observability.metrics import ServiceCollector, exposition

from .deps import SettingsDep, engine_for

router = APIRouter(tags=["operations"])


def _sessions(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(database_url))


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "a dependency is missing; the body says which"}})
def readyz(settings: SettingsDep) -> JSONResponse:
    """Readiness: the database answers, the broker accepts a connection, and a worker beat recently."""
    result = readiness(
        _sessions(settings.database_url),
        settings.broker_url,
        max_heartbeat_age=settings.heartbeat_max_age_seconds,
        now=datetime.now(UTC),
    )
    return JSONResponse(result.to_json(), status_code=200 if result.ok else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(settings: SettingsDep) -> Response:
    collector = ServiceCollector(
        _sessions(settings.database_url),
        partial(broker_queue_depth, settings.broker_url),
        now=datetime.now(UTC),
    )
    return Response(exposition(collector), media_type=CONTENT_TYPE_LATEST)
