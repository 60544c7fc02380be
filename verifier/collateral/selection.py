"""Which copy of a vendor document a decision verifies with: the one sent with the evidence, or the cached one.

An attester may send collateral with its evidence (a dcap-qvl ``QuoteCollateralV3`` for Intel, an AMD CRL for
SEV-SNP). Every such document is genuine only if it verifies, but a genuine *old* one verifies too while it is
inside its validity window: a PCK CRL or TCB Info up to ~30 days old, a Root CA CRL up to a year old. Used as
given, it hides a revocation or a TCB recovery the service already knows about. So each document slot is decided
on its own, and the newer copy is verified:

* **Version** (:class:`DocumentVersion`): TCB Info and QE Identity by ``tcbEvaluationDataNumber``, then
  ``issueDate``; CRLs by ``thisUpdate``, then CRL Number. The evaluation number decides first because Intel PCS
  re-issues older evaluation data on request (``?tcbEvaluationDataNumber=N``, intel-dcap.md §6) with a fresh
  ``issueDate``: ordering by date first would let such a document undo a TCB recovery.
* **Rules, per slot** (:func:`choose`): the supplied copy is used (1) when it cannot be read, so verification
  rejects it with its stable code exactly as before (fail closed: a malformed document is never silently
  replaced), (2) when the cache has no readable copy, (3) when the two are not about the same thing (another
  FMSPC, TEE or CRL issuer: verification rejects the supplied one for that), (4) when it is strictly newer.
  Otherwise, ties included, the cached copy is used. A certificate chain travels with its document.
* **AMD CRLs** (:func:`select_amd_crl`): KDS serves one CRL per product for each chain (``/vcek/v1/<P>/crl``,
  ``/vlek/v1/<P>/crl``), both issued and signed by the same ARK, so neither the issuer nor the signature says
  which chain a CRL is for. A supplied CRL names its chain only through an IssuingDistributionPoint URI; one that
  names the other chain is never used. One that names no chain can be the other chain's CRL (which does not list
  this chain's ASK/ASVK), so it never beats a cached CRL of this chain; it is used only when the cache has none.

Pure: no I/O, no clock. Nothing here verifies a signature or a validity window: whichever copy is chosen is
verified in full by :mod:`verifier.platforms`, so a wrong choice can only cause a rejection, never an acceptance
the chosen document would not earn on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final, Generic, TypeVar

from cryptography import x509

from verifier.errors import KeywardError
from verifier.evidence.snp import SigningKeyName
from verifier.trust.intel_collateral import Collateral, crl_der, json_document, signed_member

T = TypeVar("T")

#: The kinds of cache rows whose copies are ordered (VCEKs are not: KDS re-issues the same one on every download).
ORDERED_KINDS: Final = frozenset({"tcb_info", "qe_identity", "pck_crl", "root_ca_crl", "crl"})
#: The signed member of a PCS response body, per kind.
_SIGNED_MEMBER: Final = {"tcb_info": "tcbInfo", "qe_identity": "enclaveIdentity"}
#: The KDS CRL path a distribution point URI ends with: ``/vcek/v1/Milan/crl``.
_KDS_CRL_PATH: Final = re.compile(r"/(vcek|vlek)/v1/[A-Za-z]+/crl$")


@dataclass(frozen=True, slots=True)
class DocumentVersion:
    """Where a document stands in its issuer's sequence. Two versions compare only if ``subject`` is equal."""

    #: What the document is about: ``"TDX:b0c06f000000"`` (TCB Info), ``"TD_QE"`` (QE Identity), or a CRL's
    #: issuer (RFC 4514).
    subject: str
    issued: datetime  # issueDate / thisUpdate
    number: int  # tcbEvaluationDataNumber / CRL Number (-1: a CRL without one)
    #: TCB Info and QE Identity: the evaluation number decides before the issue date (see the module docstring).
    number_first: bool

    def newer_than(self, other: DocumentVersion) -> bool:
        if self.number_first:
            return (self.number, self.issued) > (other.number, other.issued)
        return (self.issued, self.number) > (other.issued, other.number)

    def __str__(self) -> str:
        label = "evaluation data number" if self.number_first else "CRL number"
        return f"{self.subject} issued {self.issued.isoformat()}, {label} {self.number}"


# ----------------------------------------------------------------------------------------------------------
# Reading versions (nothing verified; None when the document cannot be read)


def _issued(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def _signed_json_version(raw: bytes, *, tcb_info: bool) -> DocumentVersion | None:
    try:
        doc = json_document(raw, "tcbInfo" if tcb_info else "enclaveIdentity")
    except KeywardError:
        return None
    if not isinstance(doc, dict):
        return None
    issued, number = _issued(doc.get("issueDate")), doc.get("tcbEvaluationDataNumber")
    if issued is None or type(number) is not int:
        return None
    ident = doc.get("id", "SGX" if tcb_info else None)  # TCB Info v2 (SGX only) has no id
    if not isinstance(ident, str):
        return None
    if tcb_info:
        fmspc = doc.get("fmspc")
        if not isinstance(fmspc, str):
            return None
        ident = f"{ident}:{fmspc.lower()}"
    return DocumentVersion(ident, issued, number, number_first=True)


def tcb_info_version(raw: bytes) -> DocumentVersion | None:
    """The version of a TCB Info (the exact signed ``tcbInfo`` bytes)."""
    return _signed_json_version(raw, tcb_info=True)


def qe_identity_version(raw: bytes) -> DocumentVersion | None:
    """The version of a QE Identity (the exact signed ``enclaveIdentity`` bytes)."""
    return _signed_json_version(raw, tcb_info=False)


def load_crl(der: bytes) -> x509.CertificateRevocationList | None:
    try:
        return x509.load_der_x509_crl(der)
    except Exception:  # cryptography raises ValueError, x509.InvalidVersion, TypeError on bad DER
        return None


def crl_version(der: bytes) -> DocumentVersion | None:
    """The version of a DER CRL (Intel PCK / Root CA, AMD)."""
    crl = load_crl(der)
    return None if crl is None else _loaded_crl_version(crl)


def _loaded_crl_version(crl: x509.CertificateRevocationList) -> DocumentVersion | None:
    """None when the CRL cannot be read (cryptography parses its fields lazily: a malformed issuer, date or
    extension raises only when touched, so every field used later is touched here)."""
    try:
        issuer, issued = crl.issuer.rfc4514_string(), crl.last_update_utc.astimezone(UTC)
        try:
            number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            number = -1
    except (ValueError, TypeError):  # a malformed name, date or extension
        return None
    return DocumentVersion(issuer, issued, number, False)


def served_document_version(kind: str, body: bytes) -> DocumentVersion | None:
    """The version of a cache row's body as its vendor serves it (PCS JSON response, DER or PEM or hex CRL);
    None for kinds that are not ordered (VCEKs) and for bodies that cannot be read."""
    try:
        if kind in _SIGNED_MEMBER:
            raw, _signature = signed_member(body, _SIGNED_MEMBER[kind])
            return _signed_json_version(raw, tcb_info=kind == "tcb_info")
        if kind in ORDERED_KINDS:
            return crl_version(crl_der(body, what=kind))
    except KeywardError:
        return None
    return None


# ----------------------------------------------------------------------------------------------------------
# Choosing


class Source(StrEnum):
    SUPPLIED = "supplied"
    CACHED = "cached"


@dataclass(frozen=True, slots=True)
class Choice(Generic[T]):
    """The copy chosen for one slot, where it came from and why (for the log)."""

    value: T
    source: Source
    reason: str


def choose(
    supplied: T, supplied_version: DocumentVersion | None, cached: T | None, cached_version: DocumentVersion | None
) -> Choice[T]:
    """The copy to verify with, by the rules of the module docstring (steps numbered as there)."""
    # 1. A supplied document that cannot be read is verified as it is, and rejected for what is wrong with it.
    if supplied_version is None:
        return Choice(supplied, Source.SUPPLIED, "the supplied copy cannot be read; verification judges it")
    # 2. Nothing readable to compare with.
    if cached is None or cached_version is None:
        return Choice(supplied, Source.SUPPLIED, "no readable cached copy")
    # 3. Not about the same thing: verification rejects whichever does not belong to the evidence.
    if supplied_version.subject != cached_version.subject:
        return Choice(
            supplied,
            Source.SUPPLIED,
            f"the supplied copy is for {supplied_version.subject}, the cached one for {cached_version.subject}",
        )
    # 4. Strictly newer wins; a tie goes to the cache.
    if supplied_version.newer_than(cached_version):
        return Choice(supplied, Source.SUPPLIED, f"supplied {supplied_version} is newer than cached {cached_version}")
    return Choice(cached, Source.CACHED, f"cached {cached_version} is not older than supplied {supplied_version}")


@dataclass(frozen=True, slots=True)
class SignedJson:
    """A TCB Info or QE Identity: the exact signed bytes, the raw signature and the issuer chain (DER)."""

    raw: bytes
    signature: bytes
    issuer_chain: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class IssuedCrl:
    """A CRL (DER) and the issuer chain it came with (PCK CRL only; empty when none)."""

    der: bytes
    issuer_chain: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class IntelDocuments:
    """The cached copies of the four documents a quote is verified with; None where the cache has none (or an
    unreadable one)."""

    tcb_info: SignedJson | None = None
    qe_identity: SignedJson | None = None
    pck_crl: IssuedCrl | None = None
    root_ca_crl: IssuedCrl | None = None


@dataclass(frozen=True, slots=True)
class SlotChoice:
    slot: str  # tcb_info | qe_identity | pck_crl | root_ca_crl
    source: Source
    reason: str


@dataclass(frozen=True, slots=True)
class IntelSelection:
    """The collateral to verify with, and the choice made for each of its four documents."""

    collateral: Collateral
    choices: tuple[SlotChoice, ...]

    def sources(self) -> dict[str, Source]:
        return {c.slot: c.source for c in self.choices}


def select_intel_collateral(supplied: Collateral, cached: IntelDocuments) -> IntelSelection:
    """Per slot, the newer of the supplied and the cached copy (:func:`choose`); a chain goes with its document."""
    tcb = choose(
        SignedJson(supplied.tcb_info_raw, supplied.tcb_info_signature, supplied.tcb_info_issuer_chain),
        tcb_info_version(supplied.tcb_info_raw),
        cached.tcb_info,
        tcb_info_version(cached.tcb_info.raw) if cached.tcb_info else None,
    )
    qe = choose(
        SignedJson(supplied.qe_identity_raw, supplied.qe_identity_signature, supplied.qe_identity_issuer_chain),
        qe_identity_version(supplied.qe_identity_raw),
        cached.qe_identity,
        qe_identity_version(cached.qe_identity.raw) if cached.qe_identity else None,
    )
    pck = choose(
        IssuedCrl(supplied.pck_crl, supplied.pck_crl_issuer_chain),
        crl_version(supplied.pck_crl),
        cached.pck_crl,
        crl_version(cached.pck_crl.der) if cached.pck_crl else None,
    )
    root = choose(
        IssuedCrl(supplied.root_ca_crl),
        crl_version(supplied.root_ca_crl),
        cached.root_ca_crl,
        crl_version(cached.root_ca_crl.der) if cached.root_ca_crl else None,
    )
    collateral = Collateral(
        tcb_info_raw=tcb.value.raw,
        tcb_info_signature=tcb.value.signature,
        tcb_info_issuer_chain=tcb.value.issuer_chain,
        qe_identity_raw=qe.value.raw,
        qe_identity_signature=qe.value.signature,
        qe_identity_issuer_chain=qe.value.issuer_chain,
        pck_crl=pck.value.der,
        root_ca_crl=root.value.der,
        pck_crl_issuer_chain=pck.value.issuer_chain,
    )
    choices = (
        SlotChoice("tcb_info", tcb.source, tcb.reason),
        SlotChoice("qe_identity", qe.source, qe.reason),
        SlotChoice("pck_crl", pck.source, pck.reason),
        SlotChoice("root_ca_crl", root.source, root.reason),
    )
    return IntelSelection(collateral, choices)


def crl_chain(der: bytes) -> SigningKeyName | None:
    """The AMD chain a CRL says it is for, from a KDS URI in its IssuingDistributionPoint; None when it says
    nothing (KDS CRLs as seen so far carry no IssuingDistributionPoint) or cannot be read."""
    crl = load_crl(der)
    if crl is None:
        return None
    try:
        idp = crl.extensions.get_extension_for_class(x509.IssuingDistributionPoint).value
    except (x509.ExtensionNotFound, ValueError, TypeError):
        return None
    for name in idp.full_name or ():
        if isinstance(name, x509.UniformResourceIdentifier):
            m = _KDS_CRL_PATH.search(name.value.split("?", 1)[0])
            if m is not None:
                return "vlek" if m.group(1) == "vlek" else "vcek"
    return None


def select_amd_crl(
    supplied: bytes, cached: bytes | None, *, chain: SigningKeyName, ark_subject: x509.Name | None
) -> Choice[bytes | None]:
    """The AMD CRL to verify a report of ``chain`` (``vcek``: ARK -> ASK, ``vlek``: ARK -> ASVK) with, given the
    CRL sent with the evidence and the cached CRL of this product and chain (None: not cached).

    1. A supplied CRL that cannot be read, or is not issued by the chain's ARK (``ark_subject``; None: unknown,
       not checked), is verified as it is and rejected for that (``snp.crl.malformed`` / ``snp.crl.wrong_issuer``).
    2. One whose IssuingDistributionPoint names the other chain is never used: the cached CRL (or None).
    3. The cache has no readable CRL of this ARK: the supplied one.
    4. One that names this chain is used when strictly newer than the cached one; one that names no chain could
       be the other chain's, so the cached one is used.
    """
    crl = load_crl(supplied)
    supplied_version = None if crl is None else _loaded_crl_version(crl)
    if supplied_version is None or crl is None:
        return Choice(supplied, Source.SUPPLIED, "the supplied CRL cannot be read; verification judges it")
    if ark_subject is not None and crl.issuer != ark_subject:
        return Choice(supplied, Source.SUPPLIED, "the supplied CRL is not the ARK's; verification judges it")
    named = crl_chain(supplied)
    if named is not None and named != chain:
        return Choice(cached, Source.CACHED, f"the supplied CRL is the {named} chain's, not the {chain} chain's")
    cached_crl = load_crl(cached) if cached is not None else None
    cached_version = None if cached_crl is None else _loaded_crl_version(cached_crl)
    usable = cached_crl is not None and (ark_subject is None or cached_crl.issuer == ark_subject)
    if cached is None or cached_version is None or not usable:
        return Choice(supplied, Source.SUPPLIED, "no readable cached CRL of this chain")
    if named == chain and supplied_version.newer_than(cached_version):
        return Choice(supplied, Source.SUPPLIED, f"supplied {supplied_version} is newer than cached {cached_version}")
    if named is None:
        return Choice(cached, Source.CACHED, f"the supplied CRL does not name the {chain} chain; the cached one is")
    return Choice(cached, Source.CACHED, f"cached {cached_version} is not older than supplied {supplied_version}")
