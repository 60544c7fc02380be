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

Each platform's rule is one function here; the platform registry (:mod:`verifier.platforms.registry`) names it
in the platform's entry. The admin API calls ``registry.reference_values_problem`` before it stores or activates a
set; the decision calls ``registry.require_identifying_reference_values`` on the active set, so rows stored before
this check fail closed.
"""

from __future__ import annotations

import json
from typing import Any, Final

from verifier.appraisal.intel import SGX_MEASUREMENTS, TDX_MEASUREMENTS, parse_intel_policy
from verifier.appraisal.snp import parse_snp_policy
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX

#: What each platform's set must pin, for messages.
TDX_REQUIRED: Final = "allowed_measurements.mrtd (MRTD)"
SGX_REQUIRED: Final = "allowed_measurements.mrenclave (MRENCLAVE)"
SNP_REQUIRED: Final = (
    "one of allowed_measurements (MEASUREMENT), allowed_host_data or cce_policies (HOST_DATA), "
    "allowed_id_key_digests (ID_KEY_DIGEST)"
)


def snp_reference_values_problem(values: Any) -> str | None:
    """Why ``values`` cannot be SEV-SNP reference values, or None when they pin MEASUREMENT, HOST_DATA or
    ID_KEY_DIGEST. Raises :class:`~verifier.errors.UsageError` (``policy.invalid``) when they do not parse."""
    snp = parse_snp_policy(values)
    if snp.allowed_measurements or snp.allowed_host_data or snp.cce_policies or snp.allowed_id_key_digests:
        return None
    return f"{PLATFORM_SNP} reference values pin no guest identity: they must list {SNP_REQUIRED}"


def tdx_reference_values_problem(values: Any) -> str | None:
    """Why ``values`` cannot be TDX reference values, or None when they pin MRTD (``policy.invalid`` as above)."""
    return _intel_problem(PLATFORM_TDX, values, TDX_MEASUREMENTS, "mrtd", TDX_REQUIRED)


def sgx_reference_values_problem(values: Any) -> str | None:
    """Why ``values`` cannot be SGX reference values, or None when they pin MRENCLAVE (``policy.invalid`` as
    above)."""
    return _intel_problem(PLATFORM_SGX, values, SGX_MEASUREMENTS, "mrenclave", SGX_REQUIRED)


def _intel_problem(platform: str, values: Any, reported: frozenset[str], identity: str, required: str) -> str | None:
    named = parse_intel_policy(json.dumps(values)).allowed_measurements  # parse_intel_policy refuses empty lists
    foreign = sorted(set(named) - reported)
    if foreign:
        return f"{platform} does not report {', '.join(foreign)}: a set listing it would reject every quote"
    if identity in named:
        return None
    hint = (
        " (MRSIGNER alone admits every enclave its signer built; ISVPRODID and a minimum ISVSVN cannot be pinned yet)"
        if "mrsigner" in named
        else ""
    )
    return f"{platform} reference values pin no guest identity: they must list {required}{hint}"
