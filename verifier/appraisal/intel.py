"""Appraisal of verified Intel SGX/TDX claims against a policy (intel-dcap.md §7 defaults).

Input: an :class:`~verifier.platforms.intel_dcap.IntelVerification` (the quote verified; nothing here re-checks
crypto) and an :class:`IntelPolicy`. Output: a :class:`~verifier.appraisal.verdict.Verdict` listing every failed
check with expected vs actual, not just the first. Pure.

Default policy: reject SGX DEBUG, TD DEBUG (the whole "TD under debug" group, bits 0-7), TD reserved attribute
bits, TDs without SEPT_VE_DISABLE, non-zero MRSERVICETD; accept TCB statuses UpToDate and SWHardeningNeeded.
Optional: expected REPORTDATA (all 64 bytes), measurement allow-lists, advisory deny-list, minimum TCB
evaluation data number, MIGRATABLE TDs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from verifier.appraisal.documents import policy_object
from verifier.appraisal.verdict import Verdict
from verifier.errors import Code, Reason, UsageError
from verifier.evidence.sgx import SgxReportBody
from verifier.evidence.tdx import (
    TD_ATTR_MIGRATABLE,
    TD_ATTR_RESERVED_MASK,
    TD_ATTR_SEPT_VE_DISABLE,
    TD_ATTR_TUD_MASK,
    TdReportBody,
)
from verifier.platforms.intel_dcap import IntelVerification
from verifier.platforms.intel_tcb import (
    CONFIGURATION_AND_SW_HARDENING_NEEDED,
    CONFIGURATION_NEEDED,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED,
    SW_HARDENING_NEEDED,
    TD_RELAUNCH_ADVISED,
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    UP_TO_DATE,
    TcbEvaluation,
)

#: Statuses a policy may list as acceptable. "Revoked" can never be accepted.
ACCEPTABLE_STATUSES: Final = frozenset(
    {
        UP_TO_DATE,
        SW_HARDENING_NEEDED,
        CONFIGURATION_NEEDED,
        CONFIGURATION_AND_SW_HARDENING_NEEDED,
        OUT_OF_DATE,
        OUT_OF_DATE_CONFIGURATION_NEEDED,
        TD_RELAUNCH_ADVISED,
        TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    }
)
SGX_MEASUREMENTS: Final = frozenset({"mrenclave", "mrsigner"})
TDX_MEASUREMENTS: Final = frozenset(
    {"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner", "mrownerconfig", "mrseam"}
)
_SIZES: Final = {"mrenclave": 32, "mrsigner": 32, **dict.fromkeys(TDX_MEASUREMENTS, 48)}


@dataclass(frozen=True, slots=True)
class IntelPolicy:
    accepted_tcb_statuses: frozenset[str] = frozenset({UP_TO_DATE, SW_HARDENING_NEEDED})
    allow_debug: bool = False
    require_sept_ve_disable: bool = True
    allow_migratable: bool = True
    allow_service_td: bool = False
    denied_advisory_ids: frozenset[str] = frozenset()
    min_tcb_eval_number: int | None = None
    expected_report_data: bytes | None = None
    #: claim name -> allowed values (e.g. {"mrtd": {...}}); a listed name must match one of its values.
    allowed_measurements: Mapping[str, frozenset[bytes]] = field(default_factory=dict)
    #: SGX only, for signer-based pinning (MRSIGNER + ISVPRODID + a minimum ISVSVN): the enclave's ISVPRODID must be
    #: one of these, and its ISVSVN at least ``min_isv_svn``. A TD reports neither: they never apply to one.
    allowed_isv_prod_ids: frozenset[int] = frozenset()
    min_isv_svn: int | None = None

    def __post_init__(self) -> None:
        bad = self.accepted_tcb_statuses - ACCEPTABLE_STATUSES
        if bad:
            raise UsageError(
                Code.POLICY_INVALID,
                "policy accepts unknown or never-acceptable TCB statuses",
                expected=" | ".join(sorted(ACCEPTABLE_STATUSES)),
                actual=", ".join(sorted(bad)),
            )
        if self.expected_report_data is not None and len(self.expected_report_data) != 64:
            raise UsageError(
                Code.POLICY_INVALID,
                "expected_report_data must be 64 bytes",
                expected=64,
                actual=len(self.expected_report_data),
            )
        for name, values in self.allowed_measurements.items():
            if name not in _SIZES:
                raise UsageError(
                    Code.POLICY_INVALID,
                    f"unknown measurement {name!r}",
                    expected=" | ".join(sorted(_SIZES)),
                    actual=name,
                )
            if not values or any(len(v) != _SIZES[name] for v in values):
                raise UsageError(Code.POLICY_INVALID, f"{name} allow-list must hold {_SIZES[name]}-byte values")
        for value in (*self.allowed_isv_prod_ids, *(() if self.min_isv_svn is None else (self.min_isv_svn,))):
            if not 0 <= value <= 0xFFFF:
                raise UsageError(
                    Code.POLICY_INVALID, "ISVPRODID and ISVSVN are 16-bit values", expected="0..65535", actual=value
                )


_POLICY_KEYS: Final = frozenset(
    {
        "accepted_tcb_statuses",
        "allow_debug",
        "require_sept_ve_disable",
        "allow_migratable",
        "allow_service_td",
        "denied_advisory_ids",
        "min_tcb_eval_number",
        "expected_report_data",
        "allowed_measurements",
        "allowed_isv_prod_ids",
        "min_isv_svn",
    }
)


def parse_intel_policy(text: bytes | str) -> IntelPolicy:
    """Parse a JSON policy document; unknown keys are an error (a typo must not weaken policy)."""
    doc = policy_object(text, _POLICY_KEYS, what="policy")
    kw: dict[str, Any] = {}
    try:
        for key in ("allow_debug", "require_sept_ve_disable", "allow_migratable", "allow_service_td"):
            if key in doc:
                if not isinstance(doc[key], bool):
                    raise TypeError(f"{key} must be true or false")
                kw[key] = doc[key]
        for key in ("accepted_tcb_statuses", "denied_advisory_ids"):
            if key in doc:
                if not isinstance(doc[key], list) or not all(isinstance(s, str) for s in doc[key]):
                    raise TypeError(f"{key} must be a list of strings")
                kw[key] = frozenset(doc[key])
        if "min_tcb_eval_number" in doc:
            if type(doc["min_tcb_eval_number"]) is not int:
                raise TypeError("min_tcb_eval_number must be an integer")
            kw["min_tcb_eval_number"] = doc["min_tcb_eval_number"]
        if "expected_report_data" in doc:
            kw["expected_report_data"] = bytes.fromhex(doc["expected_report_data"])
        if "allowed_isv_prod_ids" in doc:
            ids = doc["allowed_isv_prod_ids"]
            if not isinstance(ids, list) or not ids or not all(type(i) is int for i in ids):
                raise TypeError("allowed_isv_prod_ids must be a non-empty list of integers")
            kw["allowed_isv_prod_ids"] = frozenset(ids)
        if "min_isv_svn" in doc:
            if type(doc["min_isv_svn"]) is not int:
                raise TypeError("min_isv_svn must be an integer")
            kw["min_isv_svn"] = doc["min_isv_svn"]
        if "allowed_measurements" in doc:
            allowed = doc["allowed_measurements"]
            if not isinstance(allowed, dict):
                raise TypeError("allowed_measurements must map names to lists of hex strings")
            kw["allowed_measurements"] = {k: frozenset(bytes.fromhex(v) for v in vs) for k, vs in allowed.items()}
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(Code.POLICY_INVALID, f"invalid policy: {e}") from e
    return IntelPolicy(**kw)


def appraise_intel(v: IntelVerification, policy: IntelPolicy) -> Verdict:
    """Check every policy rule, group by group, and return all failures (not just the first) in this order."""
    body = v.quote.body
    reasons = [
        *_attribute_reasons(body, policy),
        *_tcb_reasons(v.tcb, v.collateral.tcb_eval_number, policy),
        *_binding_reasons(body, policy),
        *_measurement_reasons(_measurements(body), policy),
        *_isv_reasons(body, policy),
    ]
    return Verdict.of(reasons, simulated=v.simulated)


def _attribute_reasons(body: SgxReportBody | TdReportBody, policy: IntelPolicy) -> list[Reason]:
    """SGX: ATTRIBUTES.DEBUG. TDX: TDATTRIBUTES and MRSERVICETD."""
    if isinstance(body, SgxReportBody):
        if body.debug and not policy.allow_debug:
            return [Reason(Code.INTEL_POLICY_SGX_DEBUG, "SGX enclave is in DEBUG mode (ATTRIBUTES.DEBUG)", "0", "1")]
        return []
    return [*_td_attribute_reasons(body, policy), *_service_td_reasons(body, policy)]


def _service_td_reasons(body: TdReportBody, policy: IntelPolicy) -> list[Reason]:
    """A TD 1.5 bound to a service TD (non-zero MRSERVICETD), unless the policy allows it."""
    if body.mrservicetd is None or not any(body.mrservicetd) or policy.allow_service_td:
        return []
    return [
        Reason(
            Code.INTEL_POLICY_MRSERVICETD_NONZERO,
            "TD is bound to a service TD (MRSERVICETD)",
            bytes(48).hex(),
            body.mrservicetd.hex(),
        )
    ]


def _tcb_reasons(tcb: TcbEvaluation, tcb_eval_number: int, policy: IntelPolicy) -> list[Reason]:
    """The merged TCB status, the advisory deny-list, and the collateral's TCB evaluation data number."""
    reasons = []
    if tcb.status not in policy.accepted_tcb_statuses:
        reasons.append(
            Reason(
                Code.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
                "TCB status is not accepted by policy",
                " | ".join(sorted(policy.accepted_tcb_statuses)),
                tcb.status,
            )
        )
    denied = sorted(set(tcb.advisory_ids) & policy.denied_advisory_ids)
    if denied:
        reasons.append(
            Reason(
                Code.INTEL_POLICY_ADVISORY_DENIED,
                "platform is affected by denied advisories",
                "none of " + ", ".join(sorted(policy.denied_advisory_ids)),
                ", ".join(denied),
            )
        )
    if policy.min_tcb_eval_number is not None and tcb_eval_number < policy.min_tcb_eval_number:
        reasons.append(
            Reason(
                Code.INTEL_POLICY_TCB_EVAL_NUMBER_TOO_LOW,
                "collateral TCB evaluation number too low",
                f">= {policy.min_tcb_eval_number}",
                str(tcb_eval_number),
            )
        )
    return reasons


def _binding_reasons(body: SgxReportBody | TdReportBody, policy: IntelPolicy) -> list[Reason]:
    """REPORTDATA against the expected binding (all 64 bytes)."""
    if policy.expected_report_data is None or body.reportdata == policy.expected_report_data:
        return []
    return [
        Reason(
            Code.INTEL_POLICY_REPORT_DATA_MISMATCH,
            "REPORTDATA is not the expected binding",
            policy.expected_report_data.hex(),
            body.reportdata.hex(),
        )
    ]


def _measurements(body: SgxReportBody | TdReportBody) -> dict[str, bytes]:
    """The measurements this TEE type reports, by the names allow-lists use."""
    if isinstance(body, SgxReportBody):
        return {"mrenclave": body.mrenclave, "mrsigner": body.mrsigner}
    return {
        "mrtd": body.mrtd,
        "rtmr0": body.rtmr0,
        "rtmr1": body.rtmr1,
        "rtmr2": body.rtmr2,
        "rtmr3": body.rtmr3,
        "mrconfigid": body.mrconfigid,
        "mrowner": body.mrowner,
        "mrownerconfig": body.mrownerconfig,
        "mrseam": body.mrseam,
    }


def _measurement_reasons(measured: Mapping[str, bytes], policy: IntelPolicy) -> list[Reason]:
    """Each measurement the policy lists is reported by this TEE type and is on its allow-list."""
    reasons = []
    for name, allowed in sorted(policy.allowed_measurements.items()):
        value = measured.get(name)
        if value is None:
            reasons.append(
                Reason(
                    Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED,
                    f"policy lists {name}, which this TEE type does not report",
                    name,
                    "absent",
                )
            )
        elif value not in allowed:
            reasons.append(
                Reason(
                    Code.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED,
                    f"{name} is not in the allow-list",
                    "one of " + ", ".join(sorted(allowed_value.hex() for allowed_value in allowed)),
                    value.hex(),
                )
            )
    return reasons


def _isv_reasons(body: SgxReportBody | TdReportBody, policy: IntelPolicy) -> list[Reason]:
    """SGX signer-based pinning: ISVPRODID on the allow-list, ISVSVN at least the minimum (a TD has neither)."""
    if not isinstance(body, SgxReportBody):
        return []
    reasons = []
    if policy.allowed_isv_prod_ids and body.isvprodid not in policy.allowed_isv_prod_ids:
        reasons.append(
            Reason(
                Code.INTEL_POLICY_SGX_ISV_PROD_ID,
                "the enclave's ISVPRODID is not in the allow-list",
                "one of " + ", ".join(str(i) for i in sorted(policy.allowed_isv_prod_ids)),
                str(body.isvprodid),
            )
        )
    if policy.min_isv_svn is not None and body.isvsvn < policy.min_isv_svn:
        reasons.append(
            Reason(
                Code.INTEL_POLICY_SGX_ISV_SVN_TOO_LOW,
                "the enclave's ISVSVN is below the minimum",
                f">= {policy.min_isv_svn}",
                str(body.isvsvn),
            )
        )
    return reasons


def _td_attribute_reasons(body: TdReportBody, policy: IntelPolicy) -> list[Reason]:
    """TDATTRIBUTES: the TD-under-debug group, reserved bits, SEPT_VE_DISABLE and MIGRATABLE."""
    reasons = []
    attrs = body.tdattributes_int
    tud = attrs & TD_ATTR_TUD_MASK & ~TD_ATTR_RESERVED_MASK  # DEBUG (bit 0) and profiling (bits 4-6)
    if tud and not policy.allow_debug:
        reasons.append(
            Reason(Code.INTEL_POLICY_TD_DEBUG, "TD is debuggable (TDATTRIBUTES TUD bits)", "0x00", f"0x{tud:02x}")
        )
    if attrs & TD_ATTR_RESERVED_MASK:
        reasons.append(
            Reason(
                Code.INTEL_POLICY_TD_RESERVED_ATTRIBUTES,
                "TDATTRIBUTES has reserved bits set",
                "0",
                f"0x{attrs & TD_ATTR_RESERVED_MASK:016x}",
            )
        )
    if policy.require_sept_ve_disable and not attrs & TD_ATTR_SEPT_VE_DISABLE:
        reasons.append(
            Reason(Code.INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF, "TD does not set SEPT_VE_DISABLE (bit 28)", "1", "0")
        )
    if attrs & TD_ATTR_MIGRATABLE and not policy.allow_migratable:
        reasons.append(Reason(Code.INTEL_POLICY_TD_MIGRATABLE, "TD is MIGRATABLE (bit 29)", "0", "1"))
    return reasons
