"""Reference value sets must identify the workload. Pure: no I/O.

A reference value set is overlaid on the provider's appraisal policy (attestation/flows.py) and is what ties a
decision to *this* model version's guest. A set that pins no identity accepts every genuine, properly bound guest on
the platform: any TD, any enclave, any SNP VM. So each platform's set must pin at least:

* ``intel-tdx``: MRTD (``{"allowed_measurements": {"mrtd": [...]}}``).
* ``intel-sgx``: MRENCLAVE (``{"allowed_measurements": {"mrenclave": [...]}}``). MRSIGNER alone admits every enclave
  its signer ever built; signer-based pinning also needs ISVPRODID and a minimum ISVSVN, which the Intel policy
  (:func:`~verifier.appraisal.intel.parse_intel_policy`) cannot express yet, so MRSIGNER alone is refused.
* ``amd-sev-snp``: one of MEASUREMENT (``allowed_measurements``), HOST_DATA (``allowed_host_data`` or
  ``cce_policies``) or ID_KEY_DIGEST (``allowed_id_key_digests``).

The values are parsed by the same parser the appraisal uses, so they also have to be valid policy fields; a
measurement the platform never reports (MRTD in an SGX set) is refused too, since it would reject every quote.
``expected_report_data`` is never an identity: the decision sets the binding itself.

The admin API calls :func:`reference_values_problem` before it stores or activates a set; the decision calls
:func:`require_identifying_reference_values` on the active set, so rows stored before this check fail closed.
"""

from __future__ import annotations

import json
from typing import Any, Final

from verifier.appraisal.intel import SGX_MEASUREMENTS, TDX_MEASUREMENTS, parse_intel_policy
from verifier.appraisal.snp import parse_snp_policy
from verifier.errors import Code, PolicyRejected
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX

#: What each platform's set must pin, for messages.
REQUIRED: Final = {
    PLATFORM_TDX: "allowed_measurements.mrtd (MRTD)",
    PLATFORM_SGX: "allowed_measurements.mrenclave (MRENCLAVE)",
    PLATFORM_SNP: (
        "one of allowed_measurements (MEASUREMENT), allowed_host_data or cce_policies (HOST_DATA), "
        "allowed_id_key_digests (ID_KEY_DIGEST)"
    ),
}


def reference_values_problem(platform: str, values: Any) -> str | None:
    """Why ``values`` cannot be ``platform``'s reference values, or None when they identify a workload.

    Raises :class:`~verifier.errors.UsageError` (``policy.invalid``) when they do not parse as policy fields.
    """
    if platform not in REQUIRED:
        return f"unknown platform {platform!r}"
    if platform == PLATFORM_SNP:
        snp = parse_snp_policy(values)
        if snp.allowed_measurements or snp.allowed_host_data or snp.cce_policies or snp.allowed_id_key_digests:
            return None
        return f"{platform} reference values pin no guest identity: they must list {REQUIRED[platform]}"
    named = parse_intel_policy(json.dumps(values)).allowed_measurements  # parse_intel_policy refuses empty lists
    reported = SGX_MEASUREMENTS if platform == PLATFORM_SGX else TDX_MEASUREMENTS
    foreign = sorted(set(named) - reported)
    if foreign:
        return f"{platform} does not report {', '.join(foreign)}: a set listing it would reject every quote"
    if platform == PLATFORM_TDX and "mrtd" in named:
        return None
    if platform == PLATFORM_SGX and "mrenclave" in named:
        return None
    hint = (
        " (MRSIGNER alone admits every enclave its signer built; ISVPRODID and a minimum ISVSVN cannot be pinned yet)"
        if "mrsigner" in named
        else ""
    )
    return f"{platform} reference values pin no guest identity: they must list {REQUIRED[platform]}{hint}"


def require_identifying_reference_values(platform: str, values: Any) -> None:
    """Fail closed at decision time on a stored set that identifies no workload
    (``attestation.reference_values_unconstrained``); values that do not parse raise ``policy.invalid``."""
    problem = reference_values_problem(platform, values)
    if problem is not None:
        raise PolicyRejected(
            Code.ATTESTATION_REFERENCE_VALUES_UNCONSTRAINED,
            problem,
            expected=REQUIRED.get(platform, " | ".join(REQUIRED)),
            actual=platform,
        )
