"""A stand-in for the kernel side of configfs-tsm, over a real directory tree (tests only).

It behaves like ``drivers/virt/coco/guest/report.c`` (formerly ``drivers/virt/coco/tsm.c``) with the ``tdx_guest``
or ``sev_guest`` provider, as far as the provider can see:

* ``mkdir`` makes an entry with ``provider``, ``generation``, ``inblob`` and ``outblob``; ``sev_guest`` adds
  ``privlevel``, ``privlevel_floor`` and ``auxblob`` (tdx-guest.c shows neither privlevel nor auxblob). Writing an
  attribute the entry does not have fails with EACCES (configfs refuses to create files).
* ``privlevel`` accepts ``privlevel_floor``..3 and nothing else (EINVAL); ``inblob`` accepts up to 64 bytes
  (EFBIG). Only an accepted write bumps ``generation`` (``try_advance_write_generation``).
* Reading ``outblob`` or ``auxblob`` generates both through ``respond(inblob, privlevel)`` when the entry was
  written since the last generation (``read_generation != write_generation``), else returns the cached blobs. No
  inblob, or an inblob that is not 64 bytes, is EINVAL (both providers need exactly 64); on ``sev_guest`` a
  ``privlevel`` below ``privlevel_floor`` (never written: 0) is EINVAL, as the firmware's INVALID_PARAM is.
  ``respond`` may raise ``OSError`` (EIO, ETIMEDOUT, EBUSY: the TDX quote service failing); nothing is cached then.
* ``rmdir`` drops the whole entry.

``before_outblob_read`` runs just before each ``outblob`` read, so a test can play another writer racing the
provider. The provider's file I/O itself is the real code (this class calls the real :class:`TsmFs` for every read
and write).
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from verifier.client.providers.configfs_tsm import TsmFs

Respond = Callable[[bytes, int], tuple[bytes, bytes | None]]
INBLOB_MAX = 64
PRIVLEVEL_MAX = 3


@dataclass
class FakeTsmKernel(TsmFs):
    root: Path
    respond: Respond
    provider: str = "tdx_guest"
    with_auxblob: bool | None = None  # None: as the provider's driver does (sev_guest only)
    privlevel_floor: int = 0  # sev_guest: the VMPL an SVSM leaves the guest (vmpck_id)
    registered: bool = True
    before_outblob_read: Callable[[Path], None] | None = None
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    entries: list[Path] = field(default_factory=list)
    generated: int = 0  # how many times respond() ran
    _read_generation: dict[Path, int] = field(default_factory=dict)

    @property
    def snp(self) -> bool:
        return self.provider == "sev_guest"

    @property
    def auxblob(self) -> bool:
        return self.snp if self.with_auxblob is None else self.with_auxblob

    def mkdir(self, path: Path) -> None:
        if not self.registered:
            raise OSError(errno.ENXIO, "No such device or address")
        super().mkdir(path)
        self.entries.append(path)
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")
        names = ["inblob", "outblob"] + (["auxblob"] if self.auxblob else [])
        if self.snp:
            (path / "privlevel").write_text("")
            (path / "privlevel_floor").write_text(f"{self.privlevel_floor}\n")
        for name in names:
            (path / name).write_bytes(b"")

    def rmdir(self, path: Path) -> None:
        shutil.rmtree(path)  # configfs removes the attributes with the entry
        self._read_generation.pop(path, None)

    def write(self, path: Path, data: bytes) -> None:
        if path.name not in ("inblob", "privlevel") or not path.exists():
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        if path.name == "privlevel":
            try:
                level = int(data.decode("ascii").strip())
            except ValueError as e:
                raise OSError(errno.EINVAL, "Invalid argument") from e
            if not self.privlevel_floor <= level <= PRIVLEVEL_MAX:
                raise OSError(errno.EINVAL, "Invalid argument")
        elif len(data) > INBLOB_MAX:
            raise OSError(errno.EFBIG, "File too large")
        super().write(path, data)
        self.writes.append((path.name, data))
        self.bump(path.parent)

    def read(self, path: Path) -> bytes:
        entry = path.parent
        if path.name == "outblob" and self.before_outblob_read is not None:
            self.before_outblob_read(entry)
        if path.name in ("outblob", "auxblob") and path.exists():
            self._generate(entry)
        return super().read(path)

    def _generate(self, entry: Path) -> None:
        """report.c ``tsm_report_read``: regenerate only when written since the last report."""
        generation = int((entry / "generation").read_text())
        if self._read_generation.get(entry) == generation:
            return
        inblob = (entry / "inblob").read_bytes()
        if len(inblob) != INBLOB_MAX:  # also "no inblob yet"; tdx-guest.c and sev-guest.c need exactly 64 bytes
            raise OSError(errno.EINVAL, "Invalid argument")
        privlevel = int((entry / "privlevel").read_text().strip() or 0) if self.snp else 0
        if self.snp and privlevel < self.privlevel_floor:  # firmware: VMPL below the guest's own
            raise OSError(errno.EINVAL, "Invalid argument")
        self.generated += 1
        outblob, auxblob = self.respond(inblob, privlevel)
        (entry / "outblob").write_bytes(outblob)
        if self.auxblob:
            (entry / "auxblob").write_bytes(auxblob or b"")
        self._read_generation[entry] = generation

    @staticmethod
    def bump(entry: Path) -> None:
        """What any accepted write by anyone does to the entry: generation + 1."""
        gen = entry / "generation"
        gen.write_text(f"{int(gen.read_text()) + 1}\n")
