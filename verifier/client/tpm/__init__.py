"""A small TPM 2.0 client: strict command marshalling (:mod:`.wire`), the commands the SDK sends
(:mod:`.commands`) and two transports, the kernel's ``/dev/tpmrm0`` and swtpm's TCP port (:mod:`.transport`).
See :mod:`.wire` for why it is not ``tpm2-pytss``."""

from verifier.client.tpm.commands import ALL_PCRS, NvPublic, QuoteResult, RsaPublic, Tpm
from verifier.client.tpm.transport import DeviceTransport, TcpTransport, Transport, parse_tcp_address
from verifier.client.tpm.wire import (
    TpmError,
    TpmMalformed,
    TpmResponseError,
    TpmTransportError,
    TpmUnavailable,
    describe_rc,
)

__all__ = [
    "ALL_PCRS",
    "DeviceTransport",
    "NvPublic",
    "QuoteResult",
    "RsaPublic",
    "TcpTransport",
    "Tpm",
    "TpmError",
    "TpmMalformed",
    "TpmResponseError",
    "TpmTransportError",
    "TpmUnavailable",
    "Transport",
    "describe_rc",
    "parse_tcp_address",
]
