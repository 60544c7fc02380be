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
