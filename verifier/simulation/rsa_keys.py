"""Deterministic RSA-4096 keys for the simulated AMD PKI: primes derived from a seed, RSASSA-PSS signatures with
salts derived from the message (so the same inputs give the same bytes). SIMULATION ONLY.

For the AMD PKI's default seed the primes are found from :data:`_PRIME_HINTS` (offsets from each seed-derived
start to the next usable prime), so building the PKI takes about a second; another seed searches for its primes
(~3 s per key).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric import rsa

#: The seed :data:`_PRIME_HINTS` was computed for (the simulated AMD PKI's default).
HINTED_SEED: Final = "keyward-simulated-amd-pki/1"
#: RSASSA-PSS salt length AMD uses (SHA-384).
PSS_SALT: Final = 48
_E: Final = 65537


#: Offsets from each seed-derived 2048-bit start (see :func:`_prime_start`) to the first probable prime p
#: with gcd(e, p-1) = 1, for :data:`HINTED_SEED`. Found once with :func:`_next_prime`; checked on every load.
_PRIME_HINTS: Final[Mapping[str, tuple[int, int]]] = {
    "milan/ark": (498, 578),
    "milan/ask": (342, 2674),
    "milan/asvk": (504, 2314),
    "genoa/ark": (556, 692),
    "genoa/ask": (748, 1462),
    "genoa/asvk": (2118, 1308),
    "turin/ark": (1728, 1182),
    "turin/ask": (898, 834),
    "turin/asvk": (1804, 278),
    "alt/ark": (500, 1956),
    "alt/ask": (1424, 174),
    "rogue": (5752, 24),
}


@functools.cache
def _small_primes(limit: int = 20000) -> tuple[int, ...]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return tuple(i for i in range(3, limit + 1) if sieve[i])


def _strong_probable_prime(n: int, base: int = 2) -> bool:
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    x = pow(base, d, n)
    if x in (1, n - 1):
        return True
    for _ in range(r - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _prime_start(seed: str, label: str, which: str) -> int:
    """An odd 2048-bit number with the top two bits set (so p*q has exactly 4096 bits)."""
    raw = hashlib.shake_256(f"{seed}/rsa/{label}/{which}".encode()).digest(256)
    return int.from_bytes(raw, "big") | (3 << 2046) | 1


def _usable(n: int) -> bool:
    return (n - 1) % _E != 0 and _strong_probable_prime(n)


def _next_prime(start: int, window: int = 4096) -> int:
    """Offset from ``start`` (odd) to the first usable probable prime: sieve a window, then Miller-Rabin."""
    base = 0
    while True:
        marks = bytearray([1]) * window  # index i stands for start + base + 2i
        for p in _small_primes():
            i0 = (-((start + base) % p) * pow(2, -1, p)) % p
            marks[i0::p] = bytearray(len(marks[i0::p]))
        for i in range(window):
            if marks[i] and _usable(start + base + 2 * i):
                return base + 2 * i
        base += 2 * window


def _prime(seed: str, label: str, which: str, hint: int | None) -> int:
    start = _prime_start(seed, label, which)
    if hint is not None and _usable(start + hint):
        return start + hint
    return start + _next_prime(start)


def _mgf1_sha384(seed: bytes, length: int) -> bytes:
    out = b"".join(hashlib.sha384(seed + i.to_bytes(4, "big")).digest() for i in range((length + 47) // 48))
    return out[:length]


@dataclass(frozen=True, eq=False)
class RsaKey:
    """An RSA key with its CRT numbers, signing RSASSA-PSS deterministically (salt derived from the message)."""

    label: str
    private: rsa.RSAPrivateKey
    n: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @classmethod
    def derive(cls, seed: str, label: str) -> RsaKey:
        hints = _PRIME_HINTS.get(label) if seed == HINTED_SEED else None
        p = _prime(seed, label, "p", hints[0] if hints else None)
        q = _prime(seed, label, "q", hints[1] if hints else None)
        d = pow(_E, -1, (p - 1) * (q - 1))
        dp, dq, qinv = d % (p - 1), d % (q - 1), pow(q, -1, p)
        numbers = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qinv, rsa.RSAPublicNumbers(_E, p * q))
        return cls(label, numbers.private_key(unsafe_skip_rsa_key_validation=True), p * q, p, q, dp, dq, qinv)

    @property
    def public(self) -> rsa.RSAPublicKey:
        return self.private.public_key()

    def sign_pss(self, message: bytes, salt_length: int = PSS_SALT) -> bytes:
        """RSASSA-PSS (RFC 8017 §8.1) with SHA-384 and MGF1-SHA-384; the salt is derived, not random."""
        if not 0 <= salt_length <= 48:
            raise ValueError("salt length must be 0..48")
        m_hash = hashlib.sha384(message).digest()
        salt = hashlib.sha384(f"keyward-simulated:pss-salt/{self.label}/".encode() + m_hash).digest()[:salt_length]
        em_bits = self.n.bit_length() - 1
        em_len = (em_bits + 7) // 8
        h = hashlib.sha384(bytes(8) + m_hash + salt).digest()
        db = bytes(em_len - salt_length - 48 - 2) + b"\x01" + salt
        masked = bytearray(a ^ b for a, b in zip(db, _mgf1_sha384(h, em_len - 49), strict=True))
        masked[0] &= 0xFF >> (8 * em_len - em_bits)
        m = int.from_bytes(bytes(masked) + h + b"\xbc", "big")
        m1, m2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        s = m2 + (self.qinv * (m1 - m2) % self.p) * self.q
        return s.to_bytes((self.n.bit_length() + 7) // 8, "big")
