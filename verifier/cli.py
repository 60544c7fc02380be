"""The ``keyward`` command line. A stable contract other tools script against:

    keyward verify EVIDENCE [--collateral FILE|DIR] [--at TIME] [--policy FILE] [--json]            (Intel)
    keyward verify REPORT [--certs FILE] [--cert-table FILE] [--crl FILE] [--product milan|genoa|turin]
                          [--cce-policy FILE ...] [--at TIME] [--policy FILE] [--json]          (AMD SEV-SNP)

Exit status: 0 accepted, 1 rejected (malformed evidence included: a clean rejection, never a traceback),
2 usage error (missing file, bad flag, bad time, invalid policy file).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from verifier import limits, service_cli
from verifier.appraisal.intel import IntelPolicy, parse_intel_policy
from verifier.appraisal.snp import SnpPolicy, cce_policy_digest, parse_snp_policy
from verifier.collateral.amd_files import cert_table_bytes, leaf_from_certificates, parse_tsm_dump
from verifier.collateral.files import load_intel_collateral
from verifier.errors import Code, KeywardError, Reason, UsageError
from verifier.evidence.snp import REPORT_SIZE, Product, decode_report_bytes
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.evaluation import Evaluation, evaluate_intel_quote, evaluate_snp_report
from verifier.platforms.intel_dcap import PLATFORM_TDX
from verifier.platforms.registry import PLATFORMS
from verifier.trust.intel_collateral import Collateral
from verifier.trust.store import load_trust_store

EXIT_ACCEPTED, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def parse_time(text: str) -> datetime:
    """ISO 8601 (``Z`` or offset; naive means UTC) or unix seconds."""
    text = text.strip()
    try:
        if text.lstrip("-").isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        t = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError) as e:
        raise click.BadParameter(f"{text!r} is neither ISO 8601 nor unix seconds") from e
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


class _Time(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click stubs
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        return parse_time(str(value))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keyward")
def main() -> None:
    """Keyward: verify hardware attestation evidence against genuine vendor roots."""


@main.command()
@click.argument("evidence", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--collateral",
    "collateral_path",
    type=click.Path(exists=True, path_type=Path),
    help="Intel: dcap-qvl QuoteCollateralV3 JSON, or a directory of raw Intel PCS responses.",
)
@click.option(
    "--certs",
    "certs_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AMD: the VCEK/VLEK, PEM or DER, alone or with its chain (a supplied ARK/ASK is ignored).",
)
@click.option(
    "--cert-table",
    "cert_table_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AMD: extended-report certificate table / configfs-tsm auxblob (raw or base64).",
)
@click.option(
    "--crl",
    "crl_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AMD: the KDS CRL for the product (DER), checked against the pinned ARK.",
)
@click.option(
    "--product",
    type=click.Choice(["milan", "genoa", "turin"]),
    help="AMD: product line (needed only to pin v2 reports, which carry no CPUID).",
)
@click.option(
    "--cce-policy",
    "cce_policy_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AMD confidential ACI: a CCE policy (rego or base64); HOST_DATA must be its SHA-256. Repeatable.",
)
@click.option(
    "--uvm-endorsement",
    "uvm_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="AMD confidential ACI: Microsoft's UVM reference-info COSE_Sign1; MEASUREMENT must be endorsed.",
)
@click.option("--at", "at", type=_Time(), help="Verification time: ISO 8601 or unix seconds (default: now).")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='Appraisal policy JSON: flat for the evidence\'s platform, or {"intel": {...}, "snp": {...}}.',
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a report.")
def verify(
    evidence: Path,
    collateral_path: Path | None,
    certs_path: Path | None,
    cert_table_path: Path | None,
    crl_path: Path | None,
    product: Product | None,
    cce_policy_paths: tuple[Path, ...],
    uvm_paths: tuple[Path, ...],
    at: datetime | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Verify EVIDENCE (an SGX/TDX quote, an SEV-SNP report or a configfs-tsm dump; binary or hex) and appraise it."""
    now = at or datetime.now(UTC)
    with evidence.open("rb") as f:
        data = f.read(limits.MAX_HEX_EVIDENCE_CHARS + 1)
    amd_inputs = any((certs_path, cert_table_path, crl_path, product, cce_policy_paths, uvm_paths))
    policy_doc = _policy_doc(policy_path)
    try:
        if amd_inputs or is_snp_evidence(data):
            snp_policy = _snp_policy(policy_doc, cce_policy_paths)
            if uvm_paths:
                snp_policy = replace(snp_policy, require_uvm_endorsement=True)
            uvm = tuple(p.read_bytes() for p in uvm_paths)
            result = _evaluate_snp(data, certs_path, cert_table_path, crl_path, product, now, snp_policy, uvm)
        else:
            result = _evaluate(data, collateral_path, now, _intel_policy(policy_doc))
    except click.BadParameter:
        raise
    except KeywardError as e:  # trust store problems: nothing can be verified
        result = _rejection(e.to_reason())
    except Exception as e:
        result = _rejection(Reason(Code.INTERNAL_ERROR, f"unexpected {type(e).__name__}: {e}"))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_report(evidence.name, now, result))
    sys.exit(EXIT_ACCEPTED if result.accepted else EXIT_REJECTED)


def is_snp_evidence(data: bytes) -> bool:
    """SNP reports are 0x4A0 bytes with a u32 version (bytes 2-3 zero); Intel quotes carry key type 2 there."""
    if parse_tsm_dump_safe(data):
        return True
    raw = decode_report_bytes(data)
    return len(raw) == REPORT_SIZE and raw[2:4] == b"\x00\x00"


def parse_tsm_dump_safe(data: bytes) -> bool:
    try:
        return parse_tsm_dump(data) is not None
    except KeywardError:
        return True  # looks like a dump; the SNP path reports the decoding error


def _policy_doc(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as e:
        raise click.BadParameter(f"policy is not JSON: {e}", param_hint="--policy") from e
    if not isinstance(doc, dict):
        raise click.BadParameter("policy must be a JSON object", param_hint="--policy")
    return doc


def _section(doc: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if doc is None:
        return None
    if set(doc) & {"intel", "snp"}:
        section = doc.get(name)
        return section if isinstance(section, dict) else {}
    return doc


def _intel_policy(doc: dict[str, Any] | None) -> IntelPolicy:
    section = _section(doc, "intel")
    try:
        return IntelPolicy() if section is None else parse_intel_policy(json.dumps(section))
    except UsageError as e:
        raise click.BadParameter(e.message, param_hint="--policy") from e


def _snp_policy(doc: dict[str, Any] | None, cce_paths: tuple[Path, ...]) -> SnpPolicy:
    cce = {p.name: cce_policy_digest(p.read_bytes()) for p in cce_paths}
    try:
        return parse_snp_policy(_section(doc, "snp") or {}, cce_policies=cce)
    except UsageError as e:
        raise click.BadParameter(e.message, param_hint="--policy") from e


def _rejection(reason: Reason, platform: str | None = None) -> Evaluation:
    return Evaluation(platform, False, False, None, (), {}, (reason,))


def _evaluate(data: bytes, collateral_path: Path | None, now: datetime, policy: IntelPolicy) -> Evaluation:
    trust = load_trust_store()
    collateral: Collateral | None = None
    if collateral_path is not None:
        try:
            collateral = load_intel_collateral(collateral_path)
        except KeywardError as e:
            return _rejection(e.to_reason())
    return evaluate_intel_quote(data, collateral, trust, now, policy)


def _evaluate_snp(
    data: bytes,
    certs_path: Path | None,
    cert_table_path: Path | None,
    crl_path: Path | None,
    product: Product | None,
    now: datetime,
    policy: SnpPolicy,
    uvm: tuple[bytes, ...] = (),
) -> Evaluation:
    trust = load_trust_store()
    try:
        dump = parse_tsm_dump(data)
        report = dump.report if dump else data
        table = (
            cert_table_bytes(cert_table_path.read_bytes()) if cert_table_path else (dump.cert_table if dump else None)
        )
        leaf = leaf_from_certificates(certs_path.read_bytes()) if certs_path else None
    except KeywardError as e:
        return _rejection(e.to_reason(), PLATFORM_SNP)
    crl = crl_path.read_bytes() if crl_path else None
    return evaluate_snp_report(
        report,
        leaf_der=leaf,
        cert_table=table,
        trust=trust,
        now=now,
        policy=policy,
        product=product,
        crl_der=crl,
        uvm_endorsements=uvm,
    )


_REPORT_CLAIMS = (
    "mrenclave",
    "mrsigner",
    "isvprodid",
    "isvsvn",
    "mrtd",
    "rtmr0",
    "rtmr1",
    "rtmr2",
    "rtmr3",
    "tdattributes",
    "mrservicetd",
    "reportdata",
    "product",
    "signing_key_type",
    "vmpl",
    "policy",
    "measurement",
    "host_data",
    "cce_policy",
    "report_data",
    "reported_tcb",
    "chip_id",
)


def render_report(name: str, now: datetime, r: Evaluation) -> str:
    """A readable, stable-enough report for people (scripts use ``--json``)."""
    yes = click.style("yes", fg="green")
    no = click.style("no", fg="red")
    c = r.claims
    lines = [click.style(f"keyward verify {name}", bold=True)]
    entry = PLATFORMS.get(r.platform or "")
    snp = entry is not None and entry.family == "snp"
    kind = f" (quote v{c['quote_version']}, body type {c['body_type']})" if "quote_version" in c else ""
    if snp and "version" in c:
        kind = f" (report v{c['version']}{', ' + str(c['product']) if 'product' in c else ''})"
    lines.append(f"  platform     {r.platform or 'unknown'}{kind}{'  [SIMULATED]' if r.simulated else ''}")
    lines.append(f"  at           {now.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    chain = (entry or PLATFORMS[PLATFORM_TDX]).chain(r)
    lines.append(f"  verified     {yes if r.verified else no}" + (f"   {chain}" if r.verified else ""))
    if r.tcb_status:
        adv = ", ".join(r.advisory_ids) or "none"
        lines.append(
            f"  tcb status   {r.tcb_status}   (tcbDate {c.get('tcb_date')}, evaluation data "
            f"#{r.collateral.get('tcb_eval_number')}, FMSPC {c.get('fmspc')})"
        )
        lines.append(f"  advisories   {adv}")
    lines.append(f"  accepted     {yes if r.accepted else no}")
    for reason in r.reasons:
        detail = ""
        if reason.expected is not None or reason.actual is not None:
            detail = f"  (expected {_short(reason.expected)}, actual {_short(reason.actual)})"
        lines.append(f"    {click.style('x', fg='red')} {reason.code.value}: {reason.message}{detail}")
    shown = [(k, c[k]) for k in _REPORT_CLAIMS if k in c]
    if shown:
        lines.append("  claims" + ("" if r.verified else " (unverified: read from the evidence)"))
        lines.extend(f"    {k:<17}{v}" for k, v in shown)
    col = r.collateral
    if "latest_issue" in col:
        lines.append(f"  collateral   valid {col['latest_issue']} .. {col['earliest_expiry']}")
    elif "leaf_not_before" in col:
        lines.append(
            f"  certificate  valid {col['leaf_not_before']} .. {col['leaf_not_after']}"
            f"{', CRL checked' if col.get('crl_checked') else ', no CRL supplied'}"
        )
    return "\n".join(lines)


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    return value if len(value) <= 40 else value[:37] + "..."


main.add_command(service_cli.db)
main.add_command(service_cli.admin)

if __name__ == "__main__":  # pragma: no cover
    main()
