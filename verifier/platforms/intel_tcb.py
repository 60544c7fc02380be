"""Intel TCB level matching and status merge (intel-dcap.md §4 steps 8-9 and §5), as pure functions.

Input: a TCB Info and QE Identity that have already been verified, the PCK extension values, and the TEE's own
SVNs from the quote. Output: a :class:`TcbEvaluation` with the merged status, each component's status, the
matched level's date and the union of advisory IDs. "No matching level" for the platform, the QE or the TDX
module raises ``intel.tcb.not_supported`` (Intel: ``STATUS_TCB_NOT_SUPPORTED``): there is no status to report.
No policy here: whether a status is acceptable is appraisal's call.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Final

from verifier.errors import Code, VerificationFailed
from verifier.trust.intel_tcb_info import IdentityLevel, TcbInfo, TcbLevel

UP_TO_DATE: Final = "UpToDate"
SW_HARDENING_NEEDED: Final = "SWHardeningNeeded"
CONFIGURATION_NEEDED: Final = "ConfigurationNeeded"
CONFIGURATION_AND_SW_HARDENING_NEEDED: Final = "ConfigurationAndSWHardeningNeeded"
OUT_OF_DATE: Final = "OutOfDate"
OUT_OF_DATE_CONFIGURATION_NEEDED: Final = "OutOfDateConfigurationNeeded"
REVOKED: Final = "Revoked"
TD_RELAUNCH_ADVISED: Final = "TDRelaunchAdvised"
TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED: Final = "TDRelaunchAdvisedConfigurationNeeded"

_CONFIG: Final = frozenset(
    {CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED, OUT_OF_DATE_CONFIGURATION_NEEDED}
)


@dataclass(frozen=True, slots=True)
class TcbEvaluation:
    status: str
    platform_status: str
    qe_status: str
    module_status: str | None
    tcb_date: str
    advisory_ids: tuple[str, ...]
    sgx_level_status: str


def _not_supported(what: str, actual: str) -> VerificationFailed:
    return VerificationFailed(
        Code.INTEL_TCB_NOT_SUPPORTED,
        f"no {what} TCB level is at or below this platform",
        expected=f"a {what} TCB level <= the platform",
        actual=actual,
    )


def match_identity_level(levels: tuple[IdentityLevel, ...], isvsvn: int, what: str) -> IdentityLevel:
    """First level (levels are sorted by descending isvsvn) with ``level.isvsvn <= isvsvn``."""
    for level in levels:
        if level.isvsvn <= isvsvn:
            return level
    raise _not_supported(what, f"isvsvn {isvsvn}")


def merge(platform: str, component: str | None) -> str:
    """intel-dcap.md §5 merge rule for a QE or TDX-module component status."""
    if component == OUT_OF_DATE:
        if platform in (UP_TO_DATE, SW_HARDENING_NEEDED):
            return OUT_OF_DATE
        if platform in (CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED):
            return OUT_OF_DATE_CONFIGURATION_NEEDED
        return platform
    if component == REVOKED:
        return REVOKED
    return platform


def sgx_matching_levels(tcb_info: TcbInfo, pck_components: tuple[int, ...], pck_pcesvn: int) -> tuple[int, ...]:
    """Indices (in TCB Info order, highest first) of every level whose 16 SGX components and PCESVN the PCK meets.

    Depends only on the PCK certificate and the TCB Info, so verifiers may memoise it with them.
    """
    if len(pck_components) != 16:
        return ()
    return tuple(
        i
        for i, lv in enumerate(tcb_info.levels)
        if pck_pcesvn >= lv.pcesvn and all(map(operator.ge, pck_components, lv.sgx_components))
    )


def evaluate_tcb(
    tcb_info: TcbInfo,
    *,
    sgx_levels: tuple[int, ...],
    pck_components: tuple[int, ...],
    pck_pcesvn: int,
    qe_level: IdentityLevel,
    tee_tcb_svn: bytes | None,
    tee_tcb_svn2: bytes | None,
) -> TcbEvaluation:
    """Match the platform TCB level (SGX, and for TDX the TDX level and module level) and merge statuses.

    ``sgx_levels`` is :func:`sgx_matching_levels` for this PCK and TCB Info. ``tee_tcb_svn`` is None for SGX
    quotes; ``tee_tcb_svn2`` is set only for TD 1.5 bodies (types 3 and 4).
    """
    # SGX level: the first (highest) level the PCK components and PCESVN all meet.
    if not sgx_levels:
        raise _not_supported("platform", f"SGX components {list(pck_components)}, PCESVN {pck_pcesvn}")
    sgx_level = tcb_info.levels[sgx_levels[0]]
    if tee_tcb_svn is None:  # SGX: the platform level merged with the QE
        return TcbEvaluation(
            merge(sgx_level.status, qe_level.status),
            sgx_level.status,
            qe_level.status,
            None,
            sgx_level.tcb_date,
            _advisory_ids(qe_level, sgx_level),
            sgx_level.status,
        )
    tdx_level = _match_tdx_level(tcb_info, sgx_levels, tee_tcb_svn)
    module_level = _match_module_level(tcb_info, tee_tcb_svn)
    module_status = None if module_level is None else module_level.status
    status = merge(merge(tdx_level.status, module_status), qe_level.status)  # §5: module first, then QE
    if tee_tcb_svn2 is not None:  # TD 1.5 (body types 3/4)
        status = _td_relaunch_status(
            status,
            tcb_info=tcb_info,
            sgx_status=sgx_level.status,
            platform_status=tdx_level.status,
            module_status=module_status,
            qe_status=qe_level.status,
            tee_tcb_svn2=tee_tcb_svn2,
        )
    return TcbEvaluation(
        status,
        tdx_level.status,
        qe_level.status,
        module_status,
        tdx_level.tcb_date,
        _advisory_ids(qe_level, tdx_level, module_level),
        sgx_level.status,
    )


def _match_tdx_level(tcb_info: TcbInfo, sgx_levels: tuple[int, ...], tee_tcb_svn: bytes) -> TcbLevel:
    """From the SGX level on, the first level whose TDX components the TEE_TCB_SVN also meets.

    Components 0-1 are delegated to the module identity when the module major (TEE_TCB_SVN[1]) is non-zero.
    """
    first = 2 if tee_tcb_svn[1] > 0 else 0
    svn = tee_tcb_svn[first:16]
    for index in sgx_levels:
        level = tcb_info.levels[index]
        components = level.tdx_components
        if components is None:
            raise _not_supported("TDX", "TCB level without tdxtcbcomponents")
        if all(map(operator.ge, svn, components[first:])):
            return level
    raise _not_supported("TDX", f"TEE_TCB_SVN {tee_tcb_svn.hex()}")


def _match_module_level(tcb_info: TcbInfo, tee_tcb_svn: bytes) -> IdentityLevel | None:
    """The TDX module identity level for TEE_TCB_SVN[0], or None when the module major is 0 (not delegated)."""
    major = tee_tcb_svn[1]
    if major == 0:
        return None
    identity = tcb_info.module_identity(major)
    if identity is None:  # step 9 already rejects this; kept so the function is safe on its own
        raise VerificationFailed(
            Code.INTEL_TDX_MODULE_MISMATCH,
            "no TDX module identity for this module",
            expected=f"TDX_{major:02X}",
            actual="absent",
        )
    return match_identity_level(identity.levels, tee_tcb_svn[0], "TDX module")


def _td_relaunch_status(
    status: str,
    *,
    tcb_info: TcbInfo,
    sgx_status: str,
    platform_status: str,
    module_status: str | None,
    qe_status: str,
    tee_tcb_svn2: bytes,
) -> str:
    """TD 1.5 relaunch: a TD-preserving module update already fixed what made it OutOfDate; else ``status``."""
    if (
        qe_status not in (OUT_OF_DATE, REVOKED)
        and sgx_status in (UP_TO_DATE, SW_HARDENING_NEEDED, CONFIGURATION_NEEDED, CONFIGURATION_AND_SW_HARDENING_NEEDED)
        and platform_status in (OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED)
        and module_status == OUT_OF_DATE
        and _relaunch_fixes(tcb_info, tee_tcb_svn2)
    ):
        config = sgx_status in _CONFIG or platform_status in _CONFIG
        return TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED if config else TD_RELAUNCH_ADVISED
    return status


def _advisory_ids(*levels: TcbLevel | IdentityLevel | None) -> tuple[str, ...]:
    """The sorted union of the matched levels' advisory IDs (None: a level that does not apply)."""
    return tuple(sorted({advisory for level in levels if level is not None for advisory in level.advisory_ids}))


def _relaunch_fixes(tcb_info: TcbInfo, svn2: bytes) -> bool:
    latest = tcb_info.levels[0].tdx_components
    if latest is None:
        return False
    if svn2[2] < latest[2]:
        return False
    if svn2[1] == 0:
        return svn2[0] >= latest[0]
    ident = tcb_info.module_identity(svn2[1])
    return ident is not None and bool(ident.levels) and svn2[0] >= ident.levels[0].isvsvn
