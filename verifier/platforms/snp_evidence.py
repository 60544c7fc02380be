"""An AMD SEV-SNP evidence item, parsed once: its report, the leaf, certificate table, CRL and UVM endorsement sent
with it, and the cache rows it is verified with (:func:`snp_needs`); and its evaluation from those rows
(:func:`evaluate_snp`).

The registry (:mod:`verifier.platforms.registry`) names these functions for ``amd-sev-snp``. Pure: no I/O, no
clock; the cached documents, the policy, the roots and ``now`` are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from verifier.appraisal.snp import SnpPolicy, parse_snp_policy
from verifier.collateral.documents import AMD, Documents, Wanted, amd_crl, amd_crl_key, snp_crl_target, vcek_key
from verifier.errors import KeywardError
from verifier.evidence.snp import Product, SigningKeyName, SnpReport, decode_tcb, parse_snp_report, product_from_cpuid
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.evaluation import Evaluation, evaluate_report, unverified
from verifier.platforms.item import EvidenceItem, Verifying, b64, optional_b64


@dataclass(frozen=True, slots=True)
class ParsedReport:
    """An SEV-SNP item decoded and parsed: the report, or why it does not parse (the evaluation reports it); what
    rides along (decoded); the product and chain of its AMD CRL (None when that cannot be said)."""

    item: EvidenceItem
    report: SnpReport | KeywardError
    leaf: bytes | None
    cert_table: bytes | None
    crl: bytes | None
    uvm_endorsement: bytes | None
    crl_target: tuple[Product, SigningKeyName] | None


def parse_snp_item(item: EvidenceItem) -> ParsedReport:
    """Decode and parse an SEV-SNP item. Raises ``attestation.evidence_malformed`` for a field that is not base64;
    a report that does not parse is kept as the item's ``problem``."""
    evidence = b64(item.evidence, "evidence")
    cert_table = optional_b64(item.cert_table, "cert_table")
    leaf = optional_b64(item.vcek, "vcek")
    crl = optional_b64(item.crl, "crl")
    uvm = optional_b64(item.uvm_endorsement, "uvm_endorsement")
    try:
        report = parse_snp_report(evidence)
    except KeywardError as e:
        return ParsedReport(item, e, leaf, cert_table, crl, uvm, None)
    return ParsedReport(item, report, leaf, cert_table, crl, uvm, snp_crl_target(report, leaf, cert_table))


def _kds_product(report: SnpReport) -> Product | None:
    """The product KDS is asked a VCEK for: VLEKs are not on KDS, and a v2 report has no CPUID to name it."""
    try:
        product = product_from_cpuid(report)
        if report.signing_key_name != "vcek" or product is None:
            return None
        decode_tcb(report.reported_tcb, product)  # reserved bytes checked before any URL is built
    except KeywardError:
        return None
    return product


def snp_needs(parsed: ParsedReport) -> tuple[Wanted, ...]:
    """The AMD CRL of the report's chain (``optional`` when the item brings one), and its VCEK unless the item
    brings a leaf (``vcek`` or ``cert_table``). A VCEK KDS cannot be asked for (VLEK, v2 report) has no product:
    it is read from the cache but never fetched."""
    report = parsed.report
    if isinstance(report, KeywardError):
        return ()
    wants: list[Wanted] = []
    if parsed.crl_target is not None:
        product, chain = parsed.crl_target
        wants.append(Wanted(AMD, "crl", amd_crl_key(product, chain), product, optional=parsed.crl is not None))
    if parsed.leaf is None and parsed.cert_table is None:
        wants.append(Wanted(AMD, "vcek", vcek_key(report.chip_id, report.reported_tcb), _kds_product(report)))
    return tuple(wants)


def snp_policy(document: dict[str, Any]) -> SnpPolicy:
    """The SEV-SNP appraisal policy of a merged policy document. Revocation is checked unless the document says
    otherwise: the CRL rides along or comes from the cache the fetchers fill (KDS, by product and chain)."""
    return parse_snp_policy({"require_crl": True, **document})


def evaluate_snp(parsed: ParsedReport, documents: Documents, policy: SnpPolicy, env: Verifying) -> Evaluation:
    """Verify and appraise the report with the leaf it brings (else the cached VCEK) and the CRL that wins
    (:func:`~verifier.collateral.documents.amd_crl`); Microsoft's UVM endorsement, when sent, vouches for
    MEASUREMENT (confidential ACI)."""
    report = parsed.report
    if isinstance(report, KeywardError):
        return unverified(PLATFORM_SNP, {}, report, env.trust)
    leaf = parsed.leaf
    if leaf is None and parsed.cert_table is None:
        cached = documents.get((AMD, "vcek", vcek_key(report.chip_id, report.reported_tcb)))
        leaf = None if cached is None else cached.body
    return evaluate_report(
        report,
        leaf_der=leaf,
        cert_table=parsed.cert_table,
        trust=env.trust,
        now=env.now,
        policy=policy,
        crl_der=amd_crl(parsed.crl_target, documents, parsed.crl, env.trust),
        cache=env.snp_cache,
        uvm_endorsements=() if parsed.uvm_endorsement is None else (parsed.uvm_endorsement,),
    )
