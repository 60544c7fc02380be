"""The ``keyward`` command line. A stable contract other tools script against:

    keyward verify EVIDENCE [--collateral FILE|DIR] [--at TIME] [--policy FILE] [--json]            (Intel)
    keyward verify REPORT [--certs FILE] [--cert-table FILE] [--crl FILE] [--product milan|genoa|turin]
                          [--cce-policy FILE ...] [--at TIME] [--policy FILE] [--json]          (AMD SEV-SNP)
    keyward verify EVIDENCE.json [--nonce HEX] [--certs VCEK] [--crl FILE] [--collateral FILE]
                          [--at TIME] [--policy FILE] [--json]                (Azure CVM: az-snp-vtpm / az-tdx-vtpm)

Exit status: 0 accepted, 1 rejected (malformed evidence included: a clean rejection, never a traceback),
2 usage error (missing file, bad flag, bad time, invalid policy file).

The platform-specific options, how evidence is recognised and how it is verified come from the platform registry's
CLI descriptors (:data:`~verifier.platforms.registry.CLI_FAMILIES`); nothing here dispatches on a platform.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click

from verifier import limits, service_cli
from verifier.collateral.files import read_file
from verifier.errors import Code, KeywardError, Reason, UsageError
from verifier.platforms.cli_inputs import (
    CliFamily,
    CliInput,
    InputDir,
    InputFile,
    Inputs,
    InputValue,
    choose_family,
    policy_section,
)
from verifier.platforms.evaluation import Evaluation, rejected
from verifier.platforms.intel_dcap import PLATFORM_TDX
from verifier.platforms.item import Verifying
from verifier.platforms.registry import CLI_FAMILIES, PLATFORMS
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


#: ``keyward verify``'s one-line description (its ``--help``).
VERIFY_HELP = (
    "Verify EVIDENCE (an SGX/TDX quote, an SEV-SNP report or a configfs-tsm dump, an NVIDIA GPU or NVSwitch "
    "attestation report; binary or hex; or an Azure confidential VM's az-snp-vtpm / az-tdx-vtpm evidence JSON) "
    "and appraise it."
)


def verify_command(families: Sequence[CliFamily[Any]]) -> click.Command:
    """``keyward verify`` for the registry's CLI families (:data:`~verifier.platforms.registry.CLI_FAMILIES`):
    their input options, then ``--at``, ``--policy`` and ``--json``. Nothing here names a platform."""

    def verify(evidence: Path, at: datetime | None, policy_path: Path | None, as_json: bool, **given: object) -> None:
        now = at or datetime.now(UTC)
        with evidence.open("rb") as f:
            data = f.read(limits.MAX_HEX_EVIDENCE_CHARS + 1)
        policy_doc = _policy_doc(policy_path)
        try:
            result = evaluate_evidence(families, data, given, policy_doc, now)
        except click.BadParameter:
            raise
        except UsageError as e:  # an input option that is not what it must be: exit 2, like a bad --at
            raise click.UsageError(e.message) from e
        except KeywardError as e:  # trust store problems, inputs that cannot be read: nothing can be verified
            result = rejected(e.to_reason())
        except Exception as e:
            result = rejected(Reason(Code.INTERNAL_ERROR, f"unexpected {type(e).__name__}: {e}"))
        if as_json:
            click.echo(json.dumps(result.to_json(), indent=2))
        else:
            click.echo(render_report(evidence.name, now, result))
        sys.exit(EXIT_ACCEPTED if result.accepted else EXIT_REJECTED)

    params: list[click.Parameter] = [
        click.Argument(["evidence"], type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        *_options(families),
        click.Option(["--at", "at"], type=_Time(), help="Verification time: ISO 8601 or unix seconds (default: now)."),
        click.Option(
            ["--policy", "policy_path"],
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help=_policy_help(families),
        ),
        click.Option(["--json", "as_json"], is_flag=True, help="Print one JSON object instead of a report."),
    ]
    return click.Command("verify", callback=verify, params=params, help=VERIFY_HELP)


def evaluate_evidence(
    families: Sequence[CliFamily[Any]],
    data: bytes,
    given: Mapping[str, object],
    policy_doc: dict[str, Any] | None,
    now: datetime,
) -> Evaluation:
    """Pick the family (:func:`~verifier.platforms.cli_inputs.choose_family`: its options given, else sniffing),
    parse its policy (``click.BadParameter`` for an invalid one), read its input files and evaluate. Raises
    :class:`~verifier.errors.KeywardError` when the trust store or an input cannot be read."""
    values = {dest: value for dest, value in given.items() if value is not None and value != ()}
    family = choose_family(families, values, data)
    section = policy_section(policy_doc, family.family, (f.family for f in families))
    try:
        policy = family.policy(section)
    except UsageError as e:
        raise click.BadParameter(e.message, param_hint="--policy") from e
    trust = load_trust_store()
    inputs = Inputs({spec.dest: _read_input(spec, values.get(spec.dest)) for spec in family.inputs})
    return family.evaluate(data, inputs, policy, Verifying(trust, now))


def _options(families: Sequence[CliFamily[Any]]) -> list[click.Option]:
    """One click option per input; an input several families share gets their help texts joined."""
    specs: dict[str, CliInput] = {}
    helps: dict[str, list[str]] = {}
    for family in families:
        for spec in family.inputs:
            specs.setdefault(spec.dest, spec)
            if spec.help not in helps.setdefault(spec.dest, []):
                helps[spec.dest].append(spec.help)
    return [_option(spec, " ".join(helps[dest])) for dest, spec in specs.items()]


def _option(spec: CliInput, help_text: str) -> click.Option:
    if spec.kind == "choice":
        return click.Option([spec.flag, spec.dest], type=click.Choice(list(spec.choices)), help=help_text)
    if spec.kind == "text":
        return click.Option([spec.flag, spec.dest], type=str, help=help_text)
    path = click.Path(exists=True, dir_okay=spec.kind == "file_or_dir", path_type=Path)
    return click.Option([spec.flag, spec.dest], type=path, multiple=spec.multiple, help=help_text)


def _policy_help(families: Sequence[CliFamily[Any]]) -> str:
    sections = ", ".join(f'"{f.family}": {{...}}' for f in families)
    return f"Appraisal policy JSON: flat for the evidence's platform, or {{{sections}}}."


def _read_input(spec: CliInput, value: object) -> InputValue:
    if value is None:
        return None
    if spec.kind in ("choice", "text"):
        return str(value)
    if spec.multiple:
        return tuple(_read_file(spec, Path(str(p))) for p in cast(tuple[object, ...], value))
    path = Path(str(value))
    if spec.kind == "file_or_dir" and path.is_dir():
        names = (n for n in spec.dir_files if (path / n).exists())
        return InputDir(str(path), {n: _read_file(spec, path / n).data for n in names})
    return _read_file(spec, path)


def _read_file(spec: CliInput, path: Path) -> InputFile:
    if spec.read_error is None:
        return InputFile(path.name, path.read_bytes())
    return InputFile(path.name, read_file(path, max_bytes=spec.max_bytes, code=spec.read_error))


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
    "vm_configuration",
    "tpm_nonce",
    "nonce_checked",
    "user_data_bound",
    "pcr_digest_verified",
    "ak_pub_sha256",
)


def render_report(name: str, now: datetime, r: Evaluation) -> str:
    """A readable, stable-enough report for people (scripts use ``--json``)."""
    yes = click.style("yes", fg="green")
    no = click.style("no", fg="red")
    c = r.claims
    lines = [click.style(f"keyward verify {name}", bold=True)]
    entry = PLATFORMS.get(r.platform or "")
    family = entry.family if entry is not None else None
    kind = f" (quote v{c['quote_version']}, body type {c['body_type']})" if "quote_version" in c else ""
    if family == "snp" and "version" in c:
        kind = f" (report v{c['version']}{', ' + str(c['product']) if 'product' in c else ''})"
    if family == "azure" and "evidence_version" in c:
        kind = f" (evidence v{c['evidence_version']}, HCL report v{c.get('hcl_version')}{kind})"
    if family == "nvidia" and "device_kind" in c:
        kind = f" ({'NVSwitch' if c['device_kind'] == 'switch' else 'GPU'}, {c.get('architecture')})"
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
    if family == "nvidia":
        shown = [(k, c[k]) for k in _NVIDIA_CLAIMS if c.get(k) is not None]
    else:
        shown = [(k, c[k]) for k in _REPORT_CLAIMS if k in c]
    if shown:
        lines.append("  claims" + ("" if r.verified else " (unverified: read from the evidence)"))
        lines.extend(f"    {k:<17}{v}" for k, v in shown)
    if family == "nvidia":
        lines.extend(_nvidia_lines(c))
    col = r.collateral
    if "latest_issue" in col:
        lines.append(f"  collateral   valid {col['latest_issue']} .. {col['earliest_expiry']}")
    elif "leaf_not_before" in col:
        lines.append(
            f"  certificate  valid {col['leaf_not_before']} .. {col['leaf_not_after']}"
            f"{', CRL checked' if col.get('crl_checked') else ', no CRL supplied'}"
        )
    return "\n".join(lines)


#: NVIDIA claims shown in the report (those a device has; an NVSwitch has no driver, project or SKUs).
_NVIDIA_CLAIMS = (
    "architecture",
    "driver_version",
    "vbios_version",
    "project",
    "project_sku",
    "chip_sku",
    "chip_info",
    "mode",
    "request_nonce",
    "nonce_match",
    "ueid",
    "hwmodel",
    "fwid",
)


def _nvidia_lines(c: Mapping[str, object]) -> list[str]:
    """The device chain, the RIMs used, the measurement comparison and the OCSP answers of an NVIDIA device."""
    lines: list[str] = []
    chain = c.get("chain")
    if isinstance(chain, Mapping):
        lines.append(
            f"  certificates device chain {chain.get('status')}, earliest expiry {chain.get('earliest_expiry')}"
        )
    rims = c.get("rims")
    if isinstance(rims, Mapping):
        for role, rim in rims.items():
            if isinstance(rim, Mapping):
                state = rim.get("status") or f"signer valid until {rim.get('signer_not_after')}"
                lines.append(f"  {role + ' RIM':<13}{rim.get('id')}  ({state})")
    measurements = c.get("measurements")
    if isinstance(measurements, list):
        results = [m for m in measurements if isinstance(m, Mapping)]
        count = {o: sum(1 for m in results if m.get("result") == o) for o in ("match", "mismatch", "skipped")}
        mismatched = ", ".join(str(m.get("index")) for m in results if m.get("result") == "mismatch")
        lines.append(
            f"  measurements {c.get('measres')}: {count['match']} match, {count['mismatch']} mismatch"
            + (f" (index {mismatched})" if mismatched else "")
            + (f", {count['skipped']} skipped (NVDEC0 disabled)" if count["skipped"] else "")
        )
    ocsp = c.get("ocsp")
    if ocsp == "skipped":
        lines.append("  ocsp         skipped (the policy does not require OCSP and none was given)")
    elif isinstance(ocsp, list):
        entries = [e for e in ocsp if isinstance(e, Mapping)]
        good = [str(e.get("level")) for e in entries if e.get("status") == "good"]
        other = [f"{e.get('level')} {e.get('status')}" for e in entries if e.get("status") != "good"]
        lines.append(f"  ocsp         {len(good)} of {len(entries)} good" + (f"; {', '.join(other)}" if other else ""))
    return lines


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    return value if len(value) <= 40 else value[:37] + "..."


verify = verify_command(CLI_FAMILIES)
main.add_command(verify)
main.add_command(service_cli.db)
main.add_command(service_cli.admin)
main.add_command(service_cli.staff)

if __name__ == "__main__":  # pragma: no cover
    main()
