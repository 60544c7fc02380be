"""The TPM 2.0 marshaller: commands byte for byte (hand-encoded from TPM 2.0 Library Part 1 §18 and Part 3), strict
responses (each malformed case one defect), and response codes named."""

from __future__ import annotations

import pytest

from verifier.client.tpm.wire import (
    TPM_RH_OWNER,
    Cc,
    St,
    TpmMalformed,
    TpmResponseError,
    command,
    describe_rc,
    parse_response,
    password_auth,
    pcr_selection,
    tpm2b,
    u16,
)

PW = "40000009" + "0000" + "01" + "0000"  # TPM_RS_PW, empty nonce, continueSession, empty password


def test_pcr_selection_all_24_sha256() -> None:
    assert pcr_selection(tuple(range(24))).hex() == "00000001" + "000b" + "03" + "ffffff"


def test_pcr_selection_sparse_bitmap() -> None:
    assert pcr_selection((0, 7, 14, 23)).hex() == "00000001000b03" + "81" + "40" + "80"


def test_pcr_selection_index_out_of_range_refused() -> None:
    with pytest.raises(ValueError, match="0-23"):
        pcr_selection((24,))


def test_password_auth_empty() -> None:
    assert password_auth().hex() == PW


def test_command_pcr_read_bytes() -> None:
    sent = command(Cc.PCR_Read, params=pcr_selection(tuple(range(24))))
    assert sent.hex() == "8001" + "00000014" + "0000017e" + "00000001000b03ffffff"


def test_command_nv_read_public_bytes() -> None:
    assert command(Cc.NV_ReadPublic, (0x01400001,)).hex() == "8001" + "0000000e" + "00000169" + "01400001"


def test_command_get_capability_nv_buffer_max_bytes() -> None:
    sent = command(Cc.GetCapability, params=bytes.fromhex("000000060000012c00000001"))
    assert sent.hex() == "8001" + "00000016" + "0000017a" + "00000006" + "0000012c" + "00000001"


def test_command_nv_read_with_password_session_bytes() -> None:
    sent = command(Cc.NV_Read, (TPM_RH_OWNER, 0x01400001), u16(1024) + u16(0), (password_auth(),))
    expected = "8002" + "00000023" + "0000014e" + "40000001" + "01400001" + "00000009" + PW + "0400" + "0000"
    assert sent.hex() == expected


def test_command_nv_write_user_data_bytes() -> None:
    data = bytes(range(64))
    sent = command(Cc.NV_Write, (TPM_RH_OWNER, 0x01400002), tpm2b(data) + u16(0), (password_auth(),))
    expected = "8002" + "00000063" + "00000137" + "40000001" + "01400002" + "00000009" + PW
    assert sent.hex() == expected + "0040" + data.hex() + "0000"


def test_command_quote_bytes() -> None:
    nonce = bytes([0xAB]) * 64
    params = tpm2b(nonce) + u16(0x0010) + pcr_selection(tuple(range(24)))
    sent = command(Cc.Quote, (0x81000003,), params, (password_auth(),))
    expected = "8002" + "00000069" + "00000158" + "81000003" + "00000009" + PW
    assert sent.hex() == expected + "0040" + nonce.hex() + "0010" + "00000001000b03ffffff"


def test_tpm2b_too_long_refused() -> None:
    with pytest.raises(ValueError, match="65535"):
        tpm2b(bytes(0x10000))


# -- responses -------------------------------------------------------------------------------------------------------


def _no_sessions(params: bytes, rc: int = 0) -> bytes:
    return St.NO_SESSIONS.to_bytes(2, "big") + (10 + len(params)).to_bytes(4, "big") + rc.to_bytes(4, "big") + params


def _sessions(params: bytes, handles: bytes = b"", auth: bytes = bytes.fromhex("0000010000")) -> bytes:
    body = handles + len(params).to_bytes(4, "big") + params + auth
    return St.SESSIONS.to_bytes(2, "big") + (10 + len(body)).to_bytes(4, "big") + bytes(4) + body


def test_parse_response_no_sessions_params() -> None:
    r = parse_response("TPM2_X", _no_sessions(b"\x00\x02ab")).params
    assert r.tpm2b("data") == b"ab"
    r.end()


def test_parse_response_sessions_handle_and_params() -> None:
    data = _sessions(b"\x00\x01z", handles=bytes.fromhex("80000000"))
    response = parse_response("TPM2_X", data, handles=1, sessions=1, sent_tag=St.SESSIONS)
    assert response.handles == (0x80000000,)
    assert response.params.tpm2b("data") == b"z"


def test_parse_response_error_code_names_command_and_rc() -> None:
    with pytest.raises(TpmResponseError) as e:
        parse_response("TPM2_NV_Read", _no_sessions(b"", rc=0x28B))
    assert (e.value.code, e.value.command, e.value.rc) == ("tpm.response_code", "TPM2_NV_Read", 0x28B)
    assert e.value.rc_name == "TPM_RC_HANDLE (handle 2)"
    assert "TPM2_NV_Read failed: TPM_RC_HANDLE (handle 2) (rc 0x0000028b)" in str(e.value)


MALFORMED = {
    "shorter than its header": (bytes.fromhex("80010000"), 0, St.NO_SESSIONS),
    "size says more than arrived": (_no_sessions(b"abc")[:-1], 0, St.NO_SESSIONS),
    "size says less than arrived": (_no_sessions(b"abc") + b"\x00", 0, St.NO_SESSIONS),
    "error response with a body": (
        St.NO_SESSIONS.to_bytes(2, "big") + (12).to_bytes(4, "big") + (0x18B).to_bytes(4, "big") + b"\0\0",
        0,
        St.NO_SESSIONS,
    ),
    "no-sessions tag for a sessions command": (_no_sessions(b"abc"), 0, St.SESSIONS),
    "parameterSize past the end": (
        St.SESSIONS.to_bytes(2, "big") + (19).to_bytes(4, "big") + bytes(4) + (100).to_bytes(4, "big") + b"\0" * 5,
        0,
        St.SESSIONS,
    ),
    "missing auth area": (_sessions(b"ab", auth=b""), 0, St.SESSIONS),
    "hmac in a password session answer": (_sessions(b"ab", auth=bytes.fromhex("0000010001ff")), 0, St.SESSIONS),
    "bytes after the auth area": (_sessions(b"ab", auth=bytes.fromhex("000001000000")), 0, St.SESSIONS),
    "handle missing": (_sessions(b""), 1, St.SESSIONS),
    "over the size limit": (_no_sessions(bytes(9000)), 0, St.NO_SESSIONS),
}


@pytest.mark.parametrize(("data", "handles", "tag"), MALFORMED.values(), ids=MALFORMED.keys())
def test_parse_response_malformed_refused(data: bytes, handles: int, tag: St) -> None:
    with pytest.raises(TpmMalformed):
        parse_response("TPM2_X", data, handles=handles, sessions=1 if tag == St.SESSIONS else 0, sent_tag=tag)


def test_reader_tpm2b_over_its_maximum_refused() -> None:
    r = parse_response("TPM2_X", _no_sessions(b"\x00\x41" + bytes(65))).params
    with pytest.raises(TpmMalformed, match="more than 64"):
        r.tpm2b("digest", max_size=64)


def test_reader_end_with_bytes_left_refused() -> None:
    r = parse_response("TPM2_X", _no_sessions(b"\x00\x01ab")).params
    r.tpm2b("data")
    with pytest.raises(TpmMalformed, match="1 bytes after"):
        r.end()


RCS = {
    "handle 1": (0x18B, "TPM_RC_HANDLE (handle 1)"),
    "parameter 2": (0x2D5, "TPM_RC_SIZE (parameter 2)"),
    "session 1": (0x9A2, "TPM_RC_BAD_AUTH (session 1)"),
    "format-one unnumbered": (0x084, "TPM_RC_VALUE"),
    "format-zero": (0x14C, "TPM_RC_NV_DEFINED"),
    "format-zero failure": (0x101, "TPM_RC_FAILURE"),
    "warning": (0x922, "TPM_RC_RETRY"),
    "warning reference": (0x910, "TPM_RC_REFERENCE_H0"),
    "unknown format-zero": (0x17F, "format-zero 0x17f"),
    "vendor": (0x501, "vendor code 0x01"),
    "resource manager layer": (0x000B0001, "layer 11 code 0x0001"),
    "TPM 1.2": (0x001E, "TPM 1.2 code 0x001e"),
}


@pytest.mark.parametrize(("rc", "name"), RCS.values(), ids=RCS.keys())
def test_describe_rc_names(rc: int, name: str) -> None:
    assert describe_rc(rc) == name
