"""A raw asyncio HTTP/1.1 keep-alive load generator for the attest+release flow (``bench.e2e_service``).

Not httpx: ``asyncio.open_connection`` (on uvloop when it is installed), request bytes written by hand, and a
minimal response parser (status line, ``Content-Length``, the body; chunked bodies are refused). One connection per
simulated enclave. One op is the whole enclave flow:

1. ``POST /v1/challenges`` -> a nonce (found in the body by a substring search, not a JSON decode);
2. bind a fresh quote: REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint of the enclave key), the fake Intel PKI's
   genuine TDX quote re-signed by its attestation key (``IntelPki.rebind``, one ECDSA P-256 sign);
3. ``POST /v1/attestations`` with ``Prefer: wait=10``; the op succeeds when the answer is 200 with
   ``"status":"accepted"``.

The attestation body is built by concatenation: everything but the nonce, the deployment name, the enclave key and
the quote is serialised once (the 11 KB collateral JSON string included), so the client's CPU per op is one ECDSA
sign, one SHA-512, one base64 of the 6 KB quote and two small writes. Enclave keys are EC P-384 by default (the
issue's targets), P-256 on request; they are generated once and reused round-robin (key generation is the enclave's
cost, not the verifier's).

Two modes:

* closed loop (:func:`closed_loop`): N enclaves, each on its own connection, loop op after op; latency is the op's
  own round trip.
* open loop (:func:`open_loop`): ops start on a fixed schedule (``rate`` per second) whatever the completions; each
  op takes a connection from a bounded pool (opened on demand up to ``pool`` connections) and its latency is
  measured **from its scheduled start**, so time spent queued for a connection or behind a slow server counts
  (no coordinated omission). Ops still running ``grace`` seconds after the window are counted as failed.

The load generator's own CPU (``time.process_time`` of this process over the measured window, divided by the
completed ops) is reported by the caller as ``load_cpu_ms_per_op``, with its user-mode part beside it. In a tight
loop building a request costs ~0.045 ms (one P-256 sign of the quote, SHA-512, base64, joins) and a whole op against
a canned server ~0.12 ms; at a few dozen ops per second on a busy shared VM the same code measures 0.2-0.6 ms/op
(caches are cold between ops: a profile showed the quote's P-256 sign at 0.13 ms instead of 0.03), and the
kernel's loopback delivery of the 19 KB request (charged to the sender) adds system time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import resource
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec

from verifier.keywrap.enclave import gpu_nonce
from verifier.simulation.intel_pki import Evidence, IntelPki, QuoteOptions, default_pki
from verifier.simulation.nvidia_options import GpuOptions
from verifier.simulation.nvidia_pki import default_nvidia_pki

KEYS: Final = 64
CURVES: Final = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48)}
_ACCEPTED: Final = b'"status":"accepted"'
_NONCE_KEY: Final = b'"nonce":"'


def _user_cpu() -> float:
    """User-mode CPU seconds of this process (getrusage: finer than os.times' clock ticks)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_utime


class HttpError(Exception):
    """The server closed the connection, or sent something this minimal client does not read."""


def parse_head(head: bytes) -> tuple[int, int]:
    """(status, Content-Length) of a response head (status line + headers, up to and including the blank line).
    Refuses what the minimal reader cannot frame: no Content-Length, or a chunked body."""
    line_end = head.find(b"\r\n")
    status_line = head[:line_end] if line_end >= 0 else head
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"bad status line {status_line[:80]!r}")
    status = int(parts[1])
    length = -1
    for line in head[line_end + 2 :].split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            raise HttpError("chunked responses are not supported")
    if length < 0:
        if status in (204, 304) or 100 <= status < 200:
            return status, 0
        raise HttpError("response without Content-Length")
    return status, length


def request_bytes(method: bytes, path: bytes, host: bytes, headers: bytes, body: bytes = b"") -> bytes:
    """One HTTP/1.1 request; ``headers`` are complete ``Name: value\\r\\n`` lines."""
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n" % (method, path, host, headers, len(body))
    return head + body


def find_nonce(body: bytes) -> str:
    """The ``nonce`` member of a challenge answer (a base64url string, so no escapes to undo)."""
    start = body.find(_NONCE_KEY)
    if start < 0:
        raise HttpError("challenge answer without a nonce")
    start += len(_NONCE_KEY)
    return body[start : body.index(b'"', start)].decode()


class Connection:
    """One keep-alive connection: write a request, read one response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            status, length = parse_head(head)
            body = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError) as e:
            raise HttpError(f"connection lost: {type(e).__name__}") from e
        return status, body

    def close(self) -> None:
        self.writer.close()


def _b64url(n: int, size: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()


@dataclass(frozen=True)
class EnclaveKey:
    jwk_json: bytes  # the public JWK as it goes into the body
    thumbprint: bytes  # raw RFC 7638 SHA-256


def enclave_key(curve: str) -> EnclaveKey:
    cls, size = CURVES[curve]
    numbers = ec.generate_private_key(cls()).public_key().public_numbers()
    jwk = {"crv": curve, "kty": "EC", "x": _b64url(numbers.x, size), "y": _b64url(numbers.y, size)}
    canonical = json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode()  # RFC 7638: these 4, sorted
    return EnclaveKey(json.dumps(jwk, separators=(",", ":")).encode(), hashlib.sha256(canonical).digest())


@dataclass
class Flow:
    """What one enclave sends: the request bytes of both calls, built from parts serialised once."""

    host: str
    port: int
    licence: str
    model: str
    curve: str = "P-384"
    gpus: int = 0
    pki: IntelPki = field(default_factory=default_pki)

    def __post_init__(self) -> None:
        self.template: Evidence = self.pki.build(QuoteOptions())
        self.stored = 0  # attestation answers 200 or 202: the server said the request is stored
        self.accepted = 0  # 200 with "status":"accepted"
        self._gpu_pki = default_nvidia_pki() if self.gpus else None
        self._gpus = (
            [self._gpu_pki.build(GpuOptions(device_index=i)) for i in range(self.gpus)] if self._gpu_pki else []
        )
        # Each GPU item serialised once without its report: '{"evidence":"' + report + '",' + the rest.
        self._gpu_tails = []
        for i, g in enumerate(self._gpus):
            item = {k: v for k, v in g.evidence_item(i, carry_collateral=True).items() if k != "evidence"}
            self._gpu_tails.append(b'",' + json.dumps(item, separators=(",", ":")).encode()[1:])
        self.keys = [enclave_key(self.curve) for _ in range(KEYS)]
        host = f"{self.host}:{self.port}".encode()
        auth = f"Authorization: Bearer {self.licence}\r\n".encode()
        self.challenge_request = request_bytes(b"POST", b"/v1/challenges", host, auth)
        self._attest_head = (
            b"POST /v1/attestations HTTP/1.1\r\nHost: " + host + b"\r\n" + auth + b"Prefer: wait=10\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
        )
        self._model = json.dumps(self.model).encode()
        self._collateral = b'","collateral":' + json.dumps(self.template.collateral_json).encode() + b"}"
        self._offset = self.template.layout.body_offset + 520  # TD_REPORTDATA_OFFSET of a TDX quote body

    def attest_request(self, op: int, nonce: str) -> bytes:
        key = self.keys[op % KEYS]
        raw_nonce = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        quote = self.pki.rebind(self.template, hashlib.sha512(raw_nonce + key.thumbprint).digest())
        body = b"".join(
            (
                b'{"nonce":"',
                nonce.encode(),
                b'","model":',
                self._model,
                b',"deployment":"bench-%d","enclave_key":' % op,
                key.jwk_json,
                b',"evidence":[{"type":"intel-tdx","evidence":"',
                base64.b64encode(quote),
                self._collateral,
                *self._gpu_parts(raw_nonce, key.thumbprint),
                b"]}",
            )
        )
        return self._attest_head + b"%d\r\n\r\n" % len(body) + body

    def _gpu_parts(self, raw_nonce: bytes, thumbprint: bytes) -> list[bytes]:
        parts = []
        for i, (ev, tail) in enumerate(zip(self._gpus, self._gpu_tails, strict=True)):
            assert self._gpu_pki is not None
            report = self._gpu_pki.rebind(ev, gpu_nonce(raw_nonce, thumbprint, i))
            parts += [b',{"evidence":"', base64.b64encode(report), tail]
        return parts

    async def op(self, conn: Connection, op: int) -> bool:
        status, body = await conn.exchange(self.challenge_request)
        if status != 200:
            return False
        status, body = await conn.exchange(self.attest_request(op, find_nonce(body)))
        if status in (200, 202):
            self.stored += 1
        ok = status == 200 and _ACCEPTED in body
        self.accepted += ok
        return ok


@dataclass
class LoadResult:
    latencies: list[float]  # seconds, of the ops that succeeded inside the measured window
    failed: int
    seconds: float  # the measured window
    cpu_seconds: float  # this process's CPU over the window (user + system)
    probes: tuple[Any, Any]  # the caller's probe before and after the window
    offered_rate: float | None = None  # open loop only
    cpu_user_seconds: float = 0.0  # the user-mode part of cpu_seconds (the rest is the kernel: sends, wake-ups)


Probe = Callable[[], Any]


async def closed_loop(flow: Flow, concurrency: int, seconds: float, probe: Probe, warmup: float = 1.0) -> LoadResult:
    """``concurrency`` enclaves each looping op after op on its own connection for ``seconds`` after ``warmup``."""
    conns = [await Connection.open(flow.host, flow.port) for _ in range(concurrency)]
    counter = iter(range(10**9))
    latencies: list[float] = []
    failed = 0
    clock = time.perf_counter

    async def loop(conn: Connection, deadline: float) -> Connection:
        nonlocal failed
        while clock() < deadline:
            start = clock()
            try:
                ok = await flow.op(conn, next(counter))
            except (HttpError, OSError):
                ok = False
                conn.close()
                conn = await Connection.open(flow.host, flow.port)
            if ok:
                latencies.append(clock() - start)
            else:
                failed += 1
        return conn

    try:
        end = clock() + warmup
        conns = list(await asyncio.gather(*(loop(c, end) for c in conns)))
        latencies.clear()
        failed = 0
        before, cpu0, user0, t0 = probe(), time.process_time(), _user_cpu(), clock()
        conns = list(await asyncio.gather(*(loop(c, t0 + seconds) for c in conns)))
        t1, cpu1, user1 = clock(), time.process_time(), _user_cpu()
        after = probe()
    finally:
        for c in conns:
            c.close()
    return LoadResult(latencies, failed, t1 - t0, cpu1 - cpu0, (before, after), cpu_user_seconds=user1 - user0)


async def open_loop(
    flow: Flow,
    rate: float,
    seconds: float,
    probe: Probe,
    *,
    pool: int = 64,
    warmup: float = 1.0,
    grace: float = 15.0,
) -> LoadResult:
    """Ops started every ``1/rate`` s on schedule for ``warmup + seconds``; only ops scheduled inside the measured
    window count. Latency = completion - scheduled start. At most ``pool`` connections (and so ops) at once."""
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    slots = asyncio.Semaphore(pool)
    latencies: list[float] = []
    failed = 0
    clock = time.perf_counter
    start = clock() + 0.05
    measured_from = start + warmup
    measured_to = measured_from + seconds
    tasks: set[asyncio.Task[None]] = set()

    async def one(k: int, scheduled: float) -> None:
        nonlocal opened, failed
        async with slots:
            conn = None
            try:
                if idle.empty():
                    opened += 1
                    conn = await Connection.open(flow.host, flow.port)
                else:
                    conn = idle.get_nowait()
                ok = await flow.op(conn, k)
            except (HttpError, OSError):
                ok = False
                if conn is not None:
                    conn.close()
            else:
                idle.put_nowait(conn)
        if measured_from <= scheduled < measured_to:
            if ok:
                latencies.append(clock() - scheduled)
            else:
                failed += 1

    k = 0
    marks: list[tuple[Any, float, float, float]] = []
    while True:
        scheduled = start + k / rate
        if scheduled >= measured_to:
            break
        if not marks and scheduled >= measured_from:
            marks.append((probe(), time.process_time(), _user_cpu(), clock()))
        delay = scheduled - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(k, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        k += 1
    # The window ends when the last scheduled op completes (or the grace runs out): its CPU is part of the run.
    pending = [t for t in tasks if not t.done()]
    if pending:
        _, late = await asyncio.wait(pending, timeout=grace)
        for t in late:
            t.cancel()
        failed += len(late)
    t1, cpu1, user1 = clock(), time.process_time(), _user_cpu()
    after = probe()
    while not idle.empty():
        idle.get_nowait().close()
    before, cpu0, user0, t0 = marks[0]
    return LoadResult(
        latencies, failed, t1 - t0, cpu1 - cpu0, (before, after), offered_rate=rate, cpu_user_seconds=user1 - user0
    )


def run(coro: Callable[[], Coroutine[Any, Any, LoadResult]]) -> LoadResult:
    """Run a load coroutine on uvloop when it is installed (the stock loop otherwise)."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.run(coro())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro())


_CANNED_CHALLENGE: Final = b'{"nonce":"' + b"A" * 54 + b'","expires_at":"2026-01-15T12:05:00Z"}'
_CANNED_ANSWER: Final = (
    b'{"id":"00000000-0000-0000-0000-000000000000","status":"accepted","status_url":"/v1/attestations/0",'
    b'"lease":{"id":"0","expires_at":"x","renew_after":"x"},"wrapped_key":"' + b"k" * 700 + b'",'
    b'"result_token":"' + b"t" * 1500 + b'","reasons":[],"simulated":true}'
)


def canned_server(port: int, delay: float) -> None:
    """A stand-in server (run it in its own process): reads each request, answers the challenge and, after ``delay``
    seconds, an accepted attestation of the service's size. Measures the load generator alone."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
                if length:
                    await reader.readexactly(length)
                body = _CANNED_CHALLENGE if head.startswith(b"POST /v1/challenges") else _CANNED_ANSWER
                if delay and body is _CANNED_ANSWER:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body) + body)

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
