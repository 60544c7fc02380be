"""The dashboard's form reader (:func:`verifier.api.dashboard.deps.form_fields`): URL-encoded forms as before, and
multipart forms with one bounded file, so that the CSRF token of an upload is read like any other field. Each
defect of a multipart body alone: too large a file or body (413), a second file, too many fields, an oversized text
field, no boundary (400, ``request.invalid``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.requests import Request
from starlette.types import Message

from verifier.api.dashboard.deps import (
    MAX_FORM_BYTES,
    MAX_FORM_FIELDS,
    MAX_UPLOAD_BYTES,
    Form,
    form_fields,
)
from verifier.errors import Code, KeywardError

BOUNDARY = "keyward-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def _request(body: bytes, content_type: str, method: str = "POST") -> Request:
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]

    async def receive() -> Message:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    scope = {
        "type": "http",
        "method": method,
        "path": "/dashboard/x",
        "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())],
        "query_string": b"",
    }
    return Request(scope, receive)


def _multipart(fields: Sequence[tuple[str, str]], files: Sequence[tuple[str, str, bytes]] = ()) -> bytes:
    out = bytearray()
    for name, value in fields:
        out += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, filename, data in files:
        out += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def _read(body: bytes, content_type: str = MULTIPART, method: str = "POST") -> Form:
    """The form read on an event loop of its own thread (a browser test's Playwright may hold this thread's)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(form_fields(_request(body, content_type, method)))).result()


def test_form_fields_urlencoded_first_value_of_each_field() -> None:
    form = _read(b"csrf_token=abc&confirm=yes&confirm=no", "application/x-www-form-urlencoded")
    assert dict(form) == {"csrf_token": "abc", "confirm": "yes"}
    assert form.files == {}


def test_form_fields_multipart_fields_and_one_file() -> None:
    body = _multipart([("csrf_token", "abc"), ("name", "runtime-v1")], [("policy", "policy.rego", b"package policy\n")])
    form = _read(body)
    assert dict(form) == {"csrf_token": "abc", "name": "runtime-v1"}
    assert form.files["policy"].filename == "policy.rego"
    assert form.files["policy"].data == b"package policy\n"


def test_form_fields_multipart_file_at_the_limit_accepted() -> None:
    form = _read(_multipart([("csrf_token", "abc")], [("policy", "p.rego", b"a" * MAX_UPLOAD_BYTES)]))
    assert len(form.files["policy"].data) == MAX_UPLOAD_BYTES


def test_form_fields_safe_method_reads_nothing() -> None:
    assert _read(_multipart([("csrf_token", "abc")]), method="GET") == {}


def test_form_fields_other_content_type_reads_nothing() -> None:
    assert _read(b'{"csrf_token": "abc"}', "application/json") == {}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (_multipart([], [("policy", "p.rego", b"a" * (MAX_UPLOAD_BYTES + 1))]), MULTIPART, 413, Code.REQUEST_TOO_LARGE),
        (
            _multipart([], [("policy", "p.rego", b"a" * (MAX_UPLOAD_BYTES + MAX_FORM_BYTES))]),
            MULTIPART,
            413,
            Code.REQUEST_TOO_LARGE,
        ),
        (_multipart([], [("a", "a.rego", b"x"), ("b", "b.rego", b"y")]), MULTIPART, 400, Code.REQUEST_INVALID),
        (_multipart([(f"f{i}", "x") for i in range(MAX_FORM_FIELDS + 1)]), MULTIPART, 400, Code.REQUEST_INVALID),
        (_multipart([("name", "x" * (MAX_FORM_BYTES + 1))]), MULTIPART, 400, Code.REQUEST_INVALID),
        (_multipart([("csrf_token", "abc")]), "multipart/form-data", 400, Code.REQUEST_INVALID),
    ],
    ids=["file-too-large", "body-too-large", "two-files", "too-many-fields", "field-too-large", "no-boundary"],
)
def test_form_fields_multipart_defects_refused(body: bytes, content_type: str, status: int, code: Code) -> None:
    with pytest.raises(KeywardError) as caught:
        _read(body, content_type)
    assert (caught.value.http_status, caught.value.code) == (status, code)
