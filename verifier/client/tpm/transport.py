"""Where TPM commands go: the kernel's resource manager device, or swtpm's TCP server port.

* :class:`DeviceTransport` (default ``/dev/tpmrm0``): one ``write`` of the whole command, one ``read`` of the whole
  response, as the Linux TPM character device requires (drivers/char/tpm/tpm-dev-common.c). The resource manager
  (``tpmrm0``, not ``tpm0``) flushes the transient objects and sessions a process leaves behind and lets several
  processes share the TPM.
* :class:`TcpTransport`: swtpm's data channel (``swtpm socket --server type=tcp,port=P``) carries raw TPM
  commands and responses, one after the other on one connection; the response length comes from its header. For
  tests and development only: nothing authenticates the other end.

Both raise :class:`~.wire.TpmUnavailable` when there is no TPM there and :class:`~.wire.TpmTransportError` when
the exchange breaks; neither interprets the bytes beyond the response header's size.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Final, Protocol

from verifier.client.tpm.wire import HEADER, MAX_RESPONSE_BYTES, TpmMalformed, TpmTransportError, TpmUnavailable

DEFAULT_DEVICE: Final = Path("/dev/tpmrm0")


class Transport(Protocol):
    """Send one command, return its whole response."""

    def transmit(self, command: bytes) -> bytes: ...

    def close(self) -> None: ...


class DeviceTransport:
    """The kernel TPM device (``/dev/tpmrm0`` by default), opened for the transport's lifetime."""

    def __init__(self, path: Path = DEFAULT_DEVICE) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise TpmUnavailable(f"{path} does not exist (no TPM, or no kernel resource manager)") from e
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENXIO):
                raise TpmUnavailable(f"{path}: no TPM behind the device") from e
            raise TpmTransportError(f"cannot open {path}: {e.strerror}") from e

    def transmit(self, command: bytes) -> bytes:
        if self._fd is None:
            raise TpmTransportError(f"{self.path} is closed")
        try:
            written = os.write(self._fd, command)
            if written != len(command):
                raise TpmTransportError(f"{self.path} took {written} of {len(command)} command bytes")
            return os.read(self._fd, MAX_RESPONSE_BYTES + 1)
        except OSError as e:
            raise TpmTransportError(f"{self.path}: {e.strerror or e}") from e

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class TcpTransport:
    """swtpm's TCP data channel (raw TPM 2.0 commands), for tests and development."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.address = f"{host}:{port}"
        try:
            self._sock: socket.socket | None = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError as e:
            raise TpmUnavailable(f"no TPM listens at {self.address}") from e
        except OSError as e:
            raise TpmTransportError(f"cannot connect to {self.address}: {e.strerror or e}") from e

    def transmit(self, command: bytes) -> bytes:
        if self._sock is None:
            raise TpmTransportError(f"the connection to {self.address} is closed")
        try:
            self._sock.sendall(command)
            header = self._exactly(HEADER.size)
            _, size, _ = HEADER.unpack(header)
            if not HEADER.size <= size <= MAX_RESPONSE_BYTES:
                raise TpmMalformed(f"response header announces {size} bytes")
            return header + self._exactly(size - HEADER.size)
        except OSError as e:
            raise TpmTransportError(f"{self.address}: {e.strerror or e}") from e

    def _exactly(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size and self._sock is not None:
            chunk = self._sock.recv(size - len(out))
            if not chunk:
                raise TpmTransportError(f"{self.address} closed the connection mid-response")
            out += chunk
        return bytes(out)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def parse_tcp_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 hosts in brackets) -> (host, port); ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
