"""Single-defect simulated evidence: each defect, injected alone, is rejected with its own stable code.

The fake Intel PKI (verifier/testing) builds byte-exact quotes and signed collateral under a test root; every
case flips exactly one thing. The genuine build of each variant is accepted, so each rejection below is caused by
its defect and nothing else. Expected codes are written out here, independently of the builder's own table.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from verifier.appraisal.intel import IntelPolicy, appraise_intel
from verifier.errors import Code, EvidenceMalformed, KeywardError
from verifier.evidence.dcap import parse_quote
from verifier.platforms.evaluation import evaluate_intel_quote
from verifier.platforms.intel_dcap import IntelVerificationCache, verify_quote
from verifier.simulation.intel_pki import Defect, Evidence, QuoteOptions, default_pki, defect_applies
from verifier.simulation.intel_quote_builder import patch_u16, patch_u32
from verifier.trust.intel_collateral import parse_collateral_json

C = Code
#: defect -> the code that must reject it (verification failures and, for policy defects, appraisal).
EXPECTED: dict[Defect, Code] = {
    Defect.WRONG_ROOT: C.INTEL_PCK_CHAIN_UNTRUSTED,
    Defect.PCK_BAD_SIGNATURE: C.INTEL_PCK_SIGNATURE_INVALID,
    Defect.INTERMEDIATE_BAD_SIGNATURE: C.INTEL_PCK_SIGNATURE_INVALID,
    Defect.PCK_EXPIRED: C.INTEL_PCK_EXPIRED,
    Defect.PCK_NOT_YET_VALID: C.INTEL_PCK_NOT_YET_VALID,
    Defect.PCK_REVOKED: C.INTEL_PCK_REVOKED,
    Defect.INTERMEDIATE_REVOKED: C.INTEL_PCK_INTERMEDIATE_REVOKED,
    Defect.PCK_CRL_EXPIRED: C.INTEL_COLLATERAL_CRL_EXPIRED,
    Defect.PCK_CRL_NOT_YET_VALID: C.INTEL_COLLATERAL_CRL_NOT_YET_VALID,
    Defect.PCK_CRL_WRONG_ISSUER: C.INTEL_COLLATERAL_CRL_WRONG_ISSUER,
    Defect.PCK_CRL_BAD_SIGNATURE: C.INTEL_COLLATERAL_CRL_SIGNATURE_INVALID,
    Defect.PCK_CRL_NO_CRL_NUMBER: C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
    Defect.PCK_CRL_NO_AKI: C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
    Defect.ROOT_CRL_EXPIRED: C.INTEL_COLLATERAL_CRL_EXPIRED,
    Defect.ROOT_CRL_NOT_YET_VALID: C.INTEL_COLLATERAL_CRL_NOT_YET_VALID,
    Defect.ROOT_CRL_BAD_SIGNATURE: C.INTEL_COLLATERAL_CRL_SIGNATURE_INVALID,
    Defect.ROOT_CRL_NO_CRL_NUMBER: C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
    Defect.TCB_INFO_BAD_SIGNATURE: C.INTEL_COLLATERAL_TCB_INFO_SIGNATURE_INVALID,
    Defect.TCB_INFO_EXPIRED: C.INTEL_COLLATERAL_TCB_INFO_EXPIRED,
    Defect.TCB_INFO_NOT_YET_VALID: C.INTEL_COLLATERAL_TCB_INFO_NOT_YET_VALID,
    Defect.TCB_INFO_WRONG_TEE: C.INTEL_COLLATERAL_TCB_INFO_WRONG_TEE,
    Defect.FMSPC_MISMATCH: C.INTEL_COLLATERAL_FMSPC_MISMATCH,
    Defect.PCE_ID_MISMATCH: C.INTEL_COLLATERAL_PCE_ID_MISMATCH,
    Defect.TCB_INFO_SIGNING_WRONG_ROOT: C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    Defect.TCB_INFO_SIGNING_BAD_SIGNATURE: C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    Defect.TCB_SIGNING_REVOKED: C.INTEL_COLLATERAL_SIGNING_CERT_REVOKED,
    Defect.QE_IDENTITY_BAD_SIGNATURE: C.INTEL_COLLATERAL_QE_IDENTITY_SIGNATURE_INVALID,
    Defect.QE_IDENTITY_EXPIRED: C.INTEL_COLLATERAL_QE_IDENTITY_EXPIRED,
    Defect.QE_IDENTITY_NOT_YET_VALID: C.INTEL_COLLATERAL_QE_IDENTITY_NOT_YET_VALID,
    Defect.QE_IDENTITY_WRONG_TEE: C.INTEL_COLLATERAL_QE_IDENTITY_WRONG_TEE,
    Defect.QE_IDENTITY_SIGNING_WRONG_ROOT: C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    Defect.QE_MRSIGNER_MISMATCH: C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_ISVPRODID_MISMATCH: C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_ATTRIBUTES_MISMATCH: C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_MISCSELECT_MISMATCH: C.INTEL_QE_IDENTITY_MISMATCH,
    Defect.QE_TCB_NOT_SUPPORTED: C.INTEL_TCB_NOT_SUPPORTED,
    Defect.QE_TCB_REVOKED: C.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
    Defect.QE_REPORT_BAD_SIGNATURE: C.INTEL_QE_REPORT_SIGNATURE_INVALID,
    Defect.AK_BINDING_WRONG: C.INTEL_QE_REPORT_AK_BINDING,
    Defect.QE_REPORTDATA_TAIL_NONZERO: C.INTEL_QE_REPORT_AK_BINDING,
    Defect.QUOTE_BAD_SIGNATURE: C.INTEL_QUOTE_SIGNATURE_INVALID,
    Defect.TCB_NOT_SUPPORTED: C.INTEL_TCB_NOT_SUPPORTED,
    Defect.TCB_STATUS_REVOKED: C.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
    Defect.TCB_STATUS_UNRECOGNIZED: C.INTEL_COLLATERAL_TCB_STATUS_UNRECOGNIZED,
    Defect.TCB_LEVEL_SHORT_COMPONENTS: C.INTEL_COLLATERAL_MALFORMED,
    Defect.TDX_MODULE_IDENTITY_MISSING: C.INTEL_TDX_MODULE_MISMATCH,
    Defect.MRSIGNERSEAM_MISMATCH: C.INTEL_TDX_MODULE_MISMATCH,
    Defect.SEAMATTRIBUTES_NONZERO: C.INTEL_TDX_MODULE_MISMATCH,
    Defect.TDX_TCB_NOT_SUPPORTED: C.INTEL_TCB_NOT_SUPPORTED,
    Defect.TDX_MODULE_TCB_NOT_SUPPORTED: C.INTEL_TCB_NOT_SUPPORTED,
    Defect.DEBUG: C.INTEL_POLICY_TD_DEBUG,  # C.INTEL_POLICY_SGX_DEBUG for SGX variants (see _expected)
    Defect.TD_SEPT_VE_DISABLE_OFF: C.INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF,
    Defect.TD_MIGRATABLE: C.INTEL_POLICY_TD_MIGRATABLE,
    Defect.TD_RESERVED_ATTRIBUTES: C.INTEL_POLICY_TD_RESERVED_ATTRIBUTES,
    Defect.MRSERVICETD_NONZERO: C.INTEL_POLICY_MRSERVICETD_NONZERO,
}
STRICT = IntelPolicy(allow_migratable=False)  # so TD_MIGRATABLE is a defect too

VARIANTS = {
    "tdx-v4": QuoteOptions(tee="tdx", version=4),
    "tdx-v5-td15": QuoteOptions(tee="tdx", version=5, body_type=3),
    "tdx-v5-td15ex": QuoteOptions(tee="tdx", version=5, body_type=4),
    "sgx-v3": QuoteOptions(tee="sgx", version=3),
    "sgx-v3-processor-ca": QuoteOptions(tee="sgx", version=3, pck_ca="processor"),
}
CASES = [
    pytest.param(name, d, id=f"{name}-{d.value}")
    for name, opts in VARIANTS.items()
    for d in Defect
    if defect_applies(d, opts)
]
NON_POLICY_CASES = [c for c in CASES if not EXPECTED[c.values[1]].value.startswith("intel.policy.")]  # type: ignore[index]


def _expected(name: str, defect: Defect) -> Code:
    if defect is Defect.DEBUG and VARIANTS[name].tee == "sgx":
        return C.INTEL_POLICY_SGX_DEBUG
    return EXPECTED[defect]


def _codes(ev: Evidence) -> list[Code]:
    """Every reason code the full pipeline gives (verification failure, or each failed policy check)."""
    coll = parse_collateral_json(ev.collateral_json)
    result = evaluate_intel_quote(ev.quote, coll, ev.trust_store, ev.now, STRICT)
    assert result.simulated
    return [r.code for r in result.reasons]


def test_defect_table_covers_every_defect() -> None:
    assert set(EXPECTED) == set(Defect)
    assert len(EXPECTED) >= 30


@pytest.mark.parametrize("name", list(VARIANTS))
def test_verify_quote_simulated_genuine_accepted(name: str) -> None:
    ev = default_pki().build(VARIANTS[name])
    assert _codes(ev) == []
    v = verify_quote(parse_quote(ev.quote), parse_collateral_json(ev.collateral_json), ev.trust_store, ev.now)
    assert v.tcb.status == "UpToDate"
    assert v.simulated is True
    # The raw-PCS form of the same collateral gives the same result.
    v2 = verify_quote(parse_quote(ev.quote), ev.pcs.to_collateral(), ev.trust_store, ev.now)
    assert v2.tcb == v.tcb


@pytest.mark.parametrize(("name", "defect"), CASES)
def test_verify_quote_single_defect_rejected_with_its_code(name: str, defect: Defect) -> None:
    ev = default_pki().build(VARIANTS[name], defect=defect)
    assert _codes(ev) == [_expected(name, defect)]


@pytest.mark.parametrize(("name", "defect"), NON_POLICY_CASES)
def test_verify_quote_single_defect_rejected_with_warm_cache(name: str, defect: Defect) -> None:
    # A cache primed with the genuine evidence must not let a defective variant through.
    pki = default_pki()
    cache = IntelVerificationCache()
    good = pki.build(VARIANTS[name])
    verify_quote(
        parse_quote(good.quote), parse_collateral_json(good.collateral_json), good.trust_store, good.now, cache
    )
    bad = pki.build(VARIANTS[name], defect=defect)
    with pytest.raises(KeywardError) as exc:
        verify_quote(
            parse_quote(bad.quote), parse_collateral_json(bad.collateral_json), bad.trust_store, bad.now, cache
        )
    assert exc.value.code == EXPECTED[defect]


def test_verify_quote_simulated_outside_window_rejected() -> None:
    ev = default_pki().build(VARIANTS["tdx-v4"])
    coll = parse_collateral_json(ev.collateral_json)
    q = parse_quote(ev.quote)
    for delta in (timedelta(days=-400), timedelta(days=400)):
        with pytest.raises(KeywardError):
            verify_quote(q, coll, ev.trust_store, ev.now + delta)


def test_appraise_intel_simulated_revoked_platform_never_acceptable() -> None:
    ev = default_pki().build(VARIANTS["tdx-v4"], defect=Defect.TCB_STATUS_REVOKED)
    v = verify_quote(parse_quote(ev.quote), parse_collateral_json(ev.collateral_json), ev.trust_store, ev.now)
    assert v.tcb.status == "Revoked"
    verdict = appraise_intel(v, IntelPolicy())
    assert [r.code for r in verdict.reasons] == [C.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED]


STRUCTURAL = [
    ("header", lambda ev: ev.quote[: ev.layout.header_end - 1], C.INTEL_QUOTE_TRUNCATED),
    ("body", lambda ev: ev.quote[: ev.layout.signed_end - 1], C.INTEL_QUOTE_TRUNCATED),
    ("sig-len", lambda ev: ev.quote[: ev.layout.signed_end + 2], C.INTEL_QUOTE_TRUNCATED),
    ("sig-data", lambda ev: ev.quote[:-1], C.INTEL_QUOTE_TRUNCATED),
    ("sig-len-oversize", lambda ev: patch_u32(ev.quote, ev.layout.signed_end, 0xFFFFFFFF), C.INTEL_QUOTE_TRUNCATED),
    ("version-2", lambda ev: patch_u16(ev.quote, 0, 2), C.INTEL_QUOTE_UNSUPPORTED_VERSION),
    ("version-6", lambda ev: patch_u16(ev.quote, 0, 6), C.INTEL_QUOTE_UNSUPPORTED_VERSION),
    ("key-type-3", lambda ev: patch_u16(ev.quote, 2, 3), C.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE),
    ("tee-type", lambda ev: patch_u32(ev.quote, 4, 0x82), C.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
]


@pytest.mark.parametrize(("what", "mutate", "code"), STRUCTURAL, ids=[s[0] for s in STRUCTURAL])
def test_parse_quote_simulated_structural_defect(what: str, mutate: object, code: Code) -> None:
    ev = default_pki().build(VARIANTS["tdx-v4"])
    assert callable(mutate)
    with pytest.raises(EvidenceMalformed) as exc:
        parse_quote(mutate(ev))
    assert exc.value.code == code
