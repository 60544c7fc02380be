"""verifier.evidence.nvidia over the real GPU/NVSwitch vectors of tests/vectors/nvidia (nvidia-gpu.md §1-§3).

Positive tests parse every real report and check each field against ``expected.json`` and against the byte range
the spec names. Negative tests mutate N1 (H100) in exactly one place, with helpers that find fields by the spec's
offsets (independently of the parser), and assert the stable code. The code rule: the *buffer* ending before a
field the lengths promise is ``nvidia.report.truncated``; lengths that disagree with each other (blocks vs L1,
TLVs vs L2) are ``nvidia.report.malformed`` / ``nvidia.report.opaque_malformed``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from pathlib import Path
from typing import Final

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from verifier import limits
from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.nvidia import (
    P384_ORDER,
    GpuReport,
    parse_device_chain,
    parse_gpu_report,
    parse_serialized_evidence,
)

NVIDIA: Final = Path(__file__).resolve().parents[2] / "vectors" / "nvidia"
EXPECTED: Final = {c["id"]: c for c in json.loads((NVIDIA / "expected.json").read_text())["cases"]}
N1: Final = (NVIDIA / "hopperAttestationReport.bin").read_bytes()
N1_HEX: Final = (NVIDIA / "hopperAttestationReport.txt").read_bytes()
N1_CHAIN: Final = (NVIDIA / "hopperCertChain.pem").read_bytes()
S1_JSON: Final = (NVIDIA / "switch_evidence_ls10.json").read_bytes()
REPORT_FILES: Final = {"N1": N1, "M2-gpu0": (NVIDIA / "devices" / "M2-ppcie-gpu0.bin").read_bytes()}
REPORT_FILES["M3-gpu0"] = (NVIDIA / "devices" / "M3-blackwell-mpt-gpu0.bin").read_bytes()

# ------------------------------------------------------------------------------------------------------------
# Spec-offset helpers (nvidia-gpu.md §2), independent of the parser under test.

REQ: Final = 37  # response starts here


def l1(buf: bytes) -> int:
    return int.from_bytes(buf[REQ + 5 : REQ + 8], "little")


def l2_off(buf: bytes) -> int:
    return REQ + 8 + l1(buf) + 32


def l2(buf: bytes) -> int:
    return int(struct.unpack_from("<H", buf, l2_off(buf))[0])


def sig_off(buf: bytes) -> int:
    return l2_off(buf) + 2 + l2(buf)


def tlvs(buf: bytes) -> dict[int, tuple[int, int]]:
    """Opaque type -> (offset of its TLV header in the report, value length)."""
    out: dict[int, tuple[int, int]] = {}
    off, end = l2_off(buf) + 2, sig_off(buf)
    while off < end:
        t, n = struct.unpack_from("<HH", buf, off)
        out.setdefault(t, (off, n))
        off += 4 + n
    return out


def put(buf: bytes, off: int, data: bytes) -> bytes:
    assert off + len(data) <= len(buf)
    return buf[:off] + data + buf[off + len(data) :]


def put_u16(buf: bytes, off: int, value: int) -> bytes:
    return put(buf, off, struct.pack("<H", value))


def put_u24(buf: bytes, off: int, value: int) -> bytes:
    return put(buf, off, value.to_bytes(3, "little"))


def block_off(i: int) -> int:
    """Offset of block ``i`` (0-based) in a report whose blocks are all 55 bytes (all real GPU reports)."""
    return REQ + 8 + 55 * i


# ------------------------------------------------------------------------------------------------------------
# Real vectors


def _check_against_expected(report: GpuReport, exp: dict[str, object], raw: bytes) -> None:
    o = report.response.opaque
    assert len(report.raw) == exp["report_len"]
    assert hashlib.sha256(report.raw).hexdigest() == exp["sha256_report"]
    assert report.request.nonce.hex() == report.nonce.hex() == exp["request_nonce"]
    assert report.response.number_of_blocks == len(report.response.blocks) == exp["n_blocks"]
    assert len(report.trailing) == exp["trailing_bytes"]
    if "signed_len" in exp:
        assert len(report.signed) == exp["signed_len"]
    if "responder_nonce" in exp:
        assert report.response.responder_nonce.hex() == exp["responder_nonce"]
    if "fwid_report" in exp:
        assert (o.fwid.hex() if o.fwid else None) == exp["fwid_report"]
    assert o.vbios_version == exp["vbios_version"]
    for attr in ("driver_version", "project", "project_sku", "chip_sku", "chip_info", "feature_flag"):
        if attr in exp:
            assert getattr(o, attr) == exp[attr], attr
    for attr in ("nvdec0_status", "protected_pcie_status"):
        if attr in exp:
            value = getattr(o, attr)
            assert (None if value is None else f"0x{value:02x}") == exp[attr], attr
    # The signature sits where the lengths say; signed bytes are everything before it (§2).
    assert report.signed == raw[: sig_off(raw)]
    assert report.response.signature == raw[sig_off(raw) : sig_off(raw) + 96]
    assert report.signature_r.to_bytes(48, "big") + report.signature_s.to_bytes(48, "big") == report.response.signature
    assert report.signed + report.response.signature + report.trailing == report.raw


@pytest.mark.parametrize("case_id", sorted(REPORT_FILES))
def test_parse_gpu_report_real_vectors_match_expected(case_id: str) -> None:
    raw = REPORT_FILES[case_id]
    report = parse_gpu_report(raw)
    _check_against_expected(report, EXPECTED[case_id], raw)
    r = report.response
    assert (report.request.spdm_version, report.request.request_code) == (0x11, 0xE0)
    assert (report.request.param1, report.request.param2, report.request.slot_id) == (1, 0xFF, 0)
    assert (r.spdm_version, r.response_code, r.measurement_record_length) == (0x11, 0x60, 64 * 55)
    assert [b.index for b in r.blocks] == list(range(1, 65))
    assert all(b.is_digest and b.value_size == 48 and len(b.value) == 48 for b in r.blocks)
    assert report.measurements[1] == raw[block_off(0) + 7 : block_off(0) + 55]
    assert r.opaque.msrscnt is not None
    assert len(r.opaque.msrscnt) == 64
    assert r.opaque_length == l2(raw) == sum(4 + len(f.value) for f in r.opaque.fields)


def test_parse_gpu_report_n1_opaque_fields() -> None:
    o = parse_gpu_report(N1).response.opaque
    assert [f.type for f in o.fields] == [6, 14, 15, 16, 17, 18, 19, 3, 4, 12, 13, 11, 20, 21]
    assert o.vbios_version_raw == bytes.fromhex("009f009601000000")
    assert (o.gpu_info, o.board_id, o.cprinfo) == (bytes.fromhex("8001000000000000"), 0x3B1, bytes.fromhex("00c00100"))
    assert (o.chip_sku_mod, o.project_sku_mod, o.switch_pdis, o.opaque_data_version) == ("0", b"\0\0", None, None)
    assert o.get(3) == b"550.90.07\x00"
    assert o.get(99) is None


def test_parse_gpu_report_h200_switch_pdis() -> None:
    o = parse_gpu_report(REPORT_FILES["M2-gpu0"]).response.opaque
    assert o.switch_pdis is not None
    assert len(o.switch_pdis) == 18
    assert all(len(p) == 8 for p in o.switch_pdis)


def test_parse_gpu_report_b200_blackwell_fields() -> None:
    o = parse_gpu_report(REPORT_FILES["M3-gpu0"]).response.opaque
    assert (o.opaque_data_version, o.sys_enable_status, o.gpu_info) == (1, 0x0707, bytes.fromhex("a001000000000000"))


def test_parse_gpu_report_hex_text_forms() -> None:
    assert parse_gpu_report(N1_HEX).raw == N1
    assert parse_gpu_report(b"  0x" + N1_HEX.upper() + b"\r\n").raw == N1


def test_parse_gpu_report_zero_padding_is_kept_for_policy() -> None:
    # Pitfall P3: real reports may carry zero bytes after the signature; they are exposed, not signed.
    report = parse_gpu_report(N1 + b"\x00")
    assert report.trailing == b"\x00"
    assert report.signed == N1[: sig_off(N1)]
    assert report.response.signature == N1[-96:]


def test_parse_serialized_evidence_s1_switch() -> None:
    (item,) = parse_serialized_evidence(S1_JSON)
    exp = EXPECTED["S1"]
    raw = base64.b64decode(json.loads(S1_JSON)[0]["evidence"])
    assert (item.arch, item.evidence, item.report.raw) == ("LS10", raw, raw)
    assert item.nonce is not None
    assert item.nonce.hex() == exp["request_nonce"] == item.report.nonce.hex()
    _check_against_expected(item.report, exp, raw)
    o = item.report.response.opaque
    assert (o.driver_version, o.project, o.fwid, o.position_id, o.lock_switch_status) == (None, None, None, 2, 1)
    assert o.switch_pdis is not None
    assert len(o.switch_pdis) == 1
    assert o.switch_gpu_pdis is not None
    assert len(o.switch_gpu_pdis) == 8
    assert o.switch_port_gpu_slots is not None
    assert len(o.switch_port_gpu_slots) == 64
    assert o.floorswept_ports == 0xEC
    assert len(item.chain) == exp["n_certs"]
    assert item.chain == parse_device_chain(item.certificate)
    leaf = x509.load_der_x509_certificate(item.chain[0])
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "LS_10 A01 FSP FMC LF"


def test_parse_serialized_evidence_nras_form_without_nonce_and_ppcie_members() -> None:
    item = json.loads(S1_JSON)[0]
    del item["nonce"]
    item.update(driver_version="550.90.07", vbios_version="96.10.55.00.01", version="1.0")
    (parsed,) = parse_serialized_evidence(json.dumps([item]).encode())
    assert (parsed.nonce, parsed.driver_version, parsed.vbios_version, parsed.version) == (
        None,
        "550.90.07",
        "96.10.55.00.01",
        "1.0",
    )


def test_parse_device_chain_n1() -> None:
    chain = parse_device_chain(N1_CHAIN)
    assert len(chain) == 5
    certs = [x509.load_der_x509_certificate(d) for d in chain]
    names = [c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value for c in certs]
    assert names == [
        "GH100 A01 GSP FMC LF",
        "GH100 A01 GSP BROM",
        "NVIDIA GH100 Provisioner ICA 1",
        "NVIDIA GH100 Identity",
        "NVIDIA Device Identity CA",
    ]
    # NVML's buffer: NUL-terminated, maybe NUL-padded, CRLF line ends.
    assert parse_device_chain(N1_CHAIN.replace(b"\n", b"\r\n") + b"\n\x00\x00\x00") == chain


# ------------------------------------------------------------------------------------------------------------
# Report defects: one per case

_T: Final = tlvs(N1)
_SIG: Final = sig_off(N1)
_L2OFF: Final = l2_off(N1)

REPORT_DEFECTS: Final = [
    # Truncated at each boundary (and inside each field).
    ("empty", b"", Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-request-nonce", N1[:20], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-after-request", N1[:REQ], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-response-header", N1[: REQ + 5], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-after-response-header", N1[: REQ + 8], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-record", N1[: block_off(10) + 3], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-after-record", N1[: REQ + 8 + l1(N1)], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-responder-nonce", N1[: REQ + 8 + l1(N1) + 16], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-opaque-length", N1[: _L2OFF + 1], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-opaque", N1[: _L2OFF + 2 + 100], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-before-signature", N1[:_SIG], Code.NVIDIA_REPORT_TRUNCATED),
    ("cut-in-signature", N1[:-1], Code.NVIDIA_REPORT_TRUNCATED),
    # Size and encoding.
    ("too-large", N1 + bytes(limits.MAX_NVIDIA_REPORT_BYTES), Code.NVIDIA_REPORT_TOO_LARGE),
    ("hex-odd-digits", N1_HEX[:-1], Code.NVIDIA_REPORT_ENCODING),
    ("hex-too-long", N1_HEX * 3, Code.NVIDIA_REPORT_TOO_LARGE),
    # SPDM version, codes and parameters.
    ("request-version-1.0", put(N1, 0, b"\x10"), Code.NVIDIA_REPORT_UNSUPPORTED),
    ("request-version-1.2", put(N1, 0, b"\x12"), Code.NVIDIA_REPORT_UNSUPPORTED),
    ("request-code-not-get-measurements", put(N1, 1, b"\x81"), Code.NVIDIA_REPORT_UNSUPPORTED),
    ("request-no-signature", put(N1, 2, b"\x00"), Code.NVIDIA_REPORT_UNSUPPORTED),
    ("request-one-measurement", put(N1, 3, b"\x01"), Code.NVIDIA_REPORT_UNSUPPORTED),
    ("response-version-1.2", put(N1, REQ, b"\x12"), Code.NVIDIA_REPORT_UNSUPPORTED),
    ("response-code-error", put(N1, REQ + 1, b"\x7f"), Code.NVIDIA_REPORT_UNSUPPORTED),
    # Reserved fields.
    ("request-slot-reserved-bits", put(N1, 36, b"\x10"), Code.NVIDIA_REPORT_MALFORMED),
    ("response-param1-reserved", put(N1, REQ + 2, b"\x01"), Code.NVIDIA_REPORT_MALFORMED),
    ("response-param2-reserved-bits", put(N1, REQ + 3, b"\x20"), Code.NVIDIA_REPORT_MALFORMED),
    # Measurement record: block count and lengths disagreeing with L1.
    ("zero-blocks", put(N1, REQ + 4, b"\x00"), Code.NVIDIA_REPORT_MALFORMED),
    ("fewer-blocks-than-record", put(N1, REQ + 4, b"\x3f"), Code.NVIDIA_REPORT_MALFORMED),
    ("more-blocks-than-record", put(N1, REQ + 4, b"\x41"), Code.NVIDIA_REPORT_MALFORMED),
    ("record-length-one-short", put_u24(N1, REQ + 5, l1(N1) - 1), Code.NVIDIA_REPORT_MALFORMED),
    ("record-length-one-long", put_u24(N1, REQ + 5, l1(N1) + 1), Code.NVIDIA_REPORT_MALFORMED),
    ("record-length-beyond-buffer", put_u24(N1, REQ + 5, 0xFFFFFF), Code.NVIDIA_REPORT_TRUNCATED),
    ("block-measurement-size-52", put_u16(N1, block_off(0) + 2, 52), Code.NVIDIA_REPORT_MALFORMED),
    ("block-measurement-size-overruns", put_u16(N1, block_off(63) + 2, 0x1000), Code.NVIDIA_REPORT_MALFORMED),
    ("block-value-size-32", put_u16(N1, block_off(5) + 5, 32), Code.NVIDIA_REPORT_MALFORMED),
    ("block-spec-not-dmtf", put(N1, block_off(0) + 1, b"\x02"), Code.NVIDIA_REPORT_MALFORMED),
    ("block-index-zero", put(N1, block_off(0), b"\x00"), Code.NVIDIA_REPORT_MALFORMED),
    ("block-index-duplicate", put(N1, block_off(1), b"\x01"), Code.NVIDIA_REPORT_MALFORMED),
    # Opaque data.
    ("opaque-length-one-long", put_u16(N1, _L2OFF, l2(N1) + 1), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-length-three-short", put_u16(N1, _L2OFF, l2(N1) - 3), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-length-beyond-buffer", put_u16(N1, _L2OFF, 0xFFFF), Code.NVIDIA_REPORT_TRUNCATED),
    ("opaque-tlv-overruns", put_u16(N1, _T[6][0] + 2, 0x1000), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-known-type-twice", put_u16(N1, _T[21][0], 11), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-fwid-wrong-size", put_u16(N1, _T[14][0], 20), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-driver-not-ascii", put(N1, _T[3][0] + 4, b"\xff"), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-text-after-nul", put(N1, _T[15][0] + 4 + 5, b"x"), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    ("opaque-switch-pdis-not-8-byte-entries", put_u16(N1, _T[15][0], 22), Code.NVIDIA_REPORT_OPAQUE_MALFORMED),
    # Signature and what follows it.
    ("signature-r-zero", put(N1, _SIG, bytes(48)), Code.NVIDIA_REPORT_SIGNATURE_MALFORMED),
    ("signature-s-order", put(N1, _SIG + 48, P384_ORDER.to_bytes(48, "big")), Code.NVIDIA_REPORT_SIGNATURE_MALFORMED),
    ("trailing-nonzero-byte", N1 + b"\x01", Code.NVIDIA_REPORT_TRAILING_DATA),
    ("trailing-garbage-after-zeros", N1 + b"\x00\x00junk", Code.NVIDIA_REPORT_TRAILING_DATA),
]


@pytest.mark.parametrize(
    ("data", "code"), [(d, c) for _, d, c in REPORT_DEFECTS], ids=[i for i, _, _ in REPORT_DEFECTS]
)
def test_parse_gpu_report_defect_rejected(data: bytes, code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as exc:
        parse_gpu_report(data)
    assert exc.value.code is code


def test_parse_gpu_report_defects_change_one_thing() -> None:
    # The helpers above are right about the layout: N1 itself parses, and each opaque TLV the defects use exists.
    parse_gpu_report(N1)
    assert {3, 6, 11, 12, 14, 15, 20, 21} <= set(_T)
    assert 22 not in _T
    assert N1[_T[15][0] + 4 : _T[15][0] + 4 + 9] == b"882" + bytes(6)  # CHIP_SKU, NUL-padded


# ------------------------------------------------------------------------------------------------------------
# Chain defects

_PEMS: Final = [b"-----BEGIN CERTIFICATE-----" + p for p in N1_CHAIN.split(b"-----BEGIN CERTIFICATE-----")[1:]]
_LEAF_PEM: Final = _PEMS[0].rstrip() + b"\n"
_NOT_DER: Final = b"-----BEGIN CERTIFICATE-----\n" + base64.b64encode(b"hello") + b"\n-----END CERTIFICATE-----\n"

CHAIN_DEFECTS: Final = [
    ("empty", b""),
    ("only-whitespace", b"\n\x00"),
    ("six-certificates", N1_CHAIN + b"\n" + _LEAF_PEM),
    ("too-large", N1_CHAIN + b"\n" * limits.MAX_NVIDIA_CHAIN_PEM_BYTES),
    ("text-between-blocks", _PEMS[0] + b"hello\n" + b"".join(_PEMS[1:])),
    ("text-after-chain", N1_CHAIN + b"\n# comment"),
    ("other-pem-label", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" + N1_CHAIN),
    ("unterminated-block", N1_CHAIN[:-30]),
    ("bad-base64", N1_CHAIN.replace(b"MIID", b"MI!D", 1)),
    ("not-der", _NOT_DER),
    ("der-length-disagrees", _LEAF_PEM.replace(b"MIID", b"MIIE", 1)),
    ("oversized-certificate", b"-----BEGIN CERTIFICATE-----\n" + b"A" * 8000 + b"\n-----END CERTIFICATE-----"),
]


@pytest.mark.parametrize("pem", [p for _, p in CHAIN_DEFECTS], ids=[i for i, _ in CHAIN_DEFECTS])
def test_parse_device_chain_defect_rejected(pem: bytes) -> None:
    with pytest.raises(EvidenceMalformed) as exc:
        parse_device_chain(pem)
    assert exc.value.code is Code.NVIDIA_CHAIN_MALFORMED


# ------------------------------------------------------------------------------------------------------------
# Serialized-evidence defects

_ITEM: Final = json.loads(S1_JSON)[0]


def _with(**changes: object) -> bytes:
    item = {**_ITEM, **changes}
    return json.dumps([{k: v for k, v in item.items() if v is not None}]).encode()


EVIDENCE_DEFECTS: Final = [
    ("not-json", b"[{", Code.NVIDIA_EVIDENCE_MALFORMED),
    ("not-utf8", b"\xff\xfe[]", Code.NVIDIA_EVIDENCE_MALFORMED),
    ("object-not-list", json.dumps(_ITEM).encode(), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("empty-list", b"[]", Code.NVIDIA_EVIDENCE_MALFORMED),
    ("item-not-object", b'["x"]', Code.NVIDIA_EVIDENCE_MALFORMED),
    (
        "too-many-items",
        json.dumps([_ITEM] * (limits.MAX_NVIDIA_EVIDENCE_ITEMS + 1)).encode(),
        Code.NVIDIA_EVIDENCE_MALFORMED,
    ),
    ("too-large", b" " * (limits.MAX_NVIDIA_EVIDENCE_JSON_BYTES + 1) + S1_JSON, Code.NVIDIA_EVIDENCE_MALFORMED),
    ("missing-evidence", _with(evidence=None), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("missing-certificate", _with(certificate=None), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("unknown-member", _with(extra="x"), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("member-not-string", _with(nonce=12), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("unknown-arch", _with(arch="AMPERE"), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("nonce-short", _with(nonce="00" * 31), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("nonce-not-hex", _with(nonce="zz" * 32), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("evidence-bad-base64", _with(evidence="EeAB/5Md!"), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("evidence-non-ascii", _with(evidence="EeAB/5Md\u00e9"), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("evidence-too-large", _with(evidence="A" * 20000), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("certificate-bad-base64", _with(certificate="LS0tLS1C*"), Code.NVIDIA_EVIDENCE_MALFORMED),
    ("evidence-not-a-report", _with(evidence=base64.b64encode(b"\x11\xe0").decode()), Code.NVIDIA_REPORT_TRUNCATED),
    ("certificate-not-pem", _with(certificate=base64.b64encode(b"hello").decode()), Code.NVIDIA_CHAIN_MALFORMED),
]


@pytest.mark.parametrize(
    ("data", "code"), [(d, c) for _, d, c in EVIDENCE_DEFECTS], ids=[i for i, _, _ in EVIDENCE_DEFECTS]
)
def test_parse_serialized_evidence_defect_rejected(data: bytes, code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as exc:
        parse_serialized_evidence(data)
    assert exc.value.code is code
