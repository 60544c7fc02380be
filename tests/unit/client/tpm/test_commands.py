"""The TPM commands against a real software TPM (swtpm), and their strictness against scripted malformed answers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.swtpm import needs_swtpm, running_swtpm
from verifier.client.tpm import TcpTransport, Tpm, TpmMalformed, TpmResponseError
from verifier.client.tpm.commands import AK_ATTRIBUTES, rsa_ak_template
from verifier.client.tpm.wire import TPM_PT_NV_BUFFER_MAX, TPM_RH_ENDORSEMENT, St
from verifier.evidence.tpm import parse_tpm_quote

AK = 0x81000003


@pytest.fixture
def tpm(tmp_path: Path) -> Iterator[Tpm]:
    with running_swtpm(tmp_path / "swtpm") as address, Tpm(TcpTransport(*address)) as t:
        yield t


@pytest.fixture
def ak(tpm: Tpm) -> rsa.RSAPublicKey:
    handle, public = tpm.create_primary(TPM_RH_ENDORSEMENT, rsa_ak_template())
    tpm.evict_control(handle, AK)
    tpm.flush_context(handle)
    return rsa.RSAPublicNumbers(public.e, int.from_bytes(public.modulus, "big")).public_key()


@needs_swtpm
def test_create_primary_ak_is_restricted_rsassa_2048(tpm: Tpm, ak: rsa.RSAPublicKey) -> None:
    public = tpm.read_public(AK)
    assert (public.key_bits, public.e, public.scheme, public.scheme_hash) == (2048, 65537, 0x0014, 0x000B)
    assert public.object_attributes == AK_ATTRIBUTES
    assert ak.key_size == 2048


@needs_swtpm
def test_nv_buffer_max_reported(tpm: Tpm) -> None:
    assert tpm.get_tpm_property(TPM_PT_NV_BUFFER_MAX) == tpm.nv_buffer_max() == 1024


@needs_swtpm
def test_nv_write_read_across_buffer_chunks(tpm: Tpm) -> None:
    data = hashlib.shake_256(b"nv").digest(2048)  # two 1024-byte chunks each way
    tpm.nv_define_space(0x01400001, len(data))
    tpm.nv_write(0x01400001, data)
    assert tpm.nv_read_public(0x01400001).size == 2048
    assert tpm.nv_read(0x01400001) == data


@needs_swtpm
def test_nv_read_public_undefined_index_names_rc(tpm: Tpm) -> None:
    with pytest.raises(TpmResponseError) as e:
        tpm.nv_read_public(0x01400002)
    assert (e.value.command, e.value.rc_name) == ("TPM2_NV_ReadPublic", "TPM_RC_HANDLE (handle 1)")


@needs_swtpm
def test_nv_define_space_twice_names_rc(tpm: Tpm) -> None:
    tpm.nv_define_space(0x01400002, 64)
    with pytest.raises(TpmResponseError) as e:
        tpm.nv_define_space(0x01400002, 64)
    assert e.value.rc_name == "TPM_RC_NV_DEFINED"


@needs_swtpm
def test_pcr_read_all_24_after_extend(tpm: Tpm) -> None:
    before = tpm.pcr_read()
    digest = hashlib.sha256(b"x").digest()
    tpm.pcr_extend(9, digest)
    after = tpm.pcr_read()
    assert sorted(after) == list(range(24))
    assert after[9] == hashlib.sha256(before[9] + digest).digest()
    assert {i: v for i, v in after.items() if i != 9} == {i: v for i, v in before.items() if i != 9}


@needs_swtpm
def test_quote_signed_by_ak_over_nonce_and_pcrs(tpm: Tpm, ak: rsa.RSAPublicKey) -> None:
    nonce = hashlib.sha512(b"binding").digest()
    pcrs = tpm.pcr_read()
    q = tpm.quote(AK, nonce)
    ak.verify(q.signature, q.attest, padding.PKCS1v15(), hashes.SHA256())
    parsed = parse_tpm_quote(q.attest)
    assert parsed.extra_data == nonce
    assert parsed.pcr_selection == tuple(range(24))
    assert parsed.pcr_digest == hashlib.sha256(b"".join(pcrs[i] for i in range(24))).digest()


@needs_swtpm
def test_quote_without_ak_names_rc(tpm: Tpm) -> None:
    with pytest.raises(TpmResponseError) as e:
        tpm.quote(AK, b"nonce")
    assert (e.value.command, e.value.rc_name) == ("TPM2_Quote", "TPM_RC_HANDLE (handle 1)")


# -- scripted answers: one defect each -------------------------------------------------------------------------------


class Scripted:
    """A transport answering from a list, recording what was sent."""

    def __init__(self, *responses: bytes) -> None:
        self.responses = list(responses)
        self.sent: list[bytes] = []

    def transmit(self, command: bytes) -> bytes:
        self.sent.append(command)
        return self.responses.pop(0)

    def close(self) -> None:
        pass


def _ok(params: bytes, *, sessions: bool = False) -> bytes:
    if sessions:
        body = len(params).to_bytes(4, "big") + params + bytes.fromhex("0000010000")
        return St.SESSIONS.to_bytes(2, "big") + (10 + len(body)).to_bytes(4, "big") + bytes(4) + body
    return St.NO_SESSIONS.to_bytes(2, "big") + (10 + len(params)).to_bytes(4, "big") + bytes(4) + params


def _capability(value: int) -> bytes:
    return _ok(bytes.fromhex("0000000006000000010000012c") + value.to_bytes(4, "big"))


def _pcr_read(counter: int, pcrs: list[int], values: int | None = None) -> bytes:
    bitmap = bytearray(3)
    for i in pcrs:
        bitmap[i // 8] |= 1 << (i % 8)
    count = len(pcrs) if values is None else values
    digests = b"".join(b"\x00\x20" + bytes([i]) * 32 for i in pcrs[:count])
    selection = bytes.fromhex("00000001000b03") + bitmap
    return _ok(counter.to_bytes(4, "big") + selection + count.to_bytes(4, "big") + digests)


def test_pcr_read_loops_eight_at_a_time() -> None:
    t = Scripted(_pcr_read(5, list(range(8))), _pcr_read(5, list(range(8, 16))), _pcr_read(5, list(range(16, 24))))
    values = Tpm(t).pcr_read()
    assert values == {i: bytes([i]) * 32 for i in range(24)}
    assert [s[-3:].hex() for s in t.sent] == ["ffffff", "00ffff", "0000ff"]


def test_pcr_read_restarts_when_counter_changes() -> None:
    t = Scripted(
        _pcr_read(5, list(range(8))),
        _pcr_read(6, list(range(8, 24))),
        _pcr_read(6, list(range(24))),
    )
    assert sorted(Tpm(t).pcr_read()) == list(range(24))
    assert len(t.sent) == 3


PCR_MALFORMED = {
    "fewer values than selected": (_pcr_read(1, [0, 1, 2], values=2), (0, 1, 2)),
    "a PCR not asked for": (_pcr_read(1, [0, 1]), (1, 2, 3)),
    "nothing selected": (_pcr_read(1, []), (0, 1, 2)),
}


@pytest.mark.parametrize(("response", "asked"), PCR_MALFORMED.values(), ids=PCR_MALFORMED.keys())
def test_pcr_read_malformed_refused(response: bytes, asked: tuple[int, ...]) -> None:
    with pytest.raises(TpmMalformed):
        Tpm(Scripted(response)).pcr_read(asked)


def test_pcr_read_value_not_sha256_size_refused() -> None:
    params = bytes(4) + bytes.fromhex("00000001000b03010000") + (1).to_bytes(4, "big") + b"\x00\x14" + bytes(20)
    with pytest.raises(TpmMalformed, match="32 bytes"):
        Tpm(Scripted(_ok(params))).pcr_read((0,))


def test_nv_read_short_chunk_refused() -> None:
    t = Scripted(_capability(1024), _ok(b"\x00\x03abc", sessions=True))
    with pytest.raises(TpmMalformed, match="asked 4 bytes"):
        Tpm(t).nv_read(0x01400001, size=4)


def test_nv_read_chunked_by_reported_buffer_size() -> None:
    t = Scripted(_capability(2), _ok(b"\x00\x02ab", sessions=True), _ok(b"\x00\x01c", sessions=True))
    assert Tpm(t).nv_read(0x01400001, size=3) == b"abc"
    assert [s[-4:].hex() for s in t.sent[1:]] == ["00020000", "00010002"]  # size, offset


def test_quote_signature_not_rsassa_sha256_refused() -> None:
    params = b"\x00\x01a" + bytes.fromhex("0016000b") + b"\x00\x01s"  # RSAPSS
    with pytest.raises(TpmMalformed, match="not RSASSA"):
        Tpm(Scripted(_ok(params, sessions=True))).quote(AK, b"n")


def test_read_public_not_rsa_refused() -> None:
    public = bytes.fromhex("0023000b00050472") + bytes(10)
    params = len(public).to_bytes(2, "big") + public + b"\x00\x00\x00\x00"
    with pytest.raises(TpmMalformed, match="not RSA"):
        Tpm(Scripted(_ok(params))).read_public(AK)


def test_nv_read_public_other_index_refused() -> None:
    public = bytes.fromhex("01400009000b0006000200000040")
    params = len(public).to_bytes(2, "big") + public + b"\x00\x00"
    with pytest.raises(TpmMalformed, match="asked for 0x01400002"):
        Tpm(Scripted(_ok(params))).nv_read_public(0x01400002)


def test_quote_qualifying_data_over_64_bytes_refused() -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        Tpm(Scripted()).quote(AK, bytes(65))
