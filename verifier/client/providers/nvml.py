"""Evidence from NVIDIA GPUs in confidential-computing mode, through NVML (``pynvml`` from nvidia-ml-py, the
``keyward[gpu]`` extra), to send with the CPU evidence.

For each selected GPU (all, or the NVML indices asked for, in that order) the provider:

1. derives the GPU's SPDM nonce: ``gpu_nonce(nonce, thumbprint, device_index)``
   (:func:`verifier.keywrap.enclave.gpu_nonce`), where ``thumbprint`` is the raw RFC 7638 thumbprint of the
   enclave key (:attr:`~verifier.client.providers.base.Binding.thumbprint`) and ``device_index`` the GPU's
   position among the NVIDIA devices this attestation sends (0, 1, ... in the order sent, not the NVML index);
2. asks NVML for the attestation report with that nonce
   (``nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)``: the 37-byte SPDM GET_MEASUREMENTS request then
   the GPU's signed response) and checks that the request carries the nonce (a driver or binding that drops it,
   go-nvml#128, would otherwise be found out only by the server);
3. asks for the device certificate chain (``nvmlDeviceGetConfComputeGpuCertificate(handle)``:
   ``attestationCertChain``, concatenated PEM, leaf first);
4. emits ``{"type": "nvidia-gpu", "evidence": b64(report), "certs": b64(PEM chain), "device_index": i}``.

Before that it checks, once, that the system is in CC mode (``nvmlSystemGetConfComputeState``) and refuses CC
devtools mode unless ``allow_devtools`` (a devtools GPU's measurements do not match NVIDIA's reference values, so
the server would reject it; NVML's word on either is unauthenticated, the server relies on the report). Setting the
GPUs' ready state is the host's or the runtime's job, not this provider's. ``nvmlShutdown`` closes every
``nvmlInit``, whatever happened.

API: nvidia-ml-py 13.615 (the report call takes the nonce as bytes and returns the structure; the structure fields
``attestationReportSize``/``attestationReport`` and ``attestationCertChainSize``/``attestationCertChain``). A binding
without one of the calls (:data:`CALLS`, checked first) or with other call forms fails as a :class:`ProviderError`
naming the call. Every failure is a
:class:`~verifier.client.errors.ProviderError` (no NVML library, driver or GPU:
:class:`~verifier.client.errors.ProviderUnavailable`), never a bare ``NVMLError``. NVSwitches (NSCQ) are not
collected here.

:class:`CpuWithGpus` puts the GPU items after the CPU provider's items: the server accepts GPU evidence only with
the CPU evidence that binds the same nonce and key. Tests use :mod:`verifier.testing.fake_nvml` for ``nvml``.
"""

# ruff: noqa: N802, N815 - the Protocols below spell pynvml's function and field names

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.providers.base import Binding, EvidenceItem, EvidenceProvider, b64
from verifier.keywrap.enclave import MAX_NVIDIA_DEVICES, gpu_nonce

NAME: Final = "nvml"
ITEM_TYPE: Final = "nvidia-gpu"
NONCE_SIZE: Final = 32
#: The SPDM GET_MEASUREMENTS request that opens every report: header (4), nonce (32), SlotIDParam (1).
SPDM_REQUEST_SIZE: Final = 37
NONCE_OFFSET: Final = 4
PEM_BEGIN: Final = b"-----BEGIN CERTIFICATE-----"

# NVML return codes (nvml.h nvmlReturn_t) that get their own message.
NVML_ERROR_NOT_SUPPORTED: Final = 3
NVML_ERROR_NO_PERMISSION: Final = 4
NVML_ERROR_DRIVER_NOT_LOADED: Final = 9
NVML_ERROR_LIBRARY_NOT_FOUND: Final = 12
NVML_ERROR_FUNCTION_NOT_FOUND: Final = 13
# nvmlSystemGetConfComputeState values.
NVML_CC_SYSTEM_FEATURE_ENABLED: Final = 1
NVML_CC_SYSTEM_DEVTOOLS_MODE_ON: Final = 1

T = TypeVar("T")
#: The NVML calls made, checked up front: a binding from before CC support lacks some.
CALLS: Final = (
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlSystemGetConfComputeState",
    "nvmlDeviceGetConfComputeGpuAttestationReport",
    "nvmlDeviceGetConfComputeGpuCertificate",
)


class ConfComputeState(Protocol):
    """``c_nvmlConfComputeSystemState_t``."""

    ccFeature: int
    devToolsMode: int


class GpuAttestationReport(Protocol):
    """``c_nvmlConfComputeGpuAttestationReport_t`` (the fields read here; the buffer is a ctypes ``c_uint8`` array)."""

    attestationReportSize: int
    attestationReport: Any


class GpuCertificate(Protocol):
    """``c_nvmlConfComputeGpuCertificate_t`` (the fields read here)."""

    attestationCertChainSize: int
    attestationCertChain: Any


class Nvml(Protocol):
    """The part of the ``pynvml`` module this provider calls (the module itself, or a fake)."""

    @property
    def NVMLError(self) -> type[Exception]: ...  # the exception class of every failed call (``value``: the code)

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int, /) -> Any: ...
    def nvmlSystemGetConfComputeState(self) -> ConfComputeState: ...
    def nvmlDeviceGetConfComputeGpuAttestationReport(self, handle: Any, nonce: bytes, /) -> GpuAttestationReport: ...
    def nvmlDeviceGetConfComputeGpuCertificate(self, handle: Any, /) -> GpuCertificate: ...


def load_pynvml() -> Nvml:
    """``import pynvml`` (nvidia-ml-py; loading libnvidia-ml.so.1 waits for ``nvmlInit``)."""
    try:
        import pynvml  # type: ignore[import-untyped]  # noqa: PLC0415 - optional dependency, imported on first use
    except ImportError as e:
        raise ProviderUnavailable(NAME, "nvidia-ml-py is not installed (pip install 'keyward[gpu]')") from e
    nvml: Nvml = pynvml
    return nvml


@dataclass
class NvmlGpuProvider:
    """NVIDIA GPU evidence bound to the challenge and the enclave key, one item per selected GPU.

    ``gpus``: NVML indices in the order to send them (``None``: every GPU, in NVML order). ``nvml``: the NVML
    bindings (``None``: :func:`load_pynvml` on each collect).
    """

    gpus: Sequence[int] | None = None
    nvml: Nvml | None = None
    allow_devtools: bool = False
    name: str = NAME

    def __post_init__(self) -> None:
        if self.gpus is None:
            return
        self.gpus = tuple(self.gpus)
        if not self.gpus:
            raise ValueError("gpus must name at least one GPU (None: all)")
        if any(i < 0 for i in self.gpus):
            raise ValueError("GPU indices must be >= 0")
        if len(set(self.gpus)) != len(self.gpus):
            raise ValueError("GPU indices must not repeat")
        if len(self.gpus) > MAX_NVIDIA_DEVICES:
            raise ValueError(f"at most {MAX_NVIDIA_DEVICES} GPUs per attestation")

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        if len(binding.nonce) != NONCE_SIZE:
            raise ValueError(f"the challenge nonce must be {NONCE_SIZE} bytes")
        thumbprint = binding.thumbprint
        nvml = self.nvml if self.nvml is not None else load_pynvml()
        missing = [call for call in CALLS if not callable(getattr(nvml, call, None))]
        if missing:
            raise ProviderError(self.name, f"this nvidia-ml-py has no {missing[0]} (CC needs nvidia-ml-py >= 12.535)")
        self._call(nvml, "nvmlInit", nvml.nvmlInit)
        try:
            self._check_cc_mode(nvml)
            selected = self._select(self._call(nvml, "nvmlDeviceGetCount", nvml.nvmlDeviceGetCount))
            return [
                self._item(nvml, gpu, device_index, gpu_nonce(binding.nonce, thumbprint, device_index))
                for device_index, gpu in enumerate(selected)
            ]
        finally:
            with contextlib.suppress(nvml.NVMLError):  # the evidence (or the first error) is already in hand
                nvml.nvmlShutdown()

    def _check_cc_mode(self, nvml: Nvml) -> None:
        state = self._call(nvml, "nvmlSystemGetConfComputeState", nvml.nvmlSystemGetConfComputeState)
        if state.ccFeature != NVML_CC_SYSTEM_FEATURE_ENABLED:
            raise ProviderError(
                self.name, "confidential computing is off on this system's GPUs: they give no attestation report"
            )
        if state.devToolsMode == NVML_CC_SYSTEM_DEVTOOLS_MODE_ON and not self.allow_devtools:
            raise ProviderError(
                self.name,
                "the GPUs are in CC devtools mode: their measurements do not match NVIDIA's reference values, so "
                "Keyward would reject them (allow_devtools sends them anyway)",
            )

    def _select(self, count: int) -> tuple[int, ...]:
        if count <= 0:
            raise ProviderUnavailable(self.name, "NVML sees no NVIDIA GPU")
        if self.gpus is None:
            if count > MAX_NVIDIA_DEVICES:
                raise ProviderError(
                    self.name, f"{count} GPUs, at most {MAX_NVIDIA_DEVICES} per attestation: choose them (gpus=...)"
                )
            return tuple(range(count))
        missing = [i for i in self.gpus if i >= count]
        if missing:
            raise ProviderError(self.name, f"no GPU {missing[0]}: NVML sees {count} (indices 0-{count - 1})")
        return tuple(self.gpus)

    def _item(self, nvml: Nvml, gpu: int, device_index: int, nonce: bytes) -> EvidenceItem:
        where = f"GPU {gpu}"
        handle = self._call(nvml, f"{where}: nvmlDeviceGetHandleByIndex", nvml.nvmlDeviceGetHandleByIndex, gpu)
        report = self._call(
            nvml,
            f"{where}: nvmlDeviceGetConfComputeGpuAttestationReport",
            nvml.nvmlDeviceGetConfComputeGpuAttestationReport,
            handle,
            nonce,
        )
        evidence = self._buffer(where, "attestation report", report.attestationReport, report.attestationReportSize)
        if len(evidence) < SPDM_REQUEST_SIZE or not hmac.compare_digest(
            evidence[NONCE_OFFSET : NONCE_OFFSET + NONCE_SIZE], nonce
        ):
            raise ProviderError(
                self.name, f"{where}: the report's SPDM request does not carry the nonce given (driver or binding bug)"
            )
        cert = self._call(
            nvml,
            f"{where}: nvmlDeviceGetConfComputeGpuCertificate",
            nvml.nvmlDeviceGetConfComputeGpuCertificate,
            handle,
        )
        chain = self._buffer(where, "certificate chain", cert.attestationCertChain, cert.attestationCertChainSize)
        if not chain.lstrip().startswith(PEM_BEGIN):
            raise ProviderError(self.name, f"{where}: the certificate chain NVML returned is not PEM")
        return {"type": ITEM_TYPE, "evidence": b64(evidence), "certs": b64(chain), "device_index": device_index}

    def _buffer(self, where: str, what: str, buffer: Any, size: int) -> bytes:
        """The first ``size`` bytes of a ctypes ``c_uint8`` array (``size`` from NVML, so bounded by the buffer)."""
        try:
            capacity = len(buffer)
            if not 0 < size <= capacity:
                raise ProviderError(self.name, f"{where}: NVML returned a {what} of {size} bytes (buffer {capacity})")
            return bytes(buffer[:size])
        except (TypeError, ValueError) as e:
            raise ProviderError(self.name, f"{where}: the {what} NVML returned is not a byte buffer") from e

    def _call(self, nvml: Nvml, what: str, fn: Callable[..., T], *args: object) -> T:
        """One NVML call; its ``NVMLError`` (or a binding without this call form) becomes a ProviderError."""
        try:
            return fn(*args)
        except nvml.NVMLError as e:
            raise _nvml_error(self.name, what, e) from e
        except (AttributeError, TypeError) as e:
            raise ProviderError(
                self.name, f"{what}: this nvidia-ml-py does not have the expected API ({type(e).__name__})"
            ) from e


def _nvml_error(provider: str, what: str, error: Exception) -> ProviderError:
    code = getattr(error, "value", None)
    if code == NVML_ERROR_LIBRARY_NOT_FOUND:
        return ProviderUnavailable(provider, "the NVML library (libnvidia-ml.so.1) is not installed: no NVIDIA driver")
    if code == NVML_ERROR_DRIVER_NOT_LOADED:
        return ProviderUnavailable(provider, "the NVIDIA driver is not loaded")
    if code == NVML_ERROR_FUNCTION_NOT_FOUND:
        return ProviderError(provider, f"{what}: this NVIDIA driver has no such call (CC needs R535 or later)")
    if code == NVML_ERROR_NOT_SUPPORTED:
        return ProviderError(provider, f"{what}: not supported (is the GPU CC-capable and in CC mode?)")
    if code == NVML_ERROR_NO_PERMISSION:
        return ProviderError(provider, f"{what}: permission denied (NVML needs access to /dev/nvidia*)")
    return ProviderError(provider, f"{what} failed: NVML error {code}: {error}")


@dataclass
class CpuWithGpus:
    """The CPU provider's items, then the GPU items: one attestation for the CPU TEE and its GPUs."""

    cpu: EvidenceProvider
    gpus: EvidenceProvider

    @property
    def name(self) -> str:
        return f"{self.cpu.name} + {self.gpus.name}"

    def collect(self, binding: Binding) -> list[EvidenceItem]:
        return [*self.cpu.collect(binding), *self.gpus.collect(binding)]
