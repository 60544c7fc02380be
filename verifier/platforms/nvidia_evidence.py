"""An NVIDIA GPU or NVSwitch evidence item, parsed once: its attestation report and device certificate chain, the
cache rows it is verified with (:func:`nvidia_needs`: its RIMs, their signing chains' OCSP answers and the device
chain's), its evaluation from those rows (:func:`evaluate_nvidia`), and the rules one attestation's devices obey
together (:func:`nvidia_attestation_rules`: CPU evidence to bind to, each device once, the GPU count, protected PCIe).

The registry (:mod:`verifier.platforms.registry`) names these functions for ``nvidia-gpu``, and :data:`NVIDIA_CLI`
for ``keyward verify`` (a report with ``--certs``, ``--rim``, ``--ocsp``, ``--nonce``). Pure: no I/O, no clock; the
cached documents, the files read, the policy, the roots and ``now`` are arguments.

Binding (nvidia-gpu.md §7, README "GPU attestation"): device ``i`` of an attestation must have signed the SPDM
nonce :func:`~verifier.keywrap.enclave.gpu_nonce` ``(nonce, thumbprint, i)``, derived from the same challenge and
enclave key as the CPU evidence's REPORTDATA, so a GPU report cannot be relayed from another machine or session.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from verifier.appraisal.nvidia import NvidiaPolicy, parse_nvidia_policy
from verifier.collateral.documents import (
    Documents,
    Wanted,
    nvidia_ocsp,
    nvidia_rim,
    wanted_ocsp,
    wanted_rim,
    wanted_rim_ocsp,
)
from verifier.errors import Code, EvidenceMalformed, KeywardError, Reason, UsageError
from verifier.evidence.nvidia import GpuReport, decode_report_bytes, parse_device_chain, parse_gpu_report
from verifier.keywrap.enclave import EnclaveKey, gpu_nonce
from verifier.platforms.cli_inputs import CliFamily, CliInput, Inputs
from verifier.platforms.evaluation import Evaluation, rejected, unverified
from verifier.platforms.item import EvidenceItem, Verifying, b64
from verifier.platforms.nvidia_gpu import (
    PLATFORM_NVIDIA,
    RimIds,
    check_topology,
    device_kind,
    evaluate_device,
    evaluate_gpu_report,
    rim_ids,
)
from verifier.trust.ocsp import cert_id_key

__all__ = [
    "NVIDIA_CLI",
    "ParsedDevice",
    "evaluate_nvidia",
    "nvidia_attestation_rules",
    "nvidia_binding",
    "nvidia_gpus",
    "nvidia_needs",
    "nvidia_policy",
    "parse_nvidia_item",
]


@dataclass(frozen=True, slots=True)
class ParsedDevice:
    """An NVIDIA item decoded and parsed: the report and the device chain (DER, leaf first), or why either does not
    parse (the evaluation reports it); the RIM ids its signed opaque data names; the OCSP cache keys of its chain."""

    item: EvidenceItem
    device_index: int
    report: GpuReport | KeywardError
    chain: tuple[bytes, ...] | KeywardError
    rims: RimIds | None
    ocsp_keys: tuple[str, ...]
    carried_rims: tuple[bytes, ...] = ()  # RIMs the item brings (verified like fetched ones)
    carried_ocsp: tuple[bytes, ...] = ()  # OCSP responses the item brings (matched to certificates by CertID)


def _malformed(message: str) -> EvidenceMalformed:
    return EvidenceMalformed(Code.ATTESTATION_EVIDENCE_MALFORMED, message)


def parse_nvidia_item(item: EvidenceItem) -> ParsedDevice:
    """Decode and parse an NVIDIA item. Raises ``attestation.evidence_malformed`` for an item without ``certs`` or
    ``device_index``, or whose fields are not base64; a report or chain that does not parse is kept in the value."""
    if item.certs is None or item.device_index is None:
        raise _malformed("an nvidia-gpu item needs 'certs' (the device certificate chain) and 'device_index'")
    for field in ("vcek", "cert_table", "crl", "collateral", "runtime_data", "uvm_endorsement"):  # other platforms'
        if getattr(item, field) is not None:
            raise _malformed(f"an nvidia-gpu item takes no {field!r}")
    evidence = b64(item.evidence, "evidence")
    pem = b64(item.certs, "certs")
    carried_rims = tuple(b64(r, f"rims[{i}]") for i, r in enumerate(item.rims or ()))
    carried_ocsp = tuple(b64(r, f"ocsp[{i}]") for i, r in enumerate(item.ocsp or ()))
    report: GpuReport | KeywardError
    chain: tuple[bytes, ...] | KeywardError
    try:
        report = parse_gpu_report(evidence)
    except KeywardError as e:
        report = e
    try:
        chain = parse_device_chain(pem)
    except KeywardError as e:
        chain = e
    ids: RimIds | None = None
    if isinstance(report, GpuReport):
        try:
            ids = rim_ids(report)
        except KeywardError:
            ids = None  # the evaluation says why (it derives them again)
    return ParsedDevice(item, item.device_index, report, chain, ids, _ocsp_keys(chain), carried_rims, carried_ocsp)


def _ocsp_keys(chain: tuple[bytes, ...] | KeywardError) -> tuple[str, ...]:
    """The cache keys of the device chain's OCSP answers: certificates 1..3 (BROM, Provisioner ICA, Identity), each
    against the next (the supplied fifth is compared with the pinned root when verifying; a chain whose fifth is
    not the root fails there, so keys computed from it are harmless)."""
    from cryptography import x509  # noqa: PLC0415 - only for items that parsed

    if isinstance(chain, KeywardError) or len(chain) != 5:
        return ()
    try:
        certs = [x509.load_der_x509_certificate(d) for d in chain]
        return tuple(cert_id_key(certs[i], certs[i + 1]) for i in (1, 2, 3))
    except (ValueError, KeywardError):
        return ()


def _rim_list(ids: RimIds | None) -> tuple[str, ...]:
    if ids is None:
        return ()
    return tuple(i for i in (ids.driver, ids.firmware) if i)


def nvidia_needs(parsed: ParsedDevice) -> tuple[Wanted, ...]:
    """Each RIM the report names (driver and VBIOS, or the NVSwitch BIOS) and the OCSP answers for its signing
    chain, and the OCSP answers for the device chain; ``optional`` where the item brings its own (the cached copy
    is then only read, never waited for)."""
    rims, ocsp = bool(parsed.carried_rims), bool(parsed.carried_ocsp)
    wants: list[Wanted] = []
    for rim_id in _rim_list(parsed.rims):
        wants.append(replace(wanted_rim(rim_id), optional=rims))
        wants.append(replace(wanted_rim_ocsp(rim_id), optional=ocsp))
    wants.extend(replace(wanted_ocsp(key), optional=ocsp) for key in parsed.ocsp_keys)
    return tuple(wants)


def nvidia_policy(document: dict[str, Any]) -> NvidiaPolicy:
    """The NVIDIA appraisal policy of a merged policy document (RIMs and OCSP required unless it says otherwise)."""
    return parse_nvidia_policy(document)


def nvidia_binding(item: EvidenceItem, nonce: bytes, key: EnclaveKey) -> bytes:
    """The 32-byte SPDM request nonce the item's device must have signed (:func:`~verifier.keywrap.enclave.
    gpu_nonce`)."""
    if item.device_index is None:
        raise _malformed("an nvidia-gpu item needs 'device_index'")
    return gpu_nonce(nonce, key.thumbprint, item.device_index)


def _label(parsed: ParsedDevice) -> str:
    kind = device_kind(parsed.report) if isinstance(parsed.report, GpuReport) else "device"
    return f"{'NVSwitch' if kind == 'switch' else 'GPU' if kind == 'gpu' else 'device'} {parsed.device_index}"


def _named(evaluation: Evaluation, label: str) -> Evaluation:
    """The evaluation with every reason naming the device (the whole attestation is rejected for any one)."""
    reasons = tuple(
        Reason(r.code, f"{label}: {r.message}", expected=r.expected, actual=r.actual) for r in evaluation.reasons
    )
    claims = {"device_index": int(label.rsplit(" ", 1)[1]), **evaluation.claims}
    return Evaluation(
        platform=evaluation.platform,
        verified=evaluation.verified,
        accepted=evaluation.accepted,
        tcb_status=evaluation.tcb_status,
        advisory_ids=evaluation.advisory_ids,
        claims=claims,
        reasons=reasons,
        collateral=evaluation.collateral,
        simulated=evaluation.simulated,
        device=label.replace(" ", "-"),
    )


def evaluate_nvidia(parsed: ParsedDevice, documents: Documents, policy: NvidiaPolicy, env: Verifying) -> Evaluation:
    """Verify and appraise the device with the RIMs and OCSP answers read for its needs; every reason names the
    device (``GPU 3: ...``)."""
    label = _label(parsed)
    if isinstance(parsed.report, KeywardError):
        return _named(unverified(PLATFORM_NVIDIA, {}, parsed.report, env.trust), label)
    if isinstance(parsed.chain, KeywardError):
        return _named(unverified(PLATFORM_NVIDIA, {}, parsed.chain, env.trust), label)
    ids = _rim_list(parsed.rims)
    cached = [nvidia_rim(i, documents) for i in ids]
    rims = [*parsed.carried_rims, *(c.xml for c in cached if c.xml is not None and c.xml not in parsed.carried_rims)]
    ocsp = [*parsed.carried_ocsp, *nvidia_ocsp(parsed.ocsp_keys, ids, documents).values()]
    result = evaluate_device(
        parsed.report, parsed.chain, rims, ocsp, policy, env.trust, env.now, cache=env.nvidia_cache
    )
    if not parsed.carried_rims:  # a RIM the worker could not fetch is unavailable, not missing at NVIDIA
        unfetched = {c.rim_id for c in cached if c.unavailable}
        result = replace(result, reasons=tuple(_unfetched(r, unfetched) for r in result.reasons))
    return _named(result, label)


def _unfetched(reason: Reason, unfetched: set[str]) -> Reason:
    """``nvidia.rim.missing`` for a RIM the cache has no answer for (never fetched, or NVIDIA's service could not be
    reached) is ``nvidia.rim.unavailable``: only NVIDIA's own "RIM_NOT_FOUND" makes it missing."""
    if reason.code != Code.NVIDIA_RIM_MISSING or reason.expected not in unfetched:
        return reason
    return Reason(
        Code.NVIDIA_RIM_UNAVAILABLE,
        f"RIM {reason.expected} could not be fetched from NVIDIA's RIM service",
        expected=reason.expected,
        actual="not fetched",
    )


def nvidia_gpus(parsed: ParsedDevice) -> int:
    """GPUs this item attests (1 for a GPU, 0 for an NVSwitch or a report that did not parse): billed and capped."""
    return int(isinstance(parsed.report, GpuReport) and device_kind(parsed.report) == "gpu")


# ----------------------------------------------------------------------------------------------------------
# One attestation's devices together


def nvidia_attestation_rules(
    devices: Sequence[ParsedDevice],
    cpu_items: int,
    evaluations: Sequence[Evaluation],
    document: Mapping[str, Any] | None,
) -> tuple[Reason, ...]:
    """What an attestation's NVIDIA devices must satisfy together, given its CPU items' count, each device's
    evaluation (same order as ``devices``) and the model version's NVIDIA policy document (None: the model version
    has no NVIDIA reference values, so it asks for no GPU).

    1. NVIDIA evidence needs CPU evidence to be bound with (``nvidia.policy.cpu_required``).
    2. Each device index and each device (UEID) once (``nvidia.device.duplicate``).
    3. The number of GPUs within the policy's ``min_gpus`` .. ``max_gpus`` (``nvidia.policy.gpu_count``).
    4. Protected PCIe: required by policy means NVSwitch evidence (each GPU's PPCIe mode is checked with the GPU);
       NVSwitches, or a GPU in PPCIe mode, mean the switches' topology agreeing with the GPUs'
       (``nvidia.policy.ppcie_required``, ``nvidia.topology.mismatch``).
    """
    reasons: list[Reason] = []
    if devices and cpu_items == 0:
        reasons.append(
            Reason(
                Code.NVIDIA_POLICY_CPU_REQUIRED,
                "GPU evidence must come with the CPU evidence of the confidential VM it is bound to",
                expected="at least one CPU evidence item",
                actual="0",
            )
        )
    seen_index: set[int] = set()
    seen_ueid: dict[str, int] = {}
    for device, evaluation in zip(devices, evaluations, strict=True):
        if device.device_index in seen_index:
            reasons.append(Reason(Code.NVIDIA_DEVICE_DUPLICATE, f"device index {device.device_index} sent twice"))
        seen_index.add(device.device_index)
        ueid = evaluation.claims.get("ueid")
        if isinstance(ueid, str):
            if ueid in seen_ueid:
                reasons.append(
                    Reason(
                        Code.NVIDIA_DEVICE_DUPLICATE,
                        f"{_label(device)}: the same device as device {seen_ueid[ueid]} (UEID {ueid})",
                    )
                )
            seen_ueid.setdefault(ueid, device.device_index)
    gpus = [d.report for d in devices if isinstance(d.report, GpuReport) and device_kind(d.report) == "gpu"]
    switches = [d.report for d in devices if isinstance(d.report, GpuReport) and device_kind(d.report) == "switch"]
    policy = parse_nvidia_policy(dict(document)) if document is not None else None
    low = policy.min_gpus if policy is not None else 0
    high = policy.max_gpus if policy is not None else None
    if len(gpus) < low or (high is not None and len(gpus) > high):
        reasons.append(
            Reason(
                Code.NVIDIA_POLICY_GPU_COUNT,
                f"{len(gpus)} attested GPUs; the model version's policy asks for {low}..{'' if high is None else high}",
                expected=f"{low}..{'' if high is None else high}",
                actual=str(len(gpus)),
            )
        )
    ppcie_claimed = any(g.response.opaque.protected_pcie_status == 0xAA for g in gpus)
    if policy is not None and policy.require_ppcie and not switches:  # each GPU's own mode is its evaluation's
        reasons.append(
            Reason(
                Code.NVIDIA_POLICY_PPCIE_REQUIRED,
                "the policy requires protected PCIe: the NVSwitches' evidence must come with the GPUs'",
                expected="NVSwitch reports",
                actual=f"{len(gpus)} GPUs, no NVSwitch",
            )
        )
    elif switches or ppcie_claimed:
        reasons.extend(check_topology(gpus, switches))
    return tuple(reasons)


# ----------------------------------------------------------------------------------------------------------
# keyward verify


def sniff_nvidia(data: bytes) -> bool:
    """An SPDM 1.1 GET_MEASUREMENTS request followed by its MEASUREMENTS response (binary or hex)."""
    try:
        raw = decode_report_bytes(data)
    except KeywardError:
        return False
    return len(raw) > 39 and raw[0] == 0x11 and raw[1] == 0xE0 and raw[37] == 0x11 and raw[38] == 0x60


def nvidia_cli_policy(document: dict[str, Any]) -> NvidiaPolicy:
    return parse_nvidia_policy(document)


def evaluate_nvidia_cli(data: bytes, inputs: Inputs, policy: NvidiaPolicy, env: Verifying) -> Evaluation:
    """Verify and appraise a report with ``--certs`` (the device chain), the ``--rim`` and ``--ocsp`` files and
    ``--nonce`` (the expected SPDM request nonce, hex). Never raises for bad evidence or files; a ``--nonce`` that
    is not 32 bytes of hex, or disagrees with the policy's, is ``usage.invalid``."""
    certs = inputs.file("certs")
    if certs is None:
        return rejected(
            Reason(Code.NVIDIA_CHAIN_MALFORMED, "an NVIDIA report needs its device certificate chain (--certs)"),
            PLATFORM_NVIDIA,
        )
    nonce_hex = inputs.text("nonce")
    if nonce_hex is not None:
        nonce = _nonce_option(nonce_hex)
        if policy.expected_nonce is not None and not hmac.compare_digest(policy.expected_nonce, nonce):
            raise UsageError(Code.USAGE_INVALID, "--nonce and the policy's expected_report_data disagree")
        policy = _with_nonce(policy, nonce)
    rims = [f.data for f in inputs.files("rim")]
    ocsp = [f.data for f in inputs.files("ocsp")]
    return evaluate_gpu_report(data, certs.data, rims, ocsp, policy, env.trust, env.now)


def _nonce_option(text: str) -> bytes:
    """``--nonce``: 32 bytes as 64 hex digits; anything else is a usage error (exit 2), like a bad ``--at``."""
    try:
        nonce = bytes.fromhex(text)
    except ValueError:
        nonce = b""
    if len(nonce) != 32:
        raise UsageError(Code.USAGE_INVALID, f"--nonce must be 64 hex digits (32 bytes), got {text[:80]!r}")
    return nonce


def _with_nonce(policy: NvidiaPolicy, nonce: bytes) -> NvidiaPolicy:
    return replace(policy, expected_nonce=nonce)


#: NVIDIA GPUs and NVSwitches on the command line. ``--certs`` is shared with AMD (its meaning follows the
#: evidence); ``--rim``, ``--ocsp`` and ``--nonce`` pick NVIDIA.
NVIDIA_CLI: Final[CliFamily[NvidiaPolicy]] = CliFamily(
    family="nvidia",
    inputs=(
        CliInput(
            "--certs",
            "certs",
            "NVIDIA: the device certificate chain as NVML returns it (five PEM certificates, leaf first).",
        ),
        CliInput(
            "--rim",
            "rim",
            "NVIDIA: a Reference Integrity Manifest (driver, VBIOS or NVSwitch BIOS; signed SWID XML). Repeatable.",
            multiple=True,
        ),
        CliInput(
            "--ocsp",
            "ocsp",
            "NVIDIA: a DER OCSP response for a device or RIM signing certificate. Repeatable.",
            multiple=True,
        ),
        CliInput("--nonce", "nonce", "NVIDIA: the expected SPDM request nonce (64 hex digits).", kind="text"),
    ),
    sniff=sniff_nvidia,
    policy=nvidia_cli_policy,
    evaluate=evaluate_nvidia_cli,
)
