"""How every dashboard response is rendered: Jinja2 templates from ``web/templates`` (autoescaped, undefined names
are errors), the security headers every response carries, and the HTML error page.

Not here: which page shows what (the views), nor any data access.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifier.api.dashboard.navigation import NAVIGATION
from verifier.shipped import shipped_dir

#: No inline script or style anywhere: every script and stylesheet is a file under /dashboard/static/.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Pages may show secrets (a licence key shown once) and are per user: never stored by a browser or proxy.
NO_STORE: Final = {"Cache-Control": "no-store"}
#: Outside development the dashboard is served over HTTPS only (its cookies are Secure).
HSTS: Final = {"Strict-Transport-Security": "max-age=31536000"}


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(shipped_dir("web") / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (``/dashboard``): every link in a template starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def render(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """``template`` rendered with ``context``, plus ``base`` (the mount path), ``signed_in`` (None unless given),
    ``navigation`` (the entries the signed-in user's role may open) and ``current`` (the page's own entry)."""
    signed_in = context.setdefault("signed_in", None)
    context.setdefault("current", None)
    context["navigation"] = [item for item in NAVIGATION if signed_in is not None and signed_in.may(item.role)]
    html = _environment().get_template(template).render(base=base_path(request), **context)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))


def error_page(request: Request, status_code: int, title: str, message: str, *, secure: bool) -> Response:
    """The HTML error page, with every security header itself (it may be sent from outside the middleware, by the
    server-error handler). Falls back to plain text if even the template fails."""
    headers = security_headers(secure=secure, static=False)
    try:
        return render(request, "error.html", status_code=status_code, headers=headers, title=title, message=message)
    except Exception:  # the last resort must answer, whatever broke
        return PlainTextResponse(f"{status_code} {title}", status_code=status_code, headers=headers)


def security_headers(*, secure: bool, static: bool) -> dict[str, str]:
    """The headers of one dashboard response: static files may be cached, nothing else."""
    return {**SECURITY_HEADERS, **({} if static else NO_STORE), **(HSTS if secure else {})}


class SecurityHeadersMiddleware:
    """Add :func:`security_headers` to every response of the dashboard app (pages, redirects, errors, static
    files); a header a response sets itself is kept."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope["path"]).startswith(str(scope.get("root_path", "")).rstrip("/") + "/static/")
        headers = security_headers(secure=self.secure, static=static)
        extra = [(name.lower().encode(), value.encode()) for name, value in headers.items()]

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in extra if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)
