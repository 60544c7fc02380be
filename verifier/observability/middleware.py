"""ASGI middleware: a request id for every HTTP request, one JSON access line, and the HTTP metrics.

The id is the client's ``X-Request-ID`` when :func:`~verifier.observability.logging.sanitize_request_id` accepts
it, else a new one; it is bound to the log context for the whole request (sync endpoints run in a worker thread
that inherits the context), echoed in the ``X-Request-ID`` response header, and sent on with any attestation
task. Probe paths (``/healthz``, ``/readyz``, ``/metrics``) are logged at DEBUG so probes do not drown the log.

A plain ASGI class rather than ``BaseHTTPMiddleware``: it does not buffer the response and does not move the
endpoint into another task, so the log context is the endpoint's.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verifier.observability.logging import REQUEST_ID_HEADER, log_context, new_request_id, sanitize_request_id
from verifier.observability.metrics import observe_http_request

access_log = logging.getLogger("keyward.access")

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            return sanitize_request_id(value.decode("latin-1"))
    return None


def _route(scope: Scope, root_path: str) -> str:
    """The matched route's whole path template (bounded label values), or ``unmatched`` (404 scans add no series).
    A route of a mounted application (the dashboard) is prefixed with its mount: routing grows the scope's
    ``root_path`` from ``root_path`` (its value before routing) by the mount's path."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    mounted = str(scope.get("root_path", ""))
    return (mounted[len(root_path) :] if mounted.startswith(root_path) else "") + path


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or new_request_id()
        root_path = str(scope.get("root_path", ""))
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                headers.append((_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                path = str(scope.get("path", ""))
                method = str(scope.get("method", ""))
                observe_http_request(method, _route(scope, root_path), status, seconds)
                access_log.log(
                    logging.DEBUG if path in PROBE_PATHS else logging.INFO,
                    "request",
                    extra={
                        "method": method,
                        "path": path,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                        "client": (scope.get("client") or ("",))[0],
                    },
                )
