"""What can vary in simulated Intel DCAP evidence (verifier.simulation.intel_pki): genuine :class:`QuoteOptions` and
:class:`CollateralOptions`, and the :class:`Defect` catalogue, one defect at a time, with the stable code an exact
verifier must answer each with (:func:`expected_code`). SIMULATION ONLY; no keys or certificates here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

from verifier.errors import Code
from verifier.simulation.intel_quote_builder import SgxReport, TdReport

Tee = Literal["sgx", "tdx"]
CaKind = Literal["platform", "processor"]
PlatformTcb = Literal["up_to_date", "out_of_date"]


@dataclass(frozen=True, slots=True)
class QuoteOptions:
    """Genuine variations of the quote and the platform behind it. Defaults: TDX quote v4, UpToDate.

    ``body_type`` matters for v5 only (None: 1 for SGX, 3 for TDX). ``sgx``/``td`` are the enclave/TD report
    fields (``SgxReport.cpusvn=None`` takes the platform's). ``qe_isvsvn=None`` is the top QE level's ISVSVN.
    """

    tee: Tee = "tdx"
    version: int = 4
    body_type: int | None = None
    pck_ca: CaKind = "platform"
    platform_tcb: PlatformTcb = "up_to_date"
    qe_isvsvn: int | None = None
    sgx: SgxReport = field(default_factory=SgxReport)
    td: TdReport = field(default_factory=TdReport)
    qe_auth_data: bytes = bytes(range(32))
    qe_id: bytes = hashlib.sha256(b"keyward-simulated:qe-id").digest()[:16]

    def resolved_body_type(self) -> int:
        if self.tee not in ("sgx", "tdx") or (self.tee, self.version) not in {
            ("sgx", 3),
            ("sgx", 5),
            ("tdx", 4),
            ("tdx", 5),
        }:
            raise ValueError(f"no quote version {self.version} for {self.tee!r}")
        default = 1 if self.tee == "sgx" else (2 if self.version == 4 else 3)
        bt = default if self.body_type is None else self.body_type
        if bt != default and (self.version != 5 or self.tee == "sgx" or bt not in (2, 3, 4)):
            raise ValueError(f"body type {bt} is not valid for {self.tee!r} quote v{self.version}")
        return bt


@dataclass(frozen=True, slots=True)
class CollateralOptions:
    """Genuine variations of the collateral (all signed and valid at :data:`SIM_NOW`)."""

    tcb_evaluation_data_number: int = 17
    qe_tcb_evaluation_data_number: int | None = None  # None: same as the TCB Info's
    top_tcb_status: str = "UpToDate"  # status of the highest platform level (e.g. "SWHardeningNeeded")
    top_tcb_advisory_ids: tuple[str, ...] = ()
    pck_crl_revoked_serials: tuple[int, ...] = ()
    root_crl_revoked_serials: tuple[int, ...] = ()


class Defect(StrEnum):
    """One injected defect. Each makes exactly one check of intel-dcap.md §4 (or §7 policy) fail."""

    WRONG_ROOT = "wrong_root"  # PCK chain anchored at an unrelated root with identical names
    PCK_BAD_SIGNATURE = "pck_bad_signature"  # leaf signed by a rogue key under the CA's name and AKI
    INTERMEDIATE_BAD_SIGNATURE = "intermediate_bad_signature"  # CA cert signed by a rogue key (root's name)
    PCK_EXPIRED = "pck_expired"  # leaf notAfter < now
    PCK_NOT_YET_VALID = "pck_not_yet_valid"  # leaf notBefore > now
    PCK_REVOKED = "pck_revoked"  # leaf serial on the PCK CRL
    INTERMEDIATE_REVOKED = "intermediate_revoked"  # PCK CA serial on the Root CA CRL
    PCK_CRL_EXPIRED = "pck_crl_expired"
    PCK_CRL_NOT_YET_VALID = "pck_crl_not_yet_valid"
    PCK_CRL_WRONG_ISSUER = "pck_crl_wrong_issuer"  # the other CA's (genuine) CRL, e.g. Processor for Platform
    PCK_CRL_BAD_SIGNATURE = "pck_crl_bad_signature"  # right issuer name/AKI, rogue key
    PCK_CRL_NO_CRL_NUMBER = "pck_crl_no_crl_number"
    PCK_CRL_NO_AKI = "pck_crl_no_aki"
    ROOT_CRL_EXPIRED = "root_crl_expired"
    ROOT_CRL_NOT_YET_VALID = "root_crl_not_yet_valid"
    ROOT_CRL_BAD_SIGNATURE = "root_crl_bad_signature"
    ROOT_CRL_NO_CRL_NUMBER = "root_crl_no_crl_number"
    TCB_INFO_BAD_SIGNATURE = "tcb_info_bad_signature"  # signed by a rogue key
    TCB_INFO_EXPIRED = "tcb_info_expired"  # nextUpdate < now
    TCB_INFO_NOT_YET_VALID = "tcb_info_not_yet_valid"  # issueDate > now
    TCB_INFO_WRONG_TEE = "tcb_info_wrong_tee"  # SGX TCB Info for a TDX quote and vice versa
    FMSPC_MISMATCH = "fmspc_mismatch"  # TCB Info for another FMSPC
    PCE_ID_MISMATCH = "pce_id_mismatch"
    TCB_INFO_SIGNING_WRONG_ROOT = "tcb_info_signing_wrong_root"  # chain = [forged signer, other root]
    TCB_INFO_SIGNING_BAD_SIGNATURE = "tcb_info_signing_bad_signature"  # signer cert not signed by the root
    TCB_SIGNING_REVOKED = "tcb_signing_revoked"  # TCB Signing serial on the Root CA CRL
    QE_IDENTITY_BAD_SIGNATURE = "qe_identity_bad_signature"
    QE_IDENTITY_EXPIRED = "qe_identity_expired"
    QE_IDENTITY_NOT_YET_VALID = "qe_identity_not_yet_valid"
    QE_IDENTITY_WRONG_TEE = "qe_identity_wrong_tee"  # "QE" for a TDX quote, "TD_QE" for SGX
    QE_IDENTITY_SIGNING_WRONG_ROOT = "qe_identity_signing_wrong_root"
    QE_MRSIGNER_MISMATCH = "qe_mrsigner_mismatch"  # QE report fields differ from the QE Identity ...
    QE_ISVPRODID_MISMATCH = "qe_isvprodid_mismatch"
    QE_ATTRIBUTES_MISMATCH = "qe_attributes_mismatch"  # ... DEBUG bit, inside attributesMask
    QE_MISCSELECT_MISMATCH = "qe_miscselect_mismatch"
    QE_TCB_NOT_SUPPORTED = "qe_tcb_not_supported"  # QE ISVSVN below every QE level
    QE_TCB_REVOKED = "qe_tcb_revoked"  # the QE's level has status "Revoked"
    QE_REPORT_BAD_SIGNATURE = "qe_report_bad_signature"  # QE report signed by a key other than the PCK's
    AK_BINDING_WRONG = "ak_binding_wrong"  # QE REPORTDATA[0:32] != SHA256(AK || auth data)
    QE_REPORTDATA_TAIL_NONZERO = "qe_reportdata_tail_nonzero"  # QE REPORTDATA[32:64] != 0
    QUOTE_BAD_SIGNATURE = "quote_bad_signature"  # quote signed by a key other than the attestation key
    TCB_NOT_SUPPORTED = "tcb_not_supported"  # PCK SGX TCB below every platform level
    TCB_STATUS_REVOKED = "tcb_status_revoked"  # the matched platform level says "Revoked"
    TCB_STATUS_UNRECOGNIZED = "tcb_status_unrecognized"  # ... says "Bogus"
    TCB_LEVEL_SHORT_COMPONENTS = "tcb_level_short_components"  # top level has 15 sgxtcbcomponents
    TDX_MODULE_IDENTITY_MISSING = "tdx_module_identity_missing"  # no TDX_%02X for TEE_TCB_SVN[1]
    MRSIGNERSEAM_MISMATCH = "mrsignerseam_mismatch"
    SEAMATTRIBUTES_NONZERO = "seamattributes_nonzero"
    TDX_TCB_NOT_SUPPORTED = "tdx_tcb_not_supported"  # TEE_TCB_SVN[2] below every level's tdx[2]
    TDX_MODULE_TCB_NOT_SUPPORTED = "tdx_module_tcb_not_supported"  # TEE_TCB_SVN[0] below every module level
    DEBUG = "debug"  # SGX ATTRIBUTES.DEBUG / TDATTRIBUTES.DEBUG (policy)
    TD_SEPT_VE_DISABLE_OFF = "td_sept_ve_disable_off"  # (policy)
    TD_MIGRATABLE = "td_migratable"  # (policy, only where it sets allow_migratable=False)
    TD_RESERVED_ATTRIBUTES = "td_reserved_attributes"  # TDATTRIBUTES bit 40 (policy)
    MRSERVICETD_NONZERO = "mrservicetd_nonzero"  # TD 1.5 bodies only (policy)


_TDX_ONLY: Final = frozenset(
    {
        Defect.TDX_MODULE_IDENTITY_MISSING,
        Defect.MRSIGNERSEAM_MISMATCH,
        Defect.SEAMATTRIBUTES_NONZERO,
        Defect.TDX_TCB_NOT_SUPPORTED,
        Defect.TDX_MODULE_TCB_NOT_SUPPORTED,
        Defect.TD_SEPT_VE_DISABLE_OFF,
        Defect.TD_MIGRATABLE,
        Defect.TD_RESERVED_ATTRIBUTES,
        Defect.MRSERVICETD_NONZERO,
    }
)

_C = Code
_PCK_CRL_DEFECTS: Final = {
    Defect.PCK_CRL_EXPIRED: _C.INTEL_COLLATERAL_CRL_EXPIRED,
    Defect.PCK_CRL_NOT_YET_VALID: _C.INTEL_COLLATERAL_CRL_NOT_YET_VALID,
    Defect.PCK_CRL_WRONG_ISSUER: _C.INTEL_COLLATERAL_CRL_WRONG_ISSUER,
    Defect.PCK_CRL_BAD_SIGNATURE: _C.INTEL_COLLATERAL_CRL_SIGNATURE_INVALID,
    Defect.PCK_CRL_NO_CRL_NUMBER: _C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
    Defect.PCK_CRL_NO_AKI: _C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
}
_ROOT_CRL_DEFECTS: Final = {
    Defect.ROOT_CRL_EXPIRED: _C.INTEL_COLLATERAL_CRL_EXPIRED,
    Defect.ROOT_CRL_NOT_YET_VALID: _C.INTEL_COLLATERAL_CRL_NOT_YET_VALID,
    Defect.ROOT_CRL_BAD_SIGNATURE: _C.INTEL_COLLATERAL_CRL_SIGNATURE_INVALID,
    Defect.ROOT_CRL_NO_CRL_NUMBER: _C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
}
#: The code an exact verifier following intel-dcap.md §4 (and the §7 default policy) should report.
EXPECTED_CODES: Final[Mapping[Defect, Code]] = {
    Defect.WRONG_ROOT: _C.INTEL_PCK_CHAIN_UNTRUSTED,
    Defect.PCK_BAD_SIGNATURE: _C.INTEL_PCK_SIGNATURE_INVALID,
    Defect.INTERMEDIATE_BAD_SIGNATURE: _C.INTEL_PCK_SIGNATURE_INVALID,
    Defect.PCK_EXPIRED: _C.INTEL_PCK_EXPIRED,
    Defect.PCK_NOT_YET_VALID: _C.INTEL_PCK_NOT_YET_VALID,
    Defect.PCK_REVOKED: _C.INTEL_PCK_REVOKED,
    Defect.INTERMEDIATE_REVOKED: _C.INTEL_PCK_INTERMEDIATE_REVOKED,
    **_PCK_CRL_DEFECTS,
    **_ROOT_CRL_DEFECTS,
    Defect.TCB_INFO_BAD_SIGNATURE: _C.INTEL_COLLATERAL_TCB_INFO_SIGNATURE_INVALID,
    Defect.TCB_INFO_EXPIRED: _C.INTEL_COLLATERAL_TCB_INFO_EXPIRED,
    Defect.TCB_INFO_NOT_YET_VALID: _C.INTEL_COLLATERAL_TCB_INFO_NOT_YET_VALID,
    Defect.TCB_INFO_WRONG_TEE: _C.INTEL_COLLATERAL_TCB_INFO_WRONG_TEE,
    Defect.FMSPC_MISMATCH: _C.INTEL_COLLATERAL_FMSPC_MISMATCH,
    Defect.PCE_ID_MISMATCH: _C.INTEL_COLLATERAL_PCE_ID_MISMATCH,
    Defect.TCB_INFO_SIGNING_WRONG_ROOT: _C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    Defect.TCB_INFO_SIGNING_BAD_SIGNATURE: _C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    Defect.TCB_SIGNING_REVOKED: _C.INTEL_COLLATERAL_SIGNING_CERT_REVOKED,
    Defect.QE_IDENTITY_BAD_SIGNATURE: _C.INTEL_COLLATERAL_QE_IDENTITY_SIGNATURE_INVALID,
    Defect.QE_IDENTITY_EXPIRED: _C.INTEL_COLLATERAL_QE_IDENTITY_EXPIRED,
    Defect.QE_IDENTITY_NOT_YET_VALID: _C.INTEL_COLLATERAL_QE_IDENTITY_NOT_YET_VALID,
    Defect.QE_IDENTITY_WRONG_TEE: _C.INTEL_COLLATERAL_QE_IDENTITY_WRONG_TEE,
    Defect.QE_IDENTITY_SIGNING_WRONG_ROOT: _C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    Defect.QE_MRSIGNER_MISMATCH: _C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_ISVPRODID_MISMATCH: _C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_ATTRIBUTES_MISMATCH: _C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_MISCSELECT_MISMATCH: _C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_TCB_NOT_SUPPORTED: _C.INTEL_TCB_NOT_SUPPORTED,
    Defect.QE_TCB_REVOKED: _C.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
    Defect.QE_REPORT_BAD_SIGNATURE: _C.INTEL_QE_REPORT_SIGNATURE_INVALID,
    Defect.AK_BINDING_WRONG: _C.INTEL_QE_REPORT_AK_BINDING,
    Defect.QE_REPORTDATA_TAIL_NONZERO: _C.INTEL_QE_REPORT_AK_BINDING,
    Defect.QUOTE_BAD_SIGNATURE: _C.INTEL_QUOTE_SIGNATURE_INVALID,
    Defect.TCB_NOT_SUPPORTED: _C.INTEL_TCB_NOT_SUPPORTED,
    Defect.TCB_STATUS_REVOKED: _C.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
    Defect.TCB_STATUS_UNRECOGNIZED: _C.INTEL_COLLATERAL_TCB_STATUS_UNRECOGNIZED,
    Defect.TCB_LEVEL_SHORT_COMPONENTS: _C.INTEL_COLLATERAL_MALFORMED,
    Defect.TDX_MODULE_IDENTITY_MISSING: _C.INTEL_TDX_MODULE_MISMATCH,
    Defect.MRSIGNERSEAM_MISMATCH: _C.INTEL_TDX_MODULE_MISMATCH,
    Defect.SEAMATTRIBUTES_NONZERO: _C.INTEL_TDX_MODULE_MISMATCH,
    Defect.TDX_TCB_NOT_SUPPORTED: _C.INTEL_TCB_NOT_SUPPORTED,
    Defect.TDX_MODULE_TCB_NOT_SUPPORTED: _C.INTEL_TCB_NOT_SUPPORTED,
    Defect.TD_SEPT_VE_DISABLE_OFF: _C.INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF,
    Defect.TD_MIGRATABLE: _C.INTEL_POLICY_TD_MIGRATABLE,
    Defect.TD_RESERVED_ATTRIBUTES: _C.INTEL_POLICY_TD_RESERVED_ATTRIBUTES,
    Defect.MRSERVICETD_NONZERO: _C.INTEL_POLICY_MRSERVICETD_NONZERO,
}


def expected_code(defect: Defect, tee: Tee) -> Code:
    """Suggested code for ``defect`` (DEBUG depends on the TEE). ``intel.policy.*`` codes come from appraisal:
    the quote itself verifies, and the status or attribute is then refused by the default policy."""
    if defect is Defect.DEBUG:
        return Code.INTEL_POLICY_TD_DEBUG if tee == "tdx" else Code.INTEL_POLICY_SGX_DEBUG
    return EXPECTED_CODES[defect]


def defect_applies(defect: Defect, quote: QuoteOptions) -> bool:
    """Whether ``defect`` can be injected into a quote built with ``quote`` (TDX-only, TD 1.5 fields)."""
    if defect in _TDX_ONLY and quote.tee != "tdx":
        return False
    if defect is Defect.MRSERVICETD_NONZERO:
        return quote.resolved_body_type() in (3, 4)
    if defect is Defect.TDX_MODULE_IDENTITY_MISSING:
        return quote.td.tee_tcb_svn[1] > 0
    return True


def applicable_defects(quote: QuoteOptions) -> tuple[Defect, ...]:
    return tuple(d for d in Defect if defect_applies(d, quote))
