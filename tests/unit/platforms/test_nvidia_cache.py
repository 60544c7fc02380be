"""NvidiaVerificationCache: an evaluation with the cache is the evaluation without it, for genuine evidence and for
every single defect of the simulated NVIDIA PKI, for the real N1 H100 vector at both of its pinned times, at a
later ``now`` (dates, freshness and policy are checked again on every use), under another trust store, and after
one byte of a certificate, RIM or OCSP response changes.

Each case compares with the uncached evaluation computed in the same test: nothing here hard-codes an outcome
beyond asserting that the case exercises what it names (a reason code that must be there).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.appraisal.nvidia import NvidiaPolicy
from verifier.errors import Code, KeywardError
from verifier.evidence.nvidia import parse_device_chain
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache, evaluate_gpu_report
from verifier.simulation.nvidia_pki import (
    PARSER_DEFECTS,
    SIM_NOW,
    Defect,
    GpuOptions,
    NvidiaEvidence,
    default_nvidia_pki,
    expected_code,
    pem_chain,
)
from verifier.trust.ocsp import OcspPolicy, cert_id_key, check_ocsp
from verifier.trust.store import TrustStore

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nvidia"
DEVICES = VECTORS / "devices"
EXPECTED: dict[str, Any] = json.loads((DEVICES / "expected-verify.json").read_text())
NONCE = bytes(range(32))
#: After the simulated RIM L4 signers' notAfter (2027-06-29) and the OCSP answers' nextUpdate.
AFTER_RIM_SIGNERS = datetime(2027, 7, 1, tzinfo=UTC)
#: Before every simulated (and real) device certificate's notBefore.
BEFORE_DEVICE_CHAIN = datetime(2019, 1, 1, tzinfo=UTC)


def _genuine() -> NvidiaEvidence:
    return default_nvidia_pki().build(GpuOptions(nonce=NONCE))


def _evaluate(
    ev: NvidiaEvidence,
    cache: NvidiaVerificationCache | None,
    now: datetime | None = None,
    *,
    policy: NvidiaPolicy | None = None,
    trust: TrustStore | None = None,
    report: bytes | None = None,
    chain_pem: bytes | None = None,
    rims: tuple[bytes, ...] | None = None,
    ocsp: tuple[bytes, ...] | None = None,
) -> Evaluation:
    return evaluate_gpu_report(
        ev.report if report is None else report,
        ev.chain_pem if chain_pem is None else chain_pem,
        ev.rim_xml if rims is None else rims,
        tuple(e.response for e in ev.ocsp) if ocsp is None else ocsp,
        NvidiaPolicy(expected_nonce=ev.nonce) if policy is None else policy,
        ev.trust_store if trust is None else trust,
        ev.now if now is None else now,
        cache=cache,
    )


def _cold_then_warm(ev: NvidiaEvidence, cache: NvidiaVerificationCache, **kwargs: Any) -> Evaluation:
    """The uncached evaluation, after asserting that the cached one (filling, then hitting) equals it."""
    cold = _evaluate(ev, None, **kwargs)
    assert _evaluate(ev, cache, **kwargs) == cold  # fills the cache
    assert _evaluate(ev, cache, **kwargs) == cold  # from the cache
    return cold


def _codes(ev: Evaluation) -> set[Code]:
    return {r.code for r in ev.reasons}


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out)


# ---------------------------------------------------------------------------------------------------------
# Simulated evidence: genuine and every defect


def test_nvidia_cache_genuine_warm_equals_cold() -> None:
    cache = NvidiaVerificationCache()
    cold = _cold_then_warm(_genuine(), cache)
    assert cold.accepted
    assert len(cache.chains) == 1
    assert len(cache.rims) == 2
    assert len(cache.ocsp) == 7  # 9 checks; the two RIM chains share their L3 and L2 answers


@pytest.mark.parametrize("defect", [d for d in Defect if d not in PARSER_DEFECTS], ids=lambda d: d.value)
def test_nvidia_cache_defect_warm_equals_cold(defect: Defect) -> None:
    cache = NvidiaVerificationCache()
    _cold_then_warm(_genuine(), cache)  # the genuine device's entries are in the cache already
    ev = default_nvidia_pki().build(GpuOptions(nonce=NONCE), defect)
    cold = _cold_then_warm(ev, cache)
    assert not cold.accepted
    assert expected_code(defect) in _codes(cold)


@pytest.mark.parametrize("defect", sorted(PARSER_DEFECTS), ids=lambda d: d.value)
def test_nvidia_cache_parser_defect_warm_equals_cold(defect: Defect) -> None:
    ev = default_nvidia_pki().build(GpuOptions(nonce=NONCE), defect)
    cold = _cold_then_warm(ev, NvidiaVerificationCache())
    assert not cold.verified


def test_nvidia_cache_failed_rim_not_stored() -> None:
    cache = NvidiaVerificationCache()
    ev = default_nvidia_pki().build(GpuOptions(nonce=NONCE), Defect.RIM_SIGNER_EXPIRED)
    cold = _cold_then_warm(ev, cache)
    assert Code.NVIDIA_RIM_CHAIN_EXPIRED in _codes(cold)
    assert len(cache.rims) == 1  # the VBIOS RIM only


def test_nvidia_cache_failed_ocsp_not_stored() -> None:
    cache = NvidiaVerificationCache()
    ev = default_nvidia_pki().build(GpuOptions(nonce=NONCE), Defect.OCSP_STALE)
    cold = _cold_then_warm(ev, cache)
    assert Code.NVIDIA_OCSP_STALE in _codes(cold)
    assert len(cache.ocsp) == 6  # all but the BROM's stale answer


# ---------------------------------------------------------------------------------------------------------
# A cached entry at another `now` or under another policy


def test_nvidia_cache_rim_rechecked_at_later_now_expired() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    later = _cold_then_warm(ev, cache, now=AFTER_RIM_SIGNERS, policy=NvidiaPolicy(require_ocsp=False))
    assert later.verified
    assert Code.NVIDIA_RIM_CHAIN_EXPIRED in _codes(later)
    assert not later.accepted


def test_nvidia_cache_device_chain_rechecked_at_earlier_now() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    earlier = _cold_then_warm(ev, cache, now=BEFORE_DEVICE_CHAIN, policy=NvidiaPolicy(require_rims=False))
    assert not earlier.verified
    assert Code.NVIDIA_CHAIN_EXPIRED in _codes(earlier)


def test_nvidia_cache_ocsp_rechecked_past_next_update() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    stale = _cold_then_warm(ev, cache, now=SIM_NOW + timedelta(days=2))
    assert Code.NVIDIA_OCSP_STALE in _codes(stale)


def test_nvidia_cache_ocsp_responder_rechecked_outside_its_validity() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    entry = ev.ocsp[0]
    cache.check_ocsp(entry.response, entry.cert, entry.issuer, SIM_NOW, OcspPolicy())
    late = SIM_NOW + timedelta(days=800)  # the responder certificates end at SIM_NOW + 730 days
    lenient = OcspPolicy(grace=timedelta(days=1000))
    with pytest.raises(KeywardError) as cold:
        check_ocsp(entry.response, entry.cert, entry.issuer, late, lenient)
    with pytest.raises(KeywardError) as warm:
        cache.check_ocsp(entry.response, entry.cert, entry.issuer, late, lenient)
    assert cold.value.code == warm.value.code == Code.NVIDIA_OCSP_SIGNATURE_INVALID
    assert str(cold.value) == str(warm.value)


_TIMES = (
    timedelta(hours=-2),  # before thisUpdate (thisUpdate = SIM_NOW - 1 h)
    timedelta(hours=-1),  # exactly thisUpdate
    timedelta(0),
    timedelta(hours=23),  # exactly nextUpdate
    timedelta(hours=23, seconds=1),
    timedelta(hours=24),
    timedelta(days=3),
)
_POLICIES = (
    OcspPolicy(),
    OcspPolicy(grace=timedelta(hours=1)),
    OcspPolicy(max_age=timedelta(minutes=30)),
    OcspPolicy(max_age=timedelta(hours=24), grace=timedelta(days=2)),
    OcspPolicy(allow_hold=True),
)


@pytest.mark.parametrize("defect", [None, Defect.DEVICE_CERT_HOLD, Defect.DEVICE_CERT_REVOKED, Defect.OCSP_UNKNOWN])
def test_nvidia_cache_ocsp_answer_per_time_and_policy_equals_uncached(defect: Defect | None) -> None:
    ev = default_nvidia_pki().build(GpuOptions(nonce=NONCE), defect)
    entry = ev.ocsp[0]  # the BROM's answer, which the defects change
    cache = NvidiaVerificationCache()
    cache.check_ocsp(entry.response, entry.cert, entry.issuer, SIM_NOW, OcspPolicy())  # stored under the default
    for delta in _TIMES:
        for policy in _POLICIES:
            now = SIM_NOW + delta
            try:
                cold: object = check_ocsp(entry.response, entry.cert, entry.issuer, now, policy)
            except KeywardError as e:
                cold = (e.code, str(e))
            try:
                warm: object = cache.check_ocsp(entry.response, entry.cert, entry.issuer, now, policy)
            except KeywardError as e:
                warm = (e.code, str(e))
            assert warm == cold, (delta, policy)


def test_nvidia_cache_hold_allowed_by_later_policy() -> None:
    cache = NvidiaVerificationCache()
    ev = default_nvidia_pki().build(GpuOptions(nonce=NONCE), Defect.DEVICE_CERT_HOLD)
    held = _cold_then_warm(ev, cache)
    assert Code.NVIDIA_OCSP_REVOKED in _codes(held)
    allowed = NvidiaPolicy(expected_nonce=ev.nonce, ocsp=OcspPolicy(allow_hold=True))
    assert _cold_then_warm(ev, cache, policy=allowed).accepted


# ---------------------------------------------------------------------------------------------------------
# Keys: another trust store, a changed byte


def test_nvidia_cache_other_trust_store_misses(trust: TrustStore) -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    chains, rims = len(cache.chains), len(cache.rims)
    genuine_roots = _cold_then_warm(ev, cache, trust=trust)  # the real NVIDIA roots: not the simulated PKI's
    assert not genuine_roots.verified
    assert Code.NVIDIA_CHAIN_UNTRUSTED in _codes(genuine_roots)
    assert len(cache.chains) == chains + 1
    assert len(cache.rims) == rims  # the simulated RIMs fail under the real root: nothing stored


def test_nvidia_cache_tampered_certificate_misses() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    ica = ev.chain[2].public_bytes(Encoding.DER)
    tampered = x509.load_der_x509_certificate(_flip(ica, len(ica) - 10))  # a byte of the signature
    chain_pem = pem_chain((*ev.chain[:2], tampered, *ev.chain[3:]))
    assert parse_device_chain(chain_pem)[2] != ica
    cold = _cold_then_warm(ev, cache, chain_pem=chain_pem)
    assert Code.NVIDIA_CHAIN_UNTRUSTED in _codes(cold)
    assert len(cache.chains) == 2


def test_nvidia_cache_tampered_rim_misses() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    driver, vbios = ev.rim_xml
    at = driver.index(b"Hash0=") + 10  # inside the first measurement's hex value
    tampered = driver[:at] + (b"0" if driver[at : at + 1] != b"0" else b"1") + driver[at + 1 :]
    cold = _cold_then_warm(ev, cache, rims=(tampered, vbios))
    assert Code.NVIDIA_RIM_SIGNATURE_INVALID in _codes(cold)
    assert len(cache.rims) == 2


def test_nvidia_cache_tampered_ocsp_response_misses() -> None:
    cache = NvidiaVerificationCache()
    ev = _genuine()
    _cold_then_warm(ev, cache)
    responses = [e.response for e in ev.ocsp]
    responses[0] = _flip(responses[0], len(responses[0]) - 1)  # the last byte of the responder certificate
    cold = _cold_then_warm(ev, cache, ocsp=tuple(responses))
    assert not cold.accepted
    assert _codes(cold) & {Code.NVIDIA_OCSP_SIGNATURE_INVALID, Code.NVIDIA_OCSP_MALFORMED, Code.NVIDIA_OCSP_MISSING}


def test_nvidia_cache_ocsp_by_cert_id_key_warm_equals_cold() -> None:
    ev = _genuine()
    keyed = {cert_id_key(e.cert, e.issuer): e.response for e in ev.ocsp}
    cache = NvidiaVerificationCache()
    cold = evaluate_gpu_report(
        ev.report, ev.chain_pem, ev.rim_xml, keyed, NvidiaPolicy(expected_nonce=ev.nonce), ev.trust_store, ev.now
    )
    for _ in range(2):
        warm = evaluate_gpu_report(
            ev.report,
            ev.chain_pem,
            ev.rim_xml,
            keyed,
            NvidiaPolicy(expected_nonce=ev.nonce),
            ev.trust_store,
            ev.now,
            cache=cache,
        )
        assert warm == cold
    assert cold.accepted


def test_nvidia_cache_threads_share_one_cache() -> None:
    cache = NvidiaVerificationCache()
    pki = default_nvidia_pki()
    devices = [pki.build(GpuOptions(device_index=i, nonce=NONCE)) for i in range(4)]
    cold = [_evaluate(ev, None) for ev in devices]
    with ThreadPoolExecutor(max_workers=8) as pool:
        warm = list(pool.map(lambda i: _evaluate(devices[i % 4], cache), range(32)))
    assert warm == [cold[i % 4] for i in range(32)]
    assert all(ev.accepted for ev in cold)


def test_nvidia_cache_bounded() -> None:
    cache = NvidiaVerificationCache(max_entries=2)
    pki = default_nvidia_pki()
    for i in range(4):
        ev = pki.build(GpuOptions(device_index=i, nonce=NONCE))
        assert _evaluate(ev, cache) == _evaluate(ev, None)
    assert len(cache.chains) == 2
    assert len(cache.ocsp) == 2


# ---------------------------------------------------------------------------------------------------------
# The real N1 H100 vector (tests/vectors/nvidia/PROVENANCE-verify.md)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _n1(cache: NvidiaVerificationCache | None, now: datetime, policy: NvidiaPolicy, trust: TrustStore) -> Evaluation:
    """N1 with its two real RIMs, and its seven real OCSP answers unless the policy does not require OCSP."""
    n1 = EXPECTED["N1"]
    rims = tuple((VECTORS / "rim" / n1[k]).read_bytes() for k in ("driver_rim", "vbios_rim"))
    ocsp = tuple((VECTORS / "ocsp" / f).read_bytes() for f in n1["ocsp"].values() if policy.require_ocsp)
    return evaluate_gpu_report(
        (DEVICES / "N1-hopper.bin").read_bytes(),
        (DEVICES / "N1-hopper.pem").read_bytes(),
        rims,
        ocsp,
        policy,
        trust,
        now,
        cache=cache,
    )


def test_nvidia_cache_n1_both_pinned_times_and_later(trust: TrustStore) -> None:
    """One cache through N1 at its RIM time, its device-OCSP time (no instant has all seven answers fresh), the RIM
    time again and the real current time (RIM signers expired): each evaluation equals the uncached one."""
    n1 = EXPECTED["N1"]
    nonce = bytes.fromhex(EXPECTED["devices"][0]["request_nonce"])
    policy = NvidiaPolicy(expected_nonce=nonce)
    cache = NvidiaVerificationCache()
    later = max(datetime.now(UTC), datetime(2026, 11, 23, tzinfo=UTC))
    outcomes = []
    for now in (_at(n1["pinned_now"]), _at(n1["pinned_now_device_ocsp"]), _at(n1["pinned_now"]), later):
        cold = _n1(None, now, policy, trust)
        assert _n1(cache, now, policy, trust) == cold
        assert _n1(cache, now, policy, trust) == cold
        outcomes.append(cold)
    assert outcomes[0].verified
    assert outcomes[0].claims["measres"] == "success"
    assert Code.NVIDIA_RIM_CHAIN_EXPIRED in _codes(outcomes[3])


def test_nvidia_cache_n1_policy_per_call(trust: TrustStore) -> None:
    n1 = _at(EXPECTED["N1"]["pinned_now"])
    cache = NvidiaVerificationCache()
    policies = (NvidiaPolicy(), NvidiaPolicy(require_ocsp=False), NvidiaPolicy(require_rims=False), NvidiaPolicy())
    outcomes = []
    for policy in policies:
        cold = _n1(None, n1, policy, trust)
        assert _n1(cache, n1, policy, trust) == cold
        outcomes.append(cold)
    assert outcomes[1].accepted  # RIMs valid at the pinned time; OCSP not required
    assert not outcomes[0].accepted  # the device OCSP answers are from 2025-08-21
