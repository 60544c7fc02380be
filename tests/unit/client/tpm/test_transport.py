"""The TPM transports: the kernel device path and swtpm's TCP port, and how each fails."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from verifier.client.tpm import DeviceTransport, TcpTransport, Tpm, TpmMalformed, TpmTransportError, TpmUnavailable
from verifier.client.tpm.transport import parse_tcp_address


@contextmanager
def answering(reply: bytes) -> Iterator[tuple[str, int]]:
    """A local TCP peer that reads one command, sends ``reply`` and closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.getsockname()[1]
    finally:
        thread.join(timeout=5)
        server.close()


def test_device_missing_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(TpmUnavailable, match="does not exist"):
        DeviceTransport(tmp_path / "tpmrm0")


def test_device_answering_nothing_is_malformed() -> None:
    with Tpm(DeviceTransport(Path("/dev/null"))) as tpm, pytest.raises(TpmMalformed, match="ends inside tag"):
        tpm.pcr_read((0,))


def test_tcp_nobody_listening_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(TpmUnavailable, match="no TPM listens"):
        TcpTransport("127.0.0.1", port)


def test_tcp_peer_closing_mid_response_is_transport_error() -> None:
    with answering(bytes.fromhex("8001000000200000")) as address:  # 8 of a 32-byte response
        transport = TcpTransport(*address)
        with pytest.raises(TpmTransportError, match="mid-response"):
            transport.transmit(b"\x80\x01\x00\x00\x00\x0a\x00\x00\x01\x7e")
        transport.close()


def test_tcp_header_announcing_huge_response_is_malformed() -> None:
    with answering(bytes.fromhex("80010001000000000000")) as address:
        transport = TcpTransport(*address)
        with pytest.raises(TpmMalformed, match="announces 65536"):
            transport.transmit(b"\x80\x01\x00\x00\x00\x0a\x00\x00\x01\x7e")
        transport.close()


def test_tcp_closed_transport_refuses() -> None:
    with answering(b"") as address:
        transport = TcpTransport(*address)
        transport.close()
        with pytest.raises(TpmTransportError, match="closed"):
            transport.transmit(b"")


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1:2321", ("127.0.0.1", 2321)), ("[::1]:2321", ("::1", 2321)), ("tpm:1", ("tpm", 1))],
    ids=["ipv4", "ipv6", "name"],
)
def test_parse_tcp_address(text: str, address: tuple[str, int]) -> None:
    assert parse_tcp_address(text) == address


@pytest.mark.parametrize("text", ["2321", ":2321", "host:", "host:0", "host:65536", "host:x"])
def test_parse_tcp_address_invalid_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_tcp_address(text)
