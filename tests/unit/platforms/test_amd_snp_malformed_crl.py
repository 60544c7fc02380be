"""A supplied AMD CRL whose issuer Name is malformed is ``snp.crl.malformed``, never a library exception.

Regression: cryptography loads a CRL without parsing its issuer; ``crl.issuer`` then raised a plain ValueError out
of ``verify_snp_report`` / ``evaluate_snp_report`` (found by mutation fuzzing of the simulated CRL).
"""

from __future__ import annotations

import pytest
from cryptography import x509

from verifier.appraisal.snp import SnpPolicy
from verifier.errors import Code, CollateralError
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.amd_snp import verify_snp_report
from verifier.platforms.evaluation import evaluate_snp_report
from verifier.simulation.amd_pki import AmdEvidence, ReportOptions, default_amd_pki


@pytest.fixture(scope="module")
def ev() -> AmdEvidence:
    return default_amd_pki().build(ReportOptions())


def _crl(ev: AmdEvidence) -> bytes:
    assert ev.crl_der is not None
    return ev.crl_der


# (offset inside the issuer Name, new byte). The issuer is
# 30 7b | 31 14 30 12 06 03 55 04 0b | 0c 0b "Engineering" | 31 0b 30 09 06 03 55 04 06 | 13 02 "US" | ...
ISSUER_DEFECTS = {
    "ou-value-integer-tag": (11, 0x02),
    "ou-value-invalid-utf8": (13, 0x80),
    "country-value-sequence-tag": (33, 0x30),
}


def _corrupt_issuer(crl_der: bytes, rel: int, value: int) -> bytes:
    name = x509.load_der_x509_crl(crl_der).issuer.public_bytes()
    data = bytearray(crl_der)
    data[crl_der.index(name) + rel] = value
    return bytes(data)


@pytest.mark.parametrize(("rel", "value"), list(ISSUER_DEFECTS.values()), ids=list(ISSUER_DEFECTS))
def test_verify_snp_report_crl_issuer_malformed_is_crl_malformed(ev: AmdEvidence, rel: int, value: int) -> None:
    crl = _corrupt_issuer(_crl(ev), rel, value)
    x509.load_der_x509_crl(crl)  # the defect survives loading: only the lazy issuer parse sees it
    with pytest.raises(CollateralError) as exc:
        verify_snp_report(parse_snp_report(ev.report), ev.leaf_der, ev.trust_store, ev.now, crl_der=crl)
    assert exc.value.code == Code.SNP_CRL_MALFORMED


@pytest.mark.parametrize(("rel", "value"), list(ISSUER_DEFECTS.values()), ids=list(ISSUER_DEFECTS))
def test_evaluate_snp_report_crl_issuer_malformed_rejected(ev: AmdEvidence, rel: int, value: int) -> None:
    result = evaluate_snp_report(
        ev.report,
        leaf_der=ev.leaf_der,
        cert_table=None,
        trust=ev.trust_store,
        now=ev.now,
        policy=SnpPolicy(require_crl=True),
        crl_der=_corrupt_issuer(_crl(ev), rel, value),
    )
    assert not result.accepted
    assert [r.code for r in result.reasons] == [Code.SNP_CRL_MALFORMED]


@pytest.mark.parametrize(
    "crl",
    [b"", b"\x30\x00", b"\x30\x03\x02\x01\x01"],
    ids=["empty", "empty-sequence", "not-a-crl"],
)
def test_verify_snp_report_crl_not_der_is_crl_malformed(ev: AmdEvidence, crl: bytes) -> None:
    with pytest.raises(CollateralError) as exc:
        verify_snp_report(parse_snp_report(ev.report), ev.leaf_der, ev.trust_store, ev.now, crl_der=crl)
    assert exc.value.code == Code.SNP_CRL_MALFORMED


def test_verify_snp_report_genuine_crl_still_checked(ev: AmdEvidence) -> None:
    v = verify_snp_report(parse_snp_report(ev.report), ev.leaf_der, ev.trust_store, ev.now, crl_der=_crl(ev))
    assert v.crl_checked
