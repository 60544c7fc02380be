"""The enclave key pair: generated inside the TEE, its public JWK sent with the evidence, its private half never
leaving the TEE (except to a file the caller names, mode 0600, so a later ``renew`` can use the same key).

* Kinds: EC P-384 (the default), EC P-256, RSA-3072 — what :func:`verifier.keywrap.enclave.parse_enclave_jwk`
  accepts. The public JWK goes through that same parser, so the thumbprint and the binding are computed exactly
  as the server computes them.
* :meth:`EnclaveKeyPair.report_data` is the default binding: SHA-512(nonce || RFC 7638 thumbprint).
* :meth:`EnclaveKeyPair.unwrap` opens the compact JWE of the model DEK (RSA-OAEP-256 or ECDH-ES+A256KW, A256GCM).

This module does no network I/O; :func:`write_secret` is its only file write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from verifier.client.errors import ClientError, UnwrapFailed
from verifier.errors import KeywardError
from verifier.keywrap.enclave import EnclaveKey, expected_report_data, parse_enclave_jwk, unwrap_in_enclave

KeyKind = Literal["P-384", "P-256", "RSA-3072"]
KEY_KINDS: Final[tuple[KeyKind, ...]] = ("P-384", "P-256", "RSA-3072")


class KeyFileError(ClientError):
    """A key file does not hold a usable private enclave JWK."""

    code = "client.key_file_invalid"


@dataclass(frozen=True, slots=True, repr=False)
class EnclaveKeyPair:
    """A private enclave key and its validated public half (``public`` carries the thumbprint)."""

    private_jwk: dict[str, Any]
    public: EnclaveKey

    def __repr__(self) -> str:  # never the private members
        crv = self.public.jwk.get("crv", "RSA")
        return f"EnclaveKeyPair({crv}, thumbprint={self.public.thumbprint_b64})"

    @classmethod
    def generate(cls, kind: KeyKind = "P-384") -> EnclaveKeyPair:
        if kind == "RSA-3072":
            key: ECKey | RSAKey = RSAKey.generate_key(3072)
        elif kind in ("P-256", "P-384"):
            key = ECKey.generate_key(kind)
        else:
            raise ValueError(f"key kind must be one of {KEY_KINDS}, got {kind!r}")
        return cls.from_private_jwk(dict(key.as_dict(private=True)))

    @classmethod
    def from_private_jwk(cls, doc: dict[str, Any]) -> EnclaveKeyPair:
        """Load a private JWK; the public half must pass the server's own JWK checks."""
        try:
            key = RSAKey.import_key(doc) if doc.get("kty") == "RSA" else ECKey.import_key(doc)
            if not key.is_private:
                raise KeyFileError("the enclave key must be a private JWK")
            public = parse_enclave_jwk({k: str(v) for k, v in key.as_dict(private=False).items()})
        except (JoseError, ValueError, TypeError) as e:
            raise KeyFileError(f"not a usable enclave JWK: {type(e).__name__}") from e
        except KeywardError as e:
            raise KeyFileError(f"not a usable enclave JWK: {e.code.value}") from e
        return cls(dict(key.as_dict(private=True)), public)

    @classmethod
    def load(cls, path: Path) -> EnclaveKeyPair:
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            raise KeyFileError(f"cannot read key file {path}: {type(e).__name__}") from e
        if not isinstance(doc, dict):
            raise KeyFileError(f"key file {path} is not a JWK object")
        return cls.from_private_jwk(doc)

    def save(self, path: Path) -> None:
        """Write the private JWK to ``path`` (created or truncated, mode 0600)."""
        write_secret(path, json.dumps(self.private_jwk).encode())

    @property
    def public_jwk(self) -> dict[str, str]:
        return dict(self.public.jwk)

    @property
    def thumbprint(self) -> bytes:
        """The raw 32-byte RFC 7638 SHA-256 thumbprint."""
        return self.public.thumbprint

    def report_data(self, nonce: bytes) -> bytes:
        """The 64-byte REPORTDATA binding this key to ``nonce`` (the server compares all 64 bytes)."""
        return expected_report_data(nonce, self.public)

    def unwrap(self, wrapped_key: str) -> bytes:
        """Open the compact JWE of the model DEK."""
        try:
            return unwrap_in_enclave(wrapped_key, self.private_jwk)
        except KeywardError as e:
            raise UnwrapFailed("the wrapped key does not open with this enclave key") from e


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (mode 0600, also when the file already existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
