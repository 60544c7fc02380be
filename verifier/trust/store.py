"""The pinned root store: the only place vendor roots of trust come from.

Two pins, both checked: :data:`GENUINE_ROOTS` (in code, reviewed with it) names the DER SHA-256 of every genuine
vendor root by key, and ``vendor_roots/MANIFEST.toml`` names the file holding each. :func:`load_trust_store` checks
every file's digest against the manifest, then every root against the code pins, and refuses (raises
:class:`~verifier.errors.TrustStoreError`) on any mismatch, missing file, duplicate key, a PEM file holding anything
other than exactly one certificate (``trust.root_mismatch`` / ``trust.manifest_invalid``), a root the code does not
pin (``trust.root_unpinned``), or a pinned root the directory lacks (``trust.root_missing``). So a configurable
``vendor_roots_dir`` can only ever point at the genuine roots: a self-consistent manifest over other certificates
is refused. To add or rotate a root, change the file, its manifest entry and its pin here in one reviewed commit.

A :class:`TrustStore` that is not ``simulated`` holds only roots the code pins (checked on construction). One built
from test roots (the fake vendor PKIs of :mod:`verifier.simulation`, trusted only in development with
``allow_simulated_roots``) must say so with ``simulated=True``; every verification result computed under it is
marked simulated. This module does file I/O only in :func:`load_trust_store`; verifiers receive a finished
``TrustStore``.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.errors import Code, TrustStoreError
from verifier.shipped import shipped_dir

#: Manifest key of the Intel SGX Provisioning Certification Root CA.
INTEL_SGX_ROOT: Final = "intel.sgx_root"
#: Manifest key of the Azure Virtual TPM Root CA 2023: the root of every Azure CVM vTPM AK certificate.
AZURE_VTPM_ROOT: Final = "microsoft.azure_vtpm_root_2023"
#: Manifest key of "Global Virtual TPM CA - 03", an intermediate under it, for AK certificates sent without theirs.
AZURE_VTPM_CA_03: Final = "microsoft.global_virtual_tpm_ca_03"
#: Manifest key of the NVIDIA Device Identity CA: the root of every GPU and NVSwitch device certificate chain.
NVIDIA_DEVICE_ROOT: Final = "nvidia.device_identity_ca"
#: Manifest key of the NVIDIA CoRIM signing Root CA: the root of the RIM signing chains and their OCSP responders.
NVIDIA_RIM_ROOT: Final = "nvidia.corim_signing_root"

DEFAULT_VENDOR_ROOTS: Final = shipped_dir("vendor_roots")

#: SHA-256 of the DER certificate of every genuine vendor root, by manifest key (sources, subjects and cross-checks
#: in ``vendor_roots/MANIFEST.toml``). The only certificates a non-simulated trust store may hold.
GENUINE_ROOTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        INTEL_SGX_ROOT: "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3",
        "amd.milan.ark": "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd",
        "amd.milan.ask": "67d303bd3905fd38db8b20e0793699870e7fa612eaad5dec358293fd8c0bac1b",
        "amd.milan.asvk": "c5e081f59b7efab1fe2f8b505e159704e72f29cab7ef7cf628a05a42439082f5",
        "amd.genoa.ark": "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1",
        "amd.genoa.ask": "5464738c1546aed5f2cecf1dc98c5c960a92e8913238a61711bc90ec6e828521",
        "amd.genoa.asvk": "197e610743a917d6b9bb982a5a9226ccc0a15b611be0619e626aca9151457372",
        "amd.turin.ark": "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a",
        "amd.turin.ask": "5b77ef5fe7a7a004fd9032668fba9d0fda22f88c4442069a479636a6ae3b3185",
        "amd.turin.asvk": "104e10a8bd060a3c20a434261a57d0588fd65a88915b4f65b08bdecaf8df1a3c",
        "microsoft.supply_chain_root_2022": "23ffe2b8bdb9a1711515d4cffda04bc7f793d513c76c243f1020507d8669b7db",
        AZURE_VTPM_ROOT: "e6c596b17f8ffefba5c300f714cfb1260c6028704ecf7becc4ab5018efb00e95",
        AZURE_VTPM_CA_03: "fd7c92dabce4dcec9feaa30f8b087ada0598413189182152b881f5564064a29c",
        NVIDIA_DEVICE_ROOT: "102bf659d5419614c9d8e6aecebc80454eb26b1df6a769ac720b9a690b167b48",
        NVIDIA_RIM_ROOT: "12977b5115acb0381179279fffeb5a8c4d264971ebb32298023a465fa41df5d1",
    }
)


def check_pinned(key: str, sha256: str) -> None:
    """Raise ``trust.root_unpinned`` unless ``sha256`` is the genuine root pinned in code under ``key``."""
    want = GENUINE_ROOTS.get(key)
    if want is None:
        raise TrustStoreError(
            Code.TRUST_ROOT_UNPINNED, f"{key!r} is not a genuine vendor root pinned in code", actual=sha256
        )
    if sha256 != want:
        raise TrustStoreError(
            Code.TRUST_ROOT_UNPINNED,
            f"root {key!r} is not the genuine vendor root pinned in code",
            expected=want,
            actual=sha256,
        )


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
        if not self.simulated:
            for key, root in self.roots.items():
                der = root.certificate.public_bytes(Encoding.DER)
                digest = hashlib.sha256(der).hexdigest()
                if der != root.der or digest != root.sha256:
                    raise TrustStoreError(Code.TRUST_ROOT_MISMATCH, f"root {key!r} disagrees with its own digest")
                check_pinned(key, digest)
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
    """Build a store from certificates already in memory (test PKIs pass ``simulated=True``; with
    ``simulated=False`` every certificate must be the genuine root pinned under its key)."""
    pinned = {}
    for key, cert in roots.items():
        der = cert.public_bytes(Encoding.DER)
        pinned[key] = PinnedRoot(key, cert, der, hashlib.sha256(der).hexdigest(), "in-memory")
    return TrustStore(pinned, simulated=simulated)


def load_trust_store(directory: Path = DEFAULT_VENDOR_ROOTS) -> TrustStore:
    """Load ``directory/MANIFEST.toml`` and check it against the files and the code pins (:data:`GENUINE_ROOTS`).

    Raises :class:`TrustStoreError` on any discrepancy; the store holds every pinned root, nothing else."""
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
        check_pinned(key, got)
        roots[key] = PinnedRoot(key, certs[0], der, got, str(entry.get("source", "")))
    missing = sorted(GENUINE_ROOTS.keys() - roots.keys())
    if missing:
        raise TrustStoreError(
            Code.TRUST_ROOT_MISSING,
            f"{directory} lacks pinned vendor roots: {', '.join(missing)}",
            expected=", ".join(sorted(GENUINE_ROOTS)),
            actual=", ".join(sorted(roots)),
        )
    return TrustStore(roots, simulated=False)
