"""A stand-in for the kernel side of configfs-tsm, over a real directory tree (tests only).

It behaves like ``drivers/virt/coco/tsm.c`` as far as the provider can see: ``mkdir`` makes an entry with
``provider``, ``generation``, ``inblob``, ``privlevel``, ``outblob`` and ``auxblob``; every write to ``inblob`` or
``privlevel`` bumps ``generation``; reading ``outblob`` or ``auxblob`` generates the blobs through
``respond(inblob, privlevel)``; ``rmdir`` drops the whole entry. ``before_outblob_read`` runs just before each
``outblob`` read, so a test can play another writer racing the provider. The provider's file I/O itself is the
real code (this class calls the real :class:`TsmFs` for every read and write).
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from verifier.client.providers.configfs_tsm import TsmFs

Respond = Callable[[bytes, int], tuple[bytes, bytes | None]]


@dataclass
class FakeTsmKernel(TsmFs):
    root: Path
    respond: Respond
    provider: str = "tdx_guest"
    with_auxblob: bool = True
    registered: bool = True
    before_outblob_read: Callable[[Path], None] | None = None
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    entries: list[Path] = field(default_factory=list)

    def mkdir(self, path: Path) -> None:
        if not self.registered:
            raise OSError(errno.ENXIO, "No such device or address")
        super().mkdir(path)
        self.entries.append(path)
        (path / "provider").write_text(self.provider + "\n")
        (path / "generation").write_text("0\n")
        (path / "privlevel").write_text("0\n")
        for name in ("inblob", "outblob") + (("auxblob",) if self.with_auxblob else ()):
            (path / name).write_bytes(b"")

    def rmdir(self, path: Path) -> None:
        shutil.rmtree(path)  # configfs removes the attributes with the entry

    def write(self, path: Path, data: bytes) -> None:
        super().write(path, data)
        self.writes.append((path.name, data))
        self.bump(path.parent)

    def read(self, path: Path) -> bytes:
        entry = path.parent
        if path.name == "outblob" and self.before_outblob_read is not None:
            self.before_outblob_read(entry)
        if path.name in ("outblob", "auxblob"):  # the kernel generates the report when it is read
            privlevel = int((entry / "privlevel").read_text().strip() or 0)
            outblob, auxblob = self.respond((entry / "inblob").read_bytes(), privlevel)
            (entry / "outblob").write_bytes(outblob)
            if self.with_auxblob:
                (entry / "auxblob").write_bytes(auxblob or b"")
        return super().read(path)

    @staticmethod
    def bump(entry: Path) -> None:
        """What any write by anyone does to the entry: generation + 1."""
        gen = entry / "generation"
        gen.write_text(f"{int(gen.read_text()) + 1}\n")
