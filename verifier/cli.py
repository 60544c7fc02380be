"""The ``keyward`` command line. A stable contract other tools script against:

    keyward verify EVIDENCE [--collateral FILE|DIR] [--at TIME] [--policy FILE] [--json]

Exit status: 0 accepted, 1 rejected (malformed evidence included: a clean rejection, never a traceback),
2 usage error (missing file, bad flag, bad time, invalid policy file).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from verifier import limits
from verifier.appraisal.intel import IntelPolicy, parse_intel_policy
from verifier.attestation.evaluation import Evaluation, evaluate_intel_quote
from verifier.collateral.files import load_intel_collateral
from verifier.errors import Code, KeywardError, Reason, UsageError
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
    help="dcap-qvl QuoteCollateralV3 JSON, or a directory of raw Intel PCS responses.",
)
@click.option("--at", "at", type=_Time(), help="Verification time: ISO 8601 or unix seconds (default: now).")
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Appraisal policy JSON (default: Keyward's default Intel policy).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a report.")
def verify(
    evidence: Path, collateral_path: Path | None, at: datetime | None, policy_path: Path | None, as_json: bool
) -> None:
    """Verify EVIDENCE (an SGX/TDX quote, binary or hex) and appraise it."""
    now = at or datetime.now(UTC)
    policy = IntelPolicy()
    if policy_path is not None:
        try:
            policy = parse_intel_policy(policy_path.read_bytes())
        except UsageError as e:
            raise click.BadParameter(e.message, param_hint="--policy") from e
    with evidence.open("rb") as f:
        data = f.read(limits.MAX_HEX_EVIDENCE_CHARS + 1)
    try:
        result = _evaluate(data, collateral_path, now, policy)
    except KeywardError as e:  # trust store problems: nothing can be verified
        result = _rejection(e.to_reason())
    except Exception as e:
        result = _rejection(Reason(Code.INTERNAL_ERROR, f"unexpected {type(e).__name__}: {e}"))
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(render_report(evidence.name, now, result))
    sys.exit(EXIT_ACCEPTED if result.accepted else EXIT_REJECTED)


def _rejection(reason: Reason) -> Evaluation:
    return Evaluation(None, False, False, None, (), {}, (reason,))


def _evaluate(data: bytes, collateral_path: Path | None, now: datetime, policy: IntelPolicy) -> Evaluation:
    trust = load_trust_store()
    collateral: Collateral | None = None
    if collateral_path is not None:
        try:
            collateral = load_intel_collateral(collateral_path)
        except KeywardError as e:
            return _rejection(e.to_reason())
    return evaluate_intel_quote(data, collateral, trust, now, policy)


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
)


def render_report(name: str, now: datetime, r: Evaluation) -> str:
    """A readable, stable-enough report for people (scripts use ``--json``)."""
    yes = click.style("yes", fg="green")
    no = click.style("no", fg="red")
    c = r.claims
    lines = [click.style(f"keyward verify {name}", bold=True)]
    kind = f" (quote v{c['quote_version']}, body type {c['body_type']})" if "quote_version" in c else ""
    lines.append(f"  platform     {r.platform or 'unknown'}{kind}{'  [SIMULATED]' if r.simulated else ''}")
    lines.append(f"  at           {now.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    lines.append(
        f"  verified     {yes if r.verified else no}"
        + ("   PCK chain -> pinned Intel SGX Root CA, CRLs, TCB Info, QE Identity, signatures" if r.verified else "")
    )
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
        lines.append("  claims" + ("" if r.verified else " (unverified: read from the quote)"))
        lines.extend(f"    {k:<13}{v}" for k, v in shown)
    if r.collateral:
        lines.append(f"  collateral   valid {r.collateral['latest_issue']} .. {r.collateral['earliest_expiry']}")
    return "\n".join(lines)


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    return value if len(value) <= 40 else value[:37] + "..."


if __name__ == "__main__":  # pragma: no cover
    main()
