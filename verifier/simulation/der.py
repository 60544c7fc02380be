"""A tiny DER encoder for the fake vendor PKIs (definite lengths; the types the SGX and AMD extensions use and the
certificate/CRL surgery that cryptography will not build)."""

from __future__ import annotations


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def der_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for value in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk, rest = [value & 0x7F], value >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def _uint_content(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are needed here")
    return value.to_bytes(value.bit_length() // 8 + 1, "big")  # +1 keeps the sign bit clear


def der_int(value: int) -> bytes:
    """DER INTEGER of a non-negative value, minimal (``0xDB`` -> ``02 02 00 DB``)."""
    return tlv(0x02, _uint_content(value))


def der_seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def der_octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def der_bool(value: bool) -> bytes:
    return tlv(0x01, b"\xff" if value else b"\x00")


def der_enum(value: int) -> bytes:
    return tlv(0x0A, _uint_content(value))


def der_ia5(text: str) -> bytes:
    return tlv(0x16, text.encode("ascii"))


# Surgery on signed structures (TBS bytes cryptography will not build, re-signed by the caller)


def read_element(der: bytes, off: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at ``off``."""
    tag, first = der[off], der[off + 1]
    off += 2
    if first & 0x80:
        n = first & 0x7F
        length = int.from_bytes(der[off : off + n], "big")
        off += n
    else:
        length = first
    if off + length > len(der):
        raise ValueError("DER element overruns its buffer")
    return tag, off, off + length


def signed_parts(der: bytes) -> tuple[bytes, bytes]:
    """(TBS element, signatureAlgorithm element) of a Certificate or CertificateList."""
    _, start, _ = read_element(der, 0)
    _, _, tbs_end = read_element(der, start)
    _, _, alg_end = read_element(der, tbs_end)
    return der[start:tbs_end], der[tbs_end:alg_end]


def assemble_signed(tbs: bytes, alg_id: bytes, signature: bytes) -> bytes:
    """Certificate / CertificateList ::= SEQUENCE { tbs, signatureAlgorithm, signatureValue BIT STRING }."""
    return tlv(0x30, tbs + alg_id + tlv(0x03, b"\x00" + signature))


def tbs_with_serial_zero(tbs: bytes) -> bytes:
    """Replace the TBSCertificate serial ``02 01 01`` by ``02 01 00`` (cryptography refuses to build serial 0)."""
    _, start, _ = read_element(tbs, 0)
    tag, _, version_end = read_element(tbs, start)
    stag, s_start, s_end = read_element(tbs, version_end)
    if tag != 0xA0 or stag != 0x02 or tbs[s_start:s_end] != b"\x01":
        raise ValueError("expected a v3 TBSCertificate built with serial 1")
    return tbs[:s_start] + b"\x00" + tbs[s_end:]


def tbs_crl_serial_to_zero(tbs: bytes, placeholder: int) -> bytes:
    """Rewrite the revoked entry whose one-byte serial is ``placeholder`` to serial 0 (same length)."""
    _, off, end = read_element(tbs, 0)
    while off < end:
        tag, start, nxt = read_element(tbs, off)
        if tag == 0x30 and start < nxt and tbs[start] == 0x30:  # revokedCertificates: SEQUENCE OF SEQUENCE
            pos = start
            while pos < nxt:
                _, e_start, e_end = read_element(tbs, pos)
                itag, i_start, i_end = read_element(tbs, e_start)
                if itag == 0x02 and tbs[i_start:i_end] == bytes([placeholder]):
                    return tbs[:i_start] + b"\x00" + tbs[i_end:]
                pos = e_end
        off = nxt
    raise ValueError("placeholder serial not found in the CRL")
