"""Real quotes from real Intel hardware, verified against the genuine Intel root at their pinned times.

Expected results come from tests/vectors/intel/expected.json (dcap-qvl 0.7.0 plus the Intel-algorithm status
for rows dcap-qvl rejects on policy). At the real current time every case must be rejected: all collateral
there has expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.vectors import INTEL_CASES, IntelCase
from verifier.errors import Code, CollateralError, KeywardError, VerificationFailed
from verifier.evidence.dcap import parse_quote
from verifier.platforms.intel_dcap import IntelVerificationCache, verify_quote
from verifier.trust.intel_collateral import parse_collateral_json
from verifier.trust.store import TrustStore, trust_store_from_certificates

CASE_IDS = [c.id for c in INTEL_CASES]
STATUS_CASES = [c for c in INTEL_CASES if c.expected_status is not None]
NOT_SUPPORTED_CASES = [c for c in INTEL_CASES if c.raw.get("dcap_qvl_error") == "No matching TCB level found"]


def _verify(
    case: IntelCase, trust: TrustStore, now: datetime | None = None, cache: IntelVerificationCache | None = None
) -> object:
    quote = parse_quote(case.quote.read_bytes())
    collateral = parse_collateral_json(case.collateral.read_bytes())
    return verify_quote(quote, collateral, trust, now or case.now, cache)


def test_expected_json_covers_every_case_kind() -> None:
    # Guard against the fixture silently losing rows: 27 cases, both accept and reject kinds present.
    assert len(INTEL_CASES) == 27
    assert len(STATUS_CASES) >= 20
    assert len(NOT_SUPPORTED_CASES) == 6  # P3 P5 P6 P9 G1 T3


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c.id for c in STATUS_CASES])
def test_verify_quote_real_vector_matches_expected_status(case: IntelCase, trust: TrustStore) -> None:
    result = verify_quote(
        parse_quote(case.quote.read_bytes()), parse_collateral_json(case.collateral.read_bytes()), trust, case.now
    )
    assert result.tcb.status == case.expected_status
    expected_advisories = case.raw.get("advisory_ids", case.raw.get("intel_algorithm_advisory_ids"))
    if expected_advisories is not None:
        assert list(result.tcb.advisory_ids) == sorted(expected_advisories)
    if "qe_status" in case.raw:
        assert result.tcb.qe_status == case.raw["qe_status"]
    assert result.collateral.fmspc == case.raw["fmspc"]
    assert result.quote.header.version == case.raw["quote_version"]
    assert result.quote.body_type == case.raw["body_type"]
    assert result.simulated is False


@pytest.mark.parametrize("case", NOT_SUPPORTED_CASES, ids=[c.id for c in NOT_SUPPORTED_CASES])
def test_verify_quote_real_vector_below_all_levels_not_supported(case: IntelCase, trust: TrustStore) -> None:
    with pytest.raises(VerificationFailed) as exc:
        _verify(case, trust)
    assert exc.value.code == Code.INTEL_TCB_NOT_SUPPORTED


def test_verify_quote_p8_wrong_tee_collateral_rejected(trust: TrustStore) -> None:
    case = next(c for c in INTEL_CASES if c.id == "P8")
    with pytest.raises(CollateralError) as exc:
        _verify(case, trust)
    # The Processor-CA CRL offered for a Platform-CA PCK is caught first; the SGX TCB Info would be next.
    assert exc.value.code == Code.INTEL_COLLATERAL_CRL_WRONG_ISSUER


@pytest.mark.parametrize("case", INTEL_CASES, ids=CASE_IDS)
def test_verify_quote_real_vector_rejected_at_real_time(case: IntelCase, trust: TrustStore) -> None:
    # 2026-11-23 and later: every collateral set here has expired.
    real_now = max(datetime.now(UTC), datetime(2026, 11, 23, tzinfo=UTC))
    with pytest.raises(KeywardError) as exc:
        _verify(case, trust, real_now)
    if case.id != "P8":
        assert exc.value.code in {
            Code.INTEL_COLLATERAL_CRL_EXPIRED,
            Code.INTEL_COLLATERAL_TCB_INFO_EXPIRED,
            Code.INTEL_COLLATERAL_QE_IDENTITY_EXPIRED,
        }


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c.id for c in STATUS_CASES])
def test_verify_quote_real_vector_rejected_outside_window(case: IntelCase, trust: TrustStore) -> None:
    with pytest.raises(CollateralError) as before:
        _verify(case, trust, case.window_start - timedelta(seconds=1))
    assert before.value.code.value.endswith("not_yet_valid")
    with pytest.raises(CollateralError) as after:
        _verify(case, trust, case.window_end + timedelta(seconds=1))
    assert after.value.code.value.endswith("expired")
    # Both edges of the window are inside it.
    _verify(case, trust, case.window_start)
    _verify(case, trust, case.window_end)


@pytest.mark.parametrize("case", STATUS_CASES, ids=[c.id for c in STATUS_CASES])
def test_verify_quote_warm_cache_matches_cold(case: IntelCase, trust: TrustStore) -> None:
    cache = IntelVerificationCache()
    cold = _verify(case, trust)
    first = _verify(case, trust, cache=cache)
    warm = _verify(case, trust, cache=cache)
    assert cold == first == warm
    assert len(cache.chains) == len(cache.collateral) == len(cache.bindings) == 1


def test_verify_quote_warm_cache_still_checks_time(trust: TrustStore) -> None:
    case = next(c for c in INTEL_CASES if c.id == "P2")
    cache = IntelVerificationCache()
    _verify(case, trust, cache=cache)
    with pytest.raises(CollateralError) as exc:
        _verify(case, trust, case.window_end + timedelta(seconds=1), cache=cache)
    assert exc.value.code == Code.INTEL_COLLATERAL_CRL_EXPIRED


def test_verify_quote_warm_cache_still_checks_quote_signature(trust: TrustStore) -> None:
    case = next(c for c in INTEL_CASES if c.id == "P2")
    cache = IntelVerificationCache()
    _verify(case, trust, cache=cache)
    raw = bytearray(case.quote.read_bytes())
    raw[184] ^= 0x01  # one bit of MRTD: chain and collateral are unchanged, so their cache entries hit
    with pytest.raises(VerificationFailed) as exc:
        verify_quote(
            parse_quote(bytes(raw)), parse_collateral_json(case.collateral.read_bytes()), trust, case.now, cache
        )
    assert exc.value.code == Code.INTEL_QUOTE_SIGNATURE_INVALID


def test_verify_quote_unpinned_root_rejected(trust: TrustStore) -> None:
    # A trust store that pins a different root: the genuine chain must not verify under it.
    from cryptography import x509

    case = next(c for c in INTEL_CASES if c.id == "P2")
    other = x509.load_pem_x509_certificate(
        (case.quote.parents[1] / "roots" / "Intel_SGX_PCK_Platform_CA.pem").read_bytes()
    )
    store = trust_store_from_certificates({"intel.sgx_root": other}, simulated=True)
    with pytest.raises(VerificationFailed) as exc:
        _verify(case, store)
    assert exc.value.code == Code.INTEL_PCK_CHAIN_UNTRUSTED


def test_verify_quote_naive_now_refused(trust: TrustStore) -> None:
    case = next(c for c in INTEL_CASES if c.id == "P2")
    with pytest.raises(ValueError, match="timezone-aware"):
        _verify(case, trust, datetime(2025, 6, 19, 12))  # noqa: DTZ001 - the point of the test
