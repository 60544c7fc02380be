"""Structured logs: one JSON object per line, carrying the request id from the API into the worker.

The log context is a :class:`~contextvars.ContextVar` of string fields (``request_id``; in the worker also
``task_id`` and ``task``). The API middleware binds ``request_id`` for each request (an incoming ``X-Request-ID``
if :func:`sanitize_request_id` accepts it, else a new one); the attestation dispatch copies it into the Celery
message headers (:data:`CELERY_REQUEST_ID_HEADER`); the worker binds it again before the task runs
(:mod:`verifier.observability.worker`). Every record formatted while a context is bound carries its fields.

:func:`setup_logging` is for process entry points (the uvicorn factory, Celery's ``setup_logging`` signal). It
replaces the root handlers, so library code and tests never call it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

REQUEST_ID_HEADER = "X-Request-ID"
#: The Celery message header that carries the request id to the worker.
CELERY_REQUEST_ID_HEADER = "keyward_request_id"
#: A client's request id is kept only if it is 1-128 of these characters (UUIDs, hex, W3C/AWS trace ids);
#: anything else is replaced by a fresh id, so log lines never carry attacker-chosen control characters or bulk.
MAX_REQUEST_ID_CHARS = 128
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:=+/-]{{1,{MAX_REQUEST_ID_CHARS}}}")

LogFormat = Literal["json", "text"]

_EMPTY: Mapping[str, str] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("keyward_log_context", default=_EMPTY)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field (except
# uvicorn's ANSI-coloured copy of its message).
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def new_request_id() -> str:
    return uuid.uuid4().hex


def sanitize_request_id(value: str | None) -> str | None:
    """``value`` if it is a sane request id (1-128 of ``A-Z a-z 0-9 . _ : = + / -``), else None."""
    if value is None or not _REQUEST_ID.fullmatch(value):
        return None
    return value


def bind(**fields: str) -> Token[Mapping[str, str]]:
    """Add ``fields`` to the log context of the current task/thread; undo with :func:`unbind`."""
    return _CONTEXT.set(MappingProxyType({**_CONTEXT.get(), **fields}))


def unbind(token: Token[Mapping[str, str]]) -> None:
    _CONTEXT.reset(token)


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def context_fields() -> Mapping[str, str]:
    return _CONTEXT.get()


def current_request_id() -> str | None:
    return _CONTEXT.get().get("request_id")


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", "service", "pid", <context>, <extra>, "exc"?}`` on one line.

    ``ts`` is UTC ISO 8601 with milliseconds. Context fields (``request_id`` ...) and ``extra=`` fields never
    replace the fixed ones. Values that are not JSON types are written with ``str``.
    """

    def __init__(self, service: str = "keyward") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload: dict[str, Any] = {
            "ts": ts,
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
            "pid": record.process,
        }
        for key, value in context_fields().items():
            payload.setdefault(key, value)
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """A terminal line: ``time level logger message key=value ...`` (context and extra fields appended)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {**context_fields()}
        fields.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_ATTRS and not k.startswith("_"))
        if not fields:
            return line
        first, sep, rest = line.partition("\n")  # keep a traceback below the fields
        return first + " " + " ".join(f"{k}={v}" for k, v in fields.items()) + sep + rest


def setup_logging(
    *, level: str = "INFO", fmt: LogFormat = "json", service: str = "keyward", stream: TextIO | None = None
) -> None:
    """Send every logger to one handler on the root logger (replacing its handlers), in ``fmt`` at ``level``.

    uvicorn's loggers lose their own handlers and propagate to root, so its messages are JSON too; its access log
    is silenced, because the request middleware writes the access line (with the request id).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
    access = logging.getLogger("uvicorn.access")  # replaced by the middleware's line, which has the request id
    access.handlers.clear()
    access.propagate = False
    logging.captureWarnings(True)
