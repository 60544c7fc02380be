"""Collateral selection: per document, the newer of the supplied and the cached copy is verified.

Each test changes one document (one slot) at a time. The simulated Intel evidence comes with a TCB Info and QE
Identity issued 10 days before SIM_NOW (evaluation data number 17), a PCK CRL issued 5 days before and a Root CA
CRL issued 30 days before (CRL Number 1); :mod:`tests.support.dated_collateral` builds genuine ones with other
dates and numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.dated_collateral import (
    amd_crl,
    pck_crl,
    pcs_body,
    qe_identity,
    root_ca_crl,
    supplied,
    tcb_info,
    with_documents,
)
from verifier.collateral.selection import (
    IntelDocuments,
    IssuedCrl,
    SignedJson,
    Source,
    crl_chain,
    crl_version,
    qe_identity_version,
    select_amd_crl,
    select_intel_collateral,
    served_document_version,
    tcb_info_version,
)
from verifier.errors import Code, Fault, KeywardError
from verifier.evidence.dcap import parse_quote
from verifier.evidence.snp import parse_snp_report
from verifier.platforms.amd_snp import verify_snp_report
from verifier.platforms.intel_dcap import verify_quote
from verifier.simulation.amd_pki import SERIALS, CrlOptions, ReportOptions, default_amd_pki
from verifier.simulation.intel_pki import SIM_NOW, Defect, Evidence, QuoteOptions, default_pki
from verifier.trust.intel_collateral import Collateral

DAY = timedelta(days=1)
NOW = SIM_NOW
SLOTS = ("tcb_info", "qe_identity", "pck_crl", "root_ca_crl")


@pytest.fixture(scope="module")
def ev() -> Evidence:
    return default_pki().build(QuoteOptions())


def _documents(c: Collateral) -> IntelDocuments:
    """Every document of ``c`` as the cache would hold it."""
    return IntelDocuments(
        tcb_info=SignedJson(c.tcb_info_raw, c.tcb_info_signature, c.tcb_info_issuer_chain),
        qe_identity=SignedJson(c.qe_identity_raw, c.qe_identity_signature, c.qe_identity_issuer_chain),
        pck_crl=IssuedCrl(c.pck_crl, c.pck_crl_issuer_chain),
        root_ca_crl=IssuedCrl(c.root_ca_crl),
    )


def _slot(c: Collateral, slot: str) -> bytes:
    return {
        "tcb_info": c.tcb_info_raw,
        "qe_identity": c.qe_identity_raw,
        "pck_crl": c.pck_crl,
        "root_ca_crl": c.root_ca_crl,
    }[slot]


#: Per slot: (an older, a newer) genuine copy than the evidence's own, as a change to a Collateral.
Change = Callable[[Evidence, Collateral], Collateral]
OLDER: dict[str, Change] = {
    "tcb_info": lambda ev, c: with_documents(c, tcb=tcb_info(ev, issued=NOW - 25 * DAY)),
    "qe_identity": lambda ev, c: with_documents(c, qe=qe_identity(ev, issued=NOW - 25 * DAY)),
    "pck_crl": lambda ev, c: with_documents(c, pck=pck_crl(ev, issued=NOW - 25 * DAY)),
    "root_ca_crl": lambda ev, c: with_documents(c, root=root_ca_crl(issued=NOW - 300 * DAY)),
}
NEWER: dict[str, Change] = {
    "tcb_info": lambda ev, c: with_documents(c, tcb=tcb_info(ev, issued=NOW - DAY, number=18)),
    "qe_identity": lambda ev, c: with_documents(c, qe=qe_identity(ev, issued=NOW - DAY, number=18)),
    "pck_crl": lambda ev, c: with_documents(c, pck=pck_crl(ev, issued=NOW - DAY, number=2)),
    "root_ca_crl": lambda ev, c: with_documents(c, root=root_ca_crl(issued=NOW - DAY, number=2)),
}


# ----------------------------------------------------------------------------------------------------------
# Intel


@pytest.mark.parametrize("slot", SLOTS)
def test_select_intel_collateral_older_supplied_loses_to_cache(ev: Evidence, slot: str) -> None:
    own = supplied(ev)
    older = OLDER[slot](ev, own)

    selection = select_intel_collateral(older, _documents(own))

    assert _slot(selection.collateral, slot) == _slot(own, slot)
    assert selection.sources()[slot] is Source.CACHED
    assert selection.collateral == own


@pytest.mark.parametrize("slot", SLOTS)
def test_select_intel_collateral_newer_supplied_wins(ev: Evidence, slot: str) -> None:
    own = supplied(ev)
    newer = NEWER[slot](ev, own)

    selection = select_intel_collateral(newer, _documents(own))

    assert _slot(selection.collateral, slot) == _slot(newer, slot)
    assert selection.sources()[slot] is Source.SUPPLIED
    assert selection.collateral == newer  # each chain travels with its document
    assert sum(s is Source.SUPPLIED for s in selection.sources().values()) == 1


def test_select_intel_collateral_cache_empty_uses_supplied(ev: Evidence) -> None:
    selection = select_intel_collateral(supplied(ev), IntelDocuments())
    assert selection.collateral == supplied(ev)
    assert set(selection.sources().values()) == {Source.SUPPLIED}


@pytest.mark.parametrize("slot", SLOTS)
def test_select_intel_collateral_cache_missing_one_document_uses_supplied_for_it(ev: Evidence, slot: str) -> None:
    own = supplied(ev)
    cached = _documents(NEWER[slot](ev, own))
    partial = IntelDocuments(**{s: getattr(cached, s) for s in SLOTS if s != slot})

    selection = select_intel_collateral(own, partial)

    assert selection.sources()[slot] is Source.SUPPLIED
    assert {s for s, src in selection.sources().items() if src is Source.CACHED} == set(SLOTS) - {slot}


def test_select_intel_collateral_tie_goes_to_cache(ev: Evidence) -> None:
    """Same thisUpdate and CRL Number, other content: the auditor's repro (a PCK CRL that lists the PCK)."""
    revoked = default_pki().build(QuoteOptions(), defect=Defect.PCK_REVOKED)
    assert revoked.pcs.pck_crl != ev.pcs.pck_crl

    selection = select_intel_collateral(supplied(ev), _documents(supplied(revoked)))

    assert selection.collateral.pck_crl == revoked.pcs.pck_crl
    assert selection.sources()["pck_crl"] is Source.CACHED


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda ev, c: with_documents(c, tcb=tcb_info(ev, issued=NOW - DAY, number=16)), id="tcb_info"),
        pytest.param(lambda ev, c: with_documents(c, qe=qe_identity(ev, issued=NOW - DAY, number=16)), id="qe"),
    ],
)
def test_select_intel_collateral_freshly_issued_older_evaluation_loses(ev: Evidence, change: Change) -> None:
    """PCS re-issues older evaluation data on request with a new issueDate: the evaluation number decides first."""
    own = supplied(ev)
    selection = select_intel_collateral(change(ev, own), _documents(own))
    assert selection.collateral == own


UNREADABLE: dict[str, Change] = {
    "tcb_info": lambda ev, c: with_documents(c, tcb=SignedJson(b'{"issueDate":"yesterday"}', bytes(64), ())),
    "qe_identity": lambda ev, c: with_documents(c, qe=SignedJson(b"not json", bytes(64), ())),
    "pck_crl": lambda ev, c: with_documents(c, pck=IssuedCrl(b"\x30\x03\x02\x01\x00")),
    "root_ca_crl": lambda ev, c: with_documents(c, root=IssuedCrl(b"not a crl")),
}

#: What verification rejects each unreadable document with.
UNREADABLE_CODE: dict[str, Code] = {
    "tcb_info": Code.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,  # no issuer chain: checked before the body
    "qe_identity": Code.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
    "pck_crl": Code.INTEL_COLLATERAL_MALFORMED,
    "root_ca_crl": Code.INTEL_COLLATERAL_MALFORMED,
}


@pytest.mark.parametrize("slot", SLOTS)
def test_select_intel_collateral_unreadable_supplied_kept_for_verification_to_reject(ev: Evidence, slot: str) -> None:
    """Fail closed: a supplied document that cannot be compared is verified as it is (and rejected with its code),
    never silently replaced by the cached one."""
    own = supplied(ev)
    bad = UNREADABLE[slot](ev, own)

    selection = select_intel_collateral(bad, _documents(own))

    assert _slot(selection.collateral, slot) == _slot(bad, slot)
    assert selection.sources()[slot] is Source.SUPPLIED
    with pytest.raises(KeywardError) as exc:
        verify_quote(parse_quote(ev.quote), selection.collateral, ev.trust_store, NOW)
    assert (exc.value.code, exc.value.fault) == (UNREADABLE_CODE[slot], Fault.COLLATERAL)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda ev, c: with_documents(
                c, tcb=tcb_info(ev, issued=NOW - 25 * DAY, fmspc=bytes.fromhex("5EC0DE000001"))
            ),
            id="tcb-info-other-fmspc",
        ),
        pytest.param(
            lambda ev, c: with_documents(
                c, pck=IssuedCrl(default_pki().build(QuoteOptions(), defect=Defect.PCK_CRL_WRONG_ISSUER).pcs.pck_crl)
            ),
            id="pck-crl-other-ca",
        ),
    ],
)
def test_select_intel_collateral_supplied_for_something_else_kept_for_verification_to_reject(
    ev: Evidence, change: Change
) -> None:
    own = supplied(ev)
    other = change(ev, own)

    selection = select_intel_collateral(other, _documents(own))

    assert selection.collateral == other
    with pytest.raises(KeywardError) as e:
        verify_quote(parse_quote(ev.quote), selection.collateral, ev.trust_store, NOW)
    assert e.value.code in (Code.INTEL_COLLATERAL_FMSPC_MISMATCH, Code.INTEL_COLLATERAL_CRL_WRONG_ISSUER)


def test_select_intel_collateral_cached_revocation_not_hidden_by_older_supplied(ev: Evidence) -> None:
    """The auditor's rider repro, end to end: the cache lists the PCK as revoked; the attester sends the CRL from
    before the revocation, still inside its window. Verification must see the revocation."""
    revocation = pck_crl(ev, issued=NOW - DAY, number=2, revoked=(ev.pck_chain[0].serial_number,))
    cached = _documents(with_documents(supplied(ev), pck=revocation))
    quote = parse_quote(ev.quote)
    assert verify_quote(quote, supplied(ev), ev.trust_store, NOW).tcb.status == "UpToDate"  # what it hid

    selection = select_intel_collateral(supplied(ev), cached)

    with pytest.raises(KeywardError) as e:
        verify_quote(quote, selection.collateral, ev.trust_store, NOW)
    assert e.value.code == Code.INTEL_PCK_REVOKED


def test_select_intel_collateral_cached_tcb_recovery_not_hidden_by_older_supplied(ev: Evidence) -> None:
    recovery = tcb_info(ev, issued=NOW - DAY, number=18, top_status="OutOfDate")
    cached = _documents(with_documents(supplied(ev), tcb=recovery))

    selection = select_intel_collateral(supplied(ev), cached)

    assert verify_quote(parse_quote(ev.quote), selection.collateral, ev.trust_store, NOW).tcb.status == "OutOfDate"


# ----------------------------------------------------------------------------------------------------------
# Versions


def test_tcb_info_version_reads_number_issue_date_and_subject(ev: Evidence) -> None:
    v = tcb_info_version(supplied(ev).tcb_info_raw)
    assert v is not None
    assert (v.subject, v.issued, v.number) == (f"TDX:{ev.platform.fmspc.hex()}", NOW - 10 * DAY, 17)
    q = qe_identity_version(supplied(ev).qe_identity_raw)
    assert q is not None
    assert (q.subject, q.issued, q.number) == ("TD_QE", NOW - 10 * DAY, 17)


def test_crl_version_without_crl_number_orders_below_numbered() -> None:
    bare, numbered = root_ca_crl(issued=NOW, number=None), root_ca_crl(issued=NOW, number=1)
    a, b = crl_version(bare.der), crl_version(numbered.der)
    assert a is not None
    assert b is not None
    assert a.number == -1
    assert b.newer_than(a)
    assert not a.newer_than(b)


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("tcb_info", b'{"tcbInfo":{"issueDate":"2026-01-01T00:00:00Z"},"signature":"00"}'),
        ("tcb_info", b'{"tcbInfo":{"issueDate":"2026-01-01T00:00:00","tcbEvaluationDataNumber":1,"fmspc":"00"}}'),
        ("qe_identity", b"[]"),
        ("pck_crl", b""),
        ("root_ca_crl", b"garbage"),
        ("crl", b"\x30\x03\x02\x01\x00"),
        ("vcek", b"\x30\x03\x02\x01\x00"),
    ],
    ids=["no-number", "naive-time", "not-object", "empty", "garbage", "not-a-crl", "vcek-unordered"],
)
def test_served_document_version_unreadable_is_none(kind: str, body: bytes) -> None:
    assert served_document_version(kind, body) is None


def test_served_document_version_reads_pcs_bodies_and_crl_encodings(ev: Evidence) -> None:
    tcb = tcb_info(ev, issued=NOW - DAY, number=18)
    assert served_document_version("tcb_info", pcs_body("tcbInfo", tcb)) == tcb_info_version(tcb.raw)
    assert served_document_version("qe_identity", ev.pcs.qe_identity_body) == qe_identity_version(
        supplied(ev).qe_identity_raw
    )
    expected = crl_version(ev.pcs.root_ca_crl)
    assert served_document_version("root_ca_crl", ev.pcs.root_ca_crl.hex().encode()) == expected  # PCCS: hex


# ----------------------------------------------------------------------------------------------------------
# AMD


ASVK = SERIALS["genoa", "asvk"]
ARK = default_amd_pki().ark["genoa"].subject


@pytest.fixture(scope="module")
def vlek_revoked() -> tuple[bytes, bytes, bytes]:
    """A VLEK report, its leaf and the cached VLEK-chain CRL that lists its ASVK (issued 5 days before NOW)."""
    ev = default_amd_pki().build(ReportOptions(signing_key="vlek"), crl=CrlOptions(revoked_serials=(ASVK,)))
    assert ev.crl_der is not None
    return ev.report, ev.leaf_der, ev.crl_der


def _verify_vlek(report: bytes, leaf: bytes, crl: bytes | None) -> None:
    pki = default_amd_pki()
    verify_snp_report(parse_snp_report(report), leaf, pki.trust_store, NOW, crl_der=crl)


def test_select_amd_crl_older_supplied_loses_to_cache(vlek_revoked: tuple[bytes, bytes, bytes]) -> None:
    """The auditor's t2 repro: an older ARK-signed CRL, still inside its window, does not hide the ASVK's
    revocation."""
    report, leaf, cached = vlek_revoked
    older = amd_crl("genoa", issued=NOW - 20 * DAY, lifetime=21 * DAY)
    _verify_vlek(report, leaf, older)  # on its own it verifies: what it would hide

    choice = select_amd_crl(older, cached, chain="vlek", ark_subject=ARK)

    assert (choice.value, choice.source) == (cached, Source.CACHED)
    with pytest.raises(KeywardError) as e:
        _verify_vlek(report, leaf, choice.value)
    assert e.value.code == Code.SNP_CHAIN_REVOKED


def test_select_amd_crl_newer_supplied_naming_no_chain_loses_to_cache(
    vlek_revoked: tuple[bytes, bytes, bytes],
) -> None:
    """A newer ARK-signed CRL that does not say its chain may be the VCEK chain's, which does not list the ASVK."""
    report, leaf, cached = vlek_revoked
    vcek_chain_crl = amd_crl("genoa", issued=NOW - DAY)
    _verify_vlek(report, leaf, vcek_chain_crl)  # on its own it verifies: what it would hide

    choice = select_amd_crl(vcek_chain_crl, cached, chain="vlek", ark_subject=ARK)

    assert (choice.value, choice.source) == (cached, Source.CACHED)
    with pytest.raises(KeywardError) as e:
        _verify_vlek(report, leaf, choice.value)
    assert e.value.code == Code.SNP_CHAIN_REVOKED


@pytest.mark.parametrize("cached_present", [True, False], ids=["cache", "no-cache"])
def test_select_amd_crl_other_chain_refused(vlek_revoked: tuple[bytes, bytes, bytes], cached_present: bool) -> None:
    _report, _leaf, cached = vlek_revoked
    other = amd_crl("genoa", issued=NOW - DAY, names_chain="vcek")
    assert crl_chain(other) == "vcek"

    choice = select_amd_crl(other, cached if cached_present else None, chain="vlek", ark_subject=ARK)

    assert choice.value == (cached if cached_present else None)
    assert choice.source is Source.CACHED


def test_select_amd_crl_newer_supplied_naming_this_chain_wins(vlek_revoked: tuple[bytes, bytes, bytes]) -> None:
    report, leaf, cached = vlek_revoked
    newer = amd_crl("genoa", issued=NOW - DAY, number=2, revoked=(ASVK, 0x1234), names_chain="vlek")

    choice = select_amd_crl(newer, cached, chain="vlek", ark_subject=ARK)

    assert (choice.value, choice.source) == (newer, Source.SUPPLIED)
    with pytest.raises(KeywardError) as e:
        _verify_vlek(report, leaf, choice.value)
    assert e.value.code == Code.SNP_CHAIN_REVOKED


def test_select_amd_crl_older_supplied_naming_this_chain_loses(vlek_revoked: tuple[bytes, bytes, bytes]) -> None:
    _report, _leaf, cached = vlek_revoked
    older = amd_crl("genoa", issued=NOW - 20 * DAY, names_chain="vlek")
    assert select_amd_crl(older, cached, chain="vlek", ark_subject=ARK).value == cached


@pytest.mark.parametrize(
    "cached",
    [pytest.param(None, id="not-cached"), pytest.param(b"not a crl", id="cached-unreadable")],
)
def test_select_amd_crl_no_usable_cache_uses_supplied(cached: bytes | None) -> None:
    crl = amd_crl("genoa", issued=NOW - 20 * DAY, lifetime=21 * DAY)
    choice = select_amd_crl(crl, cached, chain="vlek", ark_subject=ARK)
    assert (choice.value, choice.source) == (crl, Source.SUPPLIED)


def test_select_amd_crl_cached_of_another_ark_unusable() -> None:
    milan = default_amd_pki().crl("milan")
    crl = amd_crl("genoa", issued=NOW - 20 * DAY, lifetime=21 * DAY)
    assert select_amd_crl(crl, milan, chain="vcek", ark_subject=ARK).value == crl


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        pytest.param(b"\x30\x03\x02\x01\x00", Code.SNP_CRL_MALFORMED, id="unreadable"),
        pytest.param(default_amd_pki().crl("milan"), Code.SNP_CRL_WRONG_ISSUER, id="another-ark"),
    ],
)
def test_select_amd_crl_bad_supplied_kept_for_verification_to_reject(
    vlek_revoked: tuple[bytes, bytes, bytes], bad: bytes, code: Code
) -> None:
    report, leaf, cached = vlek_revoked

    choice = select_amd_crl(bad, cached, chain="vlek", ark_subject=ARK)

    assert (choice.value, choice.source) == (bad, Source.SUPPLIED)
    with pytest.raises(KeywardError) as e:
        _verify_vlek(report, leaf, choice.value)
    assert e.value.code == code


def test_crl_chain_reads_kds_issuing_distribution_point() -> None:
    assert crl_chain(amd_crl("milan", issued=NOW, names_chain="vlek")) == "vlek"
    assert crl_chain(amd_crl("milan", issued=NOW, names_chain="vcek")) == "vcek"
    assert crl_chain(amd_crl("milan", issued=NOW)) is None
    assert crl_chain(default_amd_pki().crl("genoa")) is None  # the simulated KDS CRL says nothing of its chain
    assert crl_chain(default_pki().build(QuoteOptions()).pcs.pck_crl) is None
    assert crl_chain(b"garbage") is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_select_amd_crl_mutated_crls_never_raise(data: st.DataObject) -> None:
    """cryptography raises ValueError, InvalidVersion or TypeError on bad CRL DER, some only when a field is
    touched: selection reads none of them unguarded, whichever copy is mutated."""
    crl = default_amd_pki().build().crl_der
    assert crl is not None
    mutated = bytearray(crl)
    for _ in range(data.draw(st.integers(1, 4))):
        mutated[data.draw(st.integers(0, len(crl) - 1))] = data.draw(st.integers(0, 255))
    select_amd_crl(bytes(mutated), crl, chain="vcek", ark_subject=None)
    select_amd_crl(crl, bytes(mutated), chain="vcek", ark_subject=None)
    served_document_version("crl", bytes(mutated))


def test_select_amd_crl_unknown_crl_version_is_unreadable_not_a_crash() -> None:
    """x509.InvalidVersion is not a ValueError: a CRL whose version field is 0x62 is an unreadable copy."""
    crl = default_amd_pki().build().crl_der
    assert crl is not None
    at = crl.index(b"\x02\x01\x01")  # TBSCertList.version INTEGER 1 (v2)
    bad = crl[: at + 2] + b"\x62" + crl[at + 3 :]
    assert served_document_version("crl", bad) is None
    assert select_amd_crl(bad, crl, chain="vcek", ark_subject=None).source is Source.SUPPLIED  # verification rejects
    assert select_amd_crl(crl, bad, chain="vcek", ark_subject=None).value == crl
