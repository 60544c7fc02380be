"""The FastAPI application: routers, and one handler that renders every KeywardError as structured JSON.

``{"error": {"code": "...", "message": "...", "expected": ..., "actual": ...}}`` with the error's HTTP status; a
database that cannot be reached is a 503 ``service.unavailable`` with Retry-After in the same shape; anything
unexpected is a plain 500 without a traceback in the body.

Every request passes :class:`~verifier.observability.middleware.RequestContextMiddleware` (request id, access log
line, HTTP metrics); ``/healthz``, ``/readyz`` and ``/metrics`` come from :mod:`verifier.api.health`. Processes
start from :func:`create_server_app` (``uvicorn --factory verifier.app:create_server_app``), which also sets up
logging; tests call :func:`create_app`, which leaves logging alone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from verifier import __version__
from verifier.config import Settings, get_settings
from verifier.errors import Code, KeywardError
from verifier.observability.logging import setup_logging
from verifier.observability.middleware import RequestContextMiddleware

#: Threads for sync endpoints and dependencies (anyio's default is 40). A request waiting for its decision
#: (``Prefer: wait``) sleeps in one; more threads than a burst of waiting enclaves keeps new requests moving.
THREADPOOL_SIZE = 128
log = logging.getLogger(__name__)


@asynccontextmanager
async def _lifespan(_: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADPOOL_SIZE
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="Keyward",
        version=__version__,
        description="Remote-attestation verifier and model-key broker.",
        lifespan=_lifespan,
    )
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings

    @app.exception_handler(KeywardError)
    def keyward_error(_: Request, exc: KeywardError) -> JSONResponse:
        return JSONResponse({"error": exc.to_reason().to_json()}, status_code=exc.http_status)

    def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database cannot be reached or answer right now (down, restarting, the pool exhausted): a clear,
        # retryable 503 instead of a bare 500. Nothing half-done stays: the request's transaction was rolled back.
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        error = {"code": Code.SERVICE_UNAVAILABLE.value, "message": "the database is unavailable; try again shortly"}
        return JSONResponse(
            {"error": {**error, "expected": None, "actual": None}}, status_code=503, headers={"Retry-After": "1"}
        )

    for unavailable in (OperationalError, InterfaceError, SQLAlchemyTimeoutError):
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(RequestValidationError)
    def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Same error shape and a stable code as every other rejection; the first few problems, locations only
        # (no echo of the submitted values, which may be large or secret).
        problems = [
            {"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": str(e.get("msg", ""))}
            for e in list(exc.errors())[:10]
        ]
        error = {"code": Code.REQUEST_INVALID.value, "message": "the request does not match the API schema"}
        return JSONResponse({"error": {**error, "expected": None, "actual": problems}}, status_code=400)

    from verifier.api import admin, billing, enclave, health  # noqa: PLC0415 - routers import services

    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(enclave.router)
    app.include_router(admin.router)
    app.include_router(billing.router)
    return app


def create_server_app() -> FastAPI:
    """The uvicorn factory: settings from the environment (a bad production profile fails here, at start-up),
    logging as they say (the middleware writes the access line; uvicorn's own is silenced), then the app."""
    settings = get_settings()
    setup_logging(level=settings.log_level, fmt=settings.log_format, service="api")
    return create_app()
