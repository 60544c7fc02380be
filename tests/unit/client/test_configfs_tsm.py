"""The configfs-tsm provider against a fake kernel over a real directory tree (tests/unit/client/fake_tsm.py)."""

from __future__ import annotations

import base64
import errno
from pathlib import Path
from typing import Any

import pytest

from tests.unit.client.fake_tsm import FakeTsmKernel, Respond
from verifier.appraisal.intel import IntelPolicy
from verifier.appraisal.snp import SnpPolicy
from verifier.client.errors import ProviderError, ProviderOptionRefused, ProviderUnavailable
from verifier.client.keys import EnclaveKeyPair
from verifier.client.providers import Binding, ConfigfsTsmProvider
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.evaluation import evaluate_intel_quote, evaluate_snp_report
from verifier.simulation.amd_pki import ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import QuoteOptions, default_pki
from verifier.simulation.intel_quote_builder import TdReport
from verifier.trust.intel_collateral import parse_collateral_json

NONCE = bytes(range(32))


@pytest.fixture(scope="module")
def binding() -> Binding:
    key = EnclaveKeyPair.generate("P-256")
    return Binding(NONCE, key.public_jwk, key.report_data(NONCE))


def tdx_respond(inblob: bytes, _privlevel: int) -> tuple[bytes, bytes | None]:
    return default_pki().build(QuoteOptions(td=TdReport(reportdata=inblob))).quote, None


def snp_respond(inblob: bytes, privlevel: int) -> tuple[bytes, bytes | None]:
    ev = default_amd_pki().build(ReportOptions(report_data=inblob, vmpl=privlevel))
    return ev.report, ev.cert_table


def _kernel(tmp_path: Path, respond: Respond = tdx_respond, **kw: Any) -> FakeTsmKernel:
    root = tmp_path / "tsm" / "report"
    root.mkdir(parents=True)
    return FakeTsmKernel(root, respond, **kw)


def _provider(kernel: FakeTsmKernel, **kw: Any) -> ConfigfsTsmProvider:
    kw.setdefault("sleep", lambda _seconds: None)  # quote-service retries do not wait in tests
    return ConfigfsTsmProvider(root=kernel.root, fs=kernel, **kw)


def test_configfs_tsm_tdx_quote_carries_binding(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path)
    [item] = _provider(kernel).collect(binding)
    assert set(item) == {"type", "evidence"}  # TDX collateral is not local: the server uses its cache
    assert item["type"] == "intel-tdx"
    assert kernel.writes == [("inblob", binding.report_data)]
    assert list(kernel.root.iterdir()) == []  # the entry is removed
    # What the server does with it: verify under the (simulated) Intel PKI with the binding as REPORTDATA.
    ev = default_pki().build(QuoteOptions(td=TdReport(reportdata=binding.report_data)))
    result = evaluate_intel_quote(
        base64.b64decode(item["evidence"]),
        parse_collateral_json(ev.collateral_json),
        ev.trust_store,
        ev.now,
        IntelPolicy(expected_report_data=binding.report_data),
    )
    assert result.accepted, result.reasons


def test_configfs_tsm_snp_report_with_cert_table_and_privlevel(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path, snp_respond, provider="sev_guest")
    [item] = _provider(kernel, privlevel=1).collect(binding)
    assert item["type"] == "amd-sev-snp"
    assert [name for name, _ in kernel.writes] == ["privlevel", "inblob"]
    ev = default_amd_pki().build(ReportOptions(report_data=binding.report_data, vmpl=1))
    assert base64.b64decode(item["cert_table"]) == ev.cert_table
    result = evaluate_snp_report(
        base64.b64decode(item["evidence"]),
        leaf_der=None,
        cert_table=base64.b64decode(item["cert_table"]),
        trust=ev.trust_store,
        now=ev.now,
        policy=SnpPolicy(expected_report_data=binding.report_data, allowed_vmpls=frozenset({1})),
    )
    assert result.accepted, result.reasons


@pytest.mark.parametrize("with_auxblob", [False, True], ids=["no-auxblob-attribute", "empty-auxblob"])
def test_configfs_tsm_snp_without_cert_table(tmp_path: Path, binding: Binding, with_auxblob: bool) -> None:
    kernel = _kernel(
        tmp_path, lambda i, p: (snp_respond(i, p)[0], None), provider="sev_guest", with_auxblob=with_auxblob
    )
    [item] = _provider(kernel).collect(binding)
    assert "cert_table" not in item  # the server then uses its VCEK cache


def test_configfs_tsm_generation_race_retried(tmp_path: Path, binding: Binding) -> None:
    raced: list[Path] = []

    def other_writer(entry: Path) -> None:
        if not raced:  # one foreign write between our inblob write and our outblob read
            raced.append(entry)
            FakeTsmKernel.bump(entry)

    kernel = _kernel(tmp_path, before_outblob_read=other_writer)
    [item] = _provider(kernel).collect(binding)
    assert raced
    assert [name for name, _ in kernel.writes] == ["inblob", "inblob"]  # the second attempt won
    assert item["type"] == "intel-tdx"


def test_configfs_tsm_generation_race_gives_up(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path, before_outblob_read=FakeTsmKernel.bump)
    with pytest.raises(ProviderError) as exc:
        _provider(kernel, attempts=2).collect(binding)
    assert exc.value.code == "client.provider"
    assert len(kernel.writes) == 2
    assert list(kernel.root.iterdir()) == []  # removed on failure too


def test_configfs_tsm_unique_entry_per_request(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path)
    provider = _provider(kernel)
    provider.collect(binding)
    provider.collect(binding)
    assert len(set(kernel.entries)) == 2


@pytest.mark.parametrize(
    ("kw", "unavailable"),
    [
        ({"provider": "arm_cca_guest"}, True),
        ({"registered": False}, True),
        ({"respond": lambda i, p: (b"", None)}, False),
    ],
    ids=["unsupported-provider", "no-tsm-driver", "empty-outblob"],
)
def test_configfs_tsm_provider_errors(tmp_path: Path, binding: Binding, kw: dict[str, Any], unavailable: bool) -> None:
    kernel = _kernel(tmp_path, **kw)
    with pytest.raises(ProviderError) as exc:
        _provider(kernel).collect(binding)
    assert isinstance(exc.value, ProviderUnavailable) is unavailable
    assert list(kernel.root.iterdir()) == []


def test_configfs_tsm_missing_root_unavailable(tmp_path: Path, binding: Binding) -> None:
    with pytest.raises(ProviderUnavailable) as exc:
        ConfigfsTsmProvider(root=tmp_path / "no-configfs").collect(binding)
    assert exc.value.code == "client.provider.unavailable"


def test_configfs_tsm_plain_directory_is_not_configfs(tmp_path: Path, binding: Binding) -> None:
    root = tmp_path / "report"  # the real TsmFs on a plain directory: mkdir works, but no attributes appear
    root.mkdir()
    with pytest.raises(ProviderError, match="I/O failed") as exc:
        ConfigfsTsmProvider(root=root).collect(binding)
    assert not isinstance(exc.value, ProviderUnavailable)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(
    "kw", [{"privlevel": 4}, {"privlevel": -1}, {"attempts": 0}], ids=["privlevel-4", "privlevel-neg", "attempts-0"]
)
def test_configfs_tsm_invalid_options(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        ConfigfsTsmProvider(**kw)  # type: ignore[arg-type]


def test_configfs_tsm_report_data_must_be_64_bytes(tmp_path: Path) -> None:
    kernel = _kernel(tmp_path)
    with pytest.raises(ValueError, match="64 bytes"):
        _provider(kernel).collect(Binding(NONCE, {}, bytes(32)))


def _snp_vmpl(item: dict[str, Any]) -> int:
    return parse_snp_report(base64.b64decode(item["evidence"])).vmpl


def test_configfs_tsm_snp_under_svsm_defaults_to_floor(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path, snp_respond, provider="sev_guest", privlevel_floor=2)
    [item] = _provider(kernel).collect(binding)
    assert kernel.writes == [("privlevel", b"2\n"), ("inblob", binding.report_data)]
    assert _snp_vmpl(item) == 2


def test_configfs_tsm_snp_floor_zero_writes_no_privlevel(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path, snp_respond, provider="sev_guest")
    [item] = _provider(kernel).collect(binding)
    assert [name for name, _ in kernel.writes] == ["inblob"]
    assert _snp_vmpl(item) == 0


def test_configfs_tsm_snp_privlevel_below_floor_refused(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path, snp_respond, provider="sev_guest", privlevel_floor=2)
    with pytest.raises(ProviderOptionRefused, match="VMPL floor 2") as exc:
        _provider(kernel, privlevel=1).collect(binding)
    assert exc.value.code == "client.provider.option_refused"
    assert kernel.writes == []  # refused before anything was written
    assert list(kernel.root.iterdir()) == []


def test_configfs_tsm_snp_einval_names_privilege_level(tmp_path: Path, binding: Binding) -> None:
    def firmware_refuses(_inblob: bytes, _privlevel: int) -> tuple[bytes, bytes | None]:
        raise OSError(errno.EINVAL, "Invalid argument")  # sev-guest.c: SEV_RET_INVALID_PARAM -> -EINVAL

    kernel = _kernel(tmp_path, firmware_refuses, provider="sev_guest")
    with pytest.raises(ProviderError, match="privilege level, VMPL 0 \\(privlevel_floor 0\\)") as exc:
        _provider(kernel).collect(binding)
    assert exc.value.code == "client.provider"


def test_configfs_tsm_tdx_privlevel_refused(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path)
    with pytest.raises(ProviderOptionRefused, match="TDX guest") as exc:
        _provider(kernel, privlevel=0).collect(binding)
    assert exc.value.code == "client.provider.option_refused"
    assert kernel.writes == []


def _failing_quote(*failures: int | None) -> Respond:
    """A TDX quote service that fails with these errnos (None: an empty quote) before it answers."""
    left = list(failures)

    def respond(inblob: bytes, privlevel: int) -> tuple[bytes, bytes | None]:
        if left:
            failure = left.pop(0)
            if failure is None:
                return b"", None
            raise OSError(failure, errno.errorcode[failure])
        return tdx_respond(inblob, privlevel)

    return respond


QGS_FAILURES = [None, errno.EIO, errno.ETIMEDOUT, errno.EBUSY]
QGS_IDS = ["empty-quote", "eio", "etimedout", "ebusy"]


@pytest.mark.parametrize("failure", QGS_FAILURES, ids=QGS_IDS)
def test_configfs_tsm_tdx_quote_service_failure_retried(tmp_path: Path, binding: Binding, failure: int | None) -> None:
    kernel = _kernel(tmp_path, _failing_quote(failure))
    sleeps: list[float] = []
    [item] = _provider(kernel, sleep=sleeps.append).collect(binding)
    assert item["type"] == "intel-tdx"
    assert [name for name, _ in kernel.writes] == ["inblob", "inblob"]  # rewritten: the kernel caches an empty quote
    assert sleeps == [5.0 if failure == errno.EBUSY else 2.0]  # EBUSY waits for the in-flight request


@pytest.mark.parametrize("failure", QGS_FAILURES, ids=QGS_IDS)
def test_configfs_tsm_tdx_quote_service_down_gives_up(tmp_path: Path, binding: Binding, failure: int | None) -> None:
    kernel = _kernel(tmp_path, _failing_quote(*[failure] * 3))
    sleeps: list[float] = []
    with pytest.raises(ProviderError, match="quote generation service \\(QGS\\) is unavailable or hung") as exc:
        _provider(kernel, sleep=sleeps.append).collect(binding)
    assert not isinstance(exc.value, ProviderUnavailable)
    assert (errno.errorcode[failure] if failure else "empty quote") in exc.value.message
    assert kernel.generated == 3
    assert sleeps == ([5.0, 5.0] if failure == errno.EBUSY else [2.0, 4.0])
    assert list(kernel.root.iterdir()) == []


def _must_not_wait(seconds: float) -> None:
    raise AssertionError(f"waited {seconds}s")


def test_configfs_tsm_snp_empty_outblob_not_retried(tmp_path: Path, binding: Binding) -> None:
    kernel = _kernel(tmp_path, lambda i, p: (b"", None), provider="sev_guest")
    with pytest.raises(ProviderError, match="empty outblob"):
        _provider(kernel, sleep=_must_not_wait).collect(binding)
    assert kernel.generated == 1
