"""Appraisal of a verified Azure confidential VM (azure-cvm.md §9 step 9) against its policy. Input: an
:class:`~verifier.platforms.azure_cvm.AzureCvmVerification` and an :class:`AzureCvmPolicy`. Output: a
:class:`~verifier.appraisal.verdict.Verdict` listing every failed check. Pure.

The policy is one flat document: the hardware policy's keys (SEV-SNP's :func:`~verifier.appraisal.snp.
parse_snp_policy` or Intel's :func:`~verifier.appraisal.intel.parse_intel_policy`: VMPL, TCB, TD attributes,
MEASUREMENT/MRTD = the paravisor image, ID_KEY_DIGEST ...) beside Azure's own:

* ``require_secure_boot`` (default true): ``vm-configuration.secure-boot`` must be true
  (``azure.policy.secure_boot_disabled``; real reports do have it false, so this is a knob, logged when off).
* ``require_tpm_enabled`` (default true): ``tpm-enabled`` must be true (``azure.policy.tpm_disabled``).
* ``allow_console`` (default true): ``console-enabled`` true is accepted unless false
  (``azure.policy.console_enabled``).
* ``allowed_pcrs``: PCR index (0-23, as a string) -> allowed SHA-256 values (hex). Each listed PCR must be quoted
  with a value that hashed to pcrDigest (``azure.policy.pcr_not_quoted``) and be one of its values
  (``azure.policy.pcr_not_allowed``).
* ``expected_report_data`` / ``expected_nonce`` (hex): the nonce binding the TPM quote's extraData must carry
  (the service sets ``expected_report_data`` to the challenge binding; verification compares it). With
  ``require_nonce`` (the service's default), evidence verified without one is rejected
  (``azure.policy.nonce_required``).
* ``require_user_data_binding``: only evidence version 2 (HCL ``user-data`` carries the nonce: a fresh hardware
  report) is accepted (``azure.policy.user_data_binding_required``).
* ``require_ak_cert``: an AK certificate chaining to the Azure vTPM root must have been verified
  (``azure.policy.ak_cert_required``).

The hardware policy's own ``expected_report_data`` never applies: REPORT_DATA holds the runtime-claims hash,
checked by verification.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

from verifier.appraisal.intel import IntelPolicy, appraise_intel, parse_intel_policy
from verifier.appraisal.snp import SnpPolicy, appraise_snp, parse_snp_policy
from verifier.appraisal.verdict import Verdict
from verifier.errors import Code, Reason, UsageError
from verifier.evidence.tpm import PCR_COUNT, PCR_SIZE
from verifier.platforms.azure_cvm import AzureCvmVerification

H = TypeVar("H", SnpPolicy, IntelPolicy)

_BOOLS: Final = (
    "require_secure_boot",
    "require_tpm_enabled",
    "allow_console",
    "require_nonce",
    "require_user_data_binding",
    "require_ak_cert",
)
AZURE_KEYS: Final = frozenset({*_BOOLS, "allowed_pcrs", "expected_report_data", "expected_nonce"})
#: Longest nonce a TPM2_Quote can carry (TPM2B_DATA).
MAX_NONCE_BYTES: Final = 64


@dataclass(frozen=True, slots=True)
class AzureCvmPolicy(Generic[H]):
    hardware: H
    require_secure_boot: bool = True
    require_tpm_enabled: bool = True
    allow_console: bool = True
    allowed_pcrs: Mapping[int, frozenset[bytes]] = field(default_factory=dict)
    expected_nonce: bytes | None = None
    require_nonce: bool = False
    require_user_data_binding: bool = False
    require_ak_cert: bool = False

    def __post_init__(self) -> None:
        for index, values in self.allowed_pcrs.items():
            if not 0 <= index < PCR_COUNT or not values or any(len(v) != PCR_SIZE for v in values):
                raise UsageError(
                    Code.POLICY_INVALID,
                    "allowed_pcrs maps PCR 0-23 to non-empty lists of 32-byte values",
                    actual=index,
                )
        if self.expected_nonce is not None and not 0 < len(self.expected_nonce) <= MAX_NONCE_BYTES:
            raise UsageError(Code.POLICY_INVALID, "the expected nonce is 1-64 bytes", actual=len(self.expected_nonce))


def _split(document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(document, Mapping):
        raise UsageError(Code.POLICY_INVALID, "Azure CVM policy must be a JSON object")
    own = {k: v for k, v in document.items() if k in AZURE_KEYS}
    rest = {k: v for k, v in document.items() if k not in AZURE_KEYS}
    return own, rest


def _azure_kwargs(own: Mapping[str, Any]) -> dict[str, Any]:
    kw: dict[str, Any] = {}
    try:
        for key in _BOOLS:
            if key in own:
                if not isinstance(own[key], bool):
                    raise TypeError(f"{key} must be true or false")
                kw[key] = own[key]
        nonces = [own[k] for k in ("expected_nonce", "expected_report_data") if k in own]
        if len(nonces) > 1 and nonces[0] != nonces[1]:
            raise ValueError("expected_nonce and expected_report_data disagree")
        if nonces:
            kw["expected_nonce"] = bytes.fromhex(nonces[0])
        if "allowed_pcrs" in own:
            pcrs = own["allowed_pcrs"]
            if not isinstance(pcrs, dict):
                raise TypeError("allowed_pcrs must map PCR indexes to lists of hex values")
            kw["allowed_pcrs"] = {
                int(index): frozenset(bytes.fromhex(v) for v in values) for index, values in pcrs.items()
            }
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(Code.POLICY_INVALID, f"invalid Azure CVM policy: {e}") from e
    return kw


def parse_azure_snp_policy(document: Mapping[str, Any], *, require_crl: bool = False) -> AzureCvmPolicy[SnpPolicy]:
    """The policy of ``azure-sev-snp-vtpm`` evidence; ``require_crl`` is the SNP default (the service's True)."""
    own, rest = _split(document)
    hardware = parse_snp_policy({"require_crl": require_crl, **rest})
    return AzureCvmPolicy(hardware, **_azure_kwargs(own))


def parse_azure_tdx_policy(document: Mapping[str, Any]) -> AzureCvmPolicy[IntelPolicy]:
    """The policy of ``azure-tdx-vtpm`` evidence."""
    own, rest = _split(document)
    return AzureCvmPolicy(parse_intel_policy(json.dumps(rest)), **_azure_kwargs(own))


def _reason(code: Code, message: str, expected: object, actual: object) -> Reason:
    return Reason(code, message, None if expected is None else str(expected), None if actual is None else str(actual))


def _vm_reasons(v: AzureCvmVerification, policy: AzureCvmPolicy[Any]) -> list[Reason]:
    config = v.claims.vm_configuration
    reasons = []
    if policy.require_secure_boot and config.get("secure-boot") is not True:
        reasons.append(
            _reason(Code.AZURE_POLICY_SECURE_BOOT, "the VM runs without secure boot", True, config.get("secure-boot"))
        )
    if policy.require_tpm_enabled and config.get("tpm-enabled") is not True:
        reasons.append(
            _reason(Code.AZURE_POLICY_TPM_DISABLED, "the VM's vTPM is disabled", True, config.get("tpm-enabled"))
        )
    if not policy.allow_console and config.get("console-enabled") is not False:
        reasons.append(
            _reason(
                Code.AZURE_POLICY_CONSOLE_ENABLED,
                "the VM's serial console is enabled",
                False,
                config.get("console-enabled"),
            )
        )
    return reasons


def _pcr_reasons(v: AzureCvmVerification, policy: AzureCvmPolicy[Any]) -> list[Reason]:
    reasons = []
    for index in sorted(policy.allowed_pcrs):
        allowed = policy.allowed_pcrs[index]
        value = v.tpm.pcrs.get(index)
        if value is None:
            reasons.append(
                _reason(
                    Code.AZURE_POLICY_PCR_NOT_QUOTED,
                    f"PCR {index} is pinned by the policy but not proven by the quote",
                    f"PCR {index} quoted with its value",
                    "not quoted" if index not in v.tpm.quote.pcr_selection else "no PCR values",
                )
            )
        elif value not in allowed:
            reasons.append(
                _reason(
                    Code.AZURE_POLICY_PCR_NOT_ALLOWED,
                    f"PCR {index} is not an allowed value",
                    " | ".join(sorted(a.hex() for a in allowed)),
                    value.hex(),
                )
            )
    return reasons


def _binding_reasons(v: AzureCvmVerification, policy: AzureCvmPolicy[Any]) -> list[Reason]:
    reasons = []
    if policy.require_nonce and not v.tpm.nonce_checked:
        reasons.append(_reason(Code.AZURE_POLICY_NONCE_REQUIRED, "no nonce binding was checked", "a nonce", "none"))
    if policy.require_user_data_binding and not v.user_data_checked:
        reasons.append(
            _reason(
                Code.AZURE_POLICY_USER_DATA_REQUIRED,
                "the HCL report is not bound to the nonce (evidence version 2 required)",
                2,
                v.evidence.version,
            )
        )
    if policy.require_ak_cert and v.ak_cert is None:
        reasons.append(
            _reason(Code.AZURE_POLICY_AK_CERT_REQUIRED, "no verified AK certificate", "an AK certificate", "none")
        )
    return reasons


def appraise_azure_cvm(v: AzureCvmVerification, policy: AzureCvmPolicy[Any]) -> Verdict:
    """Every failed check: the hardware policy's, then the VM configuration, PCRs and bindings."""
    hardware: Verdict
    if v.snp is not None and isinstance(policy.hardware, SnpPolicy):
        hardware = appraise_snp(v.snp, policy.hardware)
    elif v.tdx is not None and isinstance(policy.hardware, IntelPolicy):
        hardware = appraise_intel(v.tdx, policy.hardware)
    else:  # the registry pairs each platform with its own policy parser
        raise TypeError("hardware policy does not fit the verified hardware report")
    reasons = [*hardware.reasons, *_vm_reasons(v, policy), *_pcr_reasons(v, policy), *_binding_reasons(v, policy)]
    return Verdict.of(reasons, simulated=v.simulated)


__all__ = [
    "AZURE_KEYS",
    "AzureCvmPolicy",
    "appraise_azure_cvm",
    "parse_azure_snp_policy",
    "parse_azure_tdx_policy",
]
