"""A fake NVML for the enclave SDK's GPU provider: the ``pynvml`` calls it makes, for N confidential-computing GPUs.

It has the names, argument forms and result structures of nvidia-ml-py 13.615 (``pynvml``), as far as
:class:`~verifier.client.providers.nvml.NvmlGpuProvider` can see them:

* ``nvmlInit`` / ``nvmlShutdown`` (reference-counted; every other call needs a live init, else ``Uninitialized``),
  ``nvmlDeviceGetCount``, ``nvmlDeviceGetHandleByIndex``;
* ``nvmlSystemGetConfComputeState`` -> a structure with ``environment``, ``ccFeature``, ``devToolsMode``;
* ``nvmlDeviceGetConfComputeGpuAttestationReport(handle, nonce)``: the nonce is copied into a 32-byte ctypes array
  exactly as pynvml does (any other length is a ``TypeError``); the report is ``build_report(gpu index, nonce)``,
  copied into the 0x2000-byte ``attestationReport`` buffer with ``attestationReportSize``;
* ``nvmlDeviceGetConfComputeGpuCertificate(handle)`` -> ``attestationCertChain`` (0x1400 bytes) holding the GPU's
  PEM chain, with ``attestationCertChainSize``;
* ``NVMLError``: raised with pynvml's numeric codes in ``value`` (an attestation report while CC is off is
  ``Not Supported``, like the driver).

``build_report`` defaults to :func:`spdm_echo_report` (the 37-byte SPDM GET_MEASUREMENTS request with the nonce,
then a dummy response): enough to see which nonce the provider asked for. A test that needs reports a verifier
accepts passes a builder from the simulated NVIDIA PKI and each GPU's chain. Failures: ``init_error`` (e.g.
:data:`LIBRARY_NOT_FOUND`), ``cc_feature`` / ``dev_tools_mode``, and per GPU ``report_error`` / ``cert_error``.

Tests only: nothing in production or the SDK imports this module.
"""

# ruff: noqa: N802 - the methods carry pynvml's names, which is the point of the fake

from __future__ import annotations

import base64
import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

# NVML return codes (nvml.h ``nvmlReturn_t``).
INVALID_ARGUMENT: Final = 2
NOT_SUPPORTED: Final = 3
INSUFFICIENT_SIZE: Final = 7
DRIVER_NOT_LOADED: Final = 9
LIBRARY_NOT_FOUND: Final = 12
FUNCTION_NOT_FOUND: Final = 13
GPU_IS_LOST: Final = 15
UNINITIALIZED: Final = 1
UNKNOWN: Final = 999

# ``nvmlSystemGetConfComputeState`` values.
CC_FEATURE_DISABLED: Final = 0
CC_FEATURE_ENABLED: Final = 1
DEVTOOLS_OFF: Final = 0
DEVTOOLS_ON: Final = 1
ENVIRONMENT_PROD: Final = 2

# Buffer sizes of the NVML structures (pynvml: NVML_CC_GPU_*, NVML_GPU_*CERT_CHAIN_SIZE).
NONCE_SIZE: Final = 0x20
REPORT_BUFFER_SIZE: Final = 0x2000
CEC_REPORT_BUFFER_SIZE: Final = 0x1000
CERT_CHAIN_BUFFER_SIZE: Final = 0x1000
ATTESTATION_CERT_CHAIN_BUFFER_SIZE: Final = 0x1400

#: SPDM 1.1 GET_MEASUREMENTS request header before the nonce: version 0x11, code 0xE0, signature requested, all blocks.
SPDM_REQUEST_HEADER: Final = bytes([0x11, 0xE0, 0x01, 0xFF])

#: (NVML index, the 32-byte nonce NVML was given) -> the raw attestation report the GPU returns.
ReportBuilder = Callable[[int, bytes], bytes]


class ConfComputeSystemState(ctypes.Structure):
    """pynvml ``c_nvmlConfComputeSystemState_t``."""

    _fields_ = (("environment", ctypes.c_uint), ("ccFeature", ctypes.c_uint), ("devToolsMode", ctypes.c_uint))


class ConfComputeGpuCertificate(ctypes.Structure):
    """pynvml ``c_nvmlConfComputeGpuCertificate_t``."""

    _fields_ = (
        ("certChainSize", ctypes.c_uint),
        ("attestationCertChainSize", ctypes.c_uint),
        ("certChain", ctypes.c_uint8 * CERT_CHAIN_BUFFER_SIZE),
        ("attestationCertChain", ctypes.c_uint8 * ATTESTATION_CERT_CHAIN_BUFFER_SIZE),
    )


class ConfComputeGpuAttestationReport(ctypes.Structure):
    """pynvml ``c_nvmlConfComputeGpuAttestationReport_t``."""

    _fields_ = (
        ("isCecAttestationReportPresent", ctypes.c_uint),
        ("attestationReportSize", ctypes.c_uint),
        ("cecAttestationReportSize", ctypes.c_uint),
        ("nonce", ctypes.c_uint8 * NONCE_SIZE),
        ("attestationReport", ctypes.c_uint8 * REPORT_BUFFER_SIZE),
        ("cecAttestationReport", ctypes.c_uint8 * CEC_REPORT_BUFFER_SIZE),
    )


class FakeNVMLError(Exception):
    """pynvml's ``NVMLError``: the NVML return code in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def spdm_echo_report(index: int, nonce: bytes) -> bytes:
    """The SPDM request as a GPU records it (header, nonce, SlotIDParam 0) and a dummy response naming the GPU."""
    return SPDM_REQUEST_HEADER + nonce + b"\x00" + f"fake SPDM response of GPU {index}".encode()


def fake_chain_pem(index: int, certificates: int = 5) -> bytes:
    """PEM-shaped text of ``certificates`` blocks (not real certificates): what NVML hands over, leaf first."""
    blocks = []
    for level in range(certificates):
        body = base64.encodebytes(f"fake certificate {level} of GPU {index}".encode()).decode()
        blocks.append(f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n")
    return "".join(blocks).encode("ascii")


@dataclass(frozen=True, slots=True)
class FakeHandle:
    """What ``nvmlDeviceGetHandleByIndex`` returns (pynvml: an opaque device pointer)."""

    index: int


@dataclass
class FakeGpu:
    """One GPU: its chain (default :func:`fake_chain_pem`) and the NVML errors its calls raise, if any."""

    chain_pem: bytes | None = None
    report_error: int | None = None
    cert_error: int | None = None


@dataclass
class FakeNvml:
    """The ``pynvml`` module as the GPU provider uses it; records the nonces it was given and the init balance."""

    gpus: list[FakeGpu] = field(default_factory=lambda: [FakeGpu(), FakeGpu()])
    build_report: ReportBuilder = spdm_echo_report
    init_error: int | None = None
    cc_feature: int = CC_FEATURE_ENABLED
    dev_tools_mode: int = DEVTOOLS_OFF
    environment: int = ENVIRONMENT_PROD
    nonces: list[tuple[int, bytes]] = field(default_factory=list)
    inits: int = 0
    shutdowns: int = 0

    NVMLError = FakeNVMLError

    @classmethod
    def with_gpus(cls, count: int, build_report: ReportBuilder = spdm_echo_report) -> FakeNvml:
        """``count`` healthy GPUs in CC mode."""
        return cls([FakeGpu() for _ in range(count)], build_report)

    @property
    def live(self) -> bool:
        """Whether an init is still open (every ``nvmlInit`` needs its ``nvmlShutdown``)."""
        return self.inits > self.shutdowns

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise FakeNVMLError(self.init_error)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self._require_init()
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._require_init()
        if not 0 <= index < len(self.gpus):
            raise FakeNVMLError(INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlSystemGetConfComputeState(self) -> ConfComputeSystemState:
        self._require_init()
        return ConfComputeSystemState(self.environment, self.cc_feature, self.dev_tools_mode)

    def nvmlDeviceGetConfComputeGpuAttestationReport(
        self, handle: FakeHandle, c_nonce: bytes
    ) -> ConfComputeGpuAttestationReport:
        self._require_init()
        result = ConfComputeGpuAttestationReport()
        result.nonce = (ctypes.c_uint8 * len(c_nonce))(*c_nonce)  # pynvml's own copy: TypeError unless 32 bytes
        gpu = self.gpus[handle.index]
        if gpu.report_error is not None:
            raise FakeNVMLError(gpu.report_error)
        if self.cc_feature != CC_FEATURE_ENABLED:
            raise FakeNVMLError(NOT_SUPPORTED)
        nonce = bytes(result.nonce)
        self.nonces.append((handle.index, nonce))
        report = self.build_report(handle.index, nonce)
        if len(report) > REPORT_BUFFER_SIZE:
            raise FakeNVMLError(INSUFFICIENT_SIZE)
        result.attestationReport[: len(report)] = report
        result.attestationReportSize = len(report)
        return result

    def nvmlDeviceGetConfComputeGpuCertificate(self, handle: FakeHandle) -> ConfComputeGpuCertificate:
        self._require_init()
        gpu = self.gpus[handle.index]
        if gpu.cert_error is not None:
            raise FakeNVMLError(gpu.cert_error)
        chain = gpu.chain_pem if gpu.chain_pem is not None else fake_chain_pem(handle.index)
        if len(chain) > ATTESTATION_CERT_CHAIN_BUFFER_SIZE:
            raise FakeNVMLError(INSUFFICIENT_SIZE)
        result = ConfComputeGpuCertificate()
        result.attestationCertChain[: len(chain)] = chain
        result.attestationCertChainSize = len(chain)
        return result

    def _require_init(self) -> None:
        if not self.live:
            raise FakeNVMLError(UNINITIALIZED)
