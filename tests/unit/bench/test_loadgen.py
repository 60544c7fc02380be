"""The bench's raw HTTP/1.1 load generator (bench._loadgen) and the floor's hand-written JOSE (bench.floor_stack):
the response framing, the request bytes the service receives, and tokens a standard library opens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from joserfc import jwk

from bench import _loadgen, floor_stack
from verifier.api.enclave import AttestationIn
from verifier.keywrap.enclave import expected_report_data, parse_enclave_jwk, unwrap_in_enclave


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\ncontent-type: application/json\r\n\r\n", (200, 12)),
        (b"HTTP/1.1 202 Accepted\r\nContent-Length:  7 \r\n\r\n", (202, 7)),
        (b"HTTP/1.1 204 No Content\r\nserver: uvicorn\r\n\r\n", (204, 0)),
        (b"HTTP/1.0 503 Service Unavailable\r\nCONTENT-LENGTH: 0\r\n\r\n", (503, 0)),
    ],
    ids=["lowercase", "spaces", "no-body", "http10-uppercase"],
)
def test_loadgen_parse_head_frames(head: bytes, expected: tuple[int, int]) -> None:
    assert _loadgen.parse_head(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nserver: x\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
    ],
    ids=["chunked", "no-length", "not-http", "bad-status"],
)
def test_loadgen_parse_head_refuses(head: bytes) -> None:
    with pytest.raises(_loadgen.HttpError):
        _loadgen.parse_head(head)


def test_loadgen_find_nonce() -> None:
    assert _loadgen.find_nonce(b'{"nonce":"abc-_09","expires_at":"2026-01-01T00:00:00Z"}') == "abc-_09"
    with pytest.raises(_loadgen.HttpError):
        _loadgen.find_nonce(b'{"detail":"no"}')


def test_loadgen_connection_keeps_alive() -> None:
    """Two exchanges on one connection, the second body split across writes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for body in (b'{"a":1}', b"x" * 70_000):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body[:10])
            await writer.drain()
            writer.write(body[10:])
        writer.close()

    async def main() -> list[tuple[int, bytes]]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = await _loadgen.Connection.open("127.0.0.1", port)
        request = _loadgen.request_bytes(b"POST", b"/x", b"h", b"", b"body")
        got = [await conn.exchange(request), await conn.exchange(request)]
        conn.close()
        server.close()
        return got

    # A loop of its own in a thread of its own: the session's browser fixture (Playwright's sync API) keeps an event
    # loop running in the main thread once a browser test has run.
    with ThreadPoolExecutor(1) as pool:
        got = pool.submit(lambda: asyncio.run(main())).result()
    assert got == [(200, b'{"a":1}'), (200, b"x" * 70_000)]


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_loadgen_attest_request_is_what_the_service_reads(curve: str) -> None:
    flow = _loadgen.Flow("127.0.0.1", 8000, "kid.secret", "acme-llm", curve=curve)
    nonce = base64.urlsafe_b64encode(bytes(range(40))).rstrip(b"=").decode()
    request = flow.attest_request(5, nonce)
    head, body = request.split(b"\r\n\r\n", 1)
    assert b"\r\nContent-Length: %d\r\n" % len(body) in head + b"\r\n"
    assert b"Prefer: wait=10" in head
    parsed = AttestationIn.model_validate_json(body)
    assert (parsed.nonce, parsed.model, parsed.deployment) == (nonce, "acme-llm", "bench-5")
    key = parse_enclave_jwk(parsed.enclave_key)
    assert key.jwk["crv"] == curve
    assert key.thumbprint == flow.keys[5].thumbprint
    quote = base64.b64decode(parsed.evidence[0].evidence)
    offset = flow.template.layout.body_offset + 520
    assert quote[offset : offset + 64] == expected_report_data(bytes(range(40)), key)
    assert json.loads(body)["evidence"][0]["collateral"] == flow.template.collateral_json


@pytest.mark.parametrize("curve", ["P-256", "P-384"])
def test_floor_jwe_opens_with_joserfc(curve: str) -> None:
    private = jwk.ECKey.generate_key(curve, private=True)
    public_doc = {k: str(v) for k, v in private.as_dict(private=False).items()}
    public, thumbprint = floor_stack.enclave_public_key(public_doc)
    assert thumbprint == parse_enclave_jwk(public_doc).thumbprint
    token = floor_stack.jwe_ecdh_es_a256kw(b"k" * 32, public, curve)
    assert unwrap_in_enclave(token, private.as_dict(private=True)) == b"k" * 32


def test_floor_ear_and_nonce() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = floor_stack.es256_jwt({"a": 1}, key)
    head, claims, sig = token.split(".")
    raw = floor_stack.unb64url(sig)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key.public_key().verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    assert json.loads(floor_stack.unb64url(claims)) == {"a": 1}
    secret = hashlib.sha256(b"s").digest()
    nonce, _ = floor_stack.issue_nonce(secret, time.time())
    raw_nonce = floor_stack.unb64url(nonce)
    assert floor_stack.redeem_nonce(secret, raw_nonce, time.time())
    assert not floor_stack.redeem_nonce(secret, raw_nonce[:-1] + bytes([raw_nonce[-1] ^ 1]), time.time())
    assert not floor_stack.redeem_nonce(secret, raw_nonce, time.time() + floor_stack.NONCE_TTL + 1)
