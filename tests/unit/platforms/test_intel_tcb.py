"""Intel TCB level matching and status merge (intel-dcap.md §4 steps 8-9, §5) on a small hand-built TCB Info.

One TCB Info with three levels, highest first, and one TDX module identity (TDX_01):

=====  ===========  ======  ===========================  =========================
level  SGX comps    PCESVN  TDX comps (svn, major, ...)  status
=====  ===========  ======  ===========================  =========================
0      all 5        13      4, 1, 3, 0...                UpToDate
1      all 3        11      2, 1, 2, 0...                OutOfDate
2      all 1        5       0, 0, 1, 0...                OutOfDate
=====  ===========  ======  ===========================  =========================

TDX_01 levels: isvsvn 4 UpToDate, isvsvn 2 OutOfDate.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from verifier.errors import Code, VerificationFailed
from verifier.platforms.intel_tcb import (
    CONFIGURATION_NEEDED,
    OUT_OF_DATE,
    OUT_OF_DATE_CONFIGURATION_NEEDED,
    REVOKED,
    SW_HARDENING_NEEDED,
    TD_RELAUNCH_ADVISED,
    TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED,
    UP_TO_DATE,
    TcbEvaluation,
    evaluate_tcb,
    sgx_matching_levels,
)
from verifier.trust.intel_tcb_info import IdentityLevel, TcbInfo, TcbLevel, TdxModuleIdentity

_ZEROS = (0,) * 13


def _level(sgx: int, pcesvn: int, tdx: tuple[int, ...] | None, status: str, advisory: str) -> TcbLevel:
    return TcbLevel((sgx,) * 16, pcesvn, tdx, f"2025-0{sgx}-01T00:00:00Z", status, (advisory,))


LEVELS = (
    _level(5, 13, (4, 1, 3, *_ZEROS), UP_TO_DATE, "INTEL-SA-L0"),
    _level(3, 11, (2, 1, 2, *_ZEROS), OUT_OF_DATE, "INTEL-SA-L1"),
    _level(1, 5, (0, 0, 1, *_ZEROS), OUT_OF_DATE, "INTEL-SA-L2"),
)
MODULE = TdxModuleIdentity(
    "TDX_01",
    bytes(48),
    bytes(8),
    bytes(8),
    (
        IdentityLevel(4, "2025-04-01T00:00:00Z", UP_TO_DATE, ("INTEL-SA-M4",)),
        IdentityLevel(2, "2025-02-01T00:00:00Z", OUT_OF_DATE, ("INTEL-SA-M2",)),
    ),
)
_T = datetime(2025, 1, 1, tzinfo=UTC)
TCB_INFO = TcbInfo("TDX", 3, _T, _T, bytes(6), bytes(2), 0, 17, LEVELS, None, (MODULE,))
QE_UP_TO_DATE = IdentityLevel(8, "2025-08-01T00:00:00Z", UP_TO_DATE, ("INTEL-SA-QE",))

#: TEE_TCB_SVN that meets level 1's TDX components but not level 0's; module TDX_01 at isvsvn 2 (OutOfDate).
SVN_LEVEL1 = bytes((2, 1, 2, *_ZEROS))
#: TEE_TCB_SVN2 after a TD-preserving update to the latest module (isvsvn 4) and level 0's TDX components.
SVN2_FIXED = bytes((4, 1, 3, *_ZEROS))


def _evaluate(
    *,
    tcb_info: TcbInfo = TCB_INFO,
    pck: int = 5,
    pcesvn: int = 13,
    qe_level: IdentityLevel = QE_UP_TO_DATE,
    tee_tcb_svn: bytes | None = None,
    tee_tcb_svn2: bytes | None = None,
) -> TcbEvaluation:
    components = (pck,) * 16
    return evaluate_tcb(
        tcb_info,
        sgx_levels=sgx_matching_levels(tcb_info, components, pcesvn),
        pck_components=components,
        pck_pcesvn=pcesvn,
        qe_level=qe_level,
        tee_tcb_svn=tee_tcb_svn,
        tee_tcb_svn2=tee_tcb_svn2,
    )


def test_evaluate_tcb_sgx_highest_level_met() -> None:
    evaluation = _evaluate(pck=4, pcesvn=13)  # below level 0's components: level 1
    assert evaluation == TcbEvaluation(
        OUT_OF_DATE,
        OUT_OF_DATE,
        UP_TO_DATE,
        None,
        LEVELS[1].tcb_date,
        ("INTEL-SA-L1", "INTEL-SA-QE"),
        OUT_OF_DATE,
    )


@pytest.mark.parametrize(
    ("platform", "qe", "merged"),
    [
        (UP_TO_DATE, OUT_OF_DATE, OUT_OF_DATE),
        (SW_HARDENING_NEEDED, OUT_OF_DATE, OUT_OF_DATE),
        (CONFIGURATION_NEEDED, OUT_OF_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED),
        (UP_TO_DATE, REVOKED, REVOKED),
        (SW_HARDENING_NEEDED, UP_TO_DATE, SW_HARDENING_NEEDED),
    ],
    ids=["up-to-date+qe-out", "hardening+qe-out", "config+qe-out", "qe-revoked", "qe-up-to-date"],
)
def test_evaluate_tcb_sgx_merges_qe_status(platform: str, qe: str, merged: str) -> None:
    tcb_info = replace(TCB_INFO, levels=(replace(LEVELS[0], status=platform), *LEVELS[1:]))
    evaluation = _evaluate(tcb_info=tcb_info, qe_level=replace(QE_UP_TO_DATE, status=qe))
    assert (evaluation.status, evaluation.platform_status, evaluation.qe_status) == (merged, platform, qe)


def test_evaluate_tcb_tdx_level_from_tee_tcb_svn_and_module() -> None:
    evaluation = _evaluate(tee_tcb_svn=SVN_LEVEL1)  # SGX level 0, TDX level 1, module OutOfDate
    assert evaluation == TcbEvaluation(
        OUT_OF_DATE,
        OUT_OF_DATE,
        UP_TO_DATE,
        OUT_OF_DATE,
        LEVELS[1].tcb_date,
        ("INTEL-SA-L1", "INTEL-SA-M2", "INTEL-SA-QE"),
        UP_TO_DATE,
    )


def test_evaluate_tcb_tdx_up_to_date_module_keeps_platform_status() -> None:
    evaluation = _evaluate(tee_tcb_svn=bytes((4, 1, 3, *_ZEROS)))
    assert (evaluation.status, evaluation.module_status, evaluation.tcb_date) == (
        UP_TO_DATE,
        UP_TO_DATE,
        LEVELS[0].tcb_date,
    )
    assert evaluation.advisory_ids == ("INTEL-SA-L0", "INTEL-SA-M4", "INTEL-SA-QE")


def test_evaluate_tcb_tdx_module_major_zero_compares_every_component() -> None:
    # Major 0: components 0-1 are not delegated to a module identity, so the match uses all 16.
    evaluation = _evaluate(tee_tcb_svn=bytes((9, 0, 3, *_ZEROS)))
    assert (evaluation.status, evaluation.module_status, evaluation.tcb_date) == (
        OUT_OF_DATE,
        None,
        LEVELS[2].tcb_date,
    )


def test_evaluate_tcb_tdx_merges_qe_after_module() -> None:
    evaluation = _evaluate(tee_tcb_svn=bytes((4, 1, 3, *_ZEROS)), qe_level=replace(QE_UP_TO_DATE, status=REVOKED))
    assert evaluation.status == REVOKED


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"pck": 0}, Code.INTEL_TCB_NOT_SUPPORTED),
        ({"pcesvn": 4}, Code.INTEL_TCB_NOT_SUPPORTED),
        ({"tee_tcb_svn": bytes((9, 0, 0, *_ZEROS))}, Code.INTEL_TCB_NOT_SUPPORTED),
        ({"tee_tcb_svn": bytes((1, 1, 3, *_ZEROS))}, Code.INTEL_TCB_NOT_SUPPORTED),
        ({"tee_tcb_svn": bytes((4, 2, 3, *_ZEROS))}, Code.INTEL_TDX_MODULE_MISMATCH),
        (
            {
                "tcb_info": replace(TCB_INFO, levels=(replace(LEVELS[0], tdx_components=None), *LEVELS[1:])),
                "tee_tcb_svn": SVN_LEVEL1,
            },
            Code.INTEL_TCB_NOT_SUPPORTED,
        ),
    ],
    ids=[
        "sgx-components-below-all",
        "pcesvn-below-all",
        "tdx-components-below-all",
        "module-svn-below-all",
        "module-identity-absent",
        "level-without-tdx-components",
    ],
)
def test_evaluate_tcb_no_matching_level_raises(kwargs: dict[str, object], code: Code) -> None:
    with pytest.raises(VerificationFailed) as exc:
        _evaluate(**kwargs)  # type: ignore[arg-type]
    assert exc.value.code == code


def test_evaluate_tcb_td_relaunch_advised_after_preserving_update() -> None:
    evaluation = _evaluate(tee_tcb_svn=SVN_LEVEL1, tee_tcb_svn2=SVN2_FIXED)
    assert (evaluation.status, evaluation.platform_status, evaluation.module_status) == (
        TD_RELAUNCH_ADVISED,
        OUT_OF_DATE,
        OUT_OF_DATE,
    )


@pytest.mark.parametrize(
    ("sgx_status", "tdx_status"),
    [(CONFIGURATION_NEEDED, OUT_OF_DATE), (UP_TO_DATE, OUT_OF_DATE_CONFIGURATION_NEEDED)],
    ids=["sgx-level-config", "tdx-level-config"],
)
def test_evaluate_tcb_td_relaunch_advised_configuration_needed(sgx_status: str, tdx_status: str) -> None:
    levels = (replace(LEVELS[0], status=sgx_status), replace(LEVELS[1], status=tdx_status), LEVELS[2])
    evaluation = _evaluate(tcb_info=replace(TCB_INFO, levels=levels), tee_tcb_svn=SVN_LEVEL1, tee_tcb_svn2=SVN2_FIXED)
    assert evaluation.status == TD_RELAUNCH_ADVISED_CONFIGURATION_NEEDED


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"tee_tcb_svn2": None}, OUT_OF_DATE),
        ({"tee_tcb_svn2": bytes((3, 1, 3, *_ZEROS))}, OUT_OF_DATE),
        ({"tee_tcb_svn2": bytes((4, 1, 2, *_ZEROS))}, OUT_OF_DATE),
        ({"tee_tcb_svn2": bytes((4, 2, 3, *_ZEROS))}, OUT_OF_DATE),
        ({"tee_tcb_svn2": bytes((4, 0, 3, *_ZEROS))}, TD_RELAUNCH_ADVISED),
        ({"tee_tcb_svn2": bytes((3, 0, 3, *_ZEROS))}, OUT_OF_DATE),
        ({"tee_tcb_svn2": SVN2_FIXED, "qe_level": replace(QE_UP_TO_DATE, status=OUT_OF_DATE)}, OUT_OF_DATE),
        ({"tee_tcb_svn2": SVN2_FIXED, "qe_level": replace(QE_UP_TO_DATE, status=REVOKED)}, REVOKED),
        (
            {
                "tee_tcb_svn2": SVN2_FIXED,
                "tcb_info": replace(TCB_INFO, levels=(replace(LEVELS[0], status=OUT_OF_DATE), *LEVELS[1:])),
            },
            OUT_OF_DATE,
        ),
        ({"tee_tcb_svn": bytes((4, 1, 2, *_ZEROS)), "tee_tcb_svn2": SVN2_FIXED}, OUT_OF_DATE),
    ],
    ids=[
        "td-1.0-body",
        "svn2-module-still-old",
        "svn2-components-still-old",
        "svn2-module-identity-absent",
        "svn2-major-zero-meets-latest",
        "svn2-major-zero-below-latest",
        "qe-out-of-date",
        "qe-revoked",
        "sgx-level-out-of-date",
        "module-up-to-date",
    ],
)
def test_evaluate_tcb_td_relaunch_not_advised(kwargs: dict[str, object], status: str) -> None:
    evaluation = _evaluate(**{"tee_tcb_svn": SVN_LEVEL1, **kwargs})  # type: ignore[arg-type]
    assert evaluation.status == status
