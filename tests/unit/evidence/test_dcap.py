"""verifier.evidence.dcap over the real Intel quotes of tests/vectors/intel (intel-dcap.md §1).

Positive tests read every real quote and check each claim against the byte range the spec names. Negative
tests mutate a real quote in exactly one place (small helpers patch little-endian fields at spec offsets)
and assert the stable code and the exception class. Which code a cut gets follows the module rule: the
*buffer* ending early is ``intel.quote.truncated``; a *nested length* that overruns its container (or leaves
bytes over) is ``intel.quote.length_invalid``.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from verifier import limits
from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.dcap import Quote, parse_quote
from verifier.evidence.sgx import SgxReportBody
from verifier.evidence.tdx import TdReportBody

INTEL: Final = Path(__file__).resolve().parents[2] / "vectors" / "intel"
EXPECTED: Final = json.loads((INTEL / "expected.json").read_text())
QUOTE_FILES: Final = sorted(p for p in INTEL.rglob("*") if p.suffix in (".bin", ".dat", ".hex") and p.is_file())

SGX_V3: Final = (INTEL / "phala-dcap-qvl" / "sgx_v3_quote.bin").read_bytes()
TDX_V4: Final = (INTEL / "phala-dcap-qvl" / "tdx_v4_quote.bin").read_bytes()
TDX_V5: Final = (INTEL / "phala-dcap-qvl" / "tdx_v5_body3_quote_outdated.bin").read_bytes()
TDX_V5_BODY4: Final = (INTEL / "phala-dcap-qvl" / "tdx_v5_body4_td15ex_quote.bin").read_bytes()

# ------------------------------------------------------------------------------------------------------------
# Spec-offset helpers (intel-dcap.md §1.1-§1.3), independent of the parser under test.


def u16(buf: bytes, off: int) -> int:
    return int(struct.unpack_from("<H", buf, off)[0])


def u32(buf: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", buf, off)[0])


def put(buf: bytes, off: int, data: bytes) -> bytes:
    assert off + len(data) <= len(buf)
    return buf[:off] + data + buf[off + len(data) :]


def put_u16(buf: bytes, off: int, value: int) -> bytes:
    return put(buf, off, struct.pack("<H", value))


def put_u32(buf: bytes, off: int, value: int) -> bytes:
    return put(buf, off, struct.pack("<I", value))


def xor(buf: bytes, off: int, mask: int = 0x01) -> bytes:
    return put(buf, off, bytes([buf[off] ^ mask]))


@dataclass(frozen=True, slots=True)
class Layout:
    """Absolute offsets of every section of a quote, read from its own length fields at spec offsets."""

    version: int
    body_off: int
    body_end: int  # end of the signed region; the u32 signature-data length sits here
    sd: int  # first byte of the signature data
    sd_end: int
    outer_hdr: int | None  # v4/v5: QE-report certification data header (type u16, size u32)
    qe_report: int
    qe_sig: int
    auth_size: int
    auth: int
    cert_hdr: int  # PCK certification data header (type u16, size u32): v3 outer, v4/v5 inner
    cert_data: int


def layout(buf: bytes) -> Layout:
    version = u16(buf, 0)
    if version == 5:
        body_off, body_end = 54, 54 + u32(buf, 50)
    else:
        body_off, body_end = 48, 48 + (384 if version == 3 else 584)
    sd = body_end + 4
    outer = None if version == 3 else sd + 128
    qe_report = sd + 128 if version == 3 else sd + 134
    qe_sig = qe_report + 384
    auth_size = qe_sig + 64
    auth = auth_size + 2
    cert_hdr = auth + u16(buf, auth_size)
    return Layout(
        version,
        body_off,
        body_end,
        sd,
        sd + u32(buf, body_end),
        outer,
        qe_report,
        qe_sig,
        auth_size,
        auth,
        cert_hdr,
        cert_hdr + 6,
    )


def cut_signature_data(buf: bytes, keep: int, *, fix_outer: bool = False) -> bytes:
    """Keep ``keep`` bytes of signature data and make the u32 signature-data length say so (drops trailing
    bytes). With ``fix_outer`` the v4/v5 outer certification size is shrunk to fit as well."""
    lay = layout(buf)
    out = put_u32(buf[: lay.sd + keep], lay.body_end, keep)
    if fix_outer:
        assert lay.outer_hdr is not None
        out = put_u32(out, lay.outer_hdr + 2, keep - (lay.outer_hdr + 6 - lay.sd))
    return out


def pad_to(buf: bytes, size: int) -> bytes:
    return buf + bytes(size - len(buf))


def _id(path: Path) -> str:
    return path.relative_to(INTEL).as_posix()


def _decode_file(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".hex":
        return raw
    text = raw.decode().strip()
    return bytes.fromhex(text.removeprefix("0x"))


# ------------------------------------------------------------------------------------------------------------
# Every real quote parses


def test_quote_files_cover_every_real_quote() -> None:
    # A guard against the glob silently finding nothing: 20 distinct quote files, 4 of them hex.
    assert len(QUOTE_FILES) == 20
    assert sum(p.suffix == ".hex" for p in QUOTE_FILES) == 4
    listed = {c["quote"] for c in EXPECTED["cases"]}
    assert listed <= {_id(p) for p in QUOTE_FILES}


@pytest.mark.parametrize("path", QUOTE_FILES, ids=_id)
def test_parse_quote_real_vector_parses(path: Path) -> None:
    buf = _decode_file(path)
    quote = parse_quote(path.read_bytes())
    lay = layout(buf)
    assert quote.header.version == lay.version
    assert quote.signed == buf[: lay.body_end]
    assert quote.trailing_bytes == len(buf) - lay.sd_end
    assert quote.is_tdx == (quote.header.tee_type == 0x81)
    assert isinstance(quote.body, TdReportBody if quote.is_tdx else SgxReportBody)
    cert = quote.signature_data.certification
    assert cert.pck_cert_type == 5
    assert cert.pck_chain_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert cert.pck_chain_pem.count(b"-----BEGIN CERTIFICATE-----") == 3


@pytest.mark.parametrize("case", EXPECTED["cases"], ids=[c["id"] for c in EXPECTED["cases"]])
def test_parse_quote_real_vector_version_and_body_type_match_expected(case: dict[str, object]) -> None:
    quote = parse_quote((INTEL / str(case["quote"])).read_bytes())
    assert quote.header.version == case["quote_version"]
    assert quote.body_type == case["body_type"]


@pytest.mark.parametrize(
    ("path", "version", "body_type", "body_end", "sig_len"),
    [
        pytest.param(INTEL / "phala-dcap-qvl/sgx_v3_quote.bin", 3, 1, 432, 4164, id="sgx-v3"),
        pytest.param(INTEL / "phala-dcap-qvl/tdx_v4_quote.bin", 4, 2, 632, 4300, id="tdx-v4"),
        pytest.param(INTEL / "phala-dcap-qvl/tdx_v5_body3_quote_outdated.bin", 5, 3, 702, 4300, id="tdx-v5-body3"),
        pytest.param(INTEL / "phala-dcap-qvl/tdx_v5_body4_td15ex_quote.bin", 5, 4, 939, 4304, id="tdx-v5-body4"),
    ],
)
def test_parse_quote_signed_region_ends_at_body(
    path: Path, version: int, body_type: int, body_end: int, sig_len: int
) -> None:
    buf = path.read_bytes()
    quote = parse_quote(buf)
    assert (quote.header.version, quote.body_type) == (version, body_type)
    assert len(quote.signed) == body_end
    assert u32(buf, body_end) == sig_len


# ------------------------------------------------------------------------------------------------------------
# Hex text


def _hex_variants(buf: bytes) -> dict[str, bytes]:
    h = buf.hex()
    wrapped = "\n".join(h[i : i + 64] for i in range(0, len(h), 64))
    return {
        "lower": h.encode(),
        "upper": h.upper().encode(),
        "0x-prefix": b"0x" + h.encode(),
        "0X-prefix": b"0X" + h.encode(),
        "trailing-newline": h.encode() + b"\n",
        "surrounding-whitespace": b" \t\r\n" + h.encode() + b"\r\n \t",
        "0x-prefix-and-newline": b"  0x" + h.encode() + b"\n",
        "wrapped-64": wrapped.encode(),
        "wrapped-crlf": wrapped.replace("\n", "\r\n").encode() + b"\r\n",
    }


HEX_CASES: Final = [
    pytest.param(name, buf, data, id=f"{name}-{variant}")
    for name, buf in (("sgx-v3", SGX_V3), ("tdx-v4", TDX_V4), ("tdx-v5", TDX_V5))
    for variant, data in _hex_variants(buf).items()
]


@pytest.mark.parametrize(("name", "binary", "text"), HEX_CASES)
def test_parse_quote_hex_text_equals_binary(name: str, binary: bytes, text: bytes) -> None:
    assert parse_quote(text) == parse_quote(binary), name


@pytest.mark.parametrize("path", [p for p in QUOTE_FILES if p.suffix == ".hex"], ids=_id)
def test_parse_quote_hex_vector_file_equals_its_decoded_bytes(path: Path) -> None:
    raw = path.read_bytes()
    decoded = _decode_file(path)
    assert parse_quote(raw) == parse_quote(decoded)
    assert len(raw.strip()) in (2 * len(decoded), 2 * len(decoded) + 2)  # "0x" prefix on one of them


def test_parse_quote_hex_vector_quirks_are_present() -> None:
    # PROVENANCE: one hex file carries a 0x prefix, one a trailing newline; both must parse.
    prefixed = (INTEL / "phala-dcap-qvl/tdx_v4_quote_tdx-quote.hex").read_bytes()
    newline = (INTEL / "phala-dcap-qvl/tdx_v4_quote_from-tappd.hex").read_bytes()
    assert prefixed.startswith(b"0x")
    assert newline.endswith(b"\n")
    assert parse_quote(prefixed).header.version == parse_quote(newline).header.version == 4


# ------------------------------------------------------------------------------------------------------------
# Claims sit at the spec offsets


def _check_fields(obj: object, buf: bytes, table: list[tuple[str, int, int]]) -> None:
    for attr, start, end in table:
        assert getattr(obj, attr) == buf[start:end], attr


def test_parse_quote_header_fields_at_spec_offsets() -> None:
    for buf in (SGX_V3, TDX_V4, TDX_V5):
        h = parse_quote(buf).header
        assert (h.version, h.att_key_type, h.tee_type) == (u16(buf, 0), u16(buf, 2), u32(buf, 4))
        assert (h.qe_svn, h.pce_svn) == (u16(buf, 8), u16(buf, 10))
        assert h.qe_vendor_id == buf[12:28] == bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
        assert h.user_data == buf[28:48]


def test_parse_quote_sgx_v3_claims_at_spec_offsets() -> None:
    buf = SGX_V3
    body = parse_quote(buf).sgx_body
    _check_fields(
        body,
        buf,
        [
            ("cpusvn", 48, 64),
            ("isvextprodid", 80, 96),
            ("attributes", 96, 112),
            ("mrenclave", 112, 144),
            ("mrsigner", 176, 208),
            ("configid", 240, 304),
            ("isvfamilyid", 352, 368),
            ("reportdata", 368, 432),
            ("raw", 48, 432),
        ],
    )
    assert body.miscselect == u32(buf, 64)
    assert body.isvprodid == u16(buf, 304)
    assert body.isvsvn == u16(buf, 306)
    assert body.configsvn == u16(buf, 308)
    assert body.mrenclave != bytes(32)
    assert body.mrsigner != bytes(32)
    assert body.debug == bool(buf[96] & 0x02)


_TD10_FIELDS: Final = [
    ("tee_tcb_svn", 0, 16),
    ("mrseam", 16, 64),
    ("mrsignerseam", 64, 112),
    ("seamattributes", 112, 120),
    ("tdattributes", 120, 128),
    ("xfam", 128, 136),
    ("mrtd", 136, 184),
    ("mrconfigid", 184, 232),
    ("mrowner", 232, 280),
    ("mrownerconfig", 280, 328),
    ("rtmr0", 328, 376),
    ("rtmr1", 376, 424),
    ("rtmr2", 424, 472),
    ("rtmr3", 472, 520),
    ("reportdata", 520, 584),
]


def _shift(table: list[tuple[str, int, int]], by: int) -> list[tuple[str, int, int]]:
    return [(a, s + by, e + by) for a, s, e in table]


def test_parse_quote_tdx_v4_claims_at_spec_offsets() -> None:
    buf = TDX_V4
    body = parse_quote(buf).td_body
    _check_fields(body, buf, _shift(_TD10_FIELDS, 48))
    # The offsets the brief names explicitly, spelled out.
    assert body.mrtd == buf[184:232]
    assert body.rtmr0 == buf[376:424]
    assert body.reportdata == buf[568:632]
    assert body.tdattributes == buf[168:176]
    assert body.tdattributes_int == int.from_bytes(buf[168:176], "little")
    assert body.mrtd != bytes(48)
    assert (body.tee_tcb_svn2, body.mrservicetd, body.extras) == (None, None, None)
    assert not body.is_td15


@pytest.mark.parametrize("buf", [TDX_V5, TDX_V5_BODY4], ids=["body3", "body4"])
def test_parse_quote_tdx_v5_claims_at_spec_offsets(buf: bytes) -> None:
    quote = parse_quote(buf)
    body = quote.td_body
    assert quote.body_type == u16(buf, 48)
    _check_fields(body, buf, _shift(_TD10_FIELDS, 54))
    assert body.mrtd == buf[190:238]
    assert body.rtmr0 == buf[382:430]
    assert body.reportdata == buf[574:638]
    assert body.tdattributes == buf[174:182]
    assert body.tee_tcb_svn2 == buf[638:654]
    assert body.mrservicetd == buf[654:702]
    assert body.is_td15
    assert quote.signed == buf[: 54 + u32(buf, 50)]


def test_parse_quote_body4_has_extras_at_spec_offsets() -> None:
    buf = TDX_V5_BODY4
    quote = parse_quote(buf)
    assert (quote.body_type, u32(buf, 50), len(quote.signed)) == (4, 885, 939)
    extras = quote.td_body.extras
    assert extras is not None
    _check_fields(
        extras,
        buf,
        [
            ("vmid", 702, 703),
            ("td_id", 703, 735),
            ("dev_info", 735, 783),
            ("init_service_td_hash", 783, 831),
            ("init_service_td_attributes", 831, 839),
            ("init_cpu_svn", 839, 855),
            ("init_tee_tcb_svn", 855, 871),
            ("init_tee_fmspc", 871, 883),
            ("cur_service_td_hash", 883, 931),
            ("cur_service_td_attributes", 931, 939),
        ],
    )


def test_parse_quote_body3_has_no_extras() -> None:
    assert parse_quote(TDX_V5).td_body.extras is None


@pytest.mark.parametrize("buf", [SGX_V3, TDX_V4, TDX_V5, TDX_V5_BODY4], ids=["v3", "v4", "v5-body3", "v5-body4"])
def test_parse_quote_signature_data_at_spec_offsets(buf: bytes) -> None:
    lay = layout(buf)
    sig = parse_quote(buf).signature_data
    assert sig.signature == buf[lay.sd : lay.sd + 64]
    assert sig.attestation_key == buf[lay.sd + 64 : lay.sd + 128]
    cert = sig.certification
    assert cert.qe_report.raw == buf[lay.qe_report : lay.qe_report + 384]
    assert cert.qe_report.reportdata == buf[lay.qe_report + 320 : lay.qe_report + 384]
    assert cert.qe_report_signature == buf[lay.qe_sig : lay.qe_sig + 64]
    assert cert.qe_auth_data == buf[lay.auth : lay.cert_hdr]
    assert len(cert.qe_auth_data) == u16(buf, lay.auth_size) == 32
    assert cert.pck_cert_type == u16(buf, lay.cert_hdr) == 5
    assert cert.pck_chain_pem == buf[lay.cert_data : lay.sd_end]
    assert lay.cert_data + u32(buf, lay.cert_hdr + 2) == lay.sd_end
    if lay.outer_hdr is not None:
        assert u16(buf, lay.outer_hdr) == 6
        assert lay.outer_hdr + 6 + u32(buf, lay.outer_hdr + 2) == lay.sd_end


# ------------------------------------------------------------------------------------------------------------
# Trailing bytes: counted, never parsed


@pytest.mark.parametrize(
    ("path", "trailing"),
    [
        pytest.param("phala-dcap-qvl/tdx_v4_quote.bin", 70, id="tdx_v4_quote-zero-padding"),
        pytest.param("phala-dcap-qvl/tdx_v4_quote_tdx-quote.hex", 70, id="hex-0x-zero-padding"),
        pytest.param("google-go-tdx-guest/tdx_v4_quote_cos-113_padded-8000.dat", 3065, id="gotdx-padded-8000"),
        pytest.param("automata-dcap-attestation/tdx_v4_quotev4_padded-8000.hex", 3065, id="automata-padded-8000"),
        pytest.param("google-go-tdx-guest/tdx_v4_quote_SPR_E4_trailing-text.dat", 39, id="trailing-text"),
        pytest.param("phala-dcap-qvl/sgx_v3_quote.bin", 0, id="sgx-v3-none"),
        pytest.param("phala-dcap-qvl/tdx_v5_body4_td15ex_quote.bin", 0, id="v5-body4-none"),
    ],
)
def test_parse_quote_trailing_bytes_counted(path: str, trailing: int) -> None:
    assert parse_quote((INTEL / path).read_bytes()).trailing_bytes == trailing


def test_parse_quote_trailing_text_is_the_documented_string() -> None:
    buf = (INTEL / "google-go-tdx-guest/tdx_v4_quote_SPR_E4_trailing-text.dat").read_bytes()
    assert buf[layout(buf).sd_end :] == b"\nextra bytes(only for testing purpose)\n"


def test_parse_quote_trailing_bytes_content_ignored() -> None:
    lay = layout(TDX_V4)
    junk = TDX_V4[: lay.sd_end] + bytes(range(0xB0, 0xB0 + 70))
    assert parse_quote(junk) == parse_quote(TDX_V4)
    assert parse_quote(TDX_V4[: lay.sd_end]).trailing_bytes == 0


def test_parse_quote_exactly_max_size_parses() -> None:
    quote = parse_quote(pad_to(TDX_V4, limits.MAX_QUOTE_BYTES))
    assert quote.trailing_bytes == limits.MAX_QUOTE_BYTES - layout(TDX_V4).sd_end


# ------------------------------------------------------------------------------------------------------------
# Negative cases: one defect each


def _truncation_points(buf: bytes) -> dict[str, int]:
    lay = layout(buf)
    pts: dict[str, int] = {
        "empty": 0,
        "header-first-byte": 1,
        "header-mid": 24,
        "header-last-byte-missing": 47,
        "header-only": 48,
    }
    if lay.version == 5:
        pts |= {"v5-body-descriptor-mid": 51, "v5-body-descriptor-only": 54}
    pts |= {
        "body-mid": lay.body_off + 200,
        "body-last-byte-missing": lay.body_end - 1,
        "sig-len-missing": lay.body_end,
        "sig-len-mid": lay.body_end + 2,
    }
    pts |= {f"sigdata-{k}": lay.sd + v for k, v in _sigdata_points(buf).items()}
    return pts


def _sigdata_points(buf: bytes) -> dict[str, int]:
    """Cut points inside the signature data, relative to its start."""
    lay = layout(buf)
    pts: dict[str, int] = {
        "signature-missing": 0,
        "signature-mid": 32,
        "att-key-missing": 64,
        "att-key-mid": 96,
    }
    if lay.outer_hdr is not None:
        pts |= {"outer-cert-header-missing": 128, "outer-cert-header-mid": 131}
    abs_pts = {
        "qe-report-missing": lay.qe_report,
        "qe-report-mid": lay.qe_report + 192,
        "qe-report-sig-missing": lay.qe_sig,
        "qe-report-sig-mid": lay.qe_sig + 32,
        "auth-size-missing": lay.auth_size,
        "auth-size-mid": lay.auth_size + 1,
        "auth-data-missing": lay.auth,
        "auth-data-mid": lay.auth + 16,
        "cert-header-missing": lay.cert_hdr,
        "cert-header-mid": lay.cert_hdr + 3,
        "cert-data-missing": lay.cert_data,
        "cert-data-mid": lay.cert_data + 1000,
        "cert-data-last-byte-missing": lay.sd_end - 1,
    }
    return pts | {k: v - lay.sd for k, v in abs_pts.items()}


QUOTES: Final = {"v3": SGX_V3, "v4": TDX_V4, "v5": TDX_V5}

TRUNCATED: Final = [
    pytest.param(buf[:n], Code.INTEL_QUOTE_TRUNCATED, id=f"{name}-buffer-ends-{label}")
    for name, buf in QUOTES.items()
    for label, n in _truncation_points(buf).items()
]

# The signature data is cut *and* its u32 length says so: the buffer is complete, so whatever nested length
# now overruns the (shorter) signature data is length_invalid.
SIGDATA_CUT: Final = [
    pytest.param(cut_signature_data(buf, k), Code.INTEL_QUOTE_LENGTH_INVALID, id=f"{name}-sigdata-ends-{label}")
    for name, buf in QUOTES.items()
    for label, k in _sigdata_points(buf).items()
]

# v4/v5: signature-data length *and* the outer certification size are both consistent with the cut, so the
# overrun is found inside the QE report certification data.
INNER_CUT: Final = [
    pytest.param(
        cut_signature_data(buf, k, fix_outer=True), Code.INTEL_QUOTE_LENGTH_INVALID, id=f"{name}-cert-data-ends-{label}"
    )
    for name, buf in (("v4", TDX_V4), ("v5", TDX_V5))
    for label, k in _sigdata_points(buf).items()
    if k >= layout(buf).qe_report - layout(buf).sd
]


def _length_field_cases() -> list[object]:
    v3, v4, v5 = (layout(b) for b in (SGX_V3, TDX_V4, TDX_V5))
    L = Code.INTEL_QUOTE_LENGTH_INVALID  # noqa: N806 - a short alias keeps the table readable
    T = Code.INTEL_QUOTE_TRUNCATED  # noqa: N806
    cases: list[tuple[str, bytes, Code]] = [
        # Signature data length (the top-level field: the buffer ends before what it declares).
        ("v3-sig-len-max-u32", put_u32(SGX_V3, v3.body_end, 0xFFFFFFFF), T),
        ("v4-sig-len-max-u32", put_u32(TDX_V4, v4.body_end, 0xFFFFFFFF), T),
        ("v5-sig-len-max-u32", put_u32(TDX_V5, v5.body_end, 0xFFFFFFFF), T),
        ("v3-sig-len-plus-1-no-padding", put_u32(SGX_V3, v3.body_end, v3.sd_end - v3.sd + 1), T),
        ("v4-sig-len-beyond-padding", put_u32(TDX_V4, v4.body_end, v4.sd_end - v4.sd + 71), T),
        # ... grown into the zero padding: the signature data now has bytes nothing accounts for.
        ("v4-sig-len-plus-1-into-padding", put_u32(TDX_V4, v4.body_end, v4.sd_end - v4.sd + 1), L),
        ("v4-sig-len-plus-70-into-padding", put_u32(TDX_V4, v4.body_end, v4.sd_end - v4.sd + 70), L),
        ("v3-sig-len-plus-1-into-padding", put_u32(SGX_V3 + bytes(8), v3.body_end, v3.sd_end - v3.sd + 1), L),
        ("v3-sig-len-minus-1", put_u32(SGX_V3, v3.body_end, v3.sd_end - v3.sd - 1), L),
        ("v4-sig-len-minus-1", put_u32(TDX_V4, v4.body_end, v4.sd_end - v4.sd - 1), L),
        ("v4-sig-len-zero", put_u32(TDX_V4, v4.body_end, 0), L),
        ("v4-sig-len-127", put_u32(TDX_V4, v4.body_end, 127), L),
        # Outer certification data size (v4/v5).
        ("v4-outer-cert-size-max-u32", put_u32(TDX_V4, _outer_size(v4), 0xFFFFFFFF), L),
        ("v5-outer-cert-size-max-u32", put_u32(TDX_V5, _outer_size(v5), 0xFFFFFFFF), L),
        ("v4-outer-cert-size-plus-1", put_u32(TDX_V4, _outer_size(v4), u32(TDX_V4, _outer_size(v4)) + 1), L),
        ("v4-outer-cert-size-minus-1", put_u32(TDX_V4, _outer_size(v4), u32(TDX_V4, _outer_size(v4)) - 1), L),
        ("v4-outer-cert-size-zero", put_u32(TDX_V4, _outer_size(v4), 0), L),
        # QE auth data size: over the limit, and in range but overrunning.
        ("v3-auth-size-limit-plus-1", put_u16(SGX_V3, v3.auth_size, limits.MAX_QE_AUTH_DATA_BYTES + 1), L),
        ("v4-auth-size-limit-plus-1", put_u16(TDX_V4, v4.auth_size, limits.MAX_QE_AUTH_DATA_BYTES + 1), L),
        ("v5-auth-size-max-u16", put_u16(TDX_V5, v5.auth_size, 0xFFFF), L),
        ("v3-auth-size-overruns", put_u16(SGX_V3, v3.auth_size, limits.MAX_QE_AUTH_DATA_BYTES), L),
        ("v4-auth-size-overruns", put_u16(TDX_V4, v4.auth_size, limits.MAX_QE_AUTH_DATA_BYTES), L),
        # PCK certification data size (v3 outer, v4/v5 inner).
        ("v3-cert-size-max-u32", put_u32(SGX_V3, v3.cert_hdr + 2, 0xFFFFFFFF), L),
        ("v4-inner-cert-size-max-u32", put_u32(TDX_V4, v4.cert_hdr + 2, 0xFFFFFFFF), L),
        ("v5-inner-cert-size-max-u32", put_u32(TDX_V5, v5.cert_hdr + 2, 0xFFFFFFFF), L),
        ("v4-inner-cert-size-limit-plus-1", put_u32(TDX_V4, v4.cert_hdr + 2, limits.MAX_CERT_DATA_BYTES + 1), L),
        ("v3-cert-size-plus-1", put_u32(SGX_V3, v3.cert_hdr + 2, u32(SGX_V3, v3.cert_hdr + 2) + 1), L),
        ("v4-inner-cert-size-plus-1", put_u32(TDX_V4, v4.cert_hdr + 2, u32(TDX_V4, v4.cert_hdr + 2) + 1), L),
        ("v3-cert-size-minus-1", put_u32(SGX_V3, v3.cert_hdr + 2, u32(SGX_V3, v3.cert_hdr + 2) - 1), L),
        ("v4-inner-cert-size-minus-1", put_u32(TDX_V4, v4.cert_hdr + 2, u32(TDX_V4, v4.cert_hdr + 2) - 1), L),
        ("v4-inner-cert-size-zero", put_u32(TDX_V4, v4.cert_hdr + 2, 0), L),
    ]
    return [pytest.param(data, code, id=name) for name, data, code in cases]


def _outer_size(lay: Layout) -> int:
    assert lay.outer_hdr is not None
    return lay.outer_hdr + 2


def _field_cases() -> list[object]:
    v3, v4, v5 = (layout(b) for b in (SGX_V3, TDX_V4, TDX_V5))
    c = Code
    cases: list[tuple[str, bytes, Code]] = [
        # Header (§1.1).
        ("version-0", put_u16(TDX_V4, 0, 0), c.INTEL_QUOTE_UNSUPPORTED_VERSION),
        ("version-2", put_u16(TDX_V4, 0, 2), c.INTEL_QUOTE_UNSUPPORTED_VERSION),
        ("version-6", put_u16(TDX_V4, 0, 6), c.INTEL_QUOTE_UNSUPPORTED_VERSION),
        ("version-0xffff", put_u16(TDX_V4, 0, 0xFFFF), c.INTEL_QUOTE_UNSUPPORTED_VERSION),
        ("v3-version-0x0103", put_u16(SGX_V3, 0, 0x0103), c.INTEL_QUOTE_UNSUPPORTED_VERSION),
        ("v3-key-type-3-p384", put_u16(SGX_V3, 2, 3), c.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE),
        ("v4-key-type-3-p384", put_u16(TDX_V4, 2, 3), c.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE),
        ("v5-key-type-3-p384", put_u16(TDX_V5, 2, 3), c.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE),
        ("v4-key-type-0", put_u16(TDX_V4, 2, 0), c.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE),
        ("v3-tee-type-tdx", put_u32(SGX_V3, 4, 0x81), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v3-tee-type-1", put_u32(SGX_V3, 4, 1), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v4-tee-type-sgx", put_u32(TDX_V4, 4, 0), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v4-tee-type-0x80", put_u32(TDX_V4, 4, 0x80), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v4-tee-type-0x181", put_u32(TDX_V4, 4, 0x181), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v5-tee-type-0x82", put_u32(TDX_V5, 4, 0x82), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v5-tee-type-max-u32", put_u32(TDX_V5, 4, 0xFFFFFFFF), c.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE),
        ("v3-qe-vendor-id-one-bit", xor(SGX_V3, 12), c.INTEL_QUOTE_VENDOR_MISMATCH),
        ("v4-qe-vendor-id-last-byte", xor(TDX_V4, 27, 0x80), c.INTEL_QUOTE_VENDOR_MISMATCH),
        ("v5-qe-vendor-id-zero", put(TDX_V5, 12, bytes(16)), c.INTEL_QUOTE_VENDOR_MISMATCH),
        # v5 body descriptor (§1.2).
        ("v5-body-type-0", put_u16(TDX_V5, 48, 0), c.INTEL_QUOTE_BODY_TYPE_INVALID),
        ("v5-body-type-5", put_u16(TDX_V5, 48, 5), c.INTEL_QUOTE_BODY_TYPE_INVALID),
        ("v5-body-type-0xffff", put_u16(TDX_V5, 48, 0xFFFF), c.INTEL_QUOTE_BODY_TYPE_INVALID),
        ("v5-body-type-1-with-tdx", put_u16(TDX_V5, 48, 1), c.INTEL_QUOTE_BODY_TYPE_INVALID),
        ("v5-tee-sgx-with-body-type-3", put_u32(TDX_V5, 4, 0), c.INTEL_QUOTE_BODY_TYPE_INVALID),
        ("v5-body3-size-647", put_u32(TDX_V5, 50, 647), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body3-size-649", put_u32(TDX_V5, 50, 649), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body3-size-584", put_u32(TDX_V5, 50, 584), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body3-size-0", put_u32(TDX_V5, 50, 0), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body3-size-max-u32", put_u32(TDX_V5, 50, 0xFFFFFFFF), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body-type-2-with-size-648", put_u16(TDX_V5, 48, 2), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body-type-4-with-size-648", put_u16(TDX_V5, 48, 4), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        ("v5-body4-size-648", put_u32(TDX_V5_BODY4, 50, 648), c.INTEL_QUOTE_BODY_SIZE_INVALID),
        # Certification data types (§1.3).
        ("v4-outer-cert-type-5", put_u16(TDX_V4, _outer_type(v4), 5), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v4-outer-cert-type-7", put_u16(TDX_V4, _outer_type(v4), 7), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v4-outer-cert-type-0", put_u16(TDX_V4, _outer_type(v4), 0), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v5-outer-cert-type-5", put_u16(TDX_V5, _outer_type(v5), 5), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v4-inner-cert-type-4", put_u16(TDX_V4, v4.cert_hdr, 4), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v4-inner-cert-type-6", put_u16(TDX_V4, v4.cert_hdr, 6), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v5-inner-cert-type-1", put_u16(TDX_V5, v5.cert_hdr, 1), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v3-cert-type-6", put_u16(SGX_V3, v3.cert_hdr, 6), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v3-cert-type-4", put_u16(SGX_V3, v3.cert_hdr, 4), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
        ("v3-cert-type-0xffff", put_u16(SGX_V3, v3.cert_hdr, 0xFFFF), c.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED),
    ]
    # Reserved bytes of an SGX report body (§1.2: body offsets 20+12, 96+32, 160+32, 262+42): the enclave
    # report of the v3 quote, and the QE report of a v3 and a v4 quote. First and last byte of each range.
    reserved = {"20": 20, "31": 31, "96": 96, "127": 127, "160": 160, "191": 191, "262": 262, "303": 303}
    for where, buf, base in (
        ("v3-enclave-report", SGX_V3, 48),
        ("v3-qe-report", SGX_V3, v3.qe_report),
        ("v4-qe-report", TDX_V4, v4.qe_report),
    ):
        cases += [
            (f"{where}-reserved-byte-{name}", xor(buf, base + off), c.INTEL_QUOTE_RESERVED_NONZERO)
            for name, off in reserved.items()
        ]
    return [pytest.param(data, code, id=name) for name, data, code in cases]


def _outer_type(lay: Layout) -> int:
    assert lay.outer_hdr is not None
    return lay.outer_hdr


def _size_and_encoding_cases() -> list[object]:
    too_big = pad_to(TDX_V4, limits.MAX_QUOTE_BYTES + 1)
    h = TDX_V4.hex()
    cases: list[tuple[str, bytes, Code]] = [
        ("binary-max-plus-1", too_big, Code.INTEL_QUOTE_TOO_LARGE),
        ("binary-twice-max", pad_to(TDX_V4, 2 * limits.MAX_QUOTE_BYTES), Code.INTEL_QUOTE_TOO_LARGE),
        ("hex-decodes-to-max-plus-1", too_big.hex().encode(), Code.INTEL_QUOTE_TOO_LARGE),
        ("hex-text-over-char-limit", b"0" * (limits.MAX_HEX_EVIDENCE_CHARS + 2), Code.INTEL_QUOTE_TOO_LARGE),
        ("hex-odd-length", h[:-1].encode(), Code.INTEL_QUOTE_ENCODING),
        ("hex-0x-odd-length", b"0x" + h[1:].encode(), Code.INTEL_QUOTE_ENCODING),
        ("hex-odd-length-with-newline", h.encode() + b"0\n", Code.INTEL_QUOTE_ENCODING),
        ("hex-single-digit", b"3", Code.INTEL_QUOTE_ENCODING),
        # Not hex at all (one non-hex character): read as binary, whose "version" is ASCII "04" = 0x3430.
        ("hex-with-non-hex-char", (h[:100] + "g" + h[101:]).encode(), Code.INTEL_QUOTE_UNSUPPORTED_VERSION),
        ("hex-empty-after-0x", b"0x\n", Code.INTEL_QUOTE_TRUNCATED),
        ("whitespace-only", b" \n\t ", Code.INTEL_QUOTE_TRUNCATED),
    ]
    return [pytest.param(data, code, id=name) for name, data, code in cases]


MALFORMED: Final = [
    *TRUNCATED,
    *SIGDATA_CUT,
    *INNER_CUT,
    *_length_field_cases(),
    *_field_cases(),
    *_size_and_encoding_cases(),
]


@pytest.mark.parametrize(("data", "code"), MALFORMED)
def test_parse_quote_malformed_rejected_with_code(data: bytes, code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as exc:
        parse_quote(data)
    assert exc.type is EvidenceMalformed
    assert exc.value.code == code
    assert exc.value.http_status == 400


def test_parse_quote_malformed_case_count() -> None:
    # Guard against a refactor of the tables above silently dropping cases.
    assert len(MALFORMED) >= 150
    assert len({id(p) for p in MALFORMED}) == len(MALFORMED)


def test_parse_quote_one_defect_leaves_rest_of_quote_valid() -> None:
    # The mutation helpers touch only what they name: undoing the patch restores a quote that parses.
    lay = layout(TDX_V4)
    patched = put_u16(TDX_V4, lay.cert_hdr, 4)
    assert put_u16(patched, lay.cert_hdr, 5) == TDX_V4
    assert isinstance(parse_quote(put_u16(patched, lay.cert_hdr, 5)), Quote)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b" " * limits.MAX_HEX_EVIDENCE_CHARS, id="whitespace-only"),
        pytest.param(b" " * (limits.MAX_HEX_EVIDENCE_CHARS - 1) + b"g", id="whitespace-then-non-hex"),
        pytest.param(b"0x" + b"\n" * (limits.MAX_HEX_EVIDENCE_CHARS - 3) + b"g", id="0x-newlines-then-non-hex"),
        pytest.param(b"0 " * (limits.MAX_HEX_EVIDENCE_CHARS // 2 - 1) + b"g", id="digits-and-spaces-then-non-hex"),
    ],
)
def test_parse_quote_hex_detection_is_linear(data: bytes) -> None:
    # Regression: hex detection was a regex whose \s* and [0-9a-fA-F\s]+ overlapped, quadratic on a long
    # whitespace run ending in a non-hex byte (16 000 bytes took ~2 s; the limit is 131 136).
    start = time.perf_counter()
    with pytest.raises(EvidenceMalformed):
        parse_quote(data)
    assert time.perf_counter() - start < 0.5
