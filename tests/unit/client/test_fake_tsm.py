"""The configfs-tsm kernel fake is as strict as report.c, tdx-guest.c and sev-guest.c where the provider can tell."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from tests.unit.client.fake_tsm import FakeTsmKernel

REPORT_DATA = bytes(range(64))


def _respond(inblob: bytes, privlevel: int) -> tuple[bytes, bytes | None]:
    return b"report:" + inblob + bytes([privlevel]), b"certs"


def _entry(tmp_path: Path, **kw: Any) -> tuple[FakeTsmKernel, Path]:
    kernel = FakeTsmKernel(tmp_path, _respond, **kw)
    entry = tmp_path / "e"
    kernel.mkdir(entry)
    return kernel, entry


def _generation(kernel: FakeTsmKernel, entry: Path) -> int:
    return int(kernel.read(entry / "generation"))


def test_fake_tsm_tdx_hides_privlevel_and_auxblob(tmp_path: Path) -> None:
    kernel, entry = _entry(tmp_path)
    assert sorted(p.name for p in entry.iterdir()) == ["generation", "inblob", "outblob", "provider"]
    with pytest.raises(PermissionError):
        kernel.write(entry / "privlevel", b"0\n")
    assert _generation(kernel, entry) == 0


def test_fake_tsm_snp_shows_privlevel_floor_and_auxblob(tmp_path: Path) -> None:
    kernel, entry = _entry(tmp_path, provider="sev_guest", privlevel_floor=2)
    assert kernel.read(entry / "privlevel_floor") == b"2\n"
    kernel.write(entry / "inblob", REPORT_DATA)
    kernel.write(entry / "privlevel", b"2\n")
    assert kernel.read(entry / "auxblob") == b"certs"


@pytest.mark.parametrize(("level", "floor"), [(b"1\n", 2), (b"4\n", 0), (b"x\n", 0)], ids=["below-floor", "4", "nan"])
def test_fake_tsm_refused_privlevel_keeps_generation(tmp_path: Path, level: bytes, floor: int) -> None:
    kernel, entry = _entry(tmp_path, provider="sev_guest", privlevel_floor=floor)
    with pytest.raises(OSError, match="Invalid argument") as exc:
        kernel.write(entry / "privlevel", level)
    assert exc.value.errno == errno.EINVAL
    assert _generation(kernel, entry) == 0


def test_fake_tsm_inblob_over_64_bytes_refused(tmp_path: Path) -> None:
    kernel, entry = _entry(tmp_path)
    with pytest.raises(OSError, match="File too large"):
        kernel.write(entry / "inblob", bytes(65))
    assert _generation(kernel, entry) == 0


@pytest.mark.parametrize("inblob", [None, bytes(32)], ids=["no-inblob", "32-bytes"])
def test_fake_tsm_outblob_needs_64_byte_inblob(tmp_path: Path, inblob: bytes | None) -> None:
    kernel, entry = _entry(tmp_path)
    if inblob is not None:
        kernel.write(entry / "inblob", inblob)
    with pytest.raises(OSError, match="Invalid argument"):
        kernel.read(entry / "outblob")


def test_fake_tsm_snp_below_floor_report_refused(tmp_path: Path) -> None:
    kernel, entry = _entry(tmp_path, provider="sev_guest", privlevel_floor=1)
    kernel.write(entry / "inblob", REPORT_DATA)  # privlevel never written: the kernel asks for VMPL 0
    with pytest.raises(OSError, match="Invalid argument"):
        kernel.read(entry / "outblob")


def test_fake_tsm_outblob_cached_until_written(tmp_path: Path) -> None:
    kernel, entry = _entry(tmp_path)
    kernel.write(entry / "inblob", REPORT_DATA)
    first = kernel.read(entry / "outblob")
    assert kernel.read(entry / "outblob") == first
    assert kernel.generated == 1
    kernel.write(entry / "inblob", REPORT_DATA)
    kernel.read(entry / "outblob")
    assert kernel.generated == 2
