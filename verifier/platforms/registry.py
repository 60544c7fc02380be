"""The platform registry: one entry per evidence type, naming everything the service does differently per platform.

An entry (:class:`Platform`) says the platform's name and policy family, how an item is decoded and parsed
(``parse``, once per decision), which cached vendor documents the parsed item is verified with (``needs``: the one
rule, read by the worker's prefetch and by the decision), how the merged policy document is parsed (``policy``),
how the parsed item is verified and appraised with the documents read for its needs (``evaluate``), what its
reference values must pin (``reference_values_problem``) and how observed claims become such values
(``reference_values_from_claims``), whether it may bind REPORTDATA through runtime data, and
what ``keyward verify`` does with its raw evidence (``cli``: how it is recognised, the input files it takes, how
it is verified and appraised from them; one :class:`~verifier.platforms.cli_inputs.CliFamily` per family) and how
the CLI describes its chain. The API schemas, the admin API, the prefetch, the decision and the CLI read the
entries; adding a platform is adding its entry and its modules.

Pure: no I/O, no clock, no database. A need for cached documents is data (:class:`~verifier.collateral.documents.
Wanted` keys); reading them is the caller's. This module sits at the top of the pure core: it wires evidence
parsing, platform verification and appraisal, so nothing below it imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, Literal, TypeVar, get_args

from verifier.appraisal.reference_values import (
    AZURE_REQUIRED,
    SGX_REQUIRED,
    SNP_REQUIRED,
    TDX_REQUIRED,
    azure_reference_values_from_claims,
    azure_snp_reference_values_problem,
    azure_tdx_reference_values_problem,
    sgx_reference_values_from_claims,
    sgx_reference_values_problem,
    snp_reference_values_from_claims,
    snp_reference_values_problem,
    tdx_reference_values_from_claims,
    tdx_reference_values_problem,
)
from verifier.collateral.documents import CollateralCache, Documents, Wanted
from verifier.errors import Code, EvidenceMalformed, PolicyRejected, Reason
from verifier.keywrap.enclave import EnclaveKey
from verifier.platforms.amd_snp import PLATFORM_SNP
from verifier.platforms.azure_cvm import PLATFORM_AZURE_SNP, PLATFORM_AZURE_TDX
from verifier.platforms.azure_evidence import (
    AZURE_CLI,
    azure_needs,
    azure_snp_policy,
    azure_tdx_policy,
    evaluate_azure,
    parse_azure_snp_item,
    parse_azure_tdx_item,
)
from verifier.platforms.cli_inputs import CliFamily, families_of
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.intel_dcap import PLATFORM_SGX, PLATFORM_TDX
from verifier.platforms.intel_evidence import INTEL_CLI, evaluate_intel, intel_needs, intel_policy, parse_intel_item
from verifier.platforms.item import PLATFORM_NAMES, EvidenceItem, PlatformName, Verifying, stored_item
from verifier.platforms.nvidia_evidence import (
    NVIDIA_CLI,
    ParsedDevice,
    evaluate_nvidia,
    nvidia_attestation_rules,
    nvidia_binding,
    nvidia_gpus,
    nvidia_needs,
    nvidia_policy,
    parse_nvidia_item,
)
from verifier.platforms.nvidia_gpu import PLATFORM_NVIDIA
from verifier.platforms.snp_evidence import SNP_CLI, evaluate_snp, parse_snp_item, snp_needs, snp_policy

__all__ = [
    "CLI_FAMILIES",
    "PLATFORMS",
    "Parsed",
    "ParsedItem",
    "Platform",
    "PlatformFamily",
    "PlatformName",
    "PolicyScope",
    "Unparsed",
    "cpu_platforms",
    "parse_evidence",
    "parse_item",
    "platform",
    "reference_values_problem",
    "require_identifying_reference_values",
]

P = TypeVar("P")
Q = TypeVar("Q")

#: A policy may name a platform or its whole family ("intel" covers TDX and SGX).
PlatformFamily = Literal["intel", "snp", "nvidia", "azure"]

#: An entry's rules over one whole attestation: every item (parsed, in request order), each one's evaluation (same
#: order) and the entry's policy document for the model version (None when it has no reference values for the
#: platform) -> the reasons the attestation is rejected for.
AttestationRules = Callable[[Sequence["Parsed"], Sequence[Evaluation], Mapping[str, Any] | None], tuple[Reason, ...]]
PolicyScope = Literal[PlatformName, PlatformFamily]


@dataclass(frozen=True, slots=True)
class Platform(Generic[P, Q]):
    """One evidence type. ``P``: its parsed item; ``Q``: its appraisal policy."""

    name: str
    family: str
    #: Decode and parse an item once (raises for an item that cannot be evaluated at all; a quote or report that
    #: does not parse is kept in the value and reported by ``evaluate``), with the process's collateral cache if any.
    parse: Callable[[EvidenceItem, CollateralCache | None], P]
    #: The cache rows the parsed item is verified with, ``optional`` where it brings its own copy.
    needs: Callable[[P], tuple[Wanted, ...]]
    #: The appraisal policy of a merged policy document (``policy.invalid``).
    policy: Callable[[dict[str, Any]], Q]
    #: Verify and appraise the parsed item with the documents read for its needs.
    evaluate: Callable[[P, Documents, Q, Verifying], Evaluation]
    #: Why a set cannot be this platform's reference values (None: it pins a guest identity).
    reference_values_problem: Callable[[Any], str | None]
    #: What a reference value set must pin, for messages.
    required_reference_values: str
    #: Whether REPORTDATA may be bound through ``runtime_data`` (confidential ACI's SKR sidecar).
    runtime_data_binding: bool
    #: The CLI's one-line description of the verified chain.
    chain: Callable[[Evaluation], str]
    #: ``keyward verify`` for its family: sniffing raw evidence, the input options, verifying from the files read.
    cli: CliFamily[Any]
    #: The value an item must carry for the challenge nonce and enclave key, when not REPORTDATA (None: the default
    #: SHA-512(nonce || thumbprint), or the runtime-data binding).
    binding: Callable[[EvidenceItem, bytes, EnclaveKey], bytes] | None = None
    #: GPUs a parsed item attests (entitlements cap them, billing counts their time).
    gpus: Callable[[P], int] = lambda _: 0
    #: Rules over a whole attestation (run on every attestation, with or without this platform's items).
    attestation_rules: AttestationRules | None = None
    #: An accelerator attested beside CPU evidence: licensed by count (``max_gpus``), not by ``allowed_platforms``.
    accelerator: bool = False
    #: The reference values that pin an evaluation's verified claims, so that the set, once active, accepts the same
    #: evidence (the dashboard's "trust these measurements"); None where the platform has no such mapping.
    reference_values_from_claims: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None


def _without_cache(parse: Callable[[EvidenceItem], P]) -> Callable[[EvidenceItem, CollateralCache | None], P]:
    """A parser that has nothing to take from the collateral cache."""
    return lambda item, _cache: parse(item)


def _intel_chain(_: Evaluation) -> str:
    return "PCK chain -> pinned Intel SGX Root CA, CRLs, TCB Info, QE Identity, signatures"


def _snp_chain(result: Evaluation) -> str:
    return f"{str(result.collateral.get('signing_key', '')).upper()} -> pinned ASK/ASVK -> ARK, TCB binding, signature"


def _azure_chain(result: Evaluation) -> str:
    hardware = (
        "TD quote -> PCK chain -> pinned Intel SGX Root CA, collateral"
        if result.platform == PLATFORM_AZURE_TDX
        else f"{str(result.collateral.get('signing_key', '')).upper()} -> pinned ASK -> ARK"
    )
    ak = result.claims.get("ak_cert")
    return f"{hardware}; REPORT_DATA = SHA-256(runtime claims); HCLAkPub -> TPM quote, nonce, PCR digest" + (
        "; AK certificate -> pinned Azure vTPM root" if ak else ""
    )


def _nvidia_chain(result: Evaluation) -> str:
    return "device chain -> pinned NVIDIA Device Identity CA, FWID, SPDM signature, RIMs -> pinned CoRIM root, OCSP"


def _nvidia_reference_values_problem(values: Any) -> str | None:
    """NVIDIA's signed RIMs are the devices' reference values: the model version's set is its GPU policy (how many
    GPUs, which architectures and SKUs, minimum versions, protected PCIe), which must parse (``policy.invalid``)
    and may be empty (RIMs, OCSP and the FWID binding are then required)."""
    nvidia_policy(dict(values) if isinstance(values, Mapping) else {"": values})
    return None


def _nvidia_rules(
    items: Sequence[Parsed], evaluations: Sequence[Evaluation], document: Mapping[str, Any] | None
) -> tuple[Reason, ...]:
    """The NVIDIA devices of an attestation together (:func:`~verifier.platforms.nvidia_evidence.
    nvidia_attestation_rules`); every other item is CPU evidence they bind to."""
    devices: list[ParsedDevice] = []
    device_evaluations: list[Evaluation] = []
    cpu = 0
    for item, evaluation in zip(items, evaluations, strict=True):
        if isinstance(item, ParsedItem) and isinstance(item.value, ParsedDevice):
            devices.append(item.value)
            device_evaluations.append(evaluation)
        else:
            cpu += 1
    return nvidia_attestation_rules(devices, cpu, device_evaluations, document)


def _intel(
    name: str,
    rule: Callable[[Any], str | None],
    required: str,
    from_claims: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> Platform[Any, Any]:
    return Platform(
        name=name,
        family="intel",
        parse=parse_intel_item,
        needs=intel_needs,
        policy=intel_policy,
        evaluate=evaluate_intel,
        reference_values_problem=rule,
        required_reference_values=required,
        runtime_data_binding=False,
        chain=_intel_chain,
        cli=INTEL_CLI,
        reference_values_from_claims=from_claims,
    )


_ENTRIES: Final[tuple[Platform[Any, Any], ...]] = (
    _intel(PLATFORM_TDX, tdx_reference_values_problem, TDX_REQUIRED, tdx_reference_values_from_claims),
    _intel(PLATFORM_SGX, sgx_reference_values_problem, SGX_REQUIRED, sgx_reference_values_from_claims),
    Platform(
        name=PLATFORM_SNP,
        family="snp",
        parse=_without_cache(parse_snp_item),
        needs=snp_needs,
        policy=snp_policy,
        evaluate=evaluate_snp,
        reference_values_problem=snp_reference_values_problem,
        required_reference_values=SNP_REQUIRED,
        runtime_data_binding=True,
        chain=_snp_chain,
        cli=SNP_CLI,
        reference_values_from_claims=snp_reference_values_from_claims,
    ),
    Platform(
        name=PLATFORM_NVIDIA,
        family="nvidia",
        parse=_without_cache(parse_nvidia_item),
        needs=nvidia_needs,
        policy=nvidia_policy,
        evaluate=evaluate_nvidia,
        reference_values_problem=_nvidia_reference_values_problem,
        required_reference_values="an NVIDIA GPU policy (may be empty: RIMs, OCSP and FWID are then required)",
        runtime_data_binding=False,
        chain=_nvidia_chain,
        cli=NVIDIA_CLI,
        binding=nvidia_binding,
        gpus=nvidia_gpus,
        attestation_rules=_nvidia_rules,
        accelerator=True,
    ),
    *(
        Platform(
            name=name,
            family="azure",
            parse=parse,
            needs=azure_needs,
            policy=policy,
            evaluate=evaluate_azure,
            reference_values_problem=problem,
            required_reference_values=AZURE_REQUIRED,
            runtime_data_binding=False,
            chain=_azure_chain,
            cli=AZURE_CLI,
            reference_values_from_claims=azure_reference_values_from_claims,
        )
        for name, parse, policy, problem in (
            (PLATFORM_AZURE_SNP, parse_azure_snp_item, azure_snp_policy, azure_snp_reference_values_problem),
            (PLATFORM_AZURE_TDX, parse_azure_tdx_item, azure_tdx_policy, azure_tdx_reference_values_problem),
        )
    ),
)
#: Every platform by name, in the order the API documents them.
PLATFORMS: Final[Mapping[str, Platform[Any, Any]]] = {e.name: e for e in _ENTRIES}
if tuple(PLATFORMS) != PLATFORM_NAMES or {e.family for e in _ENTRIES} != set(get_args(PlatformFamily)):
    raise RuntimeError("the registry's entries and the PlatformName / PlatformFamily types disagree")
if any(e.cli.family != e.family for e in _ENTRIES):
    raise RuntimeError("a registry entry's CLI descriptor is for another family")
#: ``keyward verify``'s families, one descriptor each, in entry order (the order of their ``--help`` options).
CLI_FAMILIES: Final[tuple[CliFamily[Any], ...]] = families_of(_ENTRIES)


def cpu_platforms(names: Sequence[str]) -> list[str]:
    """The platforms among ``names`` an entitlement's ``allowed_platforms`` must cover (accelerators are counted)."""
    return [n for n in names if not (n in PLATFORMS and PLATFORMS[n].accelerator)]


def platform(name: object) -> Platform[Any, Any]:
    """The entry for an evidence type; ``attestation.evidence_type_unsupported`` for an unknown one."""
    entry = PLATFORMS.get(name) if isinstance(name, str) else None
    if entry is None:
        raise EvidenceMalformed(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            f"unsupported evidence type {name!r}",
            expected=" | ".join(PLATFORMS),
            actual=str(name),
        )
    return entry


# ----------------------------------------------------------------------------------------------------------
# Parsed items


@dataclass(frozen=True, slots=True)
class ParsedItem(Generic[P]):
    """One evidence item parsed once, with its platform's entry and the cache rows it needs (the one rule, read by
    the prefetch and the decision alike)."""

    item: EvidenceItem
    platform: Platform[P, Any]
    value: P
    needs: tuple[Wanted, ...]

    def evaluate(self, documents: Documents, policy_document: dict[str, Any], env: Verifying) -> Evaluation:
        """Parse the policy document, then verify and appraise with ``documents`` (read for :attr:`needs`)."""
        return self.platform.evaluate(self.value, documents, self.platform.policy(policy_document), env)


@dataclass(frozen=True, slots=True)
class Unparsed:
    """An item too malformed to evaluate: the decision rejects with ``error`` where it reaches the item (an
    unexpected exception becomes its ``internal.error`` rejection); the prefetch skips it."""

    error: Exception


#: One stored item after :func:`parse_evidence`.
Parsed = ParsedItem[Any] | Unparsed


def parse_item(item: EvidenceItem, cache: CollateralCache | None = None) -> ParsedItem[Any]:
    entry = platform(item.type)
    value = entry.parse(item, cache)
    return ParsedItem(item, entry, value, entry.needs(value))


def parse_evidence(stored: Sequence[object], cache: CollateralCache | None = None) -> tuple[Parsed, ...]:
    """Every stored item (the JSON the API stored) as its typed item, parsed once (what the process's collateral
    ``cache`` holds parsed already is taken from it). Never raises: an item that cannot be evaluated is
    :class:`Unparsed`, so the prefetch can go on and the decision rejects it in turn."""
    parsed: list[Parsed] = []
    for raw in stored:
        try:
            parsed.append(parse_item(stored_item(raw), cache))
        except Exception as e:  # a parser bug on hostile bytes: the decision's internal.error
            parsed.append(Unparsed(e))
    return tuple(parsed)


# ----------------------------------------------------------------------------------------------------------
# Reference values


def reference_values_problem(name: str, values: Any) -> str | None:
    """Why ``values`` cannot be ``name``'s reference values, or None when they identify a workload.

    Raises :class:`~verifier.errors.UsageError` (``policy.invalid``) when they do not parse as policy fields.
    """
    entry = PLATFORMS.get(name)
    if entry is None:
        return f"unknown platform {name!r}"
    return entry.reference_values_problem(values)


def required_reference_values(name: str) -> str:
    """What ``name``'s reference values must pin (every platform's requirement for an unknown one)."""
    entry = PLATFORMS.get(name)
    if entry is None:
        return " | ".join(e.required_reference_values for e in _ENTRIES)
    return entry.required_reference_values


def require_identifying_reference_values(name: str, values: Any) -> None:
    """Fail closed at decision time on a stored set that identifies no workload
    (``attestation.reference_values_unconstrained``); values that do not parse raise ``policy.invalid``."""
    problem = reference_values_problem(name, values)
    if problem is not None:
        raise PolicyRejected(
            Code.ATTESTATION_REFERENCE_VALUES_UNCONSTRAINED,
            problem,
            expected=required_reference_values(name),
            actual=name,
        )
