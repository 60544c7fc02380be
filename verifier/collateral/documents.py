"""Cached vendor documents as data: the key of each cache row an evidence item needs, and the collateral a decision
verifies with, assembled from the rows read for those keys.

The keys are made here and nowhere else: Intel rows by TEE, FMSPC and PCK CA (:class:`IntelKeys`), an AMD VCEK by
CHIP_ID and REPORTED_TCB (:func:`vcek_key`), an AMD CRL by chain and product (:func:`amd_crl_key`), an NVIDIA RIM by
id (:func:`wanted_rim`), one certificate's OCSP response by CertID (:func:`wanted_ocsp`) and the responses for a
RIM's signing chain by RIM id (:func:`wanted_rim_ocsp`). Which rows one parsed item needs is said once, by its
platform (:mod:`verifier.platforms.registry`), and read by both the prefetch and the decision. Assembling
collateral from rows follows the selection rules of :mod:`verifier.collateral.selection` (the newer of a supplied
and a cached document is verified).

The :class:`CollateralCache` (one per worker process, in the decision context) memoises what is a pure function of
exact bytes: the collateral an Intel item brings, parsed; the cache rows its PCK chain names; and the collateral chosen
from the supplied and the cached copies. Keys are SHA-256 digests of every input byte, so a new document (a new
hash) is never answered from it. Nothing time-dependent is kept: every validity window is checked against the
decision's ``now`` by the verifier on every decision.

Pure: no I/O, no clock. Reading and writing the rows is :mod:`verifier.collateral.repository`; nothing here verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509

from verifier import limits
from verifier.collateral.selection import (
    Choice,
    IntelDocuments,
    IssuedCrl,
    SignedJson,
    Source,
    select_amd_crl,
    select_intel_collateral,
)
from verifier.errors import Code, EvidenceMalformed, KeywardError
from verifier.evidence.dcap import Quote
from verifier.evidence.snp import (
    GUID_VCEK,
    GUID_VLEK,
    PRODUCTS,
    Product,
    SigningKeyName,
    SnpReport,
    parse_cert_table,
    product_from_cpuid,
)
from verifier.trust.amd_certs import load_leaf, parse_amd_extensions
from verifier.trust.chains import ContentCache, common_name, load_der_certificate
from verifier.trust.intel_collateral import (
    Collateral,
    collateral_from_pcs,
    crl_der,
    issuer_chain_header,
    parse_collateral_json,
    pem_certificates,
    signed_member,
)
from verifier.trust.intel_pck import parse_pck_extensions
from verifier.trust.store import TrustStore

log = logging.getLogger(__name__)

INTEL: Final = "intel"
AMD: Final = "amd"
NVIDIA: Final = "nvidia"

#: A cache row's identity: (vendor, kind, key).
RowKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Wanted:
    """One cache row an evidence item is verified with. Intel keys say everything (``tdx:<fmspc>``, ``tdx``,
    ``platform``, ``root``); a VCEK key (``<chip_id>:<reported_tcb>``) also needs the product, which KDS URLs name;
    so does an AMD CRL key (``vcek:<product>``, ``vlek:<product>``): an AMD row without a product is read but
    cannot be fetched. ``optional``: the evidence brings its own copy, so the cached one is only weighed against
    it (the newer is verified) and a failure to fetch it never puts the decision off."""

    vendor: str
    kind: str
    key: str
    product: Product | None = None
    optional: bool = False

    @property
    def row(self) -> RowKey:
        return (self.vendor, self.kind, self.key)

    @property
    def fetchable(self) -> bool:
        """Whether a vendor service can be asked for it (KDS URLs name the product)."""
        return self.vendor != AMD or self.product is not None

    def __str__(self) -> str:
        return f"{self.vendor}/{self.kind}/{self.key}"


@dataclass(frozen=True, slots=True)
class Document:
    """A cached document as stored: the body as served and the issuer chain header that came with it."""

    body: bytes
    issuer_chain: str | None


#: The rows read for an item's needs, by :attr:`Wanted.row`; absent rows are left out.
Documents = Mapping[RowKey, Document]


def document_digest(doc: Document | None) -> bytes | None:
    """SHA-256 over a cached document's body and issuer chain (length-prefixed, so no two documents share one)."""
    if doc is None:
        return None
    chain = b"\xff" if doc.issuer_chain is None else doc.issuer_chain.encode("utf-8", "surrogatepass")
    h = hashlib.sha256(len(doc.body).to_bytes(8, "big"))
    h.update(doc.body)
    h.update(chain)
    return h.digest()


@dataclass(frozen=True, slots=True)
class _IntelChoice:
    """A memoised :func:`intel_collateral` result: the collateral (None: a cached document missing) and the slots
    taken from the cache instead of as supplied, with why (logged again on every use)."""

    collateral: Collateral | None
    from_cache: tuple[tuple[str, str], ...] = ()


class CollateralCache:
    """In-process memo of collateral parsing and selection, by content (one per process, in the decision context;
    passed in like the platforms' verification caches). Safe to share across threads.

    * ``supplied``: the QuoteCollateralV3 an item brings, parsed, by SHA-256 of its exact text;
    * ``pck``: the cache rows a PCK chain names (:func:`intel_keys`), by SHA-256 of the chain's exact PEM bytes;
    * ``intel``: the collateral :func:`intel_collateral` chooses, by the keys, the SHA-256 of the supplied text and
      of each cached document (body and issuer chain; :func:`document_digest`);
    * ``amd_crl``: the AMD CRL :func:`amd_crl` chooses when the evidence brings one, by product, chain, trust store
      and the SHA-256 of the supplied and the cached CRL.

    Only successes are kept (a parse or selection that raises runs, and raises, every time); each map holds at most
    ``max_entries`` (least recently used dropped first). Nothing here depends on time: what is verified, and every
    validity window against the decision's ``now``, is still the verifier's, on every decision.
    """

    def __init__(self, max_entries: int = limits.COLLATERAL_CACHE_ENTRIES) -> None:
        self.supplied: ContentCache[Collateral] = ContentCache(max_entries)
        self.pck: ContentCache[IntelKeys] = ContentCache(max_entries)
        self.intel: ContentCache[_IntelChoice] = ContentCache(max_entries)
        self.amd_crl: ContentCache[Choice[bytes | None]] = ContentCache(max_entries)

    def __len__(self) -> int:
        return len(self.supplied) + len(self.pck) + len(self.intel) + len(self.amd_crl)


def text_digest(text: str) -> bytes:
    """SHA-256 of a text field's exact UTF-8 bytes (lone surrogates kept, so distinct texts never collide)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def supplied_collateral(text: str, cache: CollateralCache | None) -> Collateral:
    """:func:`~verifier.trust.intel_collateral.parse_collateral_json` of the collateral an item brings, through the
    cache when there is one."""
    if cache is None:
        return parse_collateral_json(text)
    return cache.supplied.get_or_compute((text_digest(text),), lambda: parse_collateral_json(text))


# ----------------------------------------------------------------------------------------------------------
# Intel


@dataclass(frozen=True, slots=True)
class IntelKeys:
    tee: str  # "sgx" | "tdx"
    fmspc: str  # 12 lower-case hex
    ca: str  # "platform" | "processor"

    @property
    def tcb_info(self) -> str:
        return f"{self.tee}:{self.fmspc}"

    def rows(self) -> tuple[tuple[str, str], ...]:
        """The (kind, key) of the four cached documents a quote is verified with; the one place keys are made."""
        return (("tcb_info", self.tcb_info), ("qe_identity", self.tee), ("pck_crl", self.ca), ("root_ca_crl", "root"))


def intel_keys(quote: Quote, cache: CollateralCache | None = None) -> IntelKeys:
    """Which collateral a parsed quote needs, read from the quote and its PCK certificate (nothing verified here).
    Raises :class:`~verifier.errors.KeywardError` or ValueError when the PCK chain cannot say. With a cache, by the
    SHA-256 of the chain's PEM bytes and the quote's TEE."""
    if cache is None:
        return _intel_keys(quote)
    pem = quote.signature_data.certification.pck_chain_pem
    tee = b"tdx" if quote.is_tdx else b"sgx"
    return cache.pck.get_or_compute((hashlib.sha256(pem).digest(), tee), lambda: _intel_keys(quote))


def _intel_keys(quote: Quote) -> IntelKeys:
    ders = pem_certificates(quote.signature_data.certification.pck_chain_pem, what="PCK chain")
    leaf, inter = (
        load_der_certificate(d, Code.INTEL_PCK_CHAIN_MALFORMED, "PCK chain certificate", EvidenceMalformed)
        for d in ders[:2]
    )
    platform = common_name(inter.subject).endswith("Platform CA")
    ext = parse_pck_extensions(leaf, platform_ca=platform)
    return IntelKeys("tdx" if quote.is_tdx else "sgx", ext.fmspc.hex(), "platform" if platform else "processor")


def intel_collateral(
    keys: IntelKeys | None,
    documents: Documents,
    supplied: Collateral | None,
    cache: CollateralCache | None = None,
    supplied_digest: bytes | None = None,
) -> Collateral | None:
    """The collateral to verify a quote with, from the rows read for ``keys`` and the collateral sent with it
    (already parsed; None when none was sent): per document, the newer of the supplied and the cached copy
    (:func:`~verifier.collateral.selection.select_intel_collateral`), each with its own issuer chain. Without
    supplied collateral, the cached documents, or None if any is missing. A supplied document that cannot be read
    is kept, so verification rejects it with its code; so is everything supplied for a quote too malformed to say
    which rows it needs (``keys`` None).

    With a ``cache``, the choice is memoised by ``keys``, ``supplied_digest`` (the SHA-256 of the exact supplied
    text, :func:`text_digest`; required with supplied collateral, else the cache is not used) and the digest of
    each cached document: the same inputs give the same :class:`Collateral` object, whose verification the
    verifier's own cache then finds by its digest."""
    if keys is None:
        return supplied
    slots = tuple(documents.get((INTEL, kind, key)) for kind, key in keys.rows())
    if cache is None or (supplied is not None and supplied_digest is None):
        return _intel_choice(slots, supplied).collateral
    key = hashlib.sha256(f"{keys.tee}|{keys.fmspc}|{keys.ca}|".encode())
    for part in (supplied_digest if supplied is not None else None, *(document_digest(d) for d in slots)):
        key.update(b"\x00" if part is None else b"\x01" + part)
    choice = cache.intel.get_or_compute((key.digest(),), lambda: _intel_choice(slots, supplied, log_choices=False))
    for slot, reason in choice.from_cache:
        log.info("quote collateral: %s from the cache, not as supplied: %s", slot, reason)
    return choice.collateral


def _intel_choice(
    slots: tuple[Document | None, ...], supplied: Collateral | None, *, log_choices: bool = True
) -> _IntelChoice:
    tcb, qe, pck_crl, root_crl = slots
    if supplied is None:
        if tcb is None or qe is None or pck_crl is None or root_crl is None:
            return _IntelChoice(None)
        collateral = collateral_from_pcs(
            tcb_info_body=tcb.body,
            tcb_info_issuer_chain=tcb.issuer_chain or "",
            qe_identity_body=qe.body,
            qe_identity_issuer_chain=qe.issuer_chain or "",
            pck_crl=pck_crl.body,
            root_ca_crl=root_crl.body,
            pck_crl_issuer_chain=pck_crl.issuer_chain,
        )
        return _IntelChoice(collateral)
    cached = IntelDocuments(
        tcb_info=_cached_signed(tcb, "tcbInfo"),
        qe_identity=_cached_signed(qe, "enclaveIdentity"),
        pck_crl=_cached_crl(pck_crl, "pck_crl", with_chain=True),
        root_ca_crl=_cached_crl(root_crl, "root_ca_crl", with_chain=False),
    )
    selection = select_intel_collateral(supplied, cached)
    from_cache = tuple((c.slot, c.reason) for c in selection.choices if c.source is Source.CACHED)
    if log_choices:
        for slot, reason in from_cache:
            log.info("quote collateral: %s from the cache, not as supplied: %s", slot, reason)
    return _IntelChoice(selection.collateral, from_cache)


def _cached_signed(doc: Document | None, member: str) -> SignedJson | None:
    """A cached PCS JSON response as the signed bytes, signature and issuer chain; None if absent or unreadable."""
    if doc is None:
        return None
    try:
        raw, signature = signed_member(doc.body, member)
        chain = issuer_chain_header(doc.issuer_chain or "", what=f"{member} issuer chain")
    except KeywardError:
        return None
    return SignedJson(raw, signature, chain)


def _cached_crl(doc: Document | None, kind: str, *, with_chain: bool) -> IssuedCrl | None:
    """A cached CRL as DER with its issuer chain (PCK CRL; empty when not stored); None if absent or unreadable."""
    if doc is None:
        return None
    try:
        der = crl_der(doc.body, what=f"cached {kind}")
        chain = (
            issuer_chain_header(doc.issuer_chain, what="PCK CRL issuer chain")
            if with_chain and doc.issuer_chain
            else ()
        )
    except KeywardError:
        return None
    return IssuedCrl(der, chain)


# ----------------------------------------------------------------------------------------------------------
# AMD


def vcek_key(chip_id: bytes, reported_tcb: bytes) -> str:
    """Cache key of a VCEK: KDS issues one per (chip, REPORTED_TCB); never key by certificate hash (re-issued)."""
    return f"{chip_id.hex()}:{reported_tcb.hex()}"


def amd_crl_key(product: Product, signing_key: SigningKeyName) -> str:
    """Cache key of an AMD CRL: KDS serves one per product for each chain (``vcek:milan``, ``vlek:genoa``)."""
    return f"{signing_key}:{product}"


def leaf_product(leaf_der: bytes) -> Product | None:
    """The product a VCEK/VLEK names in its productName extension (``Milan-B0`` -> ``milan``); None if unreadable
    or unknown. Nothing is verified here."""
    try:
        name = parse_amd_extensions(load_leaf(leaf_der)).product_name.split("-")[0].lower()
    except KeywardError:
        return None
    return next((p for p in PRODUCTS if p == name), None)


def snp_crl_target(
    report: SnpReport, leaf_der: bytes | None, cert_table: bytes | None
) -> tuple[Product, SigningKeyName] | None:
    """Which AMD CRL a report is checked with: its product (CPUID, or for a v2 report the productName of the leaf
    supplied directly or in the certificate table) and its signing-key chain. None when that cannot be said; the
    verification then rejects the report for its own reason, or for the missing CRL."""
    kind: SigningKeyName
    if report.signing_key_name == "vcek":
        kind, guid = "vcek", GUID_VCEK
    elif report.signing_key_name == "vlek":
        kind, guid = "vlek", GUID_VLEK
    else:
        return None
    try:
        product = product_from_cpuid(report)
        if product is None and leaf_der is None and cert_table is not None:
            leaf_der = parse_cert_table(cert_table).get(guid)
    except KeywardError:
        return None
    if product is None and leaf_der is not None:
        product = leaf_product(leaf_der)
    return None if product is None else (product, kind)


def amd_crl(
    target: tuple[Product, SigningKeyName] | None,
    documents: Documents,
    supplied: bytes | None,
    trust: TrustStore,
    cache: CollateralCache | None = None,
) -> bytes | None:
    """The AMD CRL to verify a report with, given the CRL sent with it (DER; None when none was sent): the cached
    CRL of the report's product and chain (``target``, :func:`snp_crl_target`) unless the supplied one wins by the
    rules of :func:`~verifier.collateral.selection.select_amd_crl` (it must be the ARK's, not name the other chain,
    and beat the cached one, or the cache must have none). Without a supplied CRL, the cache's. When the report
    is too malformed to say its product and chain, the supplied CRL as it is (verification rejects the report).
    With a ``cache``, the choice is memoised by the target, the trust store and the SHA-256 of both CRLs."""
    if target is None:
        return supplied
    product, chain = target
    row = documents.get((AMD, "crl", amd_crl_key(product, chain)))
    cached = None if row is None else row.body
    if supplied is None:
        return cached
    if cache is None:
        choice = _amd_crl_choice(product, chain, supplied, cached, trust)
    else:
        key = hashlib.sha256(f"{product}|{chain}|".encode() + trust.fingerprint)
        key.update(hashlib.sha256(supplied).digest())
        key.update(b"\x00" if cached is None else b"\x01" + hashlib.sha256(cached).digest())
        choice = cache.amd_crl.get_or_compute(
            (key.digest(),), lambda: _amd_crl_choice(product, chain, supplied, cached, trust)
        )
    if choice.source is Source.CACHED:
        log.info("AMD CRL for %s/%s from the cache, not as supplied: %s", chain, product, choice.reason)
    return choice.value


def _amd_crl_choice(
    product: Product, chain: SigningKeyName, supplied: bytes, cached: bytes | None, trust: TrustStore
) -> Choice[bytes | None]:
    try:
        ark_subject: x509.Name | None = trust.root(f"amd.{product}.ark").certificate.subject
    except KeywardError:
        ark_subject = None  # no pinned ARK: verification rejects the report whatever the CRL
    return select_amd_crl(supplied, cached, chain=chain, ark_subject=ark_subject)


# ----------------------------------------------------------------------------------------------------------
# NVIDIA

#: Cache row kinds: a RIM by id (body: the XML as the RIM service serves it, decoded), one certificate's OCSP
#: response by CertID key (body: DER ``OCSPResponse``), and the OCSP responses of a RIM's signing chain by RIM id
#: (body: :func:`rim_ocsp_bundle`).
NVIDIA_RIM: Final = "rim"
NVIDIA_OCSP: Final = "ocsp"
NVIDIA_RIM_OCSP: Final = "rim-ocsp"
#: The body of a RIM row for an id the RIM service does not know (its HTTP 404 answer): NVIDIA's definitive
#: "no such RIM", kept for a short while (:data:`verifier.worker.vendor_documents.NVIDIA_RIM_MISSING_TTL`). Never
#: XML, so never taken for a RIM.
NVIDIA_RIM_MISSING_BODY: Final = b'{"message":"RIM_NOT_FOUND"}'


def wanted_rim(rim_id: str) -> Wanted:
    """The cache row of the RIM ``rim_id`` (``NV_GPU_DRIVER_GH100_550.90.07``)."""
    return Wanted(NVIDIA, NVIDIA_RIM, rim_id)


def wanted_ocsp(key: str) -> Wanted:
    """The cache row of one certificate's OCSP response; ``key`` is its CertID key
    (:func:`verifier.trust.ocsp.cert_id_key`: ``sha384:<issuer name hash>:<issuer key hash>:<serial hex>``)."""
    return Wanted(NVIDIA, NVIDIA_OCSP, key)


def wanted_rim_ocsp(rim_id: str) -> Wanted:
    """The cache row of the OCSP responses for the signing chain of the RIM ``rim_id`` (L4, L3, L2)."""
    return Wanted(NVIDIA, NVIDIA_RIM_OCSP, rim_id)


@dataclass(frozen=True, slots=True)
class CachedRim:
    """What the cache says of one RIM id: its XML (``xml``; not verified), NVIDIA's definitive "no such RIM"
    (``missing``: the decision reports ``nvidia.rim.missing``), or neither: never fetched, or the service could
    not be asked (``nvidia.rim.unavailable``)."""

    rim_id: str
    xml: bytes | None
    missing: bool

    @property
    def unavailable(self) -> bool:
        return self.xml is None and not self.missing


def nvidia_rim(rim_id: str, documents: Documents) -> CachedRim:
    """The cached RIM ``rim_id`` among the rows read for an item's needs."""
    row = documents.get(wanted_rim(rim_id).row)
    if row is None:
        return CachedRim(rim_id, None, missing=False)
    if row.body == NVIDIA_RIM_MISSING_BODY:
        return CachedRim(rim_id, None, missing=True)
    return CachedRim(rim_id, row.body, missing=False)


def rim_ocsp_bundle(responses: Mapping[str, bytes]) -> bytes:
    """The body of a ``rim-ocsp`` row: JSON ``{cert_id_key: base64(DER OCSPResponse)}``, keys sorted."""
    return json.dumps(
        {key: base64.b64encode(der).decode() for key, der in sorted(responses.items())}, separators=(",", ":")
    ).encode()


def parse_rim_ocsp_bundle(body: bytes) -> dict[str, bytes]:
    """The responses of a ``rim-ocsp`` row by CertID key; empty when the body is not such a bundle (an unreadable
    row then counts as no responses: the decision reports them missing). Nothing is verified."""
    try:
        value = json.loads(body)
        if not isinstance(value, dict):
            return {}
        return {
            str(key): base64.b64decode(der, validate=True)
            for key, der in value.items()
            if isinstance(key, str) and isinstance(der, str)
        }
    except (ValueError, RecursionError, binascii.Error):
        return {}


def nvidia_ocsp(keys: Iterable[str], rim_ids: Iterable[str], documents: Documents) -> dict[str, bytes]:
    """The cached OCSP responses (DER, unverified) by CertID key, from the rows read for an item's needs: each
    ``ocsp`` row among ``keys`` (device certificates) and every response in the ``rim-ocsp`` rows of ``rim_ids``
    (RIM signing chains). A key with no cached response is left out."""
    found: dict[str, bytes] = {}
    for rim_id in rim_ids:
        row = documents.get(wanted_rim_ocsp(rim_id).row)
        if row is not None:
            found.update(parse_rim_ocsp_bundle(row.body))
    for key in keys:
        row = documents.get(wanted_ocsp(key).row)
        if row is not None:
            found[key] = row.body
    return found
