"""Evidence from the Linux configfs-tsm report interface (``/sys/kernel/config/tsm/report``, Linux 6.7+).

Kernel ABI (Documentation/ABI/testing/configfs-tsm-report): ``mkdir`` under the report directory creates an entry
with the attributes ``inblob`` (WO, up to 64 bytes), ``privlevel`` (WO, 0-3, SEV-SNP VMPL), ``provider`` (RO,
``tdx_guest`` or ``sev_guest``), ``generation`` (RO, incremented on every write to ``inblob`` or an option),
``outblob`` (RO, the report, generated on read) and ``auxblob`` (RO, SEV-SNP: the certificate table, amd-snp.md
§4.1). ``rmdir`` removes the entry. One entry per request (a unique name) avoids most conflicts; the generation
check catches the rest:

1. ``mkdir`` a fresh entry (ENXIO: no TSM driver is registered).
2. Read ``provider``; only ``tdx_guest`` and ``sev_guest`` are understood.
3. Read ``generation``; write ``privlevel`` (if asked) and the 64-byte REPORTDATA to ``inblob``.
4. Read ``outblob`` (and ``auxblob`` for SEV-SNP), then ``generation`` again: it must have advanced by exactly
   our writes, else another writer raced us and the attempt is repeated (at most ``attempts`` times).
5. ``rmdir`` the entry, whatever happened.

TDX: the outblob is the quote; its collateral is not on the machine, so the server uses its PCS cache. SEV-SNP:
the outblob is the report and a non-empty auxblob becomes ``cert_table``; without one the server uses its VCEK
cache. File access goes through :class:`TsmFs` so tests can stand in for the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.providers.base import Binding, EvidenceItem, b64

DEFAULT_ROOT: Final = Path("/sys/kernel/config/tsm/report")
NAME: Final = "configfs-tsm"
PLATFORMS: Final = {"tdx_guest": "intel-tdx", "sev_guest": "amd-sev-snp"}
PRIVLEVEL_MAX: Final = 3
REPORT_DATA_SIZE: Final = 64


class TsmFs:
    """The four file operations the provider performs; the real configfs unless a test substitutes a fake."""

    def mkdir(self, path: Path) -> None:
        path.mkdir(mode=0o700)

    def rmdir(self, path: Path) -> None:
        path.rmdir()

    def read(self, path: Path) -> bytes:
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        with path.open("wb", buffering=0) as f:  # one write; configfs commits the blob on close
            f.write(data)


@dataclass
class ConfigfsTsmProvider:
    """Collect a TDX quote or an SEV-SNP report (with certificate table) through configfs-tsm."""

    root: Path = DEFAULT_ROOT
    privlevel: int | None = None
    attempts: int = 3
    fs: TsmFs = field(default_factory=TsmFs)
    name: str = NAME

    def __post_init__(self) -> None:
        if self.privlevel is not None and not 0 <= self.privlevel <= PRIVLEVEL_MAX:
            raise ValueError(f"privlevel must be 0-{PRIVLEVEL_MAX}")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        if len(binding.report_data) != REPORT_DATA_SIZE:
            raise ValueError("report_data must be 64 bytes")
        if not self.root.is_dir():
            raise ProviderUnavailable(self.name, f"{self.root} does not exist (configfs-tsm needs Linux 6.7+)")
        entry = self.root / f"keyward-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        try:
            self.fs.mkdir(entry)
        except OSError as e:
            if e.errno == errno.ENXIO:
                raise ProviderUnavailable(self.name, "no TSM provider is registered (not a TDX/SNP guest)") from e
            raise ProviderError(self.name, f"cannot create {entry}: {e.strerror}") from e
        try:
            return [self._collect(entry, binding.report_data)]
        except OSError as e:
            raise ProviderError(self.name, f"configfs-tsm I/O failed: {e.strerror or e}") from e
        finally:
            with contextlib.suppress(OSError):  # the report is already in hand; a stale entry does not change it
                self.fs.rmdir(entry)

    def _collect(self, entry: Path, report_data: bytes) -> EvidenceItem:
        provider = self.fs.read(entry / "provider").decode("ascii", "replace").strip()
        platform = PLATFORMS.get(provider)
        if platform is None:
            raise ProviderUnavailable(self.name, f"unsupported TSM provider {provider!r} (tdx_guest or sev_guest)")
        for _ in range(self.attempts):
            before = self._generation(entry)
            writes = 0
            if self.privlevel is not None:
                self.fs.write(entry / "privlevel", f"{self.privlevel}\n".encode())
                writes += 1
            self.fs.write(entry / "inblob", report_data)
            writes += 1
            outblob = self.fs.read(entry / "outblob")
            auxblob = self._auxblob(entry) if platform == "amd-sev-snp" else None
            if self._generation(entry) == before + writes:
                return _item(platform, outblob, auxblob)
        raise ProviderError(self.name, f"another writer changed the report entry {self.attempts} times; giving up")

    def _generation(self, entry: Path) -> int:
        text = self.fs.read(entry / "generation").decode("ascii", "replace").strip()
        try:
            return int(text)
        except ValueError as e:
            raise ProviderError(self.name, f"generation is not a number: {text[:20]!r}") from e

    def _auxblob(self, entry: Path) -> bytes | None:
        try:
            return self.fs.read(entry / "auxblob") or None
        except FileNotFoundError:
            return None  # a TSM that emits no auxiliary data may hide the attribute


def _item(platform: str, outblob: bytes, auxblob: bytes | None) -> EvidenceItem:
    if not outblob:
        raise ProviderError(NAME, "the kernel returned an empty outblob")
    item = {"type": platform, "evidence": b64(outblob)}
    if auxblob:
        item["cert_table"] = b64(auxblob)
    return item
