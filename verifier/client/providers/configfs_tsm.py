"""Evidence from the Linux configfs-tsm report interface (``/sys/kernel/config/tsm/report``, Linux 6.7+).

Kernel ABI (Documentation/ABI/testing/configfs-tsm-report; ``drivers/virt/coco/guest/report.c``): ``mkdir`` under
the report directory creates an entry with the attributes ``inblob`` (WO, up to 64 bytes), ``provider`` (RO,
``tdx_guest`` or ``sev_guest``), ``generation`` (RO, incremented on every accepted write to ``inblob`` or an
option), ``outblob`` (RO, the report, generated on the first read after a write) and, for SEV-SNP only,
``privlevel`` (WO, the VMPL, ``privlevel_floor``-3), ``privlevel_floor`` (RO, the guest's own VMPL: non-zero under
an SVSM) and ``auxblob`` (RO, the certificate table, amd-snp.md §4.1). ``rmdir`` removes the entry. One entry per
request (a unique name) avoids most conflicts; the generation check catches the rest:

1. ``mkdir`` a fresh entry (ENXIO: no TSM driver is registered).
2. Read ``provider``; only ``tdx_guest`` and ``sev_guest`` are understood. ``privlevel`` on TDX is refused; on
   SEV-SNP one below ``privlevel_floor`` is refused, and without one the floor is written when it is not 0 (the
   kernel would otherwise ask for VMPL 0, which the firmware refuses a guest under an SVSM: EINVAL).
3. Read ``generation``; write ``privlevel`` (if any) and the 64-byte REPORTDATA to ``inblob``.
4. Read ``outblob`` (and ``auxblob`` for SEV-SNP), then ``generation`` again: it must have advanced by exactly
   our writes, else another writer raced us and the attempt is repeated (at most ``attempts`` times).
5. TDX only: an empty outblob (older kernels), EIO, ETIMEDOUT or EBUSY on the outblob read mean the host's quote
   generation service (QGS) failed; steps 3-4 are repeated ``quote_retries`` times, ``quote_backoff`` seconds
   apart and doubling (at least :data:`QUOTE_BUSY_WAIT` after EBUSY, while the earlier request is in flight).
6. ``rmdir`` the entry, whatever happened.

TDX: the outblob is the quote; its collateral is not on the machine, so the server uses its PCS cache. SEV-SNP:
the outblob is the report and a non-empty auxblob becomes ``cert_table``; without one the server uses its VCEK
cache. SVSM service reports (``service_provider``, ``manifestblob``) are not requested. File access goes through
:class:`TsmFs` so tests can stand in for the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from verifier.client.errors import ProviderError, ProviderOptionRefused, ProviderUnavailable
from verifier.client.providers.base import Binding, EvidenceItem, b64

DEFAULT_ROOT: Final = Path("/sys/kernel/config/tsm/report")
NAME: Final = "configfs-tsm"
PLATFORMS: Final = {"tdx_guest": "intel-tdx", "sev_guest": "amd-sev-snp"}
PRIVLEVEL_MAX: Final = 3
REPORT_DATA_SIZE: Final = 64
#: TDX: outblob read errors from the host's quote generation service (tdx-guest.c): EIO (GetQuote failed, newer
#: kernels), ETIMEDOUT (no answer within getquote_timeout, 30 s), EBUSY (an earlier request is still in flight).
QGS_FAILURES: Final = frozenset({errno.EIO, errno.ETIMEDOUT, errno.EBUSY})
#: The shortest wait after EBUSY: the in-flight request has to finish (or time out on the host) first.
QUOTE_BUSY_WAIT: Final = 5.0


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


class _QuoteFailed(Exception):
    """TDX: reading the outblob found the host's quote generation service failing (``errno`` None: empty quote)."""

    def __init__(self, err: int | None) -> None:
        super().__init__(err)
        self.errno = err


@dataclass
class ConfigfsTsmProvider:
    """Collect a TDX quote or an SEV-SNP report (with certificate table) through configfs-tsm."""

    root: Path = DEFAULT_ROOT
    privlevel: int | None = None
    attempts: int = 3
    quote_retries: int = 2
    quote_backoff: float = 2.0
    fs: TsmFs = field(default_factory=TsmFs)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    name: str = NAME

    def __post_init__(self) -> None:
        if self.privlevel is not None and not 0 <= self.privlevel <= PRIVLEVEL_MAX:
            raise ValueError(f"privlevel must be 0-{PRIVLEVEL_MAX}")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.quote_retries < 0 or self.quote_backoff < 0:
            raise ValueError("quote_retries and quote_backoff must be at least 0")

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
        privlevel, floor = self._privlevel(entry, platform)
        races, delay = 0, self.quote_backoff
        failures: list[int | None] = []
        while True:
            try:
                outcome = self._attempt(entry, platform, report_data, privlevel)
            except _QuoteFailed as e:
                failures.append(e.errno)
            except OSError as e:
                if e.errno == errno.EINVAL and platform == "amd-sev-snp":
                    raise ProviderError(self.name, _snp_einval(privlevel or 0, floor)) from e
                raise
            else:
                if outcome is None:
                    races += 1
                    if races >= self.attempts:
                        raise ProviderError(
                            self.name, f"another writer changed the report entry {self.attempts} times; giving up"
                        )
                    continue
                return outcome
            # The TDX quote service failed: wait (longer while a request is still in flight) and ask again.
            if len(failures) > self.quote_retries:
                raise ProviderError(self.name, _qgs_failed(failures))
            self.sleep(max(delay, QUOTE_BUSY_WAIT) if failures[-1] == errno.EBUSY else delay)
            delay *= 2

    def _attempt(self, entry: Path, platform: str, report_data: bytes, privlevel: int | None) -> EvidenceItem | None:
        """One generation-checked request: the item, or None when another writer raced us."""
        before = self._generation(entry)
        writes = 0
        if privlevel is not None:
            self.fs.write(entry / "privlevel", f"{privlevel}\n".encode())
            writes += 1
        self.fs.write(entry / "inblob", report_data)  # always: a new write makes the kernel generate a new report
        writes += 1
        try:
            outblob = self.fs.read(entry / "outblob")
        except OSError as e:
            if platform == "intel-tdx" and e.errno in QGS_FAILURES:
                raise _QuoteFailed(e.errno) from e
            raise
        auxblob = self._auxblob(entry) if platform == "amd-sev-snp" else None
        if self._generation(entry) != before + writes:
            return None
        if not outblob and platform == "intel-tdx":
            raise _QuoteFailed(None)  # kernels before the GetQuote status check return an empty quote
        return _item(platform, outblob, auxblob)

    def _privlevel(self, entry: Path, platform: str) -> tuple[int | None, int]:
        """The privilege level to write (None: none) and the guest's floor. SEV-SNP only: TDX hides ``privlevel``.
        Without ``privlevel`` the kernel asks for VMPL 0, which a guest under an SVSM may not have: use the floor."""
        if platform != "amd-sev-snp":
            if self.privlevel is not None:
                raise ProviderOptionRefused(
                    self.name,
                    f"privlevel {self.privlevel} was asked, but this is a TDX guest (tdx_guest): privlevel is the "
                    "SEV-SNP VMPL and TDX has none; leave --privlevel out",
                )
            return None, 0
        floor = self._privlevel_floor(entry)
        if self.privlevel is None:
            return (floor or None), floor
        if self.privlevel < floor:
            raise ProviderOptionRefused(
                self.name,
                f"privlevel {self.privlevel} is below this guest's VMPL floor {floor} (privlevel_floor; the guest "
                f"runs at VMPL {floor}, e.g. under an SVSM): ask for VMPL {floor}-{PRIVLEVEL_MAX} or leave "
                "--privlevel out",
            )
        return self.privlevel, floor

    def _privlevel_floor(self, entry: Path) -> int:
        try:
            text = self.fs.read(entry / "privlevel_floor").decode("ascii", "replace").strip()
        except FileNotFoundError:
            return 0
        if not text.isdigit() or int(text) > PRIVLEVEL_MAX:
            raise ProviderError(self.name, f"privlevel_floor is not 0-{PRIVLEVEL_MAX}: {text[:20]!r}")
        return int(text)

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


def _snp_einval(privlevel: int, floor: int) -> str:
    return (
        f"the kernel refused the report request (EINVAL): the likely cause is the privilege level, VMPL {privlevel} "
        f"(privlevel_floor {floor}); a guest under an SVSM must report at its own VMPL or higher (--privlevel)"
    )


def _qgs_failed(failures: list[int | None]) -> str:
    names = ", ".join("empty quote" if e is None else errno.errorcode.get(e, str(e)) for e in failures)
    last = failures[-1]
    why = {
        None: "the kernel returned an empty quote",
        errno.EIO: "the quote request failed (EIO)",
        errno.ETIMEDOUT: "the quote request timed out (ETIMEDOUT): the QGS is hung",
        errno.EBUSY: "an earlier quote request is still in flight (EBUSY): the QGS is hung",
    }.get(last, "the quote request failed")
    return (
        f"TDX quote generation failed {len(failures)} times ({names}): {why}. The host's quote generation "
        "service (QGS) is unavailable or hung; check it on the host"
    )


def _item(platform: str, outblob: bytes, auxblob: bytes | None) -> EvidenceItem:
    if not outblob:
        raise ProviderError(NAME, "the kernel returned an empty outblob")
    item = {"type": platform, "evidence": b64(outblob)}
    if auxblob:
        item["cert_table"] = b64(auxblob)
    return item
