"""An AMD SEV-SNP evidence item, parsed once: its report, the leaf, certificate table, CRL and UVM endorsement sent
with it, and the cache rows it is verified with (:func:`snp_needs`); and its evaluation from those rows
(:func:`evaluate_snp`).

The registry (:mod:`verifier.platforms.registry`) names these functions for ``amd-sev-snp``, and :data:`SNP_CLI`
for ``keyward verify`` (a raw report or configfs-tsm dump, ``--certs``, ``--cert-table``, ...). Pure: no I/O, no
clock; the cached documents, the files read, the policy, the roots and ``now`` are arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, cast, get_args

from verifier.appraisal.snp import SnpPolicy, cce_policy_digest, parse_snp_policy
from verifier.collateral.amd_files import cert_table_bytes, leaf_from_certificates, parse_tsm_dump
from verifier.collateral.documents import AMD, Documents, Wanted, amd_crl, amd_crl_key, snp_crl_target, vcek_key
from verifier.errors import KeywardError
from verifier.evidence.snp import (
    REPORT_SIZE,
    Product,
    SigningKeyName,
    SnpReport,
    decode_report_bytes,
    decode_tcb,
    parse_snp_report,
    product_from_cpuid,
)
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.cli_inputs import CliFamily, CliInput, Inputs
from verifier.platforms.evaluation import Evaluation, evaluate_report, evaluate_snp_report, rejected, unverified
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
        crl_der=amd_crl(parsed.crl_target, documents, parsed.crl, env.trust, env.collateral_cache),
        cache=env.snp_cache,
        uvm_endorsements=() if parsed.uvm_endorsement is None else (parsed.uvm_endorsement,),
    )


# ----------------------------------------------------------------------------------------------------------
# keyward verify


def sniff_snp(data: bytes) -> bool:
    """A configfs-tsm dump, or a report: 0x4A0 bytes (binary or hex) with a u32 version (bytes 2-3 zero; an Intel
    quote carries its key type there). A dump that does not decode is still one (its evaluation says why); hex with
    an odd number of digits raises ``snp.report.encoding``."""
    try:
        if parse_tsm_dump(data) is not None:
            return True
    except KeywardError:
        return True
    raw = decode_report_bytes(data)
    return len(raw) == REPORT_SIZE and raw[2:4] == b"\x00\x00"


def snp_cli_policy(document: dict[str, Any]) -> SnpPolicy:
    """The SEV-SNP policy of the command line: as written (no CRL unless the document requires one: the CRL is an
    optional input here, unlike the service's :func:`snp_policy`, which the fetchers can always give one)."""
    return parse_snp_policy(document)


def _product(value: str | None) -> Product | None:
    return cast(Product, value) if value in get_args(Product) else None


def evaluate_snp_cli(data: bytes, inputs: Inputs, policy: SnpPolicy, env: Verifying) -> Evaluation:
    """Verify and appraise a report (or configfs-tsm dump, whose auxblob is the certificate table unless
    ``--cert-table`` is given) with the files given. ``--cce-policy`` files join the policy's CCE policies, by file
    name; ``--uvm-endorsement`` makes an endorsed MEASUREMENT required. Never raises for bad evidence or inputs."""
    cce = {f.name: cce_policy_digest(f.data) for f in inputs.files("cce_policy")}
    if cce:
        policy = replace(policy, cce_policies={**policy.cce_policies, **cce})
    uvm = tuple(f.data for f in inputs.files("uvm_endorsement"))
    if uvm:
        policy = replace(policy, require_uvm_endorsement=True)
    certs, table, crl = inputs.file("certs"), inputs.file("cert_table"), inputs.file("crl")
    try:
        dump = parse_tsm_dump(data)
        report = dump.report if dump else data
        cert_table = cert_table_bytes(table.data) if table else (dump.cert_table if dump else None)
        leaf = leaf_from_certificates(certs.data) if certs else None
    except KeywardError as e:
        return rejected(e.to_reason(), PLATFORM_SNP)
    return evaluate_snp_report(
        report,
        leaf_der=leaf,
        cert_table=cert_table,
        trust=env.trust,
        now=env.now,
        policy=policy,
        product=_product(inputs.choice("product")),
        crl_der=crl.data if crl else None,
        uvm_endorsements=uvm,
    )


#: SEV-SNP on the command line (confidential ACI included): giving any of its options picks it.
SNP_CLI: Final[CliFamily[SnpPolicy]] = CliFamily(
    family="snp",
    inputs=(
        CliInput(
            "--certs",
            "certs",
            "AMD: the VCEK/VLEK, PEM or DER, alone or with its chain (a supplied ARK/ASK is ignored).",
        ),
        CliInput(
            "--cert-table",
            "cert_table",
            "AMD: extended-report certificate table / configfs-tsm auxblob (raw or base64).",
        ),
        CliInput("--crl", "crl", "AMD: the KDS CRL for the product (DER), checked against the pinned ARK."),
        CliInput(
            "--product",
            "product",
            "AMD: product line (needed only to pin v2 reports, which carry no CPUID).",
            kind="choice",
            choices=get_args(Product),
        ),
        CliInput(
            "--cce-policy",
            "cce_policy",
            "AMD confidential ACI: a CCE policy (rego or base64); HOST_DATA must be its SHA-256. Repeatable.",
            multiple=True,
        ),
        CliInput(
            "--uvm-endorsement",
            "uvm_endorsement",
            "AMD confidential ACI: Microsoft's UVM reference-info COSE_Sign1; MEASUREMENT must be endorsed.",
            multiple=True,
        ),
    ),
    sniff=sniff_snp,
    policy=snp_cli_policy,
    evaluate=evaluate_snp_cli,
)
