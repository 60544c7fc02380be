"""Evidence from an Azure confidential VM's vTPM (SEV-SNP or TDX behind Microsoft's paravisor; azure-cvm.md).

The item is ``{"type": "azure-sev-snp-vtpm" | "azure-tdx-vtpm", "evidence": base64(evidence JSON)}`` with the
Confidential Containers evidence JSON (kbs-protocol.md §1.4), as :mod:`verifier.evidence.azure_cvm` parses it::

    {"version": 2, "tpm_quote": {"signature": hex, "message": hex, "pcrs": [24 x hex]},
     "hcl_report": base64url, "vcek": base64url}            (az-snp-vtpm; az-tdx-vtpm has "td_quote")

Steps, through the kernel's TPM resource manager (``/dev/tpmrm0``) or swtpm's TCP port (:mod:`verifier.client.
tpm`; our own marshaller, not tpm2-pytss: see :mod:`verifier.client.tpm.wire`):

1. Version 2 (the default): write the binding (64 bytes) to NV 0x01400002, defining the index first when the guest
   never has (owner authorization, no authValue, as kinvolk's and trustee's attesters do). The paravisor then
   rebuilds the HCL report with ``user-data`` = the binding; version 1 skips this (the report stays the boot-time
   one, fresh only through the quote).
2. Read the HCL report (NV 0x01400001, in NV-buffer-sized chunks) and parse it with the server's parser; version
   2 waits (up to ``refresh_timeout``) until its ``user-data`` is the binding: the paravisor refreshes it
   asynchronously.
3. Read the 24 SHA-256 PCRs, then TPM2_Quote them with the AK at 0x81000003 and the binding as qualifyingData;
   the quote's pcrDigest must be SHA-256 of the values read (else a PCR changed in between: read and quote again).
4. The hardware report's endorsements, from an :data:`EndorsementSource`. On Azure (:func:`imds_endorsements`):
   SEV-SNP's VCEK from the instance metadata service's THIM endpoint; TDX's TD quote from IMDS's ``/acc/tdquote``,
   which turns the TDREPORT in the HCL report into a quote. Neither exists off Azure: tests and development pass
   the simulated paravisor's source (:mod:`verifier.simulation.azure_paravisor`). The IMDS calls follow Microsoft's
   and kinvolk's clients and were not run on Azure by this project.

No TPM device or nobody listening at the TCP address is :class:`~verifier.client.errors.ProviderUnavailable`;
every other failure (a TPM response code, a malformed response, an HCL report that does not parse or was not
refreshed) is :class:`~verifier.client.errors.ProviderError` naming the command and response code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import httpx

from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.providers.aci_skr import vcek_fits
from verifier.client.providers.base import Binding, EvidenceItem, b64
from verifier.client.tpm import DeviceTransport, TcpTransport, Tpm, TpmError, TpmResponseError, TpmUnavailable
from verifier.client.tpm.transport import DEFAULT_DEVICE, Transport
from verifier.errors import KeywardError
from verifier.evidence.azure_hcl import parse_hcl_report, parse_runtime_claims
from verifier.evidence.snp import parse_snp_report
from verifier.evidence.tpm import parse_tpm_quote

NAME: Final = "azure-cvm"
AK_HANDLE: Final = 0x81000003
HCL_REPORT_INDEX: Final = 0x01400001
USER_DATA_INDEX: Final = 0x01400002
USER_DATA_SIZE: Final = 64
PLATFORMS: Final = {"snp": "azure-sev-snp-vtpm", "tdx": "azure-tdx-vtpm"}
_REPORT_TYPES: Final = {2: "snp", 4: "tdx"}
_IGVM_REPORT_TYPE_OFFSET: Final = 0x4C8
_TDREPORT: Final = slice(0x20, 0x20 + 1024)
_QUOTE_ATTEMPTS: Final = 3
TPM_RC_HANDLE_NV: Final = 0x18B  # TPM_RC_HANDLE for handle 1: the index is not defined
IMDS: Final = "http://169.254.169.254"

HardwareKind = Literal["snp", "tdx"]


@dataclass(frozen=True, slots=True)
class Endorsements:
    """What the hardware report needs beside the HCL report. SEV-SNP: the VCEK (DER; required by the server) and
    optionally the AMD CRL; TDX: the TD quote (required) and optionally its QuoteCollateralV3 JSON."""

    vcek: bytes | None = None
    crl: bytes | None = None
    td_quote: bytes | None = None
    collateral_json: str | None = None


#: ``(kind, hcl_report) -> Endorsements``: where the VCEK or the TD quote comes from.
EndorsementSource = Callable[[HardwareKind, bytes], Endorsements]


def imds_endorsements(
    kind: HardwareKind, hcl_report: bytes, *, timeout: float = 10.0, base_url: str = IMDS
) -> Endorsements:
    """Azure's instance metadata service (reachable only inside an Azure VM): SEV-SNP ``GET
    /metadata/THIM/amd/certification`` (``Metadata: true``) -> ``{"vcekCert": PEM, ...}``; TDX ``POST /acc/tdquote``
    ``{"report": base64url(TDREPORT)}`` -> ``{"quote": base64url}`` (azure-cvm.md §2). The service is the VM's
    link-local address, which no proxy can reach: proxy variables in the environment are not used
    (``trust_env=False``). ``base_url``: for a test's local stand-in."""
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as http:
            if kind == "snp":
                r = http.get(f"{base_url}/metadata/THIM/amd/certification", headers={"Metadata": "true"})
                r.raise_for_status()
                pem = r.json()["vcekCert"]
                if not isinstance(pem, str):
                    raise TypeError("vcekCert is not a PEM string")
                # DER as served, unparsed here (AMD's VCEKs have serial number 0, which cryptography warns about):
                # vcek_fits reads it as the server does.
                return Endorsements(vcek=ssl.PEM_cert_to_DER_cert(pem))
            report = base64.urlsafe_b64encode(hcl_report[_TDREPORT]).rstrip(b"=").decode()
            r = http.post(f"{base_url}/acc/tdquote", json={"report": report})
            r.raise_for_status()
            quote = r.json()["quote"]
            return Endorsements(td_quote=base64.urlsafe_b64decode(quote + "=" * (-len(quote) % 4)))
    except httpx.ConnectError as e:
        raise ProviderUnavailable(NAME, "Azure's instance metadata service does not answer (not an Azure VM)") from e
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
        raise ProviderError(NAME, f"the instance metadata service's {kind} endorsement is unusable: {e}") from e


def _hex_list(values: dict[int, bytes]) -> list[str]:
    return [values[i].hex() for i in sorted(values)]


@dataclass
class AzureCvmProvider:
    """Collect ``az-snp-vtpm`` / ``az-tdx-vtpm`` evidence from the vTPM at ``device`` or at ``tcp`` (host, port)."""

    device: Path = DEFAULT_DEVICE
    tcp: tuple[str, int] | None = None
    version: Literal[1, 2] = 2
    endorsements: EndorsementSource = field(default=imds_endorsements)
    refresh_timeout: float = 5.0
    name: str = NAME

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        if len(binding.report_data) != USER_DATA_SIZE:
            raise ValueError("report_data must be 64 bytes")
        try:
            with Tpm(self._transport()) as tpm:
                hcl, kind, quote, pcrs = self._from_tpm(tpm, binding.report_data)
        except TpmUnavailable as e:
            raise ProviderUnavailable(self.name, str(e)) from e
        except TpmError as e:
            raise ProviderError(self.name, f"{e} [{e.code}]") from e
        found = self.endorsements(kind, hcl)
        doc: dict[str, object] = {
            "version": self.version,
            "tpm_quote": {"signature": quote[1].hex(), "message": quote[0].hex(), "pcrs": _hex_list(pcrs)},
            "hcl_report": base64.urlsafe_b64encode(hcl).decode(),
        }
        item: EvidenceItem = {"type": PLATFORMS[kind]}
        if kind == "snp":
            if not found.vcek:
                raise ProviderError(self.name, "no VCEK for the SEV-SNP report (the endorsement source gave none)")
            if not vcek_fits(parse_snp_report(parse_hcl_report(hcl, "snp").hardware_report), found.vcek):
                raise ProviderError(  # THIM serves the host's current VCEK; the server would refuse this one
                    self.name, "the VCEK is for another TCB or chip than the HCL report's SEV-SNP report"
                )
            doc["vcek"] = base64.urlsafe_b64encode(found.vcek).decode()
            if found.crl:
                item["crl"] = b64(found.crl)
        else:
            if not found.td_quote:
                raise ProviderError(self.name, "no TD quote for the HCL TD report (the endorsement source gave none)")
            doc["td_quote"] = base64.urlsafe_b64encode(found.td_quote).decode()
            if found.collateral_json:
                item["collateral"] = found.collateral_json
        item["evidence"] = b64(json.dumps(doc, separators=(",", ":")).encode())
        return [item]

    def _transport(self) -> Transport:
        if self.tcp is not None:
            return TcpTransport(*self.tcp)
        return DeviceTransport(self.device)

    def _from_tpm(self, tpm: Tpm, binding: bytes) -> tuple[bytes, HardwareKind, tuple[bytes, bytes], dict[int, bytes]]:
        if self.version == 2:
            self._write_user_data(tpm, binding)
        hcl, kind = self._hcl_report(tpm, binding if self.version == 2 else None)
        for _ in range(_QUOTE_ATTEMPTS):
            pcrs = tpm.pcr_read()
            q = tpm.quote(AK_HANDLE, binding)
            try:
                parsed = parse_tpm_quote(q.attest)
            except KeywardError as e:
                raise ProviderError(self.name, f"the TPM's quote does not parse: {e.code.value}") from e
            if not hmac.compare_digest(parsed.extra_data, binding):
                raise ProviderError(self.name, "the TPM's quote does not carry the binding as extraData")
            if len(q.signature) != 256:
                raise ProviderError(self.name, f"the AK's signature is {len(q.signature)} bytes, not RSA-2048's 256")
            digest = hashlib.sha256(b"".join(pcrs[i] for i in parsed.pcr_selection)).digest()
            if hmac.compare_digest(digest, parsed.pcr_digest):
                return hcl, kind, (q.attest, q.signature), pcrs
        raise ProviderError(self.name, f"the PCRs changed between TPM2_PCR_Read and TPM2_Quote {_QUOTE_ATTEMPTS} times")

    def _write_user_data(self, tpm: Tpm, binding: bytes) -> None:
        try:
            defined = tpm.nv_read_public(USER_DATA_INDEX)
        except TpmResponseError as e:
            if e.rc != TPM_RC_HANDLE_NV:
                raise
            tpm.nv_define_space(USER_DATA_INDEX, USER_DATA_SIZE)
        else:
            if defined.size != USER_DATA_SIZE:
                raise ProviderError(self.name, f"NV {USER_DATA_INDEX:#010x} holds {defined.size} bytes, not 64")
        tpm.nv_write(USER_DATA_INDEX, binding)

    def _hcl_report(self, tpm: Tpm, user_data: bytes | None) -> tuple[bytes, HardwareKind]:
        deadline = time.monotonic() + self.refresh_timeout
        while True:
            hcl = tpm.nv_read(HCL_REPORT_INDEX)
            kind = self._kind(hcl)
            try:
                claims = parse_runtime_claims(parse_hcl_report(hcl, kind).runtime_claims)
            except KeywardError as e:
                raise ProviderError(self.name, f"the HCL report does not parse: {e.code.value}") from e
            if user_data is None or (claims.user_data is not None and hmac.compare_digest(claims.user_data, user_data)):
                return hcl, kind
            if time.monotonic() >= deadline:
                raise ProviderError(
                    self.name,
                    f"the HCL report's user-data is not the binding {self.refresh_timeout:.0f}s after writing it "
                    "(the paravisor did not refresh NV 0x01400001)",
                )
            time.sleep(0.25)

    def _kind(self, hcl: bytes) -> HardwareKind:
        if len(hcl) < _IGVM_REPORT_TYPE_OFFSET + 4:
            raise ProviderError(self.name, f"the HCL report is {len(hcl)} bytes, too short to hold its report type")
        (report_type,) = struct.unpack_from("<I", hcl, _IGVM_REPORT_TYPE_OFFSET)
        kind = _REPORT_TYPES.get(report_type)
        if kind is None:
            raise ProviderError(self.name, f"the HCL report's type {report_type} is neither SEV-SNP (2) nor TDX (4)")
        return "snp" if kind == "snp" else "tdx"
