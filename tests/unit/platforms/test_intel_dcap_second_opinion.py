"""dcap-qvl 0.7.0 as an independent second opinion, run live (not just the recorded expected.json).

For every real vector dcap-qvl accepts, Keyward reports the same TCB status and advisory IDs; where dcap-qvl
rejects, Keyward does not accept. The same holds for simulated evidence under the test root
(``verify_with_root_ca``), including defective variants dcap-qvl detects.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.vectors import INTEL_CASES, IntelCase
from verifier.appraisal.intel import IntelPolicy
from verifier.evidence.dcap import decode_quote_bytes
from verifier.platforms.evaluation import evaluate_intel_quote
from verifier.simulation.intel_pki import Defect, QuoteOptions, default_pki
from verifier.trust.intel_collateral import parse_collateral_json
from verifier.trust.store import TrustStore

dcap_qvl: Any = pytest.importorskip("dcap_qvl")


def _qvl(quote: bytes, collateral_json: str, now: int, root_der: bytes | None = None) -> tuple[str, list[str]] | None:
    coll = dcap_qvl.QuoteCollateralV3.from_json(collateral_json)
    try:
        r = (
            dcap_qvl.verify(quote, coll, now)
            if root_der is None
            else dcap_qvl.verify_with_root_ca(quote, coll, root_der, now)
        )
    except ValueError:
        return None
    return str(r.status), sorted(r.advisory_ids)


@pytest.mark.parametrize("case", INTEL_CASES, ids=[c.id for c in INTEL_CASES])
def test_keyward_agrees_with_dcap_qvl_on_real_vector(case: IntelCase, trust: TrustStore) -> None:
    quote = decode_quote_bytes(case.quote.read_bytes())
    text = case.collateral.read_text()
    theirs = _qvl(quote, text, int(case.now.timestamp()))
    ours = evaluate_intel_quote(quote, parse_collateral_json(text), trust, case.now, IntelPolicy())
    if theirs is None:
        assert not ours.accepted
    else:
        assert ours.verified
        assert (ours.tcb_status, list(ours.advisory_ids)) == theirs


SIMULATED = [
    QuoteOptions(tee="tdx", version=4),
    QuoteOptions(tee="tdx", version=5, body_type=3),
    QuoteOptions(tee="tdx", version=5, body_type=4),
    QuoteOptions(tee="sgx", version=3),
]
# Defects dcap-qvl 0.7.0 is known to catch (others it does not check are covered by Keyward's own tests).
QVL_DETECTS = [
    Defect.WRONG_ROOT,
    Defect.PCK_BAD_SIGNATURE,
    Defect.PCK_REVOKED,
    Defect.TCB_INFO_BAD_SIGNATURE,
    Defect.QE_REPORT_BAD_SIGNATURE,
    Defect.AK_BINDING_WRONG,
    Defect.QUOTE_BAD_SIGNATURE,
    Defect.TCB_NOT_SUPPORTED,
    Defect.FMSPC_MISMATCH,
    Defect.QE_MRSIGNER_MISMATCH,
    Defect.DEBUG,
]


@pytest.mark.parametrize("opts", SIMULATED, ids=lambda o: f"{o.tee}-v{o.version}-b{o.resolved_body_type()}")
@pytest.mark.parametrize("defect", [None, *QVL_DETECTS], ids=lambda d: "genuine" if d is None else d.value)
def test_keyward_agrees_with_dcap_qvl_on_simulated(opts: QuoteOptions, defect: Defect | None) -> None:
    pki = default_pki()
    ev = pki.build(opts, defect=defect)
    theirs = _qvl(ev.quote, ev.collateral_json, ev.now_secs, pki.root.public_bytes(Encoding.DER))
    ours = evaluate_intel_quote(
        ev.quote, parse_collateral_json(ev.collateral_json), ev.trust_store, ev.now, IntelPolicy()
    )
    assert ours.accepted == (theirs is not None)
    if theirs is not None:
        assert (ours.tcb_status, list(ours.advisory_ids)) == theirs
