"""The FastAPI application: routers, and one handler that renders every KeywardError as structured JSON.

``{"error": {"code": "...", "message": "...", "expected": ..., "actual": ...}}`` with the error's HTTP status; a
database that cannot be reached is a 503 ``service.unavailable`` with Retry-After in the same shape; a request body
over :data:`~verifier.limits.MAX_REQUEST_BODY_BYTES` is a 413 ``request.too_large`` in the same shape
(:class:`BodySizeLimitMiddleware`); so are the framework's own refusals (no such route, a method the route does not
take, a body that cannot be parsed); anything unexpected is a 500 ``internal.error`` in the same shape, logged with
its traceback and never sending it. The
OpenAPI document and its pages are served only where :attr:`~verifier.config.Settings.serves_api_docs` says.

Every request passes :class:`~verifier.observability.middleware.RequestContextMiddleware` (request id, access log
line, HTTP metrics); ``/healthz``, ``/readyz`` and ``/metrics`` come from :mod:`verifier.api.health`. The staff
dashboard is an application of its own mounted at ``/dashboard`` (:mod:`verifier.api.dashboard`), whose errors are
HTML pages. Processes
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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifier import __version__, limits
from verifier.auth.cache import watch
from verifier.broker.notify import close_waiters
from verifier.broker.quota import RedisClients
from verifier.config import Settings, get_settings, warn_development_profile
from verifier.db.session import DATABASE_UNAVAILABLE, LoopEngines
from verifier.errors import Code, KeywardError, RateLimited, Reason
from verifier.observability.logging import setup_logging
from verifier.observability.middleware import RequestContextMiddleware

#: Threads for sync endpoints and dependencies (anyio's default is 40): the admin, billing and dashboard routes, and
#: the enclave routes' one hop each to the database and the broker. A request waiting for its decision
#: (``Prefer: wait``) holds none: it waits on the event loop.
THREADPOOL_SIZE = 128
log = logging.getLogger(__name__)
#: The framework's own refusals, by status, as stable codes.
_HTTP_ERRORS: dict[int, tuple[Code, str]] = {
    400: (Code.REQUEST_INVALID, "the request body cannot be parsed"),
    404: (Code.RESOURCE_NOT_FOUND, "no such route"),
    405: (Code.REQUEST_INVALID, "this route does not take that method (see Allow)"),
}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The process's threadpool size, and the async Redis clients, database engines and decision subscribers of its
    event loop, closed when it ends."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADPOOL_SIZE
    app.state.redis = clients = RedisClients()
    app.state.databases = databases = LoopEngines()
    try:
        yield
    finally:
        await close_waiters()
        await clients.aclose()
        await databases.dispose()


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once the streamed body passes the limit; never leaves the middleware."""


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 ``request.too_large``, before they are read whole.

    A declared ``Content-Length`` over the limit is refused before any of the body is read. Otherwise the bytes are
    counted as they stream in (chunked bodies, or a Content-Length that understates): past the limit, the app's
    read fails, its answer to that failure (FastAPI's 400, or a 500) is discarded and the 413 sent instead. Plain
    ASGI, like :class:`~verifier.observability.middleware.RequestContextMiddleware`: nothing is buffered here.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = limits.MAX_REQUEST_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.strip().isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send, declared=int(value))
                return
        received = 0
        exceeded = started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to the aborted read; the 413 below replaces it
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, receive, send, declared=None)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, *, declared: int | None) -> None:
        reason = Reason(
            Code.REQUEST_TOO_LARGE,
            "the request body is too large",
            expected=f"<= {self.max_bytes} bytes",
            actual=f"{declared} bytes" if declared is not None else f"> {self.max_bytes} bytes",
        )
        # Connection: close, as the unread rest of the body must not be taken for the next request.
        response = JSONResponse({"error": reason.to_json()}, status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    docs = (settings or get_settings()).serves_api_docs
    app = FastAPI(
        title="Keyward",
        version=__version__,
        description="Remote-attestation verifier and model-key broker.",
        lifespan=_lifespan,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings = settings or get_settings()
    watch(settings)  # cached credentials and catalog are invalidated by this process's commits

    @app.exception_handler(KeywardError)
    def keyward_error(_: Request, exc: KeywardError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        return JSONResponse({"error": exc.to_reason().to_json()}, status_code=exc.http_status, headers=headers)

    def database_unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database cannot be reached or answer right now (down, restarting, the pool exhausted): a clear,
        # retryable 503 instead of a bare 500. Nothing half-done stays: the request's transaction was rolled back.
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        error = Reason(Code.SERVICE_UNAVAILABLE, "the database is unavailable; try again shortly")
        return JSONResponse({"error": error.to_json()}, status_code=503, headers={"Retry-After": "1"})

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(StarletteHTTPException)
    def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own refusals (no such route, a method the route does not take, a body it cannot parse)
        # in the same error shape as every other one, never FastAPI's {"detail": ...}.
        code, message = _HTTP_ERRORS.get(exc.status_code, (Code.REQUEST_INVALID, "the request cannot be handled"))
        error = Reason(code, message).to_json()
        return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug: logged with its traceback for staff; the client gets the error shape, never the traceback.
        log.error("unexpected error", exc_info=exc)
        error = Reason(Code.INTERNAL_ERROR, "an unexpected error happened; it has been logged").to_json()
        return JSONResponse({"error": error}, status_code=500)

    @app.exception_handler(RequestValidationError)
    def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Same error shape and a stable code as every other rejection; the first few problems, locations only
        # (no echo of the submitted values, which may be large or secret).
        problems = [
            {"loc": ".".join(str(p) for p in e.get("loc", ())), "msg": str(e.get("msg", ""))}
            for e in list(exc.errors())[:10]
        ]
        error = Reason(Code.REQUEST_INVALID, "the request does not match the API schema").to_json()
        return JSONResponse({"error": {**error, "actual": problems}}, status_code=400)

    from verifier.api import admin, billing, enclave, health  # noqa: PLC0415 - routers import services
    from verifier.api.dashboard import create_dashboard  # noqa: PLC0415 - the dashboard's views import services

    app.add_middleware(BodySizeLimitMiddleware)  # inside the request context, so a 413 is logged and counted
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(enclave.router)
    app.include_router(admin.router)
    app.include_router(billing.router)
    app.mount("/dashboard", create_dashboard(settings))  # HTML pages, their own error pages and headers
    return app


def create_server_app() -> FastAPI:
    """The uvicorn factory: settings from the environment (a bad production profile fails here, at start-up),
    logging as they say (the middleware writes the access line; uvicorn's own is silenced), then the app."""
    settings = get_settings()
    setup_logging(level=settings.log_level, fmt=settings.log_format, service="api")
    warn_development_profile(settings)
    return create_app()
