"""Single-defect simulated SEV-SNP evidence: each defect, injected alone, is rejected with its own stable code.

The fake AMD PKI (verifier/simulation/amd_pki.py) builds byte-exact reports, VCEK/VLEK certificates (serial 0, the
real extension set), certificate tables and ARK-signed CRLs under test roots. The genuine build of every variant is
accepted, so each rejection below is caused by its defect alone. Expected codes are written out here.
"""

from __future__ import annotations

import pytest

from verifier.appraisal.snp import SnpPolicy
from verifier.errors import Code
from verifier.platforms.evaluation import evaluate_snp_report
from verifier.simulation.amd_pki import (
    DEFAULT_CSP_ID,
    AmdEvidence,
    Defect,
    ReportOptions,
    default_amd_pki,
    defect_applies,
)

C = Code
EXPECTED: dict[Defect, Code | None] = {
    # Supplied chains are ignored, so a foreign root shows as a leaf the pinned ASK did not sign.
    Defect.WRONG_ROOT: C.SNP_CHAIN_SIGNATURE_INVALID,
    Defect.LEAF_BAD_SIGNATURE: C.SNP_CHAIN_SIGNATURE_INVALID,
    Defect.ASK_BAD_SIGNATURE: C.SNP_CHAIN_SIGNATURE_INVALID,
    Defect.VLEK_PRESENTED_AS_VCEK: C.SNP_LEAF_KEY_TYPE_MISMATCH,
    Defect.VCEK_PRESENTED_AS_VLEK: C.SNP_LEAF_KEY_TYPE_MISMATCH,
    Defect.WRONG_PRODUCT_CHAIN: C.SNP_CHAIN_PRODUCT_MISMATCH,
    Defect.TCB_EXT_MISMATCH_BL: C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_TEE: C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_SNP: C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_UCODE: C.SNP_LEAF_TCB_MISMATCH,
    Defect.TCB_EXT_MISMATCH_FMC: C.SNP_LEAF_TCB_MISMATCH,
    Defect.CURRENT_TCB_USED: C.SNP_LEAF_TCB_MISMATCH,
    Defect.HWID_MISMATCH: C.SNP_LEAF_HWID_MISMATCH,
    Defect.HWID_MISSING: C.SNP_LEAF_EXTENSIONS_INVALID,
    Defect.CSPID_MISSING: C.SNP_LEAF_EXTENSIONS_INVALID,
    Defect.LEAF_EXPIRED: C.SNP_LEAF_EXPIRED,
    Defect.LEAF_NOT_YET_VALID: C.SNP_LEAF_NOT_YET_VALID,
    Defect.LEAF_REVOKED: C.SNP_LEAF_REVOKED,
    Defect.ASK_REVOKED: C.SNP_CHAIN_REVOKED,
    Defect.CRL_EXPIRED: C.SNP_CRL_EXPIRED,
    Defect.CRL_NOT_YET_VALID: C.SNP_CRL_NOT_YET_VALID,
    Defect.CRL_BAD_SIGNATURE: C.SNP_CRL_SIGNATURE_INVALID,
    Defect.REPORT_SIGNATURE_BAD: C.SNP_SIGNATURE_INVALID,
    Defect.R_OUT_OF_RANGE: C.SNP_SIGNATURE_MALFORMED,
    Defect.S_ZERO: C.SNP_SIGNATURE_MALFORMED,
    Defect.SIGNATURE_PADDING_NONZERO: C.SNP_SIGNATURE_MALFORMED,
    Defect.RESERVED_NONZERO: C.SNP_REPORT_RESERVED_NONZERO,
    Defect.UNKNOWN_VERSION_4: C.SNP_REPORT_UNSUPPORTED_VERSION,
    Defect.UNKNOWN_VERSION_6: C.SNP_REPORT_UNSUPPORTED_VERSION,
    Defect.SIGNATURE_ALGO_ZERO: C.SNP_REPORT_SIGNATURE_ALGO,
    Defect.MASK_CHIP_KEY: C.SNP_REPORT_MASK_CHIP_KEY,
    Defect.SIGNING_KEY_NONE: C.SNP_REPORT_SIGNING_KEY_INVALID,
    Defect.DEBUG_POLICY: C.SNP_POLICY_DEBUG,
    Defect.MIGRATE_MA: C.SNP_POLICY_MIGRATE_MA,
    Defect.POLICY_BIT17_CLEAR: C.SNP_POLICY_RESERVED_BITS,
    Defect.POLICY_RESERVED_BIT: C.SNP_POLICY_RESERVED_BITS,
    Defect.VMPL3: C.SNP_POLICY_VMPL,
    Defect.AUTHOR_KEY_DIGEST_WITHOUT_EN: C.SNP_REPORT_AUTHOR_KEY_INCONSISTENT,
    Defect.LEAF_NOT_P384: C.SNP_LEAF_KEY_INVALID,
    # A bad salt on the *supplied* ASK is harmless: supplied ASK/ARK are ignored in favour of the pinned ones.
    Defect.PSS_WRONG_SALT: None,
    Defect.LEAF_PSS_WRONG_SALT: C.SNP_CHAIN_PSS_PARAMETERS,
    Defect.CPUID_ZERO_V3: C.SNP_REPORT_CPUID_INVALID,
}

VARIANTS = {
    "genoa-v5-vcek": ReportOptions(product="genoa", version=5, signing_key="vcek"),
    "milan-v2-vcek": ReportOptions(product="milan", version=2, signing_key="vcek"),
    "milan-v3-vlek": ReportOptions(product="milan", version=3, signing_key="vlek"),
    "turin-v5-vcek": ReportOptions(product="turin", version=5, signing_key="vcek"),
}
CASES = [
    pytest.param(name, d, id=f"{name}-{d.value}")
    for name, opts in VARIANTS.items()
    for d in Defect
    if defect_applies(d, opts)
]


def _codes(ev: AmdEvidence, *, via_table: bool = False) -> list[Code]:
    result = evaluate_snp_report(
        ev.report,
        leaf_der=None if via_table else ev.leaf_der,
        cert_table=ev.cert_table if via_table else None,
        trust=ev.trust_store,
        now=ev.now,
        policy=SnpPolicy(allowed_csp_ids=frozenset({DEFAULT_CSP_ID})),  # the simulated VLEK's cloud provider
        crl_der=ev.crl_der,
    )
    assert result.simulated
    return [r.code for r in result.reasons]


def test_defect_table_covers_every_defect() -> None:
    assert set(EXPECTED) == set(Defect)
    assert sum(code is not None for code in EXPECTED.values()) >= 30


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("via_table", [False, True], ids=["leaf", "cert-table"])
def test_verify_snp_report_simulated_genuine_accepted(name: str, via_table: bool) -> None:
    ev = default_amd_pki().build(VARIANTS[name])
    assert ev.crl_der is not None  # the CRL path runs on every genuine build
    assert _codes(ev, via_table=via_table) == []


@pytest.mark.parametrize(("name", "defect"), CASES)
def test_verify_snp_report_single_defect_rejected_with_its_code(name: str, defect: Defect) -> None:
    ev = default_amd_pki().build(VARIANTS[name], defect=defect)
    want = EXPECTED[defect]
    assert _codes(ev) == ([] if want is None else [want])
