"""The provider's key-encryption key (KEK): model DEKs are stored only wrapped under it.

A small interface so a KMS or HSM can replace the local implementation later: ``kek_id`` names the key (stored
beside every wrapped DEK, so rotation is possible), ``wrap``/``unwrap`` do the work. :class:`LocalAesKek` uses
AES-256-GCM with the DEK's owner as associated data, so a wrapped DEK cannot be moved to another model version.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from verifier.errors import Code, InternalError

_NONCE = 12


def model_key_context(model_version_id: str) -> bytes:
    """AES-GCM associated data binding a wrapped DEK to its model version."""
    return f"keyward:model-version:{model_version_id}".encode()


class KeyEncryptionKey(Protocol):
    @property
    def kek_id(self) -> str: ...

    def wrap(self, dek: bytes, *, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes: ...


class LocalAesKek:
    """AES-256-GCM KEK held in process memory (from settings or a key file)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the KEK must be 32 bytes (AES-256)")
        self._aead = AESGCM(key)
        self._id = "local-aes256gcm:" + hashlib.sha256(b"keyward-kek-id" + key).hexdigest()[:16]

    @property
    def kek_id(self) -> str:
        return self._id

    def wrap(self, dek: bytes, *, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, dek, context)

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], context)
        except (InvalidTag, ValueError) as e:
            raise InternalError(Code.KEYWRAP_UNWRAP_FAILED, "wrapped DEK does not open under this KEK") from e
