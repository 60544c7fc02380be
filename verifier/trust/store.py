"""The pinned root store: the only place vendor roots of trust come from.

:func:`load_trust_store` reads ``vendor_roots/MANIFEST.toml``, checks every file's DER SHA-256 against the
manifest and refuses (raises :class:`~verifier.errors.TrustStoreError`) on any mismatch, missing file, duplicate
key, or a PEM file holding anything other than exactly one certificate.

A :class:`TrustStore` built from test roots (the fake vendor PKIs of :mod:`verifier.testing`) must say so with
``simulated=True``; every verification result computed under it is marked simulated. This module does file I/O
only in :func:`load_trust_store`; verifiers receive a finished ``TrustStore``.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.errors import Code, TrustStoreError

#: Manifest key of the Intel SGX Provisioning Certification Root CA.
INTEL_SGX_ROOT: Final = "intel.sgx_root"

DEFAULT_VENDOR_ROOTS: Final = Path(__file__).resolve().parents[2] / "vendor_roots"


@dataclass(frozen=True, slots=True)
class PinnedRoot:
    key: str
    certificate: x509.Certificate
    der: bytes
    sha256: str
    source: str


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Roots by manifest key. ``simulated`` is True for stores built from test PKIs."""

    roots: Mapping[str, PinnedRoot]
    simulated: bool = False
    #: Digest naming exactly which roots (and simulation mode) this store trusts; part of every cache key.
    fingerprint: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256(b"simulated" if self.simulated else b"genuine")
        for key in sorted(self.roots):
            h.update(key.encode())
            h.update(bytes.fromhex(self.roots[key].sha256))
        object.__setattr__(self, "fingerprint", h.digest())

    def root(self, key: str) -> PinnedRoot:
        try:
            return self.roots[key]
        except KeyError as e:
            raise TrustStoreError(Code.TRUST_ROOT_MISMATCH, f"no pinned root {key!r} in the trust store") from e


def trust_store_from_certificates(roots: Mapping[str, x509.Certificate], *, simulated: bool) -> TrustStore:
    """Build a store from certificates already in memory (test PKIs pass ``simulated=True``)."""
    pinned = {}
    for key, cert in roots.items():
        der = cert.public_bytes(Encoding.DER)
        pinned[key] = PinnedRoot(key, cert, der, hashlib.sha256(der).hexdigest(), "in-memory")
    return TrustStore(pinned, simulated=simulated)


def load_trust_store(directory: Path = DEFAULT_VENDOR_ROOTS) -> TrustStore:
    """Load and check ``directory/MANIFEST.toml``. Raises :class:`TrustStoreError` on any discrepancy."""
    manifest_path = directory / "MANIFEST.toml"
    try:
        manifest = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TrustStoreError(Code.TRUST_MANIFEST_INVALID, f"cannot read {manifest_path}: {e}") from e
    entries = manifest.get("root")
    if not isinstance(entries, list) or not entries:
        raise TrustStoreError(Code.TRUST_MANIFEST_INVALID, "manifest lists no [[root]] entries")
    roots: dict[str, PinnedRoot] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("key", "file", "sha256")):
            raise TrustStoreError(Code.TRUST_MANIFEST_INVALID, f"manifest entry lacks key/file/sha256: {entry!r}")
        key, rel, want = entry["key"], entry["file"], entry["sha256"].lower()
        if key in roots:
            raise TrustStoreError(Code.TRUST_MANIFEST_INVALID, f"duplicate root key {key!r}")
        path = (directory / rel).resolve()
        if directory.resolve() not in path.parents:
            raise TrustStoreError(Code.TRUST_MANIFEST_INVALID, f"root file {rel!r} escapes {directory}")
        try:
            pem = path.read_bytes()
            certs = x509.load_pem_x509_certificates(pem)
        except (OSError, ValueError) as e:
            raise TrustStoreError(Code.TRUST_ROOT_MISMATCH, f"cannot load root {rel!r}: {e}") from e
        if len(certs) != 1:
            raise TrustStoreError(
                Code.TRUST_ROOT_MISMATCH, f"{rel!r} must hold exactly one certificate", expected=1, actual=len(certs)
            )
        der = certs[0].public_bytes(Encoding.DER)
        got = hashlib.sha256(der).hexdigest()
        if got != want:
            raise TrustStoreError(
                Code.TRUST_ROOT_MISMATCH, f"root {rel!r} does not match its pinned SHA-256", expected=want, actual=got
            )
        roots[key] = PinnedRoot(key, certs[0], der, got, str(entry.get("source", "")))
    return TrustStore(roots, simulated=False)
