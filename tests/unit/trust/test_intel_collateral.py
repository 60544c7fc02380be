"""Collateral input shapes: dcap-qvl JSON and raw Intel PCS responses give the same signed bytes."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.support.vectors import INTEL_CASES, INTEL_VECTORS
from verifier.collateral.files import load_intel_collateral
from verifier.errors import Code, CollateralError
from verifier.evidence.dcap import parse_quote
from verifier.platforms.intel_dcap import verify_quote
from verifier.trust.intel_collateral import (
    Collateral,
    collateral_from_pcs,
    crl_der,
    parse_collateral_json,
    signed_member,
)
from verifier.trust.intel_tcb_info import parse_qe_identity, parse_tcb_info
from verifier.trust.store import TrustStore

TEEPOT = INTEL_VECTORS / "matter-labs-teepot"
G4 = next(c for c in INTEL_CASES if c.id == "G4")  # the COS quote against the teepot 2025-05-27 PCS responses


def _teepot(name: str) -> dict[str, str]:
    doc: dict[str, str] = json.loads((TEEPOT / name).read_text())
    return doc


def _pcs_collateral_g4() -> tuple[dict[str, Any], Collateral]:
    tcb = _teepot("pcs-2025-05-27_tdx_tcb_info_00806F050000.json")
    qe = _teepot("pcs-2025-05-27_tdx_qe_identity.json")
    crl = _teepot("pcs-2025-05-27_pck_crl_platform.json")
    kwargs: dict[str, Any] = {
        "tcb_info_body": tcb["tcb_info_json"].encode(),
        "tcb_info_issuer_chain": urllib.parse.quote(tcb["issuer_chain"]),
        "qe_identity_body": qe["enclave_identity_json"].encode(),
        "qe_identity_issuer_chain": urllib.parse.quote(qe["issuer_chain"]),
        "pck_crl": crl["crl_data"],
        "pck_crl_issuer_chain": urllib.parse.quote(crl["issuer_chain"]),
        "root_ca_crl": (INTEL_VECTORS / "automata-dcap-attestation/collateral/root_ca_crl_2025-03-20.der").read_bytes(),
    }
    return kwargs, collateral_from_pcs(**kwargs)


def test_collateral_from_pcs_equals_qvl_json_bundle() -> None:
    _, pcs = _pcs_collateral_g4()
    bundle = parse_collateral_json(G4.collateral.read_bytes())
    assert pcs.digest == bundle.digest
    assert pcs.tcb_info_raw == bundle.tcb_info_raw
    assert pcs.pck_crl == bundle.pck_crl


def test_collateral_from_pcs_verifies_real_quote(trust: TrustStore) -> None:
    _, pcs = _pcs_collateral_g4()
    result = verify_quote(parse_quote(G4.quote.read_bytes()), pcs, trust, G4.now)
    assert result.tcb.status == "UpToDate"


def test_load_intel_collateral_pcs_directory(tmp_path: Path, trust: TrustStore) -> None:
    kwargs, _ = _pcs_collateral_g4()
    (tmp_path / "tcb_info.json").write_bytes(kwargs["tcb_info_body"])
    (tmp_path / "tcb_info.issuer_chain").write_text(str(kwargs["tcb_info_issuer_chain"]))
    (tmp_path / "qe_identity.json").write_bytes(kwargs["qe_identity_body"])
    (tmp_path / "qe_identity.issuer_chain").write_text(str(kwargs["qe_identity_issuer_chain"]))
    (tmp_path / "pck_crl.der").write_text(str(kwargs["pck_crl"]))  # PEM text is accepted too
    (tmp_path / "root_ca_crl.der").write_text(kwargs["root_ca_crl"].hex())  # PCCS serves hex text
    collateral = load_intel_collateral(tmp_path)
    result = verify_quote(parse_quote(G4.quote.read_bytes()), collateral, trust, G4.now)
    assert result.tcb.status == "UpToDate"


def test_signed_member_keeps_exact_bytes_with_whitespace() -> None:
    inner = b'{"id":"TDX","a":"}{\\"",  "b":[1,2]}'
    body = b'{ "tcbInfo" : ' + inner + b' , "signature":"' + b"ab" * 64 + b'"}'
    raw, sig = signed_member(body, "tcbInfo")
    assert raw == inner
    assert sig == bytes.fromhex("ab" * 64)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"tcbInfo":{}}',
        b'{"tcbInfo":{},"signature":"00"}',
        b'{"tcbInfo":{},"signature":"' + b"zz" * 64 + b'"}',
        b'{"tcbInfo":[],"signature":"' + b"00" * 64 + b'"}',
        b'{"tcbInfo":{},"signature":"' + b"00" * 64 + b'","extra":1}',
    ],
    ids=[
        "not-json",
        "array",
        "no-signature",
        "short-signature",
        "non-hex-signature",
        "member-not-object",
        "extra-member",
    ],
)
def test_signed_member_malformed_rejected(body: bytes) -> None:
    with pytest.raises(CollateralError) as exc:
        signed_member(body, "tcbInfo")
    assert exc.value.code == Code.INTEL_COLLATERAL_MALFORMED


def test_go_tdx_guest_raw_pcs_body_matches_assembled_bundle() -> None:
    raw, _ = signed_member(
        (INTEL_VECTORS / "google-go-tdx-guest/tdx_tcbinfo_50806f000000_2023-06-18.json").read_bytes(), "tcbInfo"
    )
    bundle = parse_collateral_json(
        (INTEL_VECTORS / "assembled/gotdx-2023-06_tdx_50806f000000.collateral.json").read_bytes()
    )
    assert raw == bundle.tcb_info_raw


def test_crl_der_accepts_der_pem_and_hex() -> None:
    der = (INTEL_VECTORS / "automata-dcap-attestation/collateral/root_ca_crl_2025-03-20.der").read_bytes()
    pem = _teepot("pcs-2025-05-27_pck_crl_platform.json")["crl_data"]
    assert crl_der(der, what="x") == der
    assert crl_der(der.hex(), what="x") == der
    assert crl_der(pem, what="x")[:1] == b"\x30"
    with pytest.raises(CollateralError):
        crl_der(b"neither", what="x")


def test_parse_tcb_info_version_2_sgx() -> None:
    body = INTEL_VECTORS / "automata-dcap-attestation/collateral/sgx_tcbinfo_v2-format_00606a000000_2025-06-04.json"
    raw, _ = signed_member(body.read_bytes(), "tcbInfo")
    info = parse_tcb_info(raw)
    assert (info.id, info.version) == ("SGX", 2)
    assert all(len(level.sgx_components) == 16 for level in info.levels)
    assert info.fmspc == bytes.fromhex("00606a000000")


def _tcb_info_variant(mutate: str) -> bytes:
    bundle = parse_collateral_json(G4.collateral.read_bytes())
    doc = json.loads(bundle.tcb_info_raw)
    level = doc["tcbLevels"][0]
    if mutate == "short-components":
        level["tcb"]["sgxtcbcomponents"] = level["tcb"]["sgxtcbcomponents"][:15]
    elif mutate == "unknown-status":
        level["tcbStatus"] = "MostlyFine"
    elif mutate == "bad-fmspc":
        doc["fmspc"] = "00"
    elif mutate == "version-4":
        doc["version"] = 4
    elif mutate == "no-levels":
        doc["tcbLevels"] = []
    elif mutate == "svn-out-of-range":
        level["tcb"]["sgxtcbcomponents"][0]["svn"] = 256
    elif mutate == "bool-svn":
        level["tcb"]["pcesvn"] = True
    elif mutate == "no-tdx-module":
        del doc["tdxModule"]
    elif mutate == "naive-date":
        doc["issueDate"] = "2025-05-27T19:25:02"
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        ("short-components", Code.INTEL_COLLATERAL_MALFORMED),
        ("unknown-status", Code.INTEL_COLLATERAL_TCB_STATUS_UNRECOGNIZED),
        ("bad-fmspc", Code.INTEL_COLLATERAL_MALFORMED),
        ("version-4", Code.INTEL_COLLATERAL_TCB_INFO_UNSUPPORTED),
        ("no-levels", Code.INTEL_COLLATERAL_MALFORMED),
        ("svn-out-of-range", Code.INTEL_COLLATERAL_MALFORMED),
        ("bool-svn", Code.INTEL_COLLATERAL_MALFORMED),
        ("no-tdx-module", Code.INTEL_COLLATERAL_MALFORMED),
        ("naive-date", Code.INTEL_COLLATERAL_MALFORMED),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_parse_tcb_info_defect_rejected(mutate: str, code: Code) -> None:
    with pytest.raises(CollateralError) as exc:
        parse_tcb_info(_tcb_info_variant(mutate))
    assert exc.value.code == code


def test_parse_qe_identity_levels_sorted_descending() -> None:
    bundle = parse_collateral_json((INTEL_VECTORS / "phala-dcap-qvl/sgx_v3_quote.collateral.json").read_bytes())
    ident = parse_qe_identity(bundle.qe_identity_raw)
    svns = [lv.isvsvn for lv in ident.levels]
    assert svns == sorted(svns, reverse=True)
    assert ident.id == "QE"
