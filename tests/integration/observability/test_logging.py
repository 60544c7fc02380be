"""JSON and text log lines, the log context, and which client request ids are kept."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from verifier.observability.logging import (
    JsonFormatter,
    TextFormatter,
    bind,
    current_request_id,
    log_context,
    sanitize_request_id,
    setup_logging,
    unbind,
)


def _record(msg: str = "hello %s", args: tuple[object, ...] = ("world",), **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("keyward.test", logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_formatter_fields() -> None:
    with log_context(request_id="req-1", task_id="t-9"):
        line = JsonFormatter(service="api").format(_record(attestation_id="a-1", count=3))
    out = json.loads(line)
    assert out["message"] == "hello world"
    assert out["level"] == "WARNING"
    assert out["logger"] == "keyward.test"
    assert out["service"] == "api"
    assert isinstance(out["pid"], int)
    assert out["ts"].endswith("Z")
    assert len(out["ts"]) == len("2026-01-01T00:00:00.000Z")
    assert out["request_id"] == "req-1"
    assert out["task_id"] == "t-9"
    assert out["attestation_id"] == "a-1"
    assert out["count"] == 3
    assert "\n" not in line


def test_json_formatter_fixed_fields_win_over_context_and_extra() -> None:
    with log_context(level="spoofed", service="spoofed"):
        out = json.loads(JsonFormatter(service="worker").format(_record(logger="spoofed")))
    assert out["level"] == "WARNING"
    assert out["service"] == "worker"
    assert out["logger"] == "keyward.test"


def test_json_formatter_no_context_has_no_request_id() -> None:
    out = json.loads(JsonFormatter().format(_record()))
    assert "request_id" not in out


def test_json_formatter_exception_and_non_json_values() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    record.__dict__["when"] = object()
    out = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in out["exc"]
    assert out["exc"].startswith("Traceback")
    assert out["when"].startswith("<object")


def test_text_formatter_appends_context_and_extra() -> None:
    with log_context(request_id="req-2"):
        line = TextFormatter().format(_record(outcome="accepted"))
    assert "WARNING" in line
    assert line.endswith("hello world request_id=req-2 outcome=accepted")


@pytest.mark.parametrize(
    "value",
    [
        "0f8fad5b-d9cb-469f-a165-70867728950e",
        "a" * 128,
        "Root=1-5759e988-bd862e3fe1be46a994272793",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "x",
    ],
    ids=["uuid", "max-length", "aws-trace", "traceparent", "one-char"],
)
def test_sanitize_request_id_keeps_sane(value: str) -> None:
    assert sanitize_request_id(value) == value


@pytest.mark.parametrize(
    "value",
    [None, "", "a" * 129, "has space", "line\nbreak", 'quote"', "tab\t", "ünïcode", "semi;colon", "<script>"],
    ids=["none", "empty", "too-long", "space", "newline", "quote", "tab", "non-ascii", "semicolon", "markup"],
)
def test_sanitize_request_id_refuses_insane(value: str | None) -> None:
    assert sanitize_request_id(value) is None


def test_log_context_nests_and_resets() -> None:
    assert current_request_id() is None
    with log_context(request_id="outer"):
        token = bind(request_id="inner", task="t")
        assert current_request_id() == "inner"
        unbind(token)
        assert current_request_id() == "outer"
    assert current_request_id() is None


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn = logging.getLogger("uvicorn")
    uv_handlers, uv_propagate = list(uvicorn.handlers), uvicorn.propagate
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        uvicorn.handlers[:] = uv_handlers
        uvicorn.propagate = uv_propagate
        logging.captureWarnings(False)


@pytest.mark.usefixtures("restore_root_logging")
def test_setup_logging_sends_every_logger_to_one_json_handler() -> None:
    stream = io.StringIO()
    logging.getLogger("uvicorn").addHandler(logging.StreamHandler(io.StringIO()))
    logging.getLogger("uvicorn").propagate = False
    setup_logging(level="INFO", fmt="json", service="api", stream=stream)
    assert len(logging.getLogger().handlers) == 1
    with log_context(request_id="req-3"):
        logging.getLogger("uvicorn").info("started")
        logging.getLogger("keyward.any").debug("below the level")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["request_id"]) for line in lines] == [("uvicorn", "req-3")]


@pytest.mark.usefixtures("restore_root_logging")
def test_setup_logging_text_format() -> None:
    stream = io.StringIO()
    setup_logging(level="DEBUG", fmt="text", stream=stream)
    logging.getLogger("keyward.any").debug("plain", extra={"k": "v"})
    assert stream.getvalue().rstrip().endswith("keyward.any plain k=v")
