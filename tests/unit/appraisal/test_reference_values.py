"""Reference value sets must pin the platform's guest identity: MRTD, MRENCLAVE, or an SNP MEASUREMENT / HOST_DATA /
ID_KEY_DIGEST; anything else (empty, knobs only, a binding, MRSIGNER alone) is refused, one defect per case."""

from __future__ import annotations

from typing import Any

import pytest

from verifier.errors import Code, KeywardError, UsageError
from verifier.platforms.registry import (
    reference_values_problem,
    require_identifying_reference_values,
)

MR48 = ["ab" * 48]
MR32 = ["cd" * 32]


@pytest.mark.parametrize(
    ("platform", "values"),
    [
        ("intel-tdx", {"allowed_measurements": {"mrtd": MR48}}),
        ("intel-tdx", {"allowed_measurements": {"mrtd": MR48, "rtmr0": MR48}, "allow_debug": False}),
        ("intel-sgx", {"allowed_measurements": {"mrenclave": MR32}}),
        ("intel-sgx", {"allowed_measurements": {"mrenclave": MR32, "mrsigner": MR32}}),
        ("intel-sgx", {"allowed_measurements": {"mrsigner": MR32}, "allowed_isv_prod_ids": [1], "min_isv_svn": 4}),
        ("amd-sev-snp", {"allowed_measurements": MR48}),
        ("amd-sev-snp", {"allowed_host_data": MR32}),
        ("amd-sev-snp", {"cce_policies": {"runtime-v1": "package policy\n"}}),
        ("amd-sev-snp", {"allowed_id_key_digests": MR48, "min_guest_svn": 2}),
    ],
    ids=[
        "tdx-mrtd",
        "tdx-mrtd-and-rtmr",
        "sgx-mrenclave",
        "sgx-mrenclave-and-mrsigner",
        "sgx-signer-prod-id-min-svn",
        "snp-measurement",
        "snp-host-data",
        "snp-cce-policy",
        "snp-id-key",
    ],
)
def test_reference_values_problem_identifying_sets_accepted(platform: str, values: dict[str, Any]) -> None:
    assert reference_values_problem(platform, values) is None
    require_identifying_reference_values(platform, values)  # does not raise


@pytest.mark.parametrize(
    ("platform", "values", "says"),
    [
        ("intel-tdx", {}, "allowed_measurements.mrtd"),
        ("intel-tdx", {"allowed_measurements": {"rtmr0": MR48}}, "allowed_measurements.mrtd"),
        ("intel-tdx", {"allow_debug": False, "accepted_tcb_statuses": ["UpToDate"]}, "pin no guest identity"),
        ("intel-tdx", {"expected_report_data": "00" * 64}, "pin no guest identity"),
        ("intel-tdx", {"allowed_measurements": {"mrtd": MR48, "mrenclave": MR32}}, "does not report mrenclave"),
        ("intel-sgx", {}, "allowed_measurements.mrenclave"),
        ("intel-sgx", {"allowed_measurements": {"mrsigner": MR32}}, "MRSIGNER alone"),
        ("intel-sgx", {"allowed_measurements": {"mrsigner": MR32}, "allowed_isv_prod_ids": [1]}, "MRSIGNER alone"),
        ("intel-sgx", {"allowed_measurements": {"mrsigner": MR32}, "min_isv_svn": 4}, "MRSIGNER alone"),
        ("intel-sgx", {"allowed_isv_prod_ids": [1], "min_isv_svn": 4}, "pin no guest identity"),
        ("intel-tdx", {"allowed_measurements": {"mrtd": MR48}, "min_isv_svn": 4}, "SGX enclaves only"),
        ("intel-sgx", {"allowed_measurements": {"mrtd": MR48}}, "does not report mrtd"),
        ("amd-sev-snp", {}, "allowed_measurements (MEASUREMENT)"),
        ("amd-sev-snp", {"allowed_family_ids": ["00" * 16], "allowed_image_ids": ["00" * 16]}, "no guest identity"),
        ("amd-sev-snp", {"allowed_author_key_digests": MR48}, "no guest identity"),
        ("amd-sev-snp", {"expected_report_data": "00" * 64, "min_guest_svn": 1}, "no guest identity"),
        ("amd-sev-snp", {"allowed_measurements": []}, "no guest identity"),
        ("nvidia-h100", {"allowed_measurements": MR48}, "unknown platform"),
    ],
    ids=[
        "tdx-empty",
        "tdx-rtmr-only",
        "tdx-knobs-only",
        "tdx-binding-only",
        "tdx-lists-sgx-measurement",
        "sgx-empty",
        "sgx-mrsigner-only",
        "sgx-mrsigner-without-min-svn",
        "sgx-mrsigner-without-prod-id",
        "sgx-prod-id-and-svn-without-signer",
        "tdx-with-sgx-svn",
        "sgx-lists-tdx-measurement",
        "snp-empty",
        "snp-family-image-only",
        "snp-author-key-only",
        "snp-binding-and-svn-only",
        "snp-empty-measurement-list",
        "unknown-platform",
    ],
)
def test_reference_values_problem_unconstrained_refused(platform: str, values: dict[str, Any], says: str) -> None:
    problem = reference_values_problem(platform, values)
    assert problem is not None
    assert says in problem
    with pytest.raises(KeywardError) as exc:
        require_identifying_reference_values(platform, values)
    assert exc.value.code == Code.ATTESTATION_REFERENCE_VALUES_UNCONSTRAINED
    assert exc.value.actual == platform


@pytest.mark.parametrize(
    ("platform", "values"),
    [
        ("intel-tdx", {"allowed_mrtd": MR48}),
        ("intel-tdx", {"allowed_measurements": {"mrtd": []}}),
        ("intel-tdx", {"allowed_measurements": {"mrtd": ["00"]}}),
        ("intel-sgx", []),
        ("amd-sev-snp", {"allowed_measurements": ["00"]}),
        ("amd-sev-snp", {"allowed_measurement": MR48}),
    ],
    ids=["tdx-unknown-key", "tdx-empty-list", "tdx-short-mrtd", "sgx-not-object", "snp-short", "snp-typo"],
)
def test_reference_values_problem_unparsable_values_policy_invalid(platform: str, values: Any) -> None:
    for check in (reference_values_problem, require_identifying_reference_values):
        with pytest.raises(UsageError) as exc:
            check(platform, values)
        assert exc.value.code == Code.POLICY_INVALID
