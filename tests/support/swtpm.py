"""A real software TPM for tests: Debian's swtpm (TPM 2.0, libtpms) on 127.0.0.1, started per use and stopped
after it, optionally provisioned as Azure's paravisor provisions a CVM's vTPM and fronted by the simulated
paravisor (:mod:`verifier.simulation.azure_paravisor`).

    with running_swtpm(tmp_path) as address: ...          # a fresh TPM 2.0 at (host, port), started up (clear)
    with azure_vtpm(tmp_path, "snp") as vtpm: ...         # + AK, NV indexes, HCL report, PCRs; vtpm.address

Tests using these skip, saying why, only where ``/usr/bin/swtpm`` is missing (CI installs it: ``scripts/swtpm.sh``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from verifier.client.tpm import TcpTransport, Tpm, TpmUnavailable
from verifier.simulation.azure_cvm_builder import Kind, ParavisorReport
from verifier.simulation.azure_paravisor import ParavisorProxy, provision

SWTPM: Final = shutil.which("swtpm") or "/usr/bin/swtpm"
HOST: Final = "127.0.0.1"
needs_swtpm = pytest.mark.skipif(
    not Path(SWTPM).is_file(), reason="swtpm is not installed (scripts/swtpm.sh installs Debian's swtpm)"
)


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@contextmanager
def running_swtpm(state_dir: Path) -> Iterator[tuple[str, int]]:
    """``swtpm socket --tpm2`` with its data and control channels on free local ports and its state in
    ``state_dir``, already started (``not-need-init,startup-clear``); stopped (SIGTERM, then SIGKILL) afterwards."""
    if not Path(SWTPM).is_file():
        pytest.skip("swtpm is not installed (scripts/swtpm.sh installs Debian's swtpm)")
    state_dir.mkdir(parents=True, exist_ok=True)
    port, ctrl = _free_port(), _free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed binary, arguments built here
        [
            SWTPM,
            "socket",
            "--tpm2",
            "--server",
            f"type=tcp,port={port},bindaddr={HOST}",
            "--ctrl",
            f"type=tcp,port={ctrl},bindaddr={HOST}",
            "--flags",
            "not-need-init,startup-clear",
            "--tpmstate",
            f"dir={state_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                TcpTransport(HOST, port, timeout=2).close()
                break
            except TpmUnavailable:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    pytest.fail(f"swtpm did not start on port {port}: {err[-500:]}")
                time.sleep(0.05)
        yield HOST, port
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


@dataclass
class AzureVtpm:
    """A provisioned swtpm behind the simulated paravisor: ``address`` is what a provider talks to (the proxy,
    which refreshes the HCL report on user-data writes), ``swtpm`` the TPM itself (no refresh)."""

    address: tuple[str, int]
    swtpm: tuple[str, int]
    proxy: ParavisorProxy
    boot_report: ParavisorReport

    def tpm(self) -> Tpm:
        """A direct connection to the swtpm (swtpm serves one connection at a time: close it before collecting)."""
        return Tpm(TcpTransport(*self.swtpm))


@contextmanager
def azure_vtpm(state_dir: Path, kind: Kind = "snp") -> Iterator[AzureVtpm]:
    """A fresh swtpm provisioned like an Azure CVM's vTPM (``kind``'s HCL report), behind the paravisor proxy."""
    with running_swtpm(state_dir) as address:
        with Tpm(TcpTransport(*address)) as tpm:
            report = provision(tpm, kind)
        proxy = ParavisorProxy(address, kind, latest=report)
        listening = proxy.start()
        try:
            yield AzureVtpm(listening, address, proxy, report)
        finally:
            proxy.stop()
