"""Reference value sets must identify the workload. Pure: no I/O.

A reference value set is overlaid on the provider's appraisal policy (attestation/flows.py) and is what ties a
decision to *this* model version's guest. A set that pins no identity accepts every genuine, properly bound guest on
the platform: any TD, any enclave, any SNP VM. So each platform's set must pin at least:

* ``intel-tdx``: MRTD (``{"allowed_measurements": {"mrtd": [...]}}``).
* ``intel-sgx``: MRENCLAVE (``{"allowed_measurements": {"mrenclave": [...]}}``), or the signer-based identity:
  MRSIGNER with ISVPRODID and a minimum ISVSVN (``{"allowed_measurements": {"mrsigner": [...]},
  "allowed_isv_prod_ids": [...], "min_isv_svn": N}``). MRSIGNER alone admits every enclave its signer ever built,
  and without a minimum ISVSVN every old, vulnerable version of it, so it is refused. A TDX set may not name the
  SGX-only ISVPRODID/ISVSVN keys.
* ``amd-sev-snp``: one of MEASUREMENT (``allowed_measurements``), HOST_DATA (``allowed_host_data`` or
  ``cce_policies``) or ID_KEY_DIGEST (``allowed_id_key_digests``).
* ``azure-sev-snp-vtpm`` / ``azure-tdx-vtpm``: at least one vTPM PCR (``allowed_pcrs``). The hardware report's
  MEASUREMENT / MRTD is Microsoft's paravisor image, the same for every Azure CVM of a generation: only the PCRs
  measure the customer's guest.

The values are parsed by the same parser the appraisal uses, so they also have to be valid policy fields; a
measurement the platform never reports (MRTD in an SGX set) is refused too, since it would reject every quote.
``expected_report_data`` is never an identity: the decision sets the binding itself.

Each platform's rule is one function here; the platform registry (:mod:`verifier.platforms.registry`) names it
in the platform's entry. The admin API calls ``registry.reference_values_problem`` before it stores or activates a
set; the decision calls ``registry.require_identifying_reference_values`` on the active set, so rows stored before
this check fail closed.

The opposite direction is here too: ``<platform>_reference_values_from_claims`` turns an attestation's verified
claims into the set that pins them (the dashboard's "trust these measurements"; the registry names each in its
entry).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from verifier.appraisal.azure_cvm import parse_azure_snp_policy, parse_azure_tdx_policy
from verifier.appraisal.intel import SGX_MEASUREMENTS, TDX_MEASUREMENTS, parse_intel_policy
from verifier.appraisal.snp import parse_snp_policy
from verifier.errors import Code, UsageError
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX

#: What each platform's set must pin, for messages.
TDX_REQUIRED: Final = "allowed_measurements.mrtd (MRTD)"
SGX_REQUIRED: Final = (
    "allowed_measurements.mrenclave (MRENCLAVE), or allowed_measurements.mrsigner (MRSIGNER) with "
    "allowed_isv_prod_ids (ISVPRODID) and min_isv_svn (ISVSVN)"
)
SNP_REQUIRED: Final = (
    "one of allowed_measurements (MEASUREMENT), allowed_host_data or cce_policies (HOST_DATA), "
    "allowed_id_key_digests (ID_KEY_DIGEST)"
)

AZURE_REQUIRED: Final = (
    "allowed_pcrs (vTPM PCR allow-lists: the hardware MEASUREMENT/MRTD is Microsoft's paravisor, the same for every "
    "Azure CVM)"
)


def azure_snp_reference_values_problem(values: Any) -> str | None:
    """Why ``values`` cannot be ``azure-sev-snp-vtpm`` reference values, or None when they pin a PCR."""
    return _azure_problem("azure-sev-snp-vtpm", bool(parse_azure_snp_policy(_object(values)).allowed_pcrs))


def azure_tdx_reference_values_problem(values: Any) -> str | None:
    """Why ``values`` cannot be ``azure-tdx-vtpm`` reference values, or None when they pin a PCR."""
    return _azure_problem("azure-tdx-vtpm", bool(parse_azure_tdx_policy(_object(values)).allowed_pcrs))


def _object(values: Any) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise UsageError(Code.POLICY_INVALID, "reference values must be a JSON object")
    return values


def _azure_problem(platform: str, pins_pcrs: bool) -> str | None:
    return None if pins_pcrs else f"{platform} reference values pin no guest identity: they must list {AZURE_REQUIRED}"


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
    policy = parse_intel_policy(json.dumps(values))  # parse_intel_policy refuses empty lists
    named = policy.allowed_measurements
    foreign = sorted(set(named) - reported)
    if foreign:
        return f"{platform} does not report {', '.join(foreign)}: a set listing it would reject every quote"
    signer_keys = bool(policy.allowed_isv_prod_ids) or policy.min_isv_svn is not None
    if platform != PLATFORM_SGX and signer_keys:
        return f"{platform} does not report ISVPRODID or ISVSVN: they pin SGX enclaves only"
    if identity in named:
        return None
    signer = "mrsigner" in named and bool(policy.allowed_isv_prod_ids) and policy.min_isv_svn is not None
    if platform == PLATFORM_SGX and signer:
        return None
    hint = (
        " (MRSIGNER alone admits every enclave its signer built: pin ISVPRODID and a minimum ISVSVN with it)"
        if "mrsigner" in named
        else ""
    )
    return f"{platform} reference values pin no guest identity: they must list {required}{hint}"


# ----------------------------------------------------------------------------------------------------------
# Reference values from observed claims ("trust these measurements")
#
# Each function maps one evaluation's verified claims (the stored JSON shape: verifier/platforms/intel_claims.py,
# snp_claims.py and evaluation.py) to a reference value set that pins what was observed, with exactly the keys the
# platform's appraisal reads, so the set, once active, accepts that same evidence. Pure; a claim that is missing or
# not the hex of the right size is a ``request.invalid`` UsageError (claims of unverified evidence never get here:
# the caller refuses those).

#: TDX: always pinned (MRTD is the TD's build; RTMR0-2 its firmware configuration, kernel and command line).
TDX_PINNED: Final = ("mrtd", "rtmr0", "rtmr1", "rtmr2")
#: TDX: pinned when not all zero (the host's configuration identities: zero means "not used"). RTMR3 is extended
#: at run time and MRSEAM changes with every TDX module update (the TCB status covers it): neither is pinned.
TDX_PINNED_IF_SET: Final = ("mrconfigid", "mrowner", "mrownerconfig")


def _claim_hex(claims: Mapping[str, Any], name: str, size: int) -> str:
    value = claims.get(name)
    try:
        ok = isinstance(value, str) and len(bytes.fromhex(value)) == size
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(
            Code.REQUEST_INVALID,
            f"the claims have no {size}-byte {name} to trust",
            expected=f"{size * 2} hex digits",
            actual=str(value)[:120],
        )
    return str(value).lower()


def tdx_reference_values_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """``allowed_measurements`` with the TD's MRTD and RTMR0-2, and MRCONFIGID / MROWNER / MROWNERCONFIG where set."""
    allowed = {name: [_claim_hex(claims, name, 48)] for name in TDX_PINNED}
    for name in TDX_PINNED_IF_SET:
        if name in claims and any(bytes.fromhex(_claim_hex(claims, name, 48))):
            allowed[name] = [_claim_hex(claims, name, 48)]
    return {"allowed_measurements": allowed}


def sgx_reference_values_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """``allowed_measurements`` with the enclave's MRENCLAVE (which names its code exactly; MRSIGNER adds nothing)."""
    return {"allowed_measurements": {"mrenclave": [_claim_hex(claims, "mrenclave", 32)]}}


def snp_reference_values_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """SEV-SNP, plain or confidential ACI (the report came with a Microsoft UVM endorsement: ``uvm_endorsements``
    in the claims).

    * Plain SEV-SNP: ``allowed_measurements`` with the launch MEASUREMENT.
    * Confidential ACI: ``allowed_host_data`` with HOST_DATA (the SHA-256 of the container group's CCE policy,
      which is what identifies the workload), and for the UVM: ``require_uvm_endorsement`` when a verified
      endorsement vouched for this MEASUREMENT (Microsoft's UVM updates then keep passing), else the MEASUREMENT
      itself.
    """
    measurement = _claim_hex(claims, "measurement", 48)
    if "uvm_endorsements" not in claims:
        return {"allowed_measurements": [measurement]}
    values: dict[str, Any] = {"allowed_host_data": [_claim_hex(claims, "host_data", 32)]}
    endorsements = claims.get("uvm_endorsements")
    endorsed = isinstance(endorsements, list) and any(
        isinstance(e, Mapping) and e.get("matches_report") is True for e in endorsements
    )
    if endorsed:
        values["require_uvm_endorsement"] = True
    else:
        values["allowed_measurements"] = [measurement]
    return values


#: Azure CVMs: the PCRs pinned from observed claims. Left out: PCR 6 (unique per VM on Azure), PCR 10 (IMA, extended
#: at run time) and PCRs 15-23 (unused or DRTM constants).
AZURE_PINNED_PCRS: Final = (0, 1, 2, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14)


def azure_reference_values_from_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """``allowed_pcrs`` with the quoted value of every PCR of :data:`AZURE_PINNED_PCRS` the claims prove."""
    pcrs = claims.get("pcrs")
    if not isinstance(pcrs, Mapping):
        pcrs = {}
    allowed = {str(i): [_claim_hex(pcrs, str(i), 32)] for i in AZURE_PINNED_PCRS if str(i) in pcrs}
    if not allowed:
        raise UsageError(
            Code.REQUEST_INVALID,
            "the claims prove no PCR to trust (the quote came without PCR values)",
            expected=f"PCRs {', '.join(map(str, AZURE_PINNED_PCRS))}",
            actual="none",
        )
    return {"allowed_pcrs": allowed}
