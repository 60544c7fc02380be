"""A simulated Azure paravisor in front of a software TPM (swtpm), so the Azure CVM provider runs against a real
TPM holding a realistic HCL report. SIMULATION ONLY: the hardware report comes from the simulated AMD or Intel
PKI (:func:`~verifier.simulation.azure_cvm_builder.paravisor_hcl_report`), which only a development server with
simulated roots trusts.

What Azure's paravisor does and this does too (azure-cvm.md §1, §2):

* :func:`provision`: an RSA-2048 restricted signing AK (TPM2_CreatePrimary under the endorsement hierarchy)
  made persistent at 0x81000003, NV 0x01400002 (64 bytes, user data) and NV 0x01400001 (the HCL report, 2048
  bytes: swtpm's largest index) defined with owner authorization and no authValue, the HCL report for the AK and
  zero user data written, and a few PCRs extended so that they are not all zero.
* :func:`simulated_endorsements`: what Azure's instance metadata service serves beside the HCL report, from the
  simulated PKIs: the VCEK (and the AMD CRL) of the simulated Genoa chip, or a TD quote over the HCL report's TD
  report (the quoting service), with its Intel collateral. An
  :data:`~verifier.client.providers.azure_cvm.EndorsementSource`.
* :class:`ParavisorProxy`: a TCP endpoint that forwards raw TPM commands to swtpm and, after a successful
  TPM2_NV_Write to 0x01400002, regenerates the HCL report with the new user data before answering (the real
  paravisor does it asynchronously; kinvolk's tools wait 3 s). It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa

from verifier.client.providers.azure_cvm import Endorsements
from verifier.client.tpm import TcpTransport, Tpm, TpmError
from verifier.client.tpm.commands import rsa_ak_template
from verifier.client.tpm.wire import HEADER, TPM_RH_ENDORSEMENT, Cc
from verifier.evidence.azure_hcl import parse_hcl_report, parse_td_report
from verifier.platforms.azure_cvm import TD_FIELDS
from verifier.simulation.amd_options import ReportOptions
from verifier.simulation.amd_pki import default_amd_pki
from verifier.simulation.azure_cvm_builder import Kind, ParavisorReport, paravisor_hcl_report
from verifier.simulation.intel_options import QuoteOptions
from verifier.simulation.intel_pki import default_pki
from verifier.simulation.intel_quote_builder import TdReport

AK_HANDLE: Final = 0x81000003
HCL_REPORT_INDEX: Final = 0x01400001
USER_DATA_INDEX: Final = 0x01400002
HCL_NV_SIZE: Final = 2048
#: PCRs the simulated boot extends (firmware, boot loader, secure-boot policy, kernel).
BOOT_PCRS: Final = (0, 4, 7, 9)


#: The TD report fields the simulated quoting service copies into the TD quote body: those the verifier compares
#: with the HCL TD report, and TEE_TCB_SVN2.
_TD_FIELDS: Final = (*TD_FIELDS, "tee_tcb_svn2")


def simulated_endorsements(kind: Kind, hcl_report: bytes) -> Endorsements:
    """The simulated IMDS: SEV-SNP: the simulated Genoa chip's VCEK and the AMD CRL (the paravisor's report is
    signed by that chip); TDX: a TD quote whose body is the HCL report's TD report, with its collateral."""
    if kind == "snp":
        amd = default_amd_pki().build(ReportOptions(product="genoa"))
        return Endorsements(vcek=amd.leaf_der, crl=amd.crl_der)
    quote, collateral = simulated_td_quote(parse_hcl_report(hcl_report, "tdx").hardware_report[:1024])
    return Endorsements(td_quote=quote, collateral_json=collateral)


def simulated_td_quote(td_report: bytes) -> tuple[bytes, str]:
    """The simulated quoting service (IMDS ``/acc/tdquote``): a TD quote whose body is ``td_report``'s (the 1024
    bytes of a TDREPORT), signed by the simulated Intel PKI, and its QuoteCollateralV3 JSON."""
    report = parse_td_report(td_report)
    td = TdReport(**{name: getattr(report, name) for name in _TD_FIELDS})
    intel = default_pki().build(QuoteOptions(tee="tdx", td=td))
    return intel.quote, intel.collateral_json


def ak_public(tpm: Tpm) -> rsa.RSAPublicKey:
    """The AK at 0x81000003 as a cryptography key (TPM2_ReadPublic)."""
    public = tpm.read_public(AK_HANDLE)
    return rsa.RSAPublicNumbers(public.e, int.from_bytes(public.modulus, "big")).public_key()


def refresh_hcl_report(tpm: Tpm, kind: Kind) -> ParavisorReport:
    """Rebuild the HCL report for the TPM's AK and current user data, and store it in NV 0x01400001."""
    user_data = tpm.nv_read(USER_DATA_INDEX)
    report = paravisor_hcl_report(ak_public(tpm), user_data, kind=kind, nv_size=HCL_NV_SIZE)
    tpm.nv_write(HCL_REPORT_INDEX, report.hcl_report)
    return report


def provision(tpm: Tpm, kind: Kind = "snp") -> ParavisorReport:
    """Set up a fresh swtpm as Azure's paravisor sets up the vTPM (see the module docstring)."""
    handle, _ = tpm.create_primary(TPM_RH_ENDORSEMENT, rsa_ak_template())
    tpm.evict_control(handle, AK_HANDLE)
    tpm.flush_context(handle)
    tpm.nv_define_space(USER_DATA_INDEX, 64)
    tpm.nv_write(USER_DATA_INDEX, bytes(64))
    tpm.nv_define_space(HCL_REPORT_INDEX, HCL_NV_SIZE)
    for pcr in BOOT_PCRS:
        tpm.pcr_extend(pcr, hashlib.sha256(f"simulated boot, PCR {pcr}".encode()).digest())
    return refresh_hcl_report(tpm, kind)


@dataclass
class ParavisorProxy:
    """Forwards raw TPM commands from one client at a time to swtpm at ``upstream``; regenerates the HCL report
    after every successful user-data write. ``latest`` is the last report written (its VCEK / TD quote are what
    Azure's IMDS would serve)."""

    upstream: tuple[str, int]
    kind: Kind = "snp"
    latest: ParavisorReport | None = None
    refreshes: int = 0
    _server: socket.socket | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> tuple[str, int]:
        """Listen on a free port of 127.0.0.1; returns (host, port)."""
        self._server = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _serve(self) -> None:
        while self._server is not None:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with client, self._lock:
                self._relay(client)

    def _relay(self, client: socket.socket) -> None:
        with Tpm(TcpTransport(*self.upstream)) as tpm:
            while True:
                command = _read_command(client)
                if command is None:
                    return
                response = tpm.transport.transmit(command)
                if _writes_user_data(command) and response[6:10] == bytes(4):
                    try:
                        self.latest = refresh_hcl_report(tpm, self.kind)
                        self.refreshes += 1
                    except TpmError:
                        pass  # the client reads the stale report and says so
                client.sendall(response)


def _read_command(client: socket.socket) -> bytes | None:
    data = bytearray()
    while len(data) < HEADER.size:
        chunk = client.recv(HEADER.size - len(data))
        if not chunk:
            return None
        data += chunk
    _, size, _ = HEADER.unpack(bytes(data))
    if not HEADER.size <= size <= 8192:
        return None
    while len(data) < size:
        chunk = client.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _writes_user_data(command: bytes) -> bool:
    """A TPM2_NV_Write whose nvIndex handle (the second) is NV 0x01400002."""
    _, _, code = HEADER.unpack_from(command)
    return code == Cc.NV_Write and len(command) >= 18 and int.from_bytes(command[14:18], "big") == USER_DATA_INDEX


__all__ = [
    "AK_HANDLE",
    "BOOT_PCRS",
    "HCL_REPORT_INDEX",
    "USER_DATA_INDEX",
    "ParavisorProxy",
    "ak_public",
    "provision",
    "refresh_hcl_report",
    "simulated_endorsements",
]
