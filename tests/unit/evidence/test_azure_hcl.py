"""The Azure HCL report, TD report and runtime claims parsers (azure-cvm.md §3, §5) on the real vectors of
tests/vectors/azure-cvm, and one defect per rejected case."""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable

import pytest

from tests.support.vectors import AZURE_CASES, AzureCase
from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.azure_hcl import parse_hcl_report, parse_runtime_claims, parse_td_report

HCL_CASES = [c for c in AZURE_CASES.values() if c.read("hcl_report.bin") is not None]
S1 = AZURE_CASES["S1"].read("hcl_report.bin") or b""
T5 = AZURE_CASES["T5"].read("hcl_report.bin") or b""


@pytest.mark.parametrize("case", HCL_CASES, ids=lambda c: c.id)
def test_parse_hcl_report_real_vectors_match_expected(case: AzureCase) -> None:
    raw = case.read("hcl_report.bin") or b""
    want = case.raw["hcl"]
    report = parse_hcl_report(raw, "tdx" if case.id.startswith("T") else "snp")
    assert report.version == want["header_version"]
    assert report.report_size == want["report_size"]
    assert len(report.runtime_claims) == want["var_data_size"]
    assert hashlib.sha256(report.runtime_claims).hexdigest() == want["var_data_sha256"]
    assert report.runtime_claims == case.read("runtime_claims.json")
    slot = case.read("snp_report.bin") or case.read("td_report.bin")
    assert report.hardware_report == slot
    claims = parse_runtime_claims(report.runtime_claims)
    assert dict(claims.vm_configuration) == want["vm_configuration"]
    assert (claims.user_data.hex().upper() if claims.user_data else None) == want.get("user_data")
    if report.kind == "tdx":
        td = parse_td_report(report.hardware_report)
        assert td.mrtd.hex() == case.raw["tdx"]["mrtd"]


def _set_u32(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("<I", value) + data[offset + 4 :]


def _flip(offset: int) -> Callable[[bytes], bytes]:
    return lambda d: d[:offset] + bytes([d[offset] ^ 1]) + d[offset + 1 :]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d[:0x4D0], Code.AZURE_HCL_TRUNCATED),
        (lambda d: d[: 0x4D4 + 100], Code.AZURE_HCL_TRUNCATED),
        (lambda d: d + bytes(8192), Code.AZURE_HCL_TOO_LARGE),
        (lambda d: b"HCLB" + d[4:], Code.AZURE_HCL_SIGNATURE_INVALID),
        (lambda d: _set_u32(d, 0x04, 3), Code.AZURE_HCL_UNSUPPORTED_VERSION),
        (lambda d: _set_u32(d, 0x0C, 1), Code.AZURE_HCL_REQUEST_TYPE_INVALID),
        (lambda d: _set_u32(d, 0x10, 1), Code.AZURE_HCL_RESERVED_NONZERO),
        (_flip(0x1F), Code.AZURE_HCL_RESERVED_NONZERO),
        (lambda d: _set_u32(d, 0x4C4, 2), Code.AZURE_HCL_UNSUPPORTED_VERSION),
        (lambda d: _set_u32(d, 0x4C8, 4), Code.AZURE_HCL_REPORT_TYPE_MISMATCH),
        (lambda d: _set_u32(d, 0x4C8, 3), Code.AZURE_HCL_REPORT_TYPE_MISMATCH),
        (lambda d: _set_u32(d, 0x4CC, 2), Code.AZURE_HCL_UNSUPPORTED_HASH_TYPE),
        (lambda d: _set_u32(d, 0x4CC, 0), Code.AZURE_HCL_UNSUPPORTED_HASH_TYPE),
        (lambda d: _set_u32(d, 0x08, 2600), Code.AZURE_HCL_HEADER_INCONSISTENT),
        (lambda d: _set_u32(d, 0x4C0, 1184), Code.AZURE_HCL_HEADER_INCONSISTENT),
        (lambda d: _set_u32(d, 0x4D0, 5000), Code.AZURE_HCL_TOO_LARGE),
        (lambda d: _set_u32(d, 0x4D0, 1109), Code.AZURE_HCL_HEADER_INCONSISTENT),
        (lambda d: d[:-1] + b"\x01", Code.AZURE_HCL_PADDING_NONZERO),
    ],
    ids=[
        "cut-before-claims",
        "cut-inside-claims",
        "too-large",
        "magic",
        "header-version",
        "request-type",
        "status",
        "reserved",
        "igvm-version",
        "report-type-tdx",
        "report-type-tvm",
        "hash-type-sha384",
        "hash-type-invalid",
        "report-size",
        "data-size",
        "var-size-too-large",
        "var-size-shorter",
        "padding",
    ],
)
def test_parse_hcl_report_snp_defect_rejected(mutate: Callable[[bytes], bytes], code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_hcl_report(mutate(S1), "snp")
    assert e.value.code is code


def test_parse_hcl_report_tdx_slot_tail_nonzero_rejected() -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_hcl_report(_flip(0x20 + 1024)(T5), "tdx")
    assert e.value.code is Code.AZURE_HCL_PADDING_NONZERO


def test_parse_hcl_report_tdx_for_snp_evidence_rejected() -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_hcl_report(T5, "snp")
    assert e.value.code is Code.AZURE_HCL_REPORT_TYPE_MISMATCH


@pytest.mark.parametrize(
    ("offset", "value"),
    [(0x000, 0x82), (0x001, 0x01), (0x002, 0x02), (0x005, 0x01), (0x0C0, 0x01), (0x1F0, 0x01), (0x3C0, 0x01)],
    ids=["type", "subtype", "version", "reserved-004", "reserved-0c0", "reserved-1ef", "reserved-3c0"],
)
def test_parse_td_report_defect_rejected(offset: int, value: int) -> None:
    td = parse_hcl_report(T5, "tdx").hardware_report
    with pytest.raises(EvidenceMalformed) as e:
        parse_td_report(td[:offset] + bytes([value]) + td[offset + 1 :])
    assert e.value.code is Code.AZURE_TD_REPORT_MALFORMED


def test_parse_td_report_wrong_size_rejected() -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_td_report(bytes(1023))
    assert e.value.code is Code.AZURE_TD_REPORT_MALFORMED


CLAIMS = json.loads(AZURE_CASES["S1"].read("runtime_claims.json") or b"{}")


def _claims(edit: Callable[[dict[str, object]], object]) -> bytes:
    doc = json.loads(json.dumps(CLAIMS))
    edit(doc)
    return json.dumps(doc).encode()


def _ak(doc: dict[str, object]) -> dict[str, object]:
    keys = doc["keys"]
    assert isinstance(keys, list)
    ak = keys[0]
    assert isinstance(ak, dict)
    return ak


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"\xff{}", Code.AZURE_CLAIMS_MALFORMED),
        (b"[]", Code.AZURE_CLAIMS_MALFORMED),
        (b'{"keys": [], "keys": []}', Code.AZURE_CLAIMS_MALFORMED),
        (b'{"keys": NaN}', Code.AZURE_CLAIMS_MALFORMED),
        (b"[" * 100000, Code.AZURE_CLAIMS_MALFORMED),
        (_claims(lambda d: d.update(keys="x")), Code.AZURE_CLAIMS_MALFORMED),
        (_claims(lambda d: _ak(d).update(kid=7)), Code.AZURE_CLAIMS_MALFORMED),
        (_claims(lambda d: _ak(d).update(kid="HCLEkPub")), Code.AZURE_CLAIMS_AK_MISSING),
        (_claims(lambda d: d["keys"].append(_ak(d))), Code.AZURE_CLAIMS_AK_MISSING),  # type: ignore[attr-defined]
        (_claims(lambda d: _ak(d).update(kty="EC")), Code.AZURE_CLAIMS_AK_INVALID),
        (_claims(lambda d: _ak(d).update(e="AQAC")), Code.AZURE_CLAIMS_AK_INVALID),
        (_claims(lambda d: _ak(d).update(n="AQAB")), Code.AZURE_CLAIMS_AK_INVALID),
        (_claims(lambda d: _ak(d).update(n=str(_ak(d)["n"]) + "=")), Code.AZURE_CLAIMS_AK_INVALID),
        (_claims(lambda d: d.pop("vm-configuration")), Code.AZURE_CLAIMS_MALFORMED),
        (_claims(lambda d: d["vm-configuration"].update({"secure-boot": "true"})), Code.AZURE_CLAIMS_MALFORMED),  # type: ignore[attr-defined]
        (_claims(lambda d: d.update({"user-data": "00"})), Code.AZURE_CLAIMS_MALFORMED),
    ],
    ids=[
        "not-utf8",
        "not-object",
        "duplicate-key",
        "nan",
        "deep",
        "keys-not-list",
        "kid-not-string",
        "no-ak",
        "two-aks",
        "ak-not-rsa",
        "ak-exponent",
        "ak-short-modulus",
        "ak-padded-b64",
        "no-vm-configuration",
        "secure-boot-not-bool",
        "user-data-short",
    ],
)
def test_parse_runtime_claims_defect_rejected(raw: bytes, code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_runtime_claims(raw)
    assert e.value.code is code


def test_parse_runtime_claims_old_format_has_no_user_data() -> None:
    claims = parse_runtime_claims(AZURE_CASES["S3"].read("runtime_claims.json") or b"")
    assert claims.user_data is None
    assert claims.key_ids == ("HCLAkPub",)
