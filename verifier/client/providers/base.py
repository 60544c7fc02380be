"""The evidence-provider interface: given the binding, produce evidence items in the API's JSON shape.

A provider gets a :class:`Binding` (the challenge nonce, the enclave's public JWK and the default 64-byte
REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint)) and returns a list of items for ``POST /v1/attestations``::

    {"type": "intel-tdx" | "intel-sgx" | "amd-sev-snp", "evidence": "<base64>",
     "collateral"?: "<QuoteCollateralV3 JSON>", "vcek"?: "<base64 DER>", "cert_table"?: "<base64>",
     "crl"?: "<base64 DER AMD CRL>",
     "runtime_data"?: "<base64 of the exact runtime-data bytes (confidential ACI SKR binding)>"}

    {"type": "nvidia-gpu", "evidence": "<base64 SPDM report>", "certs": "<base64 PEM chain>", "device_index": 0}

An NVIDIA item goes with the CPU items, never alone: its SPDM nonce is
:func:`verifier.keywrap.enclave.gpu_nonce` of the challenge nonce, :attr:`Binding.thumbprint` and ``device_index``
(see :mod:`verifier.client.providers.nvml`). Item values are strings, except ``device_index`` (an int).

Most providers put ``report_data`` into the hardware report; the SKR sidecar hashes runtime data itself, so it
uses ``nonce`` and ``public_jwk`` instead (see :mod:`verifier.client.providers.aci_skr`). Providers raise
:class:`~verifier.client.errors.ProviderError`, never bare OS or HTTP errors.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from verifier.keywrap.enclave import parse_enclave_jwk

#: One item of ``POST /v1/attestations``; ``Any`` because ``device_index`` is an int among strings.
EvidenceItem = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Binding:
    """What ties the evidence to one challenge and one enclave key."""

    nonce: bytes
    public_jwk: Mapping[str, str]
    report_data: bytes  # 64 bytes: SHA-512(nonce || thumbprint)

    @property
    def nonce_b64url(self) -> str:
        """The nonce as the API writes it: base64url without padding."""
        return base64.urlsafe_b64encode(self.nonce).rstrip(b"=").decode("ascii")

    @property
    def thumbprint(self) -> bytes:
        """The raw 32-byte RFC 7638 thumbprint of ``public_jwk``, by the server's own JWK parser (raises its
        ``keywrap.jwk_invalid`` / ``keywrap.jwk_weak`` for a key the server would refuse)."""
        return parse_enclave_jwk(dict(self.public_jwk)).thumbprint


class EvidenceProvider(Protocol):
    """Anything that turns a binding into evidence items."""

    @property
    def name(self) -> str: ...

    def collect(self, binding: Binding) -> list[EvidenceItem]: ...


def b64(data: bytes) -> str:
    """Standard base64 with padding, as the API's evidence fields expect."""
    return base64.b64encode(data).decode("ascii")
