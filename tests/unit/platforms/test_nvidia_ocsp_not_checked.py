"""NVIDIA OCSP and the device chain: a device level is OCSP-checked only when its certificate chains to the pinned root.

A simulated H100 (verifier/simulation/nvidia_pki.py) whose chain has one certificate swapped for the one of a
forged PKI (``Defect.WRONG_ROOT``'s, same names, other keys): every level at or above the first broken link from
the root down is ``not_checked`` and adds no reason; the levels above it are still checked. Cached and uncached
evaluations agree.
"""

from __future__ import annotations

import functools

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.appraisal.nvidia import NvidiaPolicy
from verifier.errors import Code
from verifier.evidence.nvidia import parse_gpu_report
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.nvidia_gpu import NvidiaVerificationCache, evaluate_device
from verifier.simulation.nvidia_pki import Defect, GpuOptions, NvidiaEvidence, default_nvidia_pki

DEVICE_LEVELS = ("device-L4", "device-L3", "device-L2")  # certificates 1 (BROM), 2 (ICA), 3 (Identity)


@functools.cache
def _evidence(defect: Defect | None = None) -> NvidiaEvidence:
    return default_nvidia_pki().build(GpuOptions(), defect)


def _evaluate(swapped: int, cache: NvidiaVerificationCache | None) -> Evaluation:
    """The genuine evidence with device certificate ``swapped`` taken from the forged-root chain."""
    genuine, forged = _evidence(), _evidence(Defect.WRONG_ROOT)
    chain = [c.public_bytes(Encoding.DER) for c in genuine.chain]
    chain[swapped] = forged.chain[swapped].public_bytes(Encoding.DER)
    return evaluate_device(
        parse_gpu_report(genuine.report),
        tuple(chain),
        genuine.rim_xml,
        tuple(e.response for e in genuine.ocsp),
        NvidiaPolicy(expected_nonce=genuine.nonce),
        genuine.trust_store,
        genuine.now,
        cache=cache,
    )


def _device_statuses(ev: Evaluation) -> tuple[str, ...]:
    entries = ev.claims["ocsp"]
    assert isinstance(entries, list)
    by_level = {e["level"]: e["status"] for e in entries}
    return tuple(by_level[level] for level in DEVICE_LEVELS)


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
@pytest.mark.parametrize(
    ("swapped", "expected"),
    [
        (1, ("not_checked", "good", "good")),  # BROM forged: links 0 and 1 fail
        (2, ("not_checked", "not_checked", "good")),  # ICA forged: links 1 and 2 fail
        (3, ("not_checked", "not_checked", "not_checked")),  # Identity forged: links 2 and 3 fail
    ],
    ids=["brom", "ica", "identity"],
)
def test_nvidia_ocsp_not_checked_at_or_above_the_broken_link(
    swapped: int, expected: tuple[str, ...], cached: bool
) -> None:
    cache = NvidiaVerificationCache() if cached else None
    for _ in range(2 if cached else 1):  # cached: the second evaluation is the warm one
        ev = _evaluate(swapped, cache)
        assert _device_statuses(ev) == expected
        assert {r.code for r in ev.reasons} == {Code.NVIDIA_CHAIN_UNTRUSTED}
        assert not ev.verified


def test_nvidia_ocsp_genuine_chain_all_levels_checked() -> None:
    genuine = _evidence()
    ev = evaluate_device(
        parse_gpu_report(genuine.report),
        tuple(c.public_bytes(Encoding.DER) for c in genuine.chain),
        genuine.rim_xml,
        tuple(e.response for e in genuine.ocsp),
        NvidiaPolicy(expected_nonce=genuine.nonce),
        genuine.trust_store,
        genuine.now,
    )
    assert ev.accepted
    assert _device_statuses(ev) == ("good", "good", "good")
