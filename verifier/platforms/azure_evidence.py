"""An Azure confidential VM evidence item (``azure-sev-snp-vtpm`` / ``azure-tdx-vtpm``), parsed once: the
evidence JSON Confidential Containers guests send (:mod:`verifier.evidence.azure_cvm`), the hardware part as the
SEV-SNP or Intel item it is (so the same cache rows are needed: the AMD CRL, or TCB Info / QE Identity / CRLs),
and its evaluation: :func:`~verifier.platforms.azure_cvm.verify_azure_cvm` then
:func:`~verifier.appraisal.azure_cvm.appraise_azure_cvm`.

The item: ``evidence`` is base64 of the evidence JSON; ``crl`` (SEV-SNP) and ``collateral`` (TDX) ride along as
for ``amd-sev-snp`` and ``intel-tdx``. The binding: the TPM quote's extraData is the attestation's binding,
SHA-512(nonce || enclave key thumbprint) (64 bytes, the most a TPM2_Quote carries), and with evidence version 2 the
HCL ``user-data`` (64 bytes) is that binding too. The service passes it as ``expected_report_data`` and requires it.

The registry (:mod:`verifier.platforms.registry`) names these functions for both entries, and :data:`AZURE_CLI` for
``keyward verify`` (the evidence JSON, ``--nonce``, ``--certs``, ``--crl``, ``--collateral``). Pure: no I/O, no
clock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from pydantic import ValidationError

from verifier.appraisal.azure_cvm import (
    AzureCvmPolicy,
    appraise_azure_cvm,
    parse_azure_snp_policy,
    parse_azure_tdx_policy,
)
from verifier.collateral.amd_files import leaf_from_certificates
from verifier.collateral.documents import CollateralCache, Documents, Wanted, amd_crl, intel_collateral, text_digest
from verifier.collateral.files import collateral_from_pcs_files
from verifier.errors import Code, EvidenceMalformed, KeywardError, UsageError
from verifier.evidence.azure_cvm import AzureEvidence, AzureKind, parse_azure_evidence
from verifier.evidence.azure_hcl import parse_hcl_report
from verifier.platforms.azure_ak import ak_pub_sha256
from verifier.platforms.azure_cvm import (
    PLATFORM_AZURE_SNP,
    PLATFORM_AZURE_TDX,
    AzureCvmVerification,
    verify_azure_cvm,
)
from verifier.platforms.cli_inputs import CliFamily, CliInput, InputDir, Inputs
from verifier.platforms.evaluation import Evaluation, rejected, unverified
from verifier.platforms.intel_claims import collateral_json
from verifier.platforms.intel_claims import verified_claims as intel_verified_claims
from verifier.platforms.intel_evidence import INTEL_CLI, ParsedQuote, intel_needs, parse_intel_item
from verifier.platforms.item import EvidenceItem, Verifying, b64
from verifier.platforms.snp_claims import verified_claims as snp_verified_claims
from verifier.platforms.snp_evidence import SNP_CLI, ParsedReport, parse_snp_item, snp_needs
from verifier.trust.intel_collateral import Collateral, parse_collateral_json

PLATFORMS_BY_KIND: Final[dict[AzureKind, str]] = {"snp": PLATFORM_AZURE_SNP, "tdx": PLATFORM_AZURE_TDX}


@dataclass(frozen=True, slots=True)
class ParsedAzure:
    """An Azure CVM item decoded: the evidence (or why it does not decode: the evaluation reports it) and its
    hardware part parsed as the SEV-SNP or Intel item it is (None when the HCL report does not parse)."""

    item: EvidenceItem
    kind: AzureKind
    evidence: AzureEvidence | KeywardError
    hardware: ParsedReport | ParsedQuote | None


def _std_b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hardware_item(
    item: EvidenceItem, evidence: AzureEvidence, cache: CollateralCache | None
) -> ParsedReport | ParsedQuote | None:
    """The hardware part as the plain platform's item (None when the HCL report does not parse, or a part is
    over the plain item's limits: verification then rejects it with its own code)."""
    try:
        hcl = parse_hcl_report(evidence.hcl_report, evidence.kind)
    except KeywardError:
        return None
    try:
        if evidence.kind == "snp":
            snp = EvidenceItem(
                type="amd-sev-snp",
                evidence=_std_b64(hcl.hardware_report),
                vcek=_std_b64(evidence.vcek or b""),
                crl=item.crl,
            )
            return parse_snp_item(snp)
        tdx = EvidenceItem(type="intel-tdx", evidence=_std_b64(evidence.td_quote or b""), collateral=item.collateral)
    except ValidationError:
        return None
    return parse_intel_item(tdx, cache)


def _parse(kind: AzureKind) -> Callable[[EvidenceItem, CollateralCache | None], ParsedAzure]:
    def parse(item: EvidenceItem, cache: CollateralCache | None) -> ParsedAzure:
        """Decode the item (``attestation.evidence_malformed`` for base64) and its evidence JSON; evidence that
        does not decode is kept for the evaluation to report."""
        data = b64(item.evidence, "evidence")
        try:
            evidence = parse_azure_evidence(data, kind)
        except KeywardError as e:
            return ParsedAzure(item, kind, e, None)
        return ParsedAzure(item, kind, evidence, _hardware_item(item, evidence, cache))

    return parse


parse_azure_snp_item = _parse("snp")
parse_azure_tdx_item = _parse("tdx")


def azure_needs(parsed: ParsedAzure) -> tuple[Wanted, ...]:
    """The hardware part's rows: the AMD CRL of the SEV-SNP report's chain (its VCEK rides in the evidence), or
    the TD quote's TCB Info, QE Identity and CRLs (``optional`` when the item brings its collateral)."""
    hardware = parsed.hardware
    if isinstance(hardware, ParsedReport):  # never a cached VCEK: verification uses the evidence's own
        return tuple(w for w in snp_needs(hardware) if w.kind != "vcek")
    if isinstance(hardware, ParsedQuote):
        return intel_needs(hardware)
    return ()


def azure_snp_policy(document: dict[str, Any]) -> AzureCvmPolicy[Any]:
    """The service's policy for ``azure-sev-snp-vtpm``: revocation checked and a nonce required unless the
    document says otherwise."""
    return parse_azure_snp_policy({"require_nonce": True, **document}, require_crl=True)


def azure_tdx_policy(document: dict[str, Any]) -> AzureCvmPolicy[Any]:
    """The service's policy for ``azure-tdx-vtpm``: a nonce required unless the document says otherwise."""
    return parse_azure_tdx_policy({"require_nonce": True, **document})


def azure_claims(v: AzureCvmVerification) -> dict[str, object]:
    """The hardware claims (as for SEV-SNP / TDX) plus what the vTPM and the runtime claims say."""
    hardware: dict[str, object] = (
        dict(snp_verified_claims(v.snp)) if v.snp is not None else dict(intel_verified_claims(v.tdx)) if v.tdx else {}
    )
    user_data = v.claims.user_data
    quote = v.tpm.quote
    return {
        **hardware,
        "evidence_version": v.evidence.version,
        "hcl_version": v.hcl.version,
        "vm_configuration": dict(v.claims.vm_configuration),
        "user_data": None if user_data is None else user_data.hex(),
        "user_data_bound": v.user_data_checked,
        "pcrs": {str(i): value.hex() for i, value in sorted(v.tpm.pcrs.items())},
        "pcr_selection": list(quote.pcr_selection),
        "pcr_digest_verified": v.tpm.pcr_digest_verified,
        "tpm_nonce": quote.extra_data.hex(),
        "nonce_checked": v.tpm.nonce_checked,
        "ak_pub_sha256": ak_pub_sha256(v.claims.ak),
        "ak_cert": None
        if v.ak_cert is None
        else {
            "subject": v.ak_cert.subject,
            "issuer": v.ak_cert.issuer,
            "not_after": v.ak_cert.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "path": list(v.ak_cert.path),
        },
    }


def _collateral_summary(v: AzureCvmVerification) -> dict[str, object]:
    if v.tdx is not None:
        return dict(collateral_json(v.tdx.collateral))
    if v.snp is not None:
        return {
            "product": v.snp.product,
            "signing_key": v.snp.signing_key,
            "leaf_not_before": v.snp.leaf_not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "leaf_not_after": v.snp.leaf_not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "crl_checked": v.snp.crl_checked,
        }
    return {}


def evaluate_azure_evidence(
    evidence: AzureEvidence,
    policy: AzureCvmPolicy[Any],
    env: Verifying,
    *,
    crl_der: bytes | None = None,
    collateral: Collateral | None = None,
) -> Evaluation:
    """Verify and appraise decoded evidence. Never raises for bad evidence or collateral."""
    platform = PLATFORMS_BY_KIND[evidence.kind]
    try:
        v = verify_azure_cvm(
            evidence,
            trust=env.trust,
            now=env.now,
            nonce=policy.expected_nonce,
            crl_der=crl_der,
            collateral=collateral,
            snp_cache=env.snp_cache,
            intel_cache=env.intel_cache,
        )
    except KeywardError as e:
        return unverified(platform, {}, e, env.trust)
    verdict = appraise_azure_cvm(v, policy)
    return Evaluation(
        platform=platform,
        verified=True,
        accepted=verdict.accepted,
        tcb_status=v.tdx.tcb.status if v.tdx is not None else None,
        advisory_ids=v.tdx.tcb.advisory_ids if v.tdx is not None else (),
        claims=azure_claims(v),
        reasons=verdict.reasons,
        collateral=_collateral_summary(v),
        simulated=v.simulated,
    )


def evaluate_azure(
    parsed: ParsedAzure, documents: Documents, policy: AzureCvmPolicy[Any], env: Verifying
) -> Evaluation:
    """Verify and appraise the item with the documents read for its needs: the newer of the supplied and the
    cached AMD CRL or Intel collateral, as for the plain platforms."""
    evidence = parsed.evidence
    if isinstance(evidence, KeywardError):
        return unverified(PLATFORMS_BY_KIND[parsed.kind], {}, evidence, env.trust)
    hardware = parsed.hardware
    crl: bytes | None = None
    collateral: Collateral | None = None
    if isinstance(hardware, ParsedReport):
        crl = amd_crl(hardware.crl_target, documents, hardware.crl, env.trust, env.collateral_cache)
    elif isinstance(hardware, ParsedQuote):
        digest = hardware.supplied_digest
        if env.collateral_cache is not None and digest is None and hardware.item.collateral:
            digest = text_digest(hardware.item.collateral)
        collateral = intel_collateral(hardware.keys, documents, hardware.supplied, env.collateral_cache, digest)
    return evaluate_azure_evidence(evidence, policy, env, crl_der=crl, collateral=collateral)


# ----------------------------------------------------------------------------------------------------------
# keyward verify


def sniff_azure(data: bytes) -> bool:
    """An evidence JSON object with ``hcl_report`` and ``tpm_quote`` members."""
    stripped = data.lstrip()
    if not stripped.startswith(b"{") or b"hcl_report" not in data:
        return False
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "hcl_report" in doc and "tpm_quote" in doc


def _kind_of(data: bytes) -> AzureKind:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise EvidenceMalformed(Code.AZURE_EVIDENCE_MALFORMED, "evidence is not JSON") from e
    return "tdx" if isinstance(doc, dict) and "td_quote" in doc else "snp"


def azure_cli_policy(document: dict[str, Any]) -> dict[str, Any]:
    """The command line's Azure policy document, parsed for the evidence's platform when it is known
    (:func:`evaluate_azure_cli`; an invalid one is a usage error there, exit 2)."""
    return document


def _nonce(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        nonce = bytes.fromhex(text)
    except ValueError as e:
        raise UsageError(Code.POLICY_INVALID, "--nonce must be hex") from e
    if not 0 < len(nonce) <= 64:
        raise UsageError(Code.POLICY_INVALID, "--nonce must be 1-64 bytes", actual=len(nonce))
    return nonce


def evaluate_azure_cli(data: bytes, inputs: Inputs, document: dict[str, Any], env: Verifying) -> Evaluation:
    """Verify and appraise an evidence JSON with the files given: ``--nonce`` (the quote's extraData; also the
    policy's ``expected_nonce``), ``--certs`` (a VCEK replacing the one in the evidence), ``--crl`` (AMD),
    ``--collateral`` (Intel QuoteCollateralV3 JSON). Raises ``policy.invalid`` (UsageError) for an invalid policy
    or nonce; never raises for bad evidence or inputs."""
    try:
        kind = _kind_of(data)
    except KeywardError as e:
        return rejected(e.to_reason(), PLATFORM_AZURE_SNP)
    nonce = _nonce(inputs.text("nonce"))
    if nonce is not None:
        document = {**document, "expected_nonce": nonce.hex()}
    policy = parse_azure_snp_policy(document) if kind == "snp" else parse_azure_tdx_policy(document)
    certs, crl, given = inputs.file("certs"), inputs.file("crl"), inputs.file_or_dir("collateral")
    try:
        evidence = parse_azure_evidence(data, kind)
        if certs is not None and kind == "snp":
            evidence = replace(evidence, vcek=leaf_from_certificates(certs.data))
        if given is None:
            collateral = None
        elif isinstance(given, InputDir):
            collateral = collateral_from_pcs_files(given.files, given.path)
        else:
            collateral = parse_collateral_json(given.data)
    except KeywardError as e:
        return rejected(e.to_reason(), PLATFORMS_BY_KIND[kind])
    return evaluate_azure_evidence(evidence, policy, env, crl_der=crl.data if crl else None, collateral=collateral)


def _shared(family: CliFamily[Any], dest: str) -> CliInput:
    return next(i for i in family.inputs if i.dest == dest)


#: Azure confidential VMs on the command line: recognised by the evidence JSON, or picked by ``--nonce``.
AZURE_CLI: Final[CliFamily[dict[str, Any]]] = CliFamily(
    family="azure",
    inputs=(
        CliInput(
            "--nonce",
            "nonce",
            "Azure CVM: the nonce (hex) the TPM quote's extraData must be (and, for evidence version 2, the HCL "
            "user-data's prefix).",
            kind="text",
        ),
        _shared(SNP_CLI, "certs"),
        _shared(SNP_CLI, "crl"),
        _shared(INTEL_CLI, "collateral"),
    ),
    sniff=sniff_azure,
    policy=azure_cli_policy,
    evaluate=evaluate_azure_cli,
)
