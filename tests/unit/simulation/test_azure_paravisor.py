"""The simulated paravisor's HCL report: the AK and user-data it is given, bound by the simulated hardware report."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from verifier.evidence.azure_hcl import parse_hcl_report, parse_runtime_claims
from verifier.evidence.snp import parse_snp_report
from verifier.simulation.azure_cvm_builder import paravisor_hcl_report
from verifier.simulation.azure_paravisor import simulated_endorsements

AK = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
USER_DATA = hashlib.sha512(b"binding").digest()


def test_paravisor_hcl_report_snp_binds_ak_and_user_data() -> None:
    report = paravisor_hcl_report(AK, USER_DATA, kind="snp")
    assert len(report.hcl_report) == 2048
    hcl = parse_hcl_report(report.hcl_report, "snp")
    claims = parse_runtime_claims(hcl.runtime_claims)
    assert claims.ak.public_numbers() == AK.public_numbers()
    assert claims.user_data == USER_DATA
    snp = parse_snp_report(hcl.hardware_report)
    assert snp.report_data == hashlib.sha256(hcl.runtime_claims).digest() + bytes(32)
    assert report.vcek_der == simulated_endorsements("snp", report.hcl_report).vcek


def test_paravisor_hcl_report_tdx_quote_matches_td_report() -> None:
    report = paravisor_hcl_report(AK, USER_DATA, kind="tdx")
    assert report.td_quote == simulated_endorsements("tdx", report.hcl_report).td_quote


def test_paravisor_hcl_report_user_data_not_64_bytes_refused() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        paravisor_hcl_report(AK, bytes(32))


def test_paravisor_hcl_report_nv_too_small_refused() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        paravisor_hcl_report(AK, USER_DATA, nv_size=1536)
