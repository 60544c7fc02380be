"""The staff dashboard: server-rendered pages under ``/dashboard/``, served by the API process.

:func:`create_dashboard` builds it as an application of its own, which :func:`verifier.app.create_app` mounts at
``/dashboard``: its own error handling (every error is an HTML page, never JSON and never a traceback), its own
security headers on every response (:class:`~verifier.api.dashboard.rendering.SecurityHeadersMiddleware`), its
static files under ``/dashboard/static/``, and no OpenAPI document. Views are HTTP only; they call the same
services as the admin API. A new page adds its router to :data:`ROUTERS` and its entry in
:mod:`verifier.api.dashboard.navigation`, and guards itself with :func:`~verifier.api.dashboard.deps.staff_user`.
"""

from __future__ import annotations

import logging
from typing import Final
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from verifier.api.dashboard import access, attestations, audit, customers, deployments, models
from verifier.api.dashboard.deps import LoginRequired, secure_cookies
from verifier.api.dashboard.rendering import SecurityHeadersMiddleware, base_path, error_page
from verifier.auth.cache import watch
from verifier.config import Settings, get_settings
from verifier.db.queries import DATABASE_UNAVAILABLE
from verifier.errors import KeywardError
from verifier.shipped import shipped_dir

log = logging.getLogger(__name__)

#: The dashboard's routers, in order: a new page adds its own here.
ROUTERS: Final = (
    access.router,
    deployments.router,
    attestations.router,
    audit.router,
    customers.router,
    models.router,
)

TITLES: Final = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    500: "Something went wrong",
    503: "Service unavailable",
}


def create_dashboard(settings: Settings | None = None) -> FastAPI:
    """The dashboard application (mount it at ``/dashboard``); ``settings`` as for :func:`verifier.app.create_app`."""
    app = FastAPI(title="Keyward dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings = settings or get_settings()
    watch(settings)  # cached credentials and catalog are invalidated by the dashboard's commits
    secure = secure_cookies(settings)

    def page(request: Request, status_code: int, message: str) -> Response:
        return error_page(request, status_code, TITLES.get(status_code, "Error"), message, secure=secure)

    @app.exception_handler(LoginRequired)
    def login_required(request: Request, exc: LoginRequired) -> Response:
        target = base_path(request) + "/login"
        if exc.next_path not in ("", base_path(request) + "/"):
            target += "?next=" + quote(exc.next_path, safe="/")
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(KeywardError)
    def keyward_error(request: Request, exc: KeywardError) -> Response:
        return page(request, exc.http_status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        messages = {404: "There is no such page.", 405: "This page does not take that kind of request."}
        return page(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    def invalid_request(request: Request, _: RequestValidationError) -> Response:
        return page(request, 400, "The request does not match what this page expects.")

    def database_unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        response = page(request, 503, "The database is unavailable; try again shortly.")
        response.headers["Retry-After"] = "1"
        return response

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, database_unavailable)

    @app.exception_handler(Exception)
    def unexpected(request: Request, _: Exception) -> Response:
        # Sent by the server-error middleware, outside the security-header middleware: error_page sets them itself.
        return page(request, 500, "An unexpected error happened. It has been logged.")

    app.add_middleware(SecurityHeadersMiddleware, secure=secure)
    app.mount("/static", StaticFiles(directory=shipped_dir("web") / "static"), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app
