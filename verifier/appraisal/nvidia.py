"""Appraisal of NVIDIA GPU / NVSwitch evidence: the policy document, the measurement comparison against RIMs
(nvidia-gpu.md §4 "Appraisal") and the policy rules on signed report fields (architecture, SKUs, versions, mode).

Pure: verified RIMs, parsed reports and the policy are arguments; nothing here verifies a signature (that is
:mod:`verifier.platforms.nvidia_gpu` and :mod:`verifier.trust.nvidia_rim`).

Measurement indices: :class:`MeasurementResult.index` is the **RIM index** (0-based), as in NVIDIA's mismatch
records (``x-nvidia-mismatch-measurement-records``); the SPDM measurement block it is compared with is
``index + 1`` (:attr:`MeasurementResult.block`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal

from verifier.appraisal.documents import policy_object
from verifier.errors import Code, Reason, UsageError
from verifier.evidence.nvidia import ARCHES, STATUS_DISABLED, STATUS_ENABLED, GpuReport
from verifier.trust.nvidia_rim import VerifiedRim
from verifier.trust.ocsp import OcspPolicy

#: RIM index of the NVDEC0 measurement, skipped when NVDEC0_STATUS says the engine is disabled (0x55; C++ SDK rule,
#: spec §4 step 2 and pitfall P2).
NVDEC0_RIM_INDEX: Final = 35
#: Driver versions: decimal dot-separated ("550.90.07", "590.12").
_DRIVER_VERSION: Final = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6}){1,4}")
#: VBIOS / NVSwitch BIOS versions: five dot-separated hex bytes ("96.00.9F.00.01").
_VBIOS_VERSION: Final = re.compile(r"[0-9A-Fa-f]{2}(\.[0-9A-Fa-f]{2}){4}")
#: FWID is required by default from this driver on (spec §3: "required when OPAQUE_DATA_VERSION >= 1 or driver >= 550").
FWID_DEFAULT_MIN_DRIVER: Final = (550,)

MeasurementSource = Literal["driver", "vbios"]
MeasurementOutcome = Literal["match", "mismatch", "not_in_rim", "skipped"]


@dataclass(frozen=True, slots=True)
class NvidiaPolicy:
    """What an NVIDIA device must satisfy beyond genuineness. Defaults fail closed: RIMs and OCSP are required."""

    require_rims: bool = True
    require_ocsp: bool = True
    ocsp: OcspPolicy = OcspPolicy()  # noqa: RUF009 - frozen, so one shared default instance is safe
    #: None: required when the report's OPAQUE_DATA_VERSION >= 1 or its driver >= 550 (:func:`fwid_required`).
    require_fwid: bool | None = None
    architectures: frozenset[str] | None = None  # {"HOPPER", "BLACKWELL", "LS10"}; None: any
    projects: frozenset[str] | None = None
    project_skus: frozenset[str] | None = None
    chip_skus: frozenset[str] | None = None
    min_driver_version: str | None = None  # dotted decimal, "550.90.07"
    min_vbios_version: str | None = None  # dotted hex, "96.00.9F.00.01" (GPUs only)
    min_gpus: int = 0
    max_gpus: int | None = None
    require_ppcie: bool = False
    expected_nonce: bytes | None = None  # 32 bytes; None: the request nonce is not checked (the claims say so)
    #: Zero bytes after the report signature (pitfall P3): rejected unless allowed.
    allow_trailing_zeros: bool = False

    def __post_init__(self) -> None:
        if self.expected_nonce is not None and len(self.expected_nonce) != 32:
            raise UsageError(
                Code.POLICY_INVALID, "expected_report_data must be 32 bytes", actual=len(self.expected_nonce)
            )
        if self.architectures is not None and not self.architectures <= frozenset(ARCHES):
            raise UsageError(
                Code.POLICY_INVALID,
                "architectures: unknown architecture",
                expected=", ".join(ARCHES),
                actual=", ".join(sorted(self.architectures)),
            )
        if self.min_driver_version is not None and not _DRIVER_VERSION.fullmatch(self.min_driver_version):
            raise UsageError(Code.POLICY_INVALID, "min_driver_version is not a dotted decimal version")
        if self.min_vbios_version is not None and not _VBIOS_VERSION.fullmatch(self.min_vbios_version):
            raise UsageError(Code.POLICY_INVALID, "min_vbios_version is not five dotted hex bytes")
        if self.min_gpus < 0 or (self.max_gpus is not None and self.max_gpus < max(self.min_gpus, 0)):
            raise UsageError(Code.POLICY_INVALID, "min_gpus/max_gpus: 0 <= min_gpus <= max_gpus")


_BOOLS: Final = ("require_rims", "require_ocsp", "allow_cert_hold", "require_ppcie", "allow_trailing_zeros")
_STRING_SETS: Final = ("architectures", "projects", "project_skus", "chip_skus")
_KEYS: Final = frozenset(
    (
        *_BOOLS,
        *_STRING_SETS,
        "require_fwid",
        "ocsp_grace_seconds",
        "ocsp_max_age_seconds",
        "min_driver_version",
        "min_vbios_version",
        "min_gpus",
        "max_gpus",
        "expected_report_data",
    )
)


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc[key]
    if type(value) is not int or value < 0:
        raise TypeError(f"{key} must be a non-negative integer")
    return value


def parse_nvidia_policy(document: Any) -> NvidiaPolicy:
    """Build an :class:`NvidiaPolicy` from a JSON object (or its text). Unknown keys and bad values raise
    ``policy.invalid`` (a typo must never weaken policy)."""
    doc = policy_object(document, _KEYS, what="NVIDIA policy")
    kw: dict[str, Any] = {}
    try:
        for key in _BOOLS:
            if key in doc and not isinstance(doc[key], bool):
                raise TypeError(f"{key} must be true or false")
        for key in ("require_rims", "require_ocsp", "require_ppcie", "allow_trailing_zeros"):
            if key in doc:
                kw[key] = doc[key]
        if "require_fwid" in doc:
            if doc["require_fwid"] is not None and not isinstance(doc["require_fwid"], bool):
                raise TypeError("require_fwid must be true, false or null")
            kw["require_fwid"] = doc["require_fwid"]
        grace = _int(doc, "ocsp_grace_seconds") if "ocsp_grace_seconds" in doc else 0
        max_age = None
        if doc.get("ocsp_max_age_seconds") is not None:
            max_age = timedelta(seconds=_int(doc, "ocsp_max_age_seconds"))
        kw["ocsp"] = OcspPolicy(
            grace=timedelta(seconds=grace), max_age=max_age, allow_hold=doc.get("allow_cert_hold", False)
        )
        for key in _STRING_SETS:
            if doc.get(key) is not None:
                values = doc[key]
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise TypeError(f"{key} must be a list of strings")
                kw[key] = frozenset(v.upper() if key == "architectures" else v for v in values)
        for key in ("min_driver_version", "min_vbios_version"):
            if doc.get(key) is not None:
                if not isinstance(doc[key], str):
                    raise TypeError(f"{key} must be a string")
                kw[key] = doc[key]
        if "min_gpus" in doc:
            kw["min_gpus"] = _int(doc, "min_gpus")
        if doc.get("max_gpus") is not None:
            kw["max_gpus"] = _int(doc, "max_gpus")
        if doc.get("expected_report_data") is not None:
            if not isinstance(doc["expected_report_data"], str):
                raise TypeError("expected_report_data must be hex text")
            kw["expected_nonce"] = bytes.fromhex(doc["expected_report_data"])
    except (TypeError, ValueError) as e:
        raise UsageError(Code.POLICY_INVALID, f"invalid NVIDIA policy: {e}") from e
    return NvidiaPolicy(**kw)


# ----------------------------------------------------------------------------------------------------------
# Versions


def driver_version_key(version: str) -> tuple[int, ...]:
    """``"550.90.07"`` -> ``(550, 90, 7)``. Raises ValueError for anything but a dotted decimal version."""
    if not _DRIVER_VERSION.fullmatch(version):
        raise ValueError(f"not a driver version: {version[:32]!r}")
    return tuple(int(p) for p in version.split("."))


def vbios_version_key(version: str) -> tuple[int, ...]:
    """``"96.00.9F.00.01"`` -> ``(0x96, 0, 0x9F, 0, 1)``. Raises ValueError for anything but five hex bytes."""
    if not _VBIOS_VERSION.fullmatch(version):
        raise ValueError(f"not a VBIOS version: {version[:32]!r}")
    return tuple(int(p, 16) for p in version.split("."))


def is_driver_version(version: str) -> bool:
    return _DRIVER_VERSION.fullmatch(version) is not None and not _VBIOS_VERSION.fullmatch(version)


def is_vbios_version(version: str) -> bool:
    return _VBIOS_VERSION.fullmatch(version) is not None


def fwid_required(report: GpuReport, policy: NvidiaPolicy) -> bool:
    """The policy's ``require_fwid``, or by default: OPAQUE_DATA_VERSION >= 1 or driver >= 550 (spec §3)."""
    if policy.require_fwid is not None:
        return policy.require_fwid
    opaque = report.response.opaque
    if opaque.opaque_data_version is not None and opaque.opaque_data_version >= 1:
        return True
    driver = opaque.driver_version
    return driver is not None and is_driver_version(driver) and driver_version_key(driver) >= FWID_DEFAULT_MIN_DRIVER


# ----------------------------------------------------------------------------------------------------------
# Measurements (spec §4 "Appraisal")


@dataclass(frozen=True, slots=True)
class MeasurementResult:
    """One RIM index compared. ``index`` is the RIM index (0-based); the report's SPDM block is ``index + 1``.

    ``result``: ``match`` (the runtime value is one of the alternatives, of the RIM's size), ``mismatch`` (none,
    or the block is missing: ``actual`` None), ``skipped`` (index 35 with NVDEC0 disabled), ``not_in_rim`` (a
    non-zero report block no active RIM entry covers: ``source`` None, informational).
    """

    index: int
    source: MeasurementSource | None
    result: MeasurementOutcome
    expected: tuple[bytes, ...]
    actual: bytes | None

    @property
    def block(self) -> int:
        return self.index + 1

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "block": self.block,
            "source": self.source,
            "result": self.result,
            "expected": [e.hex() for e in self.expected],
            "actual": None if self.actual is None else self.actual.hex(),
        }


def _active(rim: VerifiedRim | None) -> dict[int, tuple[bytes, ...]]:
    if rim is None:
        return {}
    return {m.index: tuple(a for a in m.alternatives if len(a) == m.size) for m in rim.measurements if m.active}


#: One active golden entry: RIM index, the RIM it is from, its alternatives (of the RIM's size), their hex texts.
PlannedEntry = tuple[int, MeasurementSource, tuple[bytes, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class MeasurementPlan:
    """What comparing any report with one driver RIM and one VBIOS (or BIOS) RIM needs, derived from the two RIMs
    alone (:func:`measurement_plan`), so that a verifier holding verified RIMs derives it once per pair.

    ``entries``: every active golden index, driver entries before VBIOS ones at equal index, sorted by index;
    ``covered``: their indices (``covered_blocks``: the same as SPDM block numbers); ``conflicts``:
    :func:`index_conflicts`; ``has_rim``: whether a RIM was given at all (only then are uncovered non-zero blocks
    reported as ``not_in_rim``).
    """

    entries: tuple[PlannedEntry, ...]
    covered: frozenset[int]
    conflicts: tuple[int, ...]
    has_rim: bool
    covered_blocks: frozenset[int]  # the SPDM block numbers of ``covered`` (RIM index + 1)


def measurement_plan(driver_rim: VerifiedRim | None, vbios_rim: VerifiedRim | None) -> MeasurementPlan:
    """The :class:`MeasurementPlan` of a driver RIM and a VBIOS/BIOS RIM (either may be None)."""
    driver, vbios = _active(driver_rim), _active(vbios_rim)
    entries: list[PlannedEntry] = [(i, "driver", alts, tuple(a.hex() for a in alts)) for i, alts in driver.items()]
    entries += [(i, "vbios", alts, tuple(a.hex() for a in alts)) for i, alts in vbios.items()]
    entries.sort(key=lambda e: (e[0], e[1]))
    return MeasurementPlan(
        entries=tuple(entries),
        covered=frozenset(driver.keys() | vbios.keys()),
        conflicts=tuple(sorted(driver.keys() & vbios.keys())),
        has_rim=driver_rim is not None or vbios_rim is not None,
        covered_blocks=frozenset(i + 1 for i in driver.keys() | vbios.keys()),
    )


def index_conflicts(driver_rim: VerifiedRim | None, vbios_rim: VerifiedRim | None) -> tuple[int, ...]:
    """RIM indices active in both the driver and the VBIOS RIM (NVIDIA: ``vbios-index-no-conflict`` false)."""
    return tuple(sorted(_active(driver_rim).keys() & _active(vbios_rim).keys()))


def msr35_skipped(report: GpuReport) -> bool:
    """Index 35 is skipped when NVDEC0_STATUS is 0x55 (disabled); C++ SDK rule, not the Python one (P2)."""
    return report.response.opaque.nvdec0_status == STATUS_DISABLED


#: One comparison: RIM index, source (None: not in any RIM), outcome, expected values and their hex, actual value.
_Compared = tuple[int, MeasurementSource | None, MeasurementOutcome, tuple[bytes, ...], tuple[str, ...], bytes | None]


def _compare(report: GpuReport, plan: MeasurementPlan) -> list[_Compared]:
    """The comparisons of :func:`compare_measurements`, in its order (one implementation for both of its views)."""
    blocks = report.measurements
    skip35 = msr35_skipped(report)
    out: list[_Compared] = []
    for index, source, alternatives, texts in plan.entries:
        actual = blocks.get(index + 1)
        if index == NVDEC0_RIM_INDEX and skip35:
            outcome: MeasurementOutcome = "skipped"
        elif actual is not None and actual in alternatives:
            outcome = "match"
        else:
            outcome = "mismatch"
        out.append((index, source, outcome, alternatives, texts, actual))
    if plan.has_rim:
        out.extend((block - 1, None, "not_in_rim", (), (), value) for block, value in _not_in_rim(blocks, plan))
    return out


def compare_measurements(
    report: GpuReport, driver_rim: VerifiedRim | None, vbios_rim: VerifiedRim | None
) -> tuple[MeasurementResult, ...]:
    """Compare every active golden index of the RIMs (driver entries first, then VBIOS/BIOS ones) with the report.

    For a switch pass its BIOS RIM as ``vbios_rim``. An index active in both RIMs is compared against each (and
    is an :func:`index_conflicts` failure besides). Results are sorted by RIM index; report blocks no RIM covers
    and whose value is not all zero follow as ``not_in_rim`` (only when at least one RIM is given).
    """
    return compare_planned(report, measurement_plan(driver_rim, vbios_rim))


def compare_planned(report: GpuReport, plan: MeasurementPlan) -> tuple[MeasurementResult, ...]:
    """:func:`compare_measurements` with the RIMs' :class:`MeasurementPlan` already derived."""
    return tuple(
        MeasurementResult(i, src, outcome, exp, actual) for i, src, outcome, exp, _, actual in _compare(report, plan)
    )


#: One comparison as reported: RIM index, SPDM block, source, outcome, expected values (hex), actual value (hex).
MeasurementRow = tuple[int, int, MeasurementSource | None, MeasurementOutcome, tuple[str, ...], str | None]


@dataclass(frozen=True, slots=True)
class MeasuredRows:
    """A report compared with a :class:`MeasurementPlan`, as reported (:func:`measured_rows`): immutable, it
    depends only on the report's blocks, its NVDEC0 status and the plan, so a verifier may reuse it for a later
    report with the same blocks. :meth:`claims` gives fresh claim objects each time."""

    rows: tuple[MeasurementRow, ...]
    reasons: tuple[Reason, ...]  # one nvidia.measurement.mismatch per mismatching row

    def claims(self) -> list[dict[str, object]]:
        """``[r.to_json() for r in compare_planned(report, plan)]``: new dicts and lists on every call."""
        return [
            {"index": i, "block": b, "source": s, "result": o, "expected": list(e), "actual": a}
            for i, b, s, o, e, a in self.rows
        ]


def measured_rows(report: GpuReport, plan: MeasurementPlan) -> MeasuredRows:
    """:func:`compare_planned` as rows (the same comparison as :func:`_compare`, in one pass) and
    :func:`measurement_reasons` of it."""
    blocks = report.measurements
    skip35 = msr35_skipped(report)
    rows: list[MeasurementRow] = []
    reasons: list[Reason] = []
    for index, source, alternatives, texts in plan.entries:
        actual = blocks.get(index + 1)
        if index == NVDEC0_RIM_INDEX and skip35:
            outcome: MeasurementOutcome = "skipped"
        elif actual is not None and actual in alternatives:
            outcome = "match"
        else:
            outcome = "mismatch"
        actual_hex = None if actual is None else actual.hex()
        rows.append((index, index + 1, source, outcome, texts, actual_hex))
        if outcome == "mismatch":
            reasons.append(_mismatch(index, source, texts, actual_hex))
    if plan.has_rim:
        rows.extend(
            (block - 1, block, None, "not_in_rim", (), value.hex()) for block, value in _not_in_rim(blocks, plan)
        )
    return MeasuredRows(tuple(rows), tuple(reasons))


def appraise_measurements(
    report: GpuReport, plan: MeasurementPlan
) -> tuple[list[dict[str, object]], tuple[Reason, ...]]:
    """``[r.to_json() for r in results]`` and :func:`measurement_reasons` ``(results)`` of
    ``results = compare_planned(report, plan)``, without building the results: what a verification reports."""
    measured = measured_rows(report, plan)
    return measured.claims(), measured.reasons


def _not_in_rim(blocks: dict[int, bytes], plan: MeasurementPlan) -> list[tuple[int, bytes]]:
    """(block, value) of the report's blocks no active entry covers and whose value is not all zero, by block."""
    uncovered = sorted(blocks.keys() - plan.covered_blocks)
    return [(b, v) for b in uncovered if (v := blocks[b]).count(0) != len(v)]


def _mismatch(index: int, source: MeasurementSource | None, texts: Sequence[str], actual_hex: str | None) -> Reason:
    return Reason(
        Code.NVIDIA_MEASUREMENT_MISMATCH,
        f"measurement index {index} (SPDM block {index + 1}, {source} RIM) matches no reference value",
        " | ".join(texts),
        "missing" if actual_hex is None else actual_hex,
    )


def measurement_reasons(results: Sequence[MeasurementResult]) -> tuple[Reason, ...]:
    """One ``nvidia.measurement.mismatch`` per mismatching index, naming it with expected vs actual."""
    return tuple(
        _mismatch(r.index, r.source, [e.hex() for e in r.expected], None if r.actual is None else r.actual.hex())
        for r in results
        if r.result == "mismatch"
    )


def conflict_reasons(conflicts: Sequence[int]) -> tuple[Reason, ...]:
    if not conflicts:
        return ()
    return (
        Reason(
            Code.NVIDIA_RIM_INDEX_CONFLICT,
            "measurement indices active in both the driver and the VBIOS RIM",
            "none",
            ", ".join(str(i) for i in conflicts),
        ),
    )


# ----------------------------------------------------------------------------------------------------------
# Policy on signed report fields


def policy_reasons(
    report: GpuReport, architecture: str, kind: Literal["gpu", "switch"], policy: NvidiaPolicy
) -> tuple[Reason, ...]:
    """Architecture, project / SKU / chip SKU, minimum driver and VBIOS versions, protected PCIe — all read from the
    signed opaque data. NVSwitch reports carry no project fields, driver or VBIOS: those rules apply to GPUs."""
    opaque = report.response.opaque
    reasons: list[Reason] = []
    if policy.architectures is not None and architecture not in policy.architectures:
        reasons.append(
            Reason(
                Code.NVIDIA_POLICY_ARCHITECTURE,
                "architecture is not allowed",
                " | ".join(sorted(policy.architectures)),
                architecture,
            )
        )
    if kind == "switch":
        return tuple(reasons)
    for name, allowed, actual in (
        ("project", policy.projects, opaque.project),
        ("project SKU", policy.project_skus, opaque.project_sku),
        ("chip SKU", policy.chip_skus, opaque.chip_sku),
    ):
        if allowed is not None and actual not in allowed:
            reasons.append(
                Reason(Code.NVIDIA_POLICY_SKU, f"{name} is not allowed", " | ".join(sorted(allowed)), str(actual))
            )
    if policy.min_driver_version is not None:
        driver = opaque.driver_version
        if (
            driver is None
            or not is_driver_version(driver)
            or driver_version_key(driver) < driver_version_key(policy.min_driver_version)
        ):
            reasons.append(
                Reason(
                    Code.NVIDIA_POLICY_DRIVER_VERSION,
                    "driver is older than the policy's minimum",
                    f">= {policy.min_driver_version}",
                    str(driver),
                )
            )
    if policy.min_vbios_version is not None:
        vbios = opaque.vbios_version
        if (
            vbios is None
            or not is_vbios_version(vbios)
            or vbios_version_key(vbios) < vbios_version_key(policy.min_vbios_version)
        ):
            reasons.append(
                Reason(
                    Code.NVIDIA_POLICY_VBIOS_VERSION,
                    "VBIOS is older than the policy's minimum",
                    f">= {policy.min_vbios_version}",
                    str(vbios),
                )
            )
    if policy.require_ppcie and opaque.protected_pcie_status != STATUS_ENABLED:
        status = opaque.protected_pcie_status
        reasons.append(
            Reason(
                Code.NVIDIA_POLICY_PPCIE_REQUIRED,
                "protected PCIe is required but the GPU is not in PPCIe mode",
                "0xaa",
                "absent" if status is None else f"0x{status:02x}",
            )
        )
    return tuple(reasons)


def gpu_count_reasons(gpus: int, policy: NvidiaPolicy) -> tuple[Reason, ...]:
    """``min_gpus`` <= number of GPUs <= ``max_gpus`` (for the caller that attests several devices together)."""
    if gpus < policy.min_gpus or (policy.max_gpus is not None and gpus > policy.max_gpus):
        upper = "" if policy.max_gpus is None else f" and <= {policy.max_gpus}"
        return (
            Reason(
                Code.NVIDIA_POLICY_GPU_COUNT,
                "number of GPUs is outside the policy",
                f">= {policy.min_gpus}{upper}",
                str(gpus),
            ),
        )
    return ()
