"""``keyward-enclave``: the enclave SDK as a command line, for runtimes that are not written in Python.

    keyward-enclave attest  --url URL --licence KEY --model M --deployment D --provider P [--gpus G]
                            [--model-version V] [--key FILE | --key-type P-384|P-256|RSA-3072] [--key-out FILE]
                            [--dek-out FILE] [--json]
    keyward-enclave renew   --url URL --licence KEY --lease ID --key FILE --provider P [--gpus G] [--dek-out FILE]
                            [--json]
    keyward-enclave release --url URL --licence KEY --lease ID [--json]
    keyward-enclave run     --url URL --licence KEY --model M --deployment D --provider P [--gpus G]
                            [--dek-out FILE] [--max-renewals N] [--json]
                            (attest, keep renewing, release on SIGTERM/SIGINT)

``--url`` and ``--licence`` may come from ``KEYWARD_URL`` and ``KEYWARD_LICENCE``. Providers: ``configfs-tsm``
(``--tsm-root``, ``--privlevel``), ``aci-skr`` (``--skr-url``, ``--skr-endpoint raw|combined``), ``azure-cvm``
(the vTPM at ``--tpm-device``, default ``/dev/tpmrm0``, or swtpm at ``--tpm-tcp HOST:PORT``;
``--azure-evidence-version 1|2``; ``--azure-endorsements imds|simulated``: the VCEK or TD quote from Azure's IMDS
or, for a development server, the simulated PKIs) and ``simulated`` (``--simulated-platform``; development servers
only). ``--gpus all`` or ``--gpus 0,1`` (NVML indices, sent in that
order) adds NVIDIA GPU evidence from NVML (CC mode; ``keyward[gpu]``) after the CPU provider's evidence, for every
attestation and renewal; ``--simulated-gpus N`` adds N simulated H100s to ``--provider simulated``.
``--gpus none`` (the default) sends none. The CPU evidence is always required: the server refuses GPU evidence
alone. Progress goes to stderr, the result to stdout; ``--json`` prints one object and nothing else. The DEK and the
private key are only ever written to the files named (mode 0600), never printed.

Exit status: 0 success, 1 rejected (with reason codes), 2 usage error, 3 transport or evidence-provider failure.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar, cast

import click

from verifier.client.api import KeywardClient
from verifier.client.errors import AttestationRejected, ClientError, Rejected, RequestRefused
from verifier.client.keys import KEY_KINDS, EnclaveKeyPair, KeyFileError, write_secret
from verifier.client.models import Lease
from verifier.client.providers import (
    AciSkrProvider,
    AzureCvmProvider,
    ConfigfsTsmProvider,
    CpuWithGpus,
    EvidenceProvider,
    NvmlGpuProvider,
    SimulatedProvider,
)
from verifier.client.providers.azure_cvm import EndorsementSource, imds_endorsements
from verifier.client.session import EnclaveSession
from verifier.client.tpm import parse_tcp_address
from verifier.keywrap.enclave import MAX_NVIDIA_DEVICES

EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_TRANSPORT = 0, 1, 2, 3
PROVIDERS = ("configfs-tsm", "aci-skr", "azure-cvm", "simulated")
F = Callable[..., Any]
T = TypeVar("T")
#: ``--gpus``: None (none), every GPU, or NVML indices in the order to send them.
GpuChoice = Literal["all"] | tuple[int, ...] | None


class GpuSelection(click.ParamType[GpuChoice, Any]):
    """``none``, ``all`` or comma-separated NVML indices (``0,1``): distinct, at most MAX_NVIDIA_DEVICES."""

    name = "none|all|N[,N...]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> GpuChoice:
        if isinstance(value, tuple):
            return cast(GpuChoice, value)  # already converted
        text = str(value).strip().lower()
        if text in ("none", "all"):
            return None if text == "none" else "all"
        parts = [part.strip() for part in text.split(",")]
        if not all(re.fullmatch(r"[0-9]{1,3}", part) for part in parts):
            self.fail(f"{value!r} is not none, all or comma-separated GPU indices such as 0,1", param, ctx)
        indices = tuple(int(part) for part in parts)
        if len(set(indices)) != len(indices):
            self.fail(f"{value!r} names a GPU twice", param, ctx)
        if len(indices) > MAX_NVIDIA_DEVICES:
            self.fail(f"at most {MAX_NVIDIA_DEVICES} GPUs per attestation", param, ctx)
        return indices


def _options(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Apply click options in the order listed (so --help lists them in that order)."""

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


_connection_options = _options(
    click.option("--url", envvar="KEYWARD_URL", required=True, help="Keyward base URL (env KEYWARD_URL)."),
    click.option("--licence", envvar="KEYWARD_LICENCE", required=True, help="Licence key (env KEYWARD_LICENCE)."),
    click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the decision."),
    click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of progress and a summary."),
)
_provider_options = _options(
    click.option("--provider", type=click.Choice(PROVIDERS), required=True, help="Where the evidence comes from."),
    click.option(
        "--tsm-root",
        type=click.Path(path_type=Path),
        default="/sys/kernel/config/tsm/report",
        show_default=True,
        help="configfs-tsm: the report directory.",
    ),
    click.option(
        "--privlevel",
        type=click.IntRange(0, 3),
        help="configfs-tsm: SEV-SNP VMPL to report at, not below the guest's privlevel_floor (the default); not TDX.",
    ),
    click.option("--skr-url", default="http://localhost:8080", show_default=True, help="aci-skr: sidecar URL."),
    click.option(
        "--skr-endpoint",
        type=click.Choice(["raw", "combined"]),
        default="raw",
        show_default=True,
        help="aci-skr: /attest/raw (VCEK from the server's cache) or /attest/combined (sends THIM's VCEK).",
    ),
    click.option(
        "--tpm-device",
        type=click.Path(path_type=Path),
        default="/dev/tpmrm0",
        show_default=True,
        help="azure-cvm: the kernel's TPM resource manager device.",
    ),
    click.option(
        "--tpm-tcp",
        metavar="HOST:PORT",
        callback=lambda ctx, param, value: _tcp_address(value, param, ctx),
        help="azure-cvm: swtpm's TCP port instead of --tpm-device (tests and development).",
    ),
    click.option(
        "--azure-evidence-version",
        type=click.Choice(["1", "2"]),
        default="2",
        show_default=True,
        help="azure-cvm: 2 also writes the binding as the HCL report's user-data (a fresh hardware report).",
    ),
    click.option(
        "--azure-endorsements",
        type=click.Choice(["imds", "simulated"]),
        default="imds",
        show_default=True,
        help="azure-cvm: the VCEK / TD quote from Azure's IMDS, or from the simulated PKIs (development servers only).",
    ),
    click.option(
        "--simulated-platform",
        type=click.Choice(["intel-tdx", "amd-sev-snp"]),
        default="intel-tdx",
        show_default=True,
        help="simulated: which fake vendor PKI signs the evidence (development servers only).",
    ),
    click.option(
        "--simulated-gpus",
        type=click.IntRange(0, MAX_NVIDIA_DEVICES),
        default=0,
        show_default=True,
        help="simulated: that many simulated NVIDIA H100s after the CPU evidence (development servers only).",
    ),
    click.option(
        "--gpus",
        type=GpuSelection(),
        default="none",
        show_default=True,
        help="NVIDIA GPUs to attest with the CPU (NVML, CC mode, the keyward[gpu] extra): none, all, or NVML "
        "indices such as 0,1 (sent in that order). Their evidence follows the --provider evidence.",
    ),
    click.option("--dek-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the DEK here (0600)."),
)


#: What a lease is for (attest and run): the model, its version, the deployment, and the enclave key's type.
_target_options = _options(
    click.option("--model", required=True),
    click.option("--model-version", help="Default: the newest version the licence allows."),
    click.option("--deployment", required=True, help="Deployment name (one seat per live lease)."),
    click.option("--key-type", type=click.Choice(KEY_KINDS), default="P-384", show_default=True),
)


def _tcp_address(value: str | None, param: click.Parameter, ctx: click.Context) -> tuple[str, int] | None:
    if value is None:
        return None
    try:
        return parse_tcp_address(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from e


def _azure_endorsements(choice: str) -> EndorsementSource:
    if choice == "imds":
        return imds_endorsements
    from verifier.simulation.azure_paravisor import simulated_endorsements  # noqa: PLC0415 - development only

    return simulated_endorsements


def _provider(params: dict[str, Any]) -> EvidenceProvider:
    """The --provider's CPU evidence, followed by the --gpus' NVIDIA evidence when any are asked for."""
    cpu = _cpu_provider(params)
    gpus: GpuChoice = params["gpus"]
    if gpus is None:
        return cpu
    return CpuWithGpus(cpu, NvmlGpuProvider(gpus=None if gpus == "all" else gpus))


def _cpu_provider(params: dict[str, Any]) -> EvidenceProvider:
    name = params["provider"]
    if name == "configfs-tsm":
        return ConfigfsTsmProvider(root=params["tsm_root"], privlevel=params["privlevel"])
    if name == "aci-skr":
        return AciSkrProvider(url=params["skr_url"], endpoint=params["skr_endpoint"])
    if name == "azure-cvm":
        return AzureCvmProvider(
            device=params["tpm_device"],
            tcp=params["tpm_tcp"],
            version=2 if params["azure_evidence_version"] == "2" else 1,
            endorsements=_azure_endorsements(params["azure_endorsements"]),
        )
    return SimulatedProvider(platform=params["simulated_platform"], gpus=params["simulated_gpus"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keyward")
def main() -> None:
    """keyward-enclave: attest this TEE to Keyward and receive the model key."""


@main.command()
@_connection_options
@_provider_options
@_target_options
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Private JWK.")
@click.option("--key-out", type=click.Path(dir_okay=False, path_type=Path), help="Save the private JWK (0600).")
def attest(**params: Any) -> None:
    """Attest with fresh evidence; print the lease."""
    key = _key(params["key_path"]) if params["key_path"] else EnclaveKeyPair.generate(params["key_type"])
    if params["key_out"]:
        _write(params["key_out"], json.dumps(key.private_jwk).encode(), "--key-out")
    with _client(params) as client:
        lease = _run(
            params,
            lambda: client.attest(
                model=params["model"],
                deployment=params["deployment"],
                provider=_provider(params),
                key=key,
                model_version=params["model_version"],
                deadline=params["timeout"],
            ),
        )
    _accepted(params, lease)


@main.command()
@_connection_options
@_provider_options
@click.option("--lease", "lease_id", required=True, help="The lease to renew.")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The lease's private JWK (attest --key-out).",
)
def renew(**params: Any) -> None:
    """Renew a lease with fresh evidence from the same enclave key (--key from attest --key-out)."""
    key = _key(params["key_path"])
    with _client(params) as client:
        lease = _run(
            params, lambda: client.renew(params["lease_id"], _provider(params), key=key, deadline=params["timeout"])
        )
    _accepted(params, lease)


@main.command()
@_connection_options
@click.option("--lease", "lease_id", required=True, help="The lease to release.")
def release(**params: Any) -> None:
    """Give the seat back (the enclave is shutting down)."""
    with _client(params) as client:
        _run(params, lambda: client.release(params["lease_id"]))
    if params["as_json"]:
        click.echo(json.dumps({"status": "released", "lease": params["lease_id"]}))
    else:
        click.echo(f"released  lease {params['lease_id']}")


@main.command()
@_connection_options
@_provider_options
@_target_options
@click.option("--max-renewals", type=click.IntRange(min=0), help="Stop after this many renewals (default: never).")
def run(**params: Any) -> None:
    """Hold a lease for a model runtime: attest (writing --dek-out), renew before every renew_after with fresh
    evidence, and on SIGTERM or SIGINT (or after --max-renewals) release the seat and exit. A rejected renewal
    (revoked lease, ended licence, evidence that no longer passes) exits 1 at once: stop using the key."""
    with _client(params) as client:
        session = EnclaveSession(
            client,
            _provider(params),
            model=params["model"],
            deployment=params["deployment"],
            model_version=params["model_version"],
            key=EnclaveKeyPair.generate(params["key_type"]),
            deadline=params["timeout"],
        )
        # Handlers first: a SIGTERM that arrives while attesting still ends in a release, not a held seat.
        previous = {sig: signal.signal(sig, lambda *_: session.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            lease = _run(params, session.start)
            _accepted(params, lease)
            renewals = _run(
                params,
                lambda: session.keep_alive(
                    on_renewed=lambda renewed: _renewed(params, renewed), max_renewals=params["max_renewals"]
                ),
            )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            _run(params, session.close)  # release the seat, also after a failed renewal
    if params["as_json"]:
        click.echo(json.dumps({"status": "released", "lease": lease.id, "renewals": renewals}))
    else:
        click.echo(f"released  lease {lease.id} after {renewals} renewal(s)")


def _renewed(params: dict[str, Any], lease: Lease) -> None:
    if params["as_json"]:
        click.echo(json.dumps({"status": "renewed", "lease": lease.id, "expires_at": lease.expires_at.isoformat()}))
    else:
        click.echo(f"renewed   lease {lease.id} until {lease.expires_at.isoformat()}")


# -- helpers ---------------------------------------------------------------------------------------------------------


def _key(path: Path) -> EnclaveKeyPair:
    try:
        return EnclaveKeyPair.load(path)
    except KeyFileError as e:
        raise click.BadParameter(e.message, param_hint="--key") from e


def _write(path: Path, data: bytes, option: str) -> None:
    try:
        write_secret(path, data)
    except OSError as e:
        raise click.BadParameter(f"cannot write {path}: {e.strerror}", param_hint=option) from e


def _client(params: dict[str, Any]) -> KeywardClient:
    quiet = params["as_json"]
    return KeywardClient(
        params["url"],
        params["licence"],
        timeout=30.0,
        progress=None if quiet else (lambda message: click.echo(f"  {message}", err=True)),
    )


def _run(params: dict[str, Any], step: Callable[[], T]) -> T:
    try:
        return step()
    except Rejected as e:
        _fail(params, EXIT_REJECTED, _rejection_doc(e))
    except ClientError as e:
        _fail(params, EXIT_TRANSPORT, {"status": "error", "error": {"code": e.code, "message": e.message}})


def _rejection_doc(e: Rejected) -> dict[str, Any]:
    if isinstance(e, AttestationRejected):
        reasons = [{"code": r.code, "message": r.message} for r in e.reasons]
        return {"status": "rejected", "attestation_id": e.attestation_id, "reasons": reasons}
    if isinstance(e, RequestRefused):
        reason = {"code": e.reason.code, "message": e.reason.message}
        return {"status": "refused", "http_status": e.status, "reasons": [reason]}
    return {"status": "rejected", "reasons": [{"code": c, "message": e.message} for c in e.codes]}


def _fail(params: dict[str, Any], code: int, doc: dict[str, Any]) -> NoReturn:
    if params["as_json"]:
        click.echo(json.dumps(doc))
    else:
        click.echo(f"{doc['status']}" + (f"  attestation {doc['attestation_id']}" if "attestation_id" in doc else ""))
        for reason in doc.get("reasons", [doc.get("error", {})]):
            click.echo(f"  {click.style('x', fg='red')} {reason.get('code')}: {reason.get('message')}")
    sys.exit(code)


def _accepted(params: dict[str, Any], lease: Lease) -> None:
    try:
        dek = lease.unwrap()
    except ClientError as e:
        _fail(params, EXIT_TRANSPORT, {"status": "error", "error": {"code": e.code, "message": e.message}})
    dek_out: Path | None = params["dek_out"]
    key_out: Path | None = params.get("key_out")
    if dek_out:
        _write(dek_out, dek, "--dek-out")
    expires, renew_after = lease.expires_at.isoformat(), lease.renew_after.isoformat()
    if params["as_json"]:
        doc = {
            "status": "accepted",
            "attestation_id": lease.attestation_id,
            "lease": {"id": lease.id, "expires_at": expires, "renew_after": renew_after},
            "simulated": lease.simulated,
            "result_token": lease.result_token,
            "key_file": str(key_out) if key_out else None,
            "dek_file": str(dek_out) if dek_out else None,
        }
        click.echo(json.dumps(doc))
        return
    click.echo(f"accepted  attestation {lease.attestation_id}" + ("  [SIMULATED]" if lease.simulated else ""))
    click.echo(f"  lease        {lease.id}")
    click.echo(f"  expires at   {expires}")
    click.echo(f"  renew after  {renew_after}")
    click.echo(
        f"  model key    {len(dek)} bytes" + (f", written to {dek_out}" if dek_out else " (not written: --dek-out)")
    )
    if key_out:
        click.echo(f"  enclave key  written to {key_out}")
    elif "key_out" in params and not params["key_path"]:
        click.echo("  enclave key  not saved (use --key-out to renew this lease later)")
