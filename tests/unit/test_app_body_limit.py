"""The request-body limit of verifier.app: 413 ``request.too_large`` in the standard error shape, whether the size is
declared (Content-Length) or only seen while streaming (chunked), and never a read of the whole body."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from verifier import limits
from verifier.app import BodySizeLimitMiddleware, create_app

LIMIT = 1000


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()

    @app.post("/echo")
    def echo(body: dict[str, Any]) -> dict[str, int]:
        return {"size": len(str(body.get("data", "")))}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)
    return TestClient(app)


def _json_of_size(size: int) -> bytes:
    head = b'{"data": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def _chunks(data: bytes, size: int = 256) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _assert_too_large(r: Any) -> None:
    assert r.status_code == 413
    error = r.json()["error"]
    assert set(error) == {"code", "fault", "message", "expected", "actual"}
    assert (error["code"], error["fault"]) == ("request.too_large", "request")
    assert error["expected"] == f"<= {LIMIT} bytes"


@pytest.mark.parametrize("size", [LIMIT, LIMIT - 1, 20], ids=["at-limit", "below-limit", "small"])
def test_body_limit_within_limit_passes(client: TestClient, size: int) -> None:
    body = _json_of_size(size)
    r = client.post("/echo", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json() == {"size": size - 12}


@pytest.mark.parametrize("size", [LIMIT + 1, 20 * 1024 * 1024], ids=["limit-plus-1", "20mb"])
def test_body_limit_declared_length_over_limit_413(client: TestClient, size: int) -> None:
    r = client.post("/echo", content=_json_of_size(size), headers={"Content-Type": "application/json"})
    _assert_too_large(r)
    assert r.json()["error"]["actual"] == f"{size} bytes"


@pytest.mark.parametrize("size", [LIMIT + 1, 50 * LIMIT], ids=["limit-plus-1", "50x"])
def test_body_limit_streamed_body_over_limit_413(client: TestClient, size: int) -> None:
    # A generator body is sent chunked, without Content-Length: only counting the streamed bytes catches it.
    r = client.post("/echo", content=_chunks(_json_of_size(size)), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    _assert_too_large(r)


def test_body_limit_streamed_body_within_limit_passes(client: TestClient) -> None:
    r = client.post("/echo", content=_chunks(_json_of_size(LIMIT)), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def test_create_app_limits_bodies_to_the_named_limit() -> None:
    # No database is touched: the body is refused from its Content-Length before routing or authentication.
    r = TestClient(create_app()).post(
        "/v1/attestations",
        content=b"x" * (limits.MAX_REQUEST_BODY_BYTES + 1),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request.too_large"
