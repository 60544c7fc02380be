"""SIMULATED evidence for development: the fake vendor PKIs of :mod:`verifier.simulation` sign it, not Intel or AMD.

Only a Keyward server in development with ``allow_simulated_roots`` accepts it, and every result it gets is marked
simulated. The binding is real: the quote's REPORTDATA (or the SNP report's REPORT_DATA) is the binding the
server expects, so a development run exercises the same nonce, key and JWE path as production.

* ``intel-tdx`` (default): a TDX v4 quote with its QuoteCollateralV3 JSON attached; ``td`` chooses the TD's
  fields (e.g. a DEBUG TD to see a rejection).
* ``amd-sev-snp``: a report with the VCEK (``certs="vcek"``) or the extended-report certificate table, and the
  fake ARK's CRL (a real enclave leaves the CRL to the server's KDS fetch); ``aci`` binds like the confidential
  ACI SKR sidecar (runtime data, SHA-256 || zeros) instead of the default binding.
* ``gpus``: that many simulated H100 GPUs after the CPU item, GPU ``i`` signing the SPDM nonce
  :func:`~verifier.keywrap.enclave.gpu_nonce` ``(nonce, thumbprint, i)`` as :class:`~verifier.client.providers.nvml.
  NvmlGpuProvider` asks a real one to; each item carries its RIMs and OCSP answers (a development server has no
  NVIDIA service to fetch them from).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Literal

from verifier.client.providers.aci_skr import skr_report_data, skr_runtime_data
from verifier.client.providers.base import Binding, EvidenceItem, b64
from verifier.keywrap.enclave import gpu_nonce

if TYPE_CHECKING:
    from verifier.simulation.amd_pki import ReportOptions
    from verifier.simulation.intel_quote_builder import TdReport

NAME: Final = "simulated"


@dataclass
class SimulatedProvider:
    """Evidence from the fake Intel / AMD PKIs, bound to the challenge like real evidence."""

    platform: Literal["intel-tdx", "amd-sev-snp"] = "intel-tdx"
    td: TdReport | None = None
    snp: ReportOptions | None = None
    certs: Literal["vcek", "cert_table"] = "vcek"
    aci: bool = False
    gpus: int = 0
    name: str = NAME

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        if self.platform == "intel-tdx":
            cpu = self._tdx(binding.report_data)
        elif self.platform == "amd-sev-snp":
            cpu = self._snp(binding)
        else:
            raise ValueError(f"simulated platform must be intel-tdx or amd-sev-snp, got {self.platform!r}")
        return [cpu, *(self._gpu(binding, i) for i in range(self.gpus))]

    def _gpu(self, binding: Binding, index: int) -> EvidenceItem:
        from verifier.simulation.nvidia_options import GpuOptions  # noqa: PLC0415 - development only
        from verifier.simulation.nvidia_pki import default_nvidia_pki  # noqa: PLC0415

        nonce = gpu_nonce(binding.nonce, binding.thumbprint, index)
        ev = default_nvidia_pki().build(GpuOptions(device_index=index, nonce=nonce))
        return ev.evidence_item(index, carry_collateral=True)

    def _tdx(self, report_data: bytes) -> EvidenceItem:
        from verifier.simulation.intel_pki import QuoteOptions, default_pki  # noqa: PLC0415 - development only
        from verifier.simulation.intel_quote_builder import TdReport  # noqa: PLC0415

        td = replace(self.td or TdReport(), reportdata=report_data)
        ev = default_pki().build(QuoteOptions(td=td))
        return {"type": "intel-tdx", "evidence": b64(ev.quote), "collateral": ev.collateral_json}

    def _snp(self, binding: Binding) -> EvidenceItem:
        from verifier.simulation.amd_pki import ReportOptions, default_amd_pki  # noqa: PLC0415 - development only

        runtime = skr_runtime_data(binding) if self.aci else None
        report_data = skr_report_data(runtime) if runtime is not None else binding.report_data
        ev = default_amd_pki().build(replace(self.snp or ReportOptions(), report_data=report_data))
        item = {"type": "amd-sev-snp", "evidence": b64(ev.report)}
        if self.certs == "vcek":
            item["vcek"] = b64(ev.leaf_der)
        else:
            item["cert_table"] = b64(ev.cert_table)
        if ev.crl_der is not None:
            item["crl"] = b64(ev.crl_der)
        if runtime is not None:
            item["runtime_data"] = b64(runtime)
        return item
