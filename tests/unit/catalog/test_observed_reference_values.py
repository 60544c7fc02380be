"""Which attestations "trust these measurements" may draft from (:func:`verifier.catalog.service.
observed_reference_values`), pure: a decided one whose every evaluation passed verification, one draft per CPU
platform (GPUs have none); refused, saying why, one defect per case: pending, a failed verification anywhere, a CPU
platform without claims, two items of one platform that differ, and CPU-less evidence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from verifier.catalog.service import Observed, observed_reference_values
from verifier.errors import Code, Conflict, UsageError

TDX = {"mrtd": "11" * 48, "rtmr0": "22" * 48, "rtmr1": "33" * 48, "rtmr2": "44" * 48}
SNP = {"measurement": "55" * 48, "host_data": "00" * 32}


def test_observed_reference_values_one_draft_per_cpu_platform() -> None:
    observed = [Observed("intel-tdx", True, TDX), Observed("nvidia-gpu", True, {"arch": "HOPPER"})]

    drafts = observed_reference_values("rejected", ["intel-tdx", "nvidia-gpu"], observed)

    assert set(drafts) == {"intel-tdx"}
    assert drafts["intel-tdx"]["allowed_measurements"]["mrtd"] == ["11" * 48]


def test_observed_reference_values_accepted_attestation_allowed() -> None:
    drafts = observed_reference_values("accepted", ["amd-sev-snp"], [Observed("amd-sev-snp", True, SNP)])
    assert drafts == {"amd-sev-snp": {"allowed_measurements": ["55" * 48]}}


@pytest.mark.parametrize(
    ("status", "platforms", "observed", "says"),
    [
        ("pending", ["intel-tdx"], [], "not decided yet"),
        ("rejected", ["intel-tdx"], [Observed("intel-tdx", False, TDX)], "failed verification"),
        (
            "rejected",
            ["intel-tdx", "nvidia-gpu"],
            [Observed("intel-tdx", True, TDX), Observed("nvidia-gpu", False, {})],
            "failed verification",
        ),
        ("rejected", ["intel-tdx"], [], "no verified intel-tdx claims"),
        (
            "rejected",
            ["intel-tdx"],
            [Observed("intel-tdx", True, TDX), Observed("intel-tdx", True, {**TDX, "mrtd": "99" * 48})],
            "differ in their measurements",
        ),
        ("rejected", ["nvidia-gpu"], [Observed("nvidia-gpu", True, {})], "no CPU evidence"),
    ],
    ids=["pending", "cpu-unverified", "gpu-unverified", "no-claims", "items-differ", "gpu-only"],
)
def test_observed_reference_values_refused(
    status: str, platforms: list[str], observed: Sequence[Observed], says: str
) -> None:
    with pytest.raises(Conflict) as caught:
        observed_reference_values(status, platforms, observed)
    assert caught.value.code == Code.RESOURCE_CONFLICT
    assert says in caught.value.message


def test_observed_reference_values_claims_missing_a_measurement_refused() -> None:
    claims: dict[str, Any] = {k: v for k, v in TDX.items() if k != "mrtd"}
    with pytest.raises(UsageError) as caught:
        observed_reference_values("rejected", ["intel-tdx"], [Observed("intel-tdx", True, claims)])
    assert caught.value.code == Code.REQUEST_INVALID
