"""The NVML GPU provider against the fake NVML (verifier/testing/fake_nvml.py), and once against the real pynvml
on a machine without an NVIDIA driver."""

from __future__ import annotations

import base64
import ctypes
import json
import sys
from collections.abc import Callable

import pytest

from tests.unit.client.fake_keyward import LICENCE, EchoProvider, FakeKeyward
from verifier.client import KeywardClient
from verifier.client.errors import ProviderError, ProviderUnavailable
from verifier.client.keys import EnclaveKeyPair
from verifier.client.providers import Binding, CpuWithGpus, NvmlGpuProvider
from verifier.client.providers.base import EvidenceItem
from verifier.keywrap.enclave import MAX_NVIDIA_DEVICES, gpu_nonce, parse_enclave_jwk
from verifier.testing import fake_nvml
from verifier.testing.fake_nvml import (
    ConfComputeGpuAttestationReport,
    FakeGpu,
    FakeHandle,
    FakeNvml,
    FakeNVMLError,
    fake_chain_pem,
    spdm_echo_report,
)

NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def key() -> EnclaveKeyPair:
    return EnclaveKeyPair.generate("P-256")


@pytest.fixture(scope="module")
def binding(key: EnclaveKeyPair) -> Binding:
    return Binding(NONCE, key.public_jwk, key.report_data(NONCE))


def _thumbprint(binding: Binding) -> bytes:
    return parse_enclave_jwk(dict(binding.public_jwk)).thumbprint


def _decoded(item: EvidenceItem, field: str) -> bytes:
    return base64.b64decode(item[field], validate=True)


def test_nvml_provider_all_gpus_items(binding: Binding) -> None:
    nvml = FakeNvml.with_gpus(2)
    items = NvmlGpuProvider(nvml=nvml).collect(binding)
    nonces = [gpu_nonce(NONCE, _thumbprint(binding), i) for i in range(2)]
    assert [set(item) for item in items] == [{"type", "evidence", "certs", "device_index"}] * 2
    assert [item["type"] for item in items] == ["nvidia-gpu"] * 2
    assert [item["device_index"] for item in items] == [0, 1]
    assert [_decoded(item, "evidence") for item in items] == [spdm_echo_report(i, nonces[i]) for i in range(2)]
    assert [_decoded(item, "certs") for item in items] == [fake_chain_pem(0), fake_chain_pem(1)]
    assert nvml.nonces == [(0, nonces[0]), (1, nonces[1])]
    assert json.loads(json.dumps(items)) == items  # what the API body carries


def test_nvml_provider_nonce_is_per_device_and_key(binding: Binding) -> None:
    other = EnclaveKeyPair.generate("P-256")
    nvml = FakeNvml.with_gpus(2)
    provider = NvmlGpuProvider(nvml=nvml)
    provider.collect(binding)
    provider.collect(Binding(NONCE, other.public_jwk, other.report_data(NONCE)))
    sent = [nonce for _, nonce in nvml.nonces]
    assert len(set(sent)) == 4
    assert NONCE not in sent
    assert sent[2:] == [gpu_nonce(NONCE, other.public.thumbprint, i) for i in range(2)]


def test_nvml_provider_subset_in_given_order(binding: Binding) -> None:
    nvml = FakeNvml([FakeGpu(chain_pem=fake_chain_pem(10 + i)) for i in range(3)])
    items = NvmlGpuProvider(gpus=[2, 0], nvml=nvml).collect(binding)
    nonces = [gpu_nonce(NONCE, _thumbprint(binding), i) for i in range(2)]
    assert [item["device_index"] for item in items] == [0, 1]  # the position sent, not the NVML index
    assert nvml.nonces == [(2, nonces[0]), (0, nonces[1])]
    assert [_decoded(item, "certs") for item in items] == [fake_chain_pem(12), fake_chain_pem(10)]


def test_nvml_provider_shuts_nvml_down(binding: Binding) -> None:
    nvml = FakeNvml.with_gpus(1)
    NvmlGpuProvider(nvml=nvml).collect(binding)
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


def _truncated(index: int, nonce: bytes) -> bytes:
    return spdm_echo_report(index, nonce)[:36]


def _nonce_dropped(index: int, nonce: bytes) -> bytes:
    return spdm_echo_report(index, bytes(32))  # a binding that ignores the nonce (go-nvml#128)


def _empty(index: int, nonce: bytes) -> bytes:
    return b""


def _gpu(position: int, **fault: int | bytes) -> Callable[[FakeNvml], None]:
    def apply(nvml: FakeNvml) -> None:
        nvml.gpus[position] = FakeGpu(**fault)  # type: ignore[arg-type]

    return apply


def _set(**attributes: object) -> Callable[[FakeNvml], None]:
    def apply(nvml: FakeNvml) -> None:
        for name, value in attributes.items():
            setattr(nvml, name, value)

    return apply


@pytest.mark.parametrize(
    ("fault", "kind", "message"),
    [
        (_set(init_error=fake_nvml.LIBRARY_NOT_FOUND), ProviderUnavailable, "libnvidia-ml"),
        (_set(init_error=fake_nvml.DRIVER_NOT_LOADED), ProviderUnavailable, "driver is not loaded"),
        (_set(gpus=[]), ProviderUnavailable, "no NVIDIA GPU"),
        (_set(cc_feature=fake_nvml.CC_FEATURE_DISABLED), ProviderError, "confidential computing is off"),
        (_set(dev_tools_mode=fake_nvml.DEVTOOLS_ON), ProviderError, "devtools mode"),
        (_gpu(1, report_error=fake_nvml.GPU_IS_LOST), ProviderError, "GPU 1: nvmlDeviceGetConfComputeGpuAttestation"),
        (_gpu(0, cert_error=fake_nvml.NOT_SUPPORTED), ProviderError, "GPU 0: nvmlDeviceGetConfComputeGpuCertificate"),
        (_gpu(1, report_error=fake_nvml.FUNCTION_NOT_FOUND), ProviderError, "R535"),
        (_set(build_report=_nonce_dropped), ProviderError, "does not carry the nonce"),
        (_set(build_report=_truncated), ProviderError, "does not carry the nonce"),
        (_set(build_report=_empty), ProviderError, "report of 0 bytes"),
        (_gpu(0, chain_pem=b"\x30\x82\x01\x00"), ProviderError, "not PEM"),
        (_gpu(1, chain_pem=b""), ProviderError, "chain of 0 bytes"),
    ],
    ids=[
        "no-nvml-library",
        "driver-not-loaded",
        "no-gpu",
        "cc-off",
        "cc-devtools",
        "report-nvml-error-on-gpu-1",
        "certificate-nvml-error-on-gpu-0",
        "driver-without-cc-calls",
        "report-without-the-nonce",
        "report-truncated",
        "report-empty",
        "chain-not-pem",
        "chain-empty",
    ],
)
def test_nvml_provider_failures(
    binding: Binding, fault: Callable[[FakeNvml], None], kind: type[ProviderError], message: str
) -> None:
    nvml = FakeNvml.with_gpus(2)
    fault(nvml)
    with pytest.raises(ProviderError, match=message) as exc:
        NvmlGpuProvider(nvml=nvml).collect(binding)
    assert type(exc.value) is kind
    assert exc.value.code == kind.code
    assert exc.value.provider == "nvml"
    assert not nvml.live  # every init that succeeded was shut down


def test_nvml_provider_nvml_error_is_chained_not_raised(binding: Binding) -> None:
    nvml = FakeNvml.with_gpus(1)
    nvml.gpus[0].report_error = fake_nvml.UNKNOWN
    with pytest.raises(ProviderError, match="NVML error 999") as exc:
        NvmlGpuProvider(nvml=nvml).collect(binding)
    assert isinstance(exc.value.__cause__, FakeNVMLError)


def test_nvml_provider_devtools_allowed_when_asked(binding: Binding) -> None:
    nvml = FakeNvml.with_gpus(1)
    nvml.dev_tools_mode = fake_nvml.DEVTOOLS_ON
    assert len(NvmlGpuProvider(nvml=nvml, allow_devtools=True).collect(binding)) == 1


def test_nvml_provider_gpu_index_beyond_count(binding: Binding) -> None:
    nvml = FakeNvml.with_gpus(2)
    with pytest.raises(ProviderError, match="no GPU 2"):
        NvmlGpuProvider(gpus=[0, 2], nvml=nvml).collect(binding)
    assert nvml.nonces == []  # nothing asked of any GPU before the selection is known to be good
    assert not nvml.live


def test_nvml_provider_too_many_gpus_for_all(binding: Binding) -> None:
    nvml = FakeNvml.with_gpus(MAX_NVIDIA_DEVICES + 1)
    with pytest.raises(ProviderError, match=f"at most {MAX_NVIDIA_DEVICES}"):
        NvmlGpuProvider(nvml=nvml).collect(binding)
    assert not nvml.live


class _OldApiNvml(FakeNvml):
    """A binding whose report call wants the caller's structure (the call form of older nvidia-ml-py releases)."""

    def nvmlDeviceGetConfComputeGpuAttestationReport(  # type: ignore[override]  # noqa: N802 - pynvml's name
        self, handle: FakeHandle, c_attest_report: ConfComputeGpuAttestationReport
    ) -> ConfComputeGpuAttestationReport:
        ctypes.byref(c_attest_report)  # TypeError for bytes, as the ctypes call would raise
        return c_attest_report


class _PreCcNvml(FakeNvml):
    """A binding from before confidential computing (nvidia-ml-py < 12.535): no CC calls at all."""

    @property
    def nvmlSystemGetConfComputeState(self) -> Callable[[], fake_nvml.ConfComputeSystemState]:  # noqa: N802
        raise AttributeError("module 'pynvml' has no attribute 'nvmlSystemGetConfComputeState'")


@pytest.mark.parametrize(
    ("binding_class", "message"),
    [(_OldApiNvml, "expected API"), (_PreCcNvml, "no nvmlSystemGetConfComputeState")],
    ids=["old-report-call-form", "no-cc-calls"],
)
def test_nvml_provider_unexpected_binding_api(binding: Binding, binding_class: type[FakeNvml], message: str) -> None:
    nvml = binding_class.with_gpus(1)
    with pytest.raises(ProviderError, match=message):
        NvmlGpuProvider(nvml=nvml).collect(binding)
    assert not nvml.live


@pytest.mark.parametrize(
    "gpus",
    [[], [-1], [0, 0], list(range(MAX_NVIDIA_DEVICES + 1))],
    ids=["empty", "negative", "repeated", "too-many"],
)
def test_nvml_provider_invalid_selection(gpus: list[int]) -> None:
    with pytest.raises(ValueError, match="GPU"):
        NvmlGpuProvider(gpus=gpus, nvml=FakeNvml())


def test_nvml_provider_nonce_must_be_32_bytes(key: EnclaveKeyPair) -> None:
    nvml = FakeNvml.with_gpus(1)
    with pytest.raises(ValueError, match="32 bytes"):
        NvmlGpuProvider(nvml=nvml).collect(Binding(bytes(16), key.public_jwk, key.report_data(bytes(16))))
    assert nvml.inits == 0


def test_nvml_provider_without_nvidia_ml_py(binding: Binding, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if the [gpu] extra were not installed
    with pytest.raises(ProviderUnavailable, match=r"keyward\[gpu\]"):
        NvmlGpuProvider().collect(binding)


def _nvml_library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_nvml_library_loads(), reason="an NVIDIA driver is installed here: the real NVML answers")
def test_nvml_provider_real_pynvml_without_driver(binding: Binding) -> None:
    with pytest.raises(ProviderUnavailable, match="libnvidia-ml") as exc:
        NvmlGpuProvider().collect(binding)
    assert type(exc.value.__cause__).__name__ == "NVMLError_LibraryNotFound"


def test_cpu_with_gpus_cpu_items_first(binding: Binding) -> None:
    cpu = EchoProvider()
    combined = CpuWithGpus(cpu, NvmlGpuProvider(nvml=FakeNvml.with_gpus(2)))
    items = combined.collect(binding)
    assert [item["type"] for item in items] == ["intel-tdx", "nvidia-gpu", "nvidia-gpu"]
    assert cpu.bindings == [binding]
    assert combined.name == "echo + nvml"


def test_cpu_with_gpus_cpu_failure_asks_no_gpu(binding: Binding) -> None:
    class Failing(EchoProvider):
        def collect(self, binding: Binding) -> list[dict[str, str]]:
            raise ProviderUnavailable("echo", "no TEE")

    nvml = FakeNvml.with_gpus(1)
    with pytest.raises(ProviderUnavailable, match="no TEE"):
        CpuWithGpus(Failing(), NvmlGpuProvider(nvml=nvml)).collect(binding)
    assert nvml.inits == 0


def test_cpu_with_gpus_through_keyward_client() -> None:
    server = FakeKeyward()
    nvml = FakeNvml.with_gpus(2)
    with KeywardClient("http://keyward.test", LICENCE, http=server.client()) as client:
        lease = client.attest(
            model="m", deployment="d", provider=CpuWithGpus(EchoProvider(), NvmlGpuProvider(nvml=nvml))
        )
    assert lease.id in server.leases
    body = json.loads(server.requests[1].content)
    nonce = base64.urlsafe_b64decode(body["nonce"] + "==")
    thumbprint = parse_enclave_jwk(body["enclave_key"]).thumbprint
    gpu_items = body["evidence"][1:]
    assert [item["device_index"] for item in gpu_items] == [0, 1]
    reports = [base64.b64decode(item["evidence"]) for item in gpu_items]
    assert [report[4:36] for report in reports] == [gpu_nonce(nonce, thumbprint, i) for i in range(2)]
