"""Why a decision came out as it did, in words staff understand: a stored reason turned into a sentence, every check
of every evaluation with passed / failed / not reached, and each measurement with expected vs actual.

A support engineer reads "MRTD differs from the reference set 'acme-llm 1.2 · intel-tdx' in force at decision
time: expected one of 46b9…, got 7c1a…", not ``intel.policy.measurement_not_allowed``; the code stays beside the
sentence. Sentences are built from what the decision stored (code, message, expected, actual, fault) plus the
evaluation's platform, device and claims; a code without its own sentence falls back to its stored message with
expected vs actual.

Pure: no I/O, no clock, no database. It reads the frozen views of :mod:`verifier.dashboard.service` and never
guesses what the decision did not record: the reference set named is the one the decision recorded (for a decision
stored before sets were recorded, the one whose validity window held the decision time, said as such), and a check
that did not run is "not reached", never "passed".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from verifier.dashboard.service import AttestationDetail, EvaluationView, ReasonView, ReferenceSetView

__all__ = [
    "Check",
    "CheckRow",
    "CheckStatus",
    "EvaluationExplained",
    "Explained",
    "Explanation",
    "MeasurementRow",
    "check_of",
    "explain",
    "explain_detail",
    "measurement_rows",
    "reference_phrase",
]


class Check(StrEnum):
    """The checks a decision makes, in the order it makes them; each stored code belongs to one."""

    CHALLENGE = "Challenge and enclave key"
    EVIDENCE = "Every evidence item (below)"
    FORMAT = "Evidence format"
    SIGNATURE = "Signature and certificate chain"
    COLLATERAL = "Vendor collateral"
    BINDING = "Bound to this challenge and key"
    TCB = "TCB level"
    CONFIGURATION = "Configuration"
    MEASUREMENTS = "Measurements vs reference values"
    TOGETHER = "Evidence items together"
    LICENCE = "Licence and seat"
    RELEASE = "Key release"
    OTHER = "Other"


class CheckStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_REACHED = "not reached"  # an earlier failure stopped the decision before this check


#: The checks of one evidence item, by platform family; the rest (challenge, items together, licence, release) are
#: the attestation's own.
_ITEM_CHECKS: Final = (
    Check.FORMAT,
    Check.SIGNATURE,
    Check.COLLATERAL,
    Check.BINDING,
    Check.TCB,
    Check.CONFIGURATION,
    Check.MEASUREMENTS,
)
_GPU_CHECKS: Final = tuple(c for c in _ITEM_CHECKS if c is not Check.TCB)
#: Checks that run after verification: an item that did not verify never reached them.
_APPRAISAL: Final = frozenset({Check.BINDING, Check.TCB, Check.CONFIGURATION, Check.MEASUREMENTS})

_EXACT: Final[Mapping[str, Check]] = {
    "attestation.binding_mismatch": Check.BINDING,
    "intel.policy.report_data_mismatch": Check.BINDING,
    "snp.policy.report_data_mismatch": Check.BINDING,
    "nvidia.nonce.mismatch": Check.BINDING,
    "intel.policy.measurement_not_allowed": Check.MEASUREMENTS,
    "intel.policy.sgx_isv_prod_id_not_allowed": Check.MEASUREMENTS,
    "intel.policy.sgx_isv_svn_too_low": Check.MEASUREMENTS,
    "snp.policy.measurement_not_allowed": Check.MEASUREMENTS,
    "snp.policy.host_data_not_allowed": Check.MEASUREMENTS,
    "snp.policy.id_key_digest_not_allowed": Check.MEASUREMENTS,
    "snp.policy.author_key_digest_not_allowed": Check.MEASUREMENTS,
    "snp.policy.family_id_not_allowed": Check.MEASUREMENTS,
    "snp.policy.image_id_not_allowed": Check.MEASUREMENTS,
    "nvidia.measurement.mismatch": Check.MEASUREMENTS,
    "nvidia.rim.index_conflict": Check.MEASUREMENTS,
    "attestation.reference_values_missing": Check.MEASUREMENTS,
    "attestation.reference_values_unconstrained": Check.MEASUREMENTS,
    "intel.policy.tcb_status_not_accepted": Check.TCB,
    "intel.policy.advisory_denied": Check.TCB,
    "intel.policy.tcb_eval_number_too_low": Check.TCB,
    "intel.tcb.not_supported": Check.TCB,
    "snp.policy.tcb_too_low": Check.TCB,
    "snp.policy.firmware_too_low": Check.TCB,
    "snp.policy.guest_svn_too_low": Check.TCB,
    "nvidia.policy.gpu_count": Check.TOGETHER,
    "nvidia.policy.cpu_required": Check.TOGETHER,
    "nvidia.policy.ppcie_required": Check.TOGETHER,
    "nvidia.topology.mismatch": Check.TOGETHER,
    "nvidia.device.duplicate": Check.TOGETHER,
    "attestation.model_key_missing": Check.RELEASE,
    "internal.error": Check.RELEASE,
    "lease.not_renewable": Check.LICENCE,
    "auth.customer_suspended": Check.LICENCE,
    "attestation.superseded_by_newer": Check.LICENCE,
    "attestation.request_stale": Check.CHALLENGE,
    "snp.leaf.missing": Check.COLLATERAL,
    "snp.leaf.unavailable": Check.COLLATERAL,
    "intel.quote.signature_invalid": Check.SIGNATURE,
    "intel.quote.attestation_key_invalid": Check.SIGNATURE,
    "nvidia.report.signature_invalid": Check.SIGNATURE,
}
_PREFIXES: Final = (
    (("challenge.", "keywrap.jwk"), Check.CHALLENGE),
    (("entitlement.",), Check.LICENCE),
    (("keywrap.", "ear."), Check.RELEASE),
    (("intel.policy.", "snp.policy.", "nvidia.policy."), Check.CONFIGURATION),
    (
        ("intel.collateral.", "intel.qe_identity.", "intel.tdx_module.", "snp.crl.", "nvidia.rim.", "nvidia.ocsp."),
        Check.COLLATERAL,
    ),
    (
        (
            "intel.pck.",
            "intel.qe_report.",
            "snp.chain.",
            "snp.leaf.",
            "snp.signature.",
            "nvidia.chain.untrusted",
            "nvidia.chain.expired",
            "nvidia.chain.extensions",
            "nvidia.fwid.",
            "azure.uvm.",
        ),
        Check.SIGNATURE,
    ),
    (
        (
            "intel.quote.",
            "snp.report.",
            "snp.cert_table.",
            "nvidia.report.",
            "nvidia.evidence.",
            "nvidia.chain.",
            "attestation.evidence_",
        ),
        Check.FORMAT,
    ),
)


def check_of(code: str) -> Check:
    """The check a stored reason code belongs to (:attr:`Check.OTHER` for a code this table does not place)."""
    if code in _EXACT:
        return _EXACT[code]
    for prefixes, check in _PREFIXES:
        if code.startswith(prefixes):
            return check
    return Check.OTHER


# -- one reason as a sentence ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Explanation:
    """A stored reason in words: ``sentence`` says what failed (without the values), ``expected`` and ``actual``
    what the check wanted and found; ``code`` and ``fault`` as stored, shown small beside it."""

    sentence: str
    expected: str | None
    actual: str | None
    code: str
    fault: str

    @property
    def text(self) -> str:
        """The whole answer in one line: the sentence, then expected vs actual where there are values."""
        values = []
        if self.expected is not None:
            values.append(f"expected {self.expected}")
        if self.actual is not None:
            values.append(f"got {self.actual}")
        return f"{self.sentence}: {', '.join(values)}" if values else f"{self.sentence}."


@dataclass(frozen=True, slots=True)
class _Context:
    reason: ReasonView
    platform: str | None
    device: str | None
    claims: Mapping[str, Any]
    reference: str  # names the reference values in force for the platform

    @property
    def message(self) -> str:
        """The stored message without the "GPU n: " prefix the decision adds for a device."""
        return _DEVICE_PREFIX.sub("", self.reason.message).strip()


_DEVICE_PREFIX: Final = re.compile(r"^(?:GPU|NVSwitch|device) \d+:\s*")
_NV_INDEX: Final = re.compile(r"measurement index (\d+) \(SPDM block (\d+), (\w+) RIM\)")
_ALLOW_LIST_NAME: Final = re.compile(r"^([A-Za-z_]\w*) (?:is not in the allow-list|is not an allowed|matches no)")
_OCSP_LEVEL: Final = re.compile(r"^(?:no OCSP response for )?(.+?) \((.*)\)(?: is revoked)?$")
_VENDOR: Final = {"intel": "Intel", "snp": "AMD", "nvidia": "NVIDIA", "azure": "Microsoft"}
_DOCUMENTS: Final = {
    "tcb_info": "Intel's TCB Info",
    "qe_identity": "Intel's QE Identity",
    "crl": "the certificate revocation list",
    "signing_cert": "Intel's TCB signing certificate",
    "leaf": "the chip's VCEK certificate",
    "collateral": "Intel's collateral (TCB Info, QE Identity, CRLs)",
    "rim": "NVIDIA's reference integrity manifest (RIM)",
    "ocsp": "NVIDIA's OCSP answer for the device certificates",
}
_SERVICES: Final = {"intel": "Intel PCS/PCCS", "snp": "AMD KDS", "nvidia": "the NVIDIA service"}
_MEASUREMENT_NAMES: Final = (
    "mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrconfigid", "mrowner", "mrownerconfig", "mrseam", "mrsignerseam",
    "mrenclave", "mrsigner", "measurement", "host_data",
)  # fmt: skip


def _one_of(text: str | None) -> str | None:
    """``"a | b"`` (how several accepted values are stored) as ``"one of a, b"``."""
    if text is None or " | " not in text:
        return text
    return "one of " + ", ".join(part.strip() for part in text.split(" | "))


def _vendor(code: str) -> str:
    return _VENDOR.get(code.split(".", 1)[0], "the vendor")


def _document(code: str) -> str:
    """Which vendor document a collateral code is about (``intel.collateral.tcb_info_expired``: TCB Info)."""
    last = code.rsplit(".", 1)[-1]
    for key, name in _DOCUMENTS.items():
        if last.startswith(key) or code.split(".")[1].startswith(key):
            return name
    return f"{_vendor(code)}'s collateral"


def _measurement_name(ctx: _Context) -> str:
    """Which measurement an allow-list reason is about: the claim holding the actual value, else the name in the
    message, else "a measurement"."""
    actual = (ctx.reason.actual or "").lower()
    if actual and actual != "absent":
        for name in _MEASUREMENT_NAMES:
            if str(ctx.claims.get(name, "")).lower() == actual:
                return name.upper()
    found = _ALLOW_LIST_NAME.match(ctx.message)
    if found:
        return found.group(1).upper()
    if ctx.reason.actual == "absent" and ctx.reason.expected:
        return ctx.reason.expected.upper()
    return "A measurement"


def _binding(ctx: _Context) -> str:
    field = {"intel": "REPORTDATA", "snp": "REPORT_DATA"}.get(ctx.reason.code.split(".", 1)[0], "The runtime data")
    if ctx.reason.code == "attestation.binding_mismatch":
        return (
            "The evidence's runtime data does not name this attestation's challenge nonce and enclave key: it was "
            "made for another request or another key"
        )
    return (
        f"{field} does not bind this attestation's challenge nonce and enclave key: the quote was made for another "
        "request or another key"
    )


def _measurement(ctx: _Context) -> str:
    name = _measurement_name(ctx)
    if ctx.reason.actual == "absent":
        return f"{ctx.reference.capitalize()} pins {name}, which this TEE type does not report"
    if ctx.message.startswith("MEASUREMENT is not endorsed"):
        return "The launch MEASUREMENT is not endorsed by a verified UVM endorsement (confidential ACI)"
    return f"{name} differs from {ctx.reference}"


def _debug(ctx: _Context) -> str:
    code = ctx.reason.code
    if code == "intel.policy.td_debug":
        return (
            "The TD runs in debug mode (TDATTRIBUTES debug bits): the host can read its memory, and the policy "
            "forbids debug TEEs"
        )
    if code == "intel.policy.sgx_debug":
        return "The enclave is a debug enclave: the host can read its memory, and the policy forbids debug TEEs"
    return (
        "The guest policy allows debugging (POLICY.DEBUG): the host can read guest memory, and the policy forbids "
        "debug TEEs"
    )


def _tcb(ctx: _Context) -> str:
    code = ctx.reason.code
    if code == "intel.policy.tcb_status_not_accepted":
        return f"The platform's TCB status {ctx.reason.actual} is not one the appraisal policy accepts"
    if code == "intel.policy.advisory_denied":
        return "The platform is affected by security advisories the appraisal policy denies"
    if code == "intel.policy.tcb_eval_number_too_low":
        return "The collateral's TCB evaluation number is below the appraisal policy's minimum"
    if code == "intel.tcb.not_supported":
        return "Intel's TCB Info has no level this platform reaches: its TCB is not supported"
    return f"{ctx.message[:1].upper()}{ctx.message[1:]} (below the appraisal policy's minimum)"


def _collateral(ctx: _Context) -> str:
    code = ctx.reason.code
    document = _document(code)
    if code.endswith("unavailable"):
        service = _SERVICES.get(code.split(".", 1)[0], "The vendor service")
        return (
            f"{service} could not be reached, so {document} was not available; retryable: attest again once it answers"
        )
    if code.endswith("missing"):
        return f"No copy of {document} was available for this evidence: the collateral cache holds none"
    if code.endswith("not_yet_valid"):
        return f"{document[:1].upper()}{document[1:]} was not yet valid at decision time"
    return (
        f"{document[:1].upper()}{document[1:]} was past its next update at decision time: the cache needs a fresh "
        f"copy from {_SERVICES.get(code.split('.', 1)[0], 'the vendor')}"
    )


def _chain(ctx: _Context) -> str:
    code = ctx.reason.code
    what = {
        "intel.pck": "The PCK certificate chain",
        "intel.collateral": "The collateral's signing chain",
        "snp.chain": "The VCEK certificate chain",
        "nvidia.chain": "The device certificate chain",
        "nvidia.rim": "The RIM's signing chain",
        "azure.uvm": "The UVM endorsement's chain",
    }.get(".".join(code.split(".")[:2]), "The certificate chain")
    return (
        f"{what} does not lead to {_vendor(code)}'s pinned root certificate: the evidence is not from genuine "
        "hardware, or the chain was altered"
    )


def _signature(ctx: _Context) -> str:
    code = ctx.reason.code
    what = {
        "intel.quote": "The quote's signature",
        "intel.pck": "A PCK certificate's signature",
        "intel.qe_report": "The quoting enclave report's signature",
        "intel.collateral": "The collateral's signature",
        "snp.signature": "The attestation report's signature",
        "snp.chain": "A certificate's signature in the VCEK chain",
        "snp.crl": "The CRL's signature",
        "nvidia.report": "The GPU report's signature",
        "nvidia.rim": "The RIM's signature",
        "nvidia.ocsp": "The OCSP answer's signature",
        "azure.uvm": "The UVM endorsement's signature",
    }.get(".".join(code.split(".")[:2]), "A signature")
    return f"{what} does not verify: the evidence was altered, or not signed by the key it claims"


def _challenge(ctx: _Context) -> str:
    code = ctx.reason.code
    if code == "challenge.expired":
        if "waited too long" in ctx.message:
            return (
                "The request waited too long for its decision: the enclave must fetch a fresh challenge and attest "
                "again"
            )
        return "The challenge nonce had expired when the evidence arrived: the enclave must fetch a fresh challenge"
    if code == "challenge.replayed":
        return "The challenge nonce was already used by an earlier attestation: a replay, or a resubmitted request"
    if code == "attestation.request_stale":
        return (
            "The request was too old when a worker reached it (a worker outage, or a long collateral back-off): the "
            "enclave must fetch a fresh challenge and attest again"
        )
    return "The challenge nonce was not issued by this service (wrong length or MAC)"


def _entitlement(ctx: _Context) -> str:
    code, actual = ctx.reason.code, ctx.reason.actual
    sentences = {
        "entitlement.seats_exhausted": "Every seat of the customer's licence is held by another deployment",
        "entitlement.gpus_exceeded": "The attestation brings more GPUs than the customer's licence allows",
        "entitlement.platform_not_allowed": f"The customer's licence does not cover the platform {actual}",
        "entitlement.version_not_allowed": f"The customer's licence does not cover model version {actual}",
        "entitlement.expired": "The customer's licence had expired at decision time",
        "entitlement.not_yet_valid": "The customer's licence was not yet valid at decision time",
        "entitlement.inactive": f"The customer's licence is {actual}, not active",
        "entitlement.customer_suspended": "The customer is suspended: none of its licences release keys",
        "auth.customer_suspended": "The customer is suspended: none of its licences release keys",
        "entitlement.not_found": "The licence named by the request does not exist",
        "lease.not_renewable": "The lease this renewal names cannot be renewed (revoked, expired or another key's)",
        "attestation.superseded_by_newer": "A newer request of the same deployment already holds its lease: this "
        "late one is refused so it cannot displace it",
    }
    return sentences.get(code, _fallback(ctx))


def _reference_values(ctx: _Context) -> str:
    platform = ctx.platform or ctx.reason.actual or "this platform"
    if ctx.reason.code == "attestation.reference_values_missing":
        return (
            f"The model version had no active reference-value set for {platform} at decision time: an admin must "
            "activate one"
        )
    return (
        f"The active reference values for {platform} pin no workload measurement, so they would accept any guest; "
        "Keyward refuses to appraise against them"
    )


def _device(ctx: _Context) -> str:
    return ctx.device or "The GPU"


def _nvidia_measurement(ctx: _Context) -> str:
    found = _NV_INDEX.search(ctx.message)
    if not found:
        return f"{_device(ctx)}: a measurement differs from NVIDIA's signed reference values"
    index, block, source = found.groups()
    rim = ctx.claims.get("rims", {}).get(source, {}) if isinstance(ctx.claims.get("rims"), Mapping) else {}
    named = f" '{rim['id']}'" if isinstance(rim, Mapping) and rim.get("id") else ""
    return (
        f"{_device(ctx)}: measurement index {index} (SPDM block {block}) differs from NVIDIA's signed "
        f"{source.upper() if source == 'vbios' else source} RIM{named}"
    )


def _nvidia_nonce(ctx: _Context) -> str:
    return (
        f"{_device(ctx)}: the SPDM request nonce is not the one this attestation's challenge and enclave key give "
        "that device: the GPU report was made for another attestation"
    )


def _ocsp(ctx: _Context) -> str:
    code = ctx.reason.code
    found = _OCSP_LEVEL.match(ctx.message)
    level = found.group(1) if found else "device"
    if code == "nvidia.ocsp.revoked":
        return f"{_device(ctx)}: NVIDIA's OCSP responder says the {level} certificate is revoked"
    if code == "nvidia.ocsp.missing":
        return f"{_device(ctx)}: no OCSP answer was available for the {level} certificate, and the policy requires one"
    if code == "nvidia.ocsp.unknown":
        return f"{_device(ctx)}: NVIDIA's OCSP responder does not know the {level} certificate"
    return f"{_device(ctx)}: NVIDIA's OCSP answer for the device certificates is out of date ({ctx.message})"


def _rim_missing(ctx: _Context) -> str:
    role = ctx.message.removeprefix("no ").removesuffix(" RIM") or "firmware"
    role = role.upper() if role == "vbios" else role
    return (
        f"{_device(ctx)}: NVIDIA's reference integrity manifest for the {role} was not available, and the policy "
        "requires one"
    )


def _fallback(ctx: _Context) -> str:
    message = ctx.message or ctx.reason.code
    sentence = f"{message[:1].upper()}{message[1:]}"
    return f"{ctx.device}: {sentence}" if ctx.device and not sentence.startswith(ctx.device) else sentence


_DEBUG_CODES: Final = frozenset({"intel.policy.td_debug", "intel.policy.sgx_debug", "snp.policy.debug"})
_COLLATERAL_STATE: Final = re.compile(r"(?:^|_|\.)(expired|missing|unavailable|not_yet_valid)$")


def _explainer(code: str) -> Callable[[_Context], str]:
    if code in ("attestation.binding_mismatch", "intel.policy.report_data_mismatch", "snp.policy.report_data_mismatch"):
        return _binding
    if code in ("intel.policy.measurement_not_allowed", "snp.policy.measurement_not_allowed") or (
        code.startswith("snp.policy.") and code.endswith("_not_allowed") and check_of(code) is Check.MEASUREMENTS
    ):
        return _measurement
    if code in _DEBUG_CODES:
        return _debug
    if check_of(code) is Check.TCB:
        return _tcb
    if code.startswith("attestation.reference_values_"):
        return _reference_values
    if code == "nvidia.measurement.mismatch":
        return _nvidia_measurement
    if code == "nvidia.nonce.mismatch":
        return _nvidia_nonce
    if code in ("nvidia.ocsp.revoked", "nvidia.ocsp.stale", "nvidia.ocsp.missing", "nvidia.ocsp.unknown"):
        return _ocsp
    if code == "nvidia.rim.missing":
        return _rim_missing
    if code.startswith("challenge.") or code == "attestation.request_stale":
        return _challenge
    if check_of(code) is Check.LICENCE:
        return _entitlement
    if code.endswith(("chain_untrusted", "chain.untrusted")):
        return _chain
    if code.endswith(("signature_invalid", "signature.invalid")):
        return _signature
    if check_of(code) is Check.COLLATERAL and _COLLATERAL_STATE.search(code):
        return _collateral
    return _fallback


def explain(
    reason: ReasonView,
    *,
    platform: str | None = None,
    device: str | None = None,
    claims: Mapping[str, Any] | None = None,
    reference: str | None = None,
) -> Explanation:
    """``reason`` as a sentence staff understand, with expected vs actual. ``platform``, ``device`` and ``claims``
    are the evaluation's that holds the reason (None for an attestation-level reason); ``reference`` names the
    reference values in force for that platform (:func:`reference_phrase`)."""
    ctx = _Context(reason, platform, device, claims or {}, reference or "the active reference values")
    return Explanation(
        sentence=_explainer(reason.code)(ctx),
        expected=_one_of(reason.expected),
        actual=_one_of(reason.actual),
        code=reason.code,
        fault=reason.fault,
    )


def reference_phrase(
    sets: Sequence[ReferenceSetView], platform: str | None, *, model: str, version: str, recorded: bool = False
) -> str:
    """How a sentence names the reference values of ``platform``: the set the decision recorded it used
    (``recorded``), or for an older decision the one set whose validity window held the decision time; by model,
    version, platform and the set's short id. Several or none are said as such."""
    mine = [s for s in sets if s.platform == platform]
    label = f"{model} {version} · {platform}" if platform else f"{model} {version}"
    if len(mine) == 1:
        short = str(mine[0].id)[:8]
        if recorded:
            return f"the reference set '{label}' ({short})"
        return f"the reference set '{label}' ({short}) in force at decision time"
    if len(mine) > 1:
        return f"the reference values of {model} {version} for {platform} ({len(mine)} sets were in force)"
    return f"the reference values of {model} {version}"


# -- measurements with expected vs actual ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeasurementRow:
    """One measurement of an evaluation: what the reference values allow (``expected``, empty when they do not
    constrain it) and what the evidence reported; ``matches`` None when nothing constrains it."""

    name: str
    expected: tuple[str, ...]
    actual: str | None
    matches: bool | None
    source: str | None = None  # NVIDIA: the RIM the expected value comes from (driver, vbios)


def _allowed(values: Mapping[str, Any]) -> Mapping[str, Sequence[str]]:
    allowed = values.get("allowed_measurements")
    if isinstance(allowed, Mapping):
        return {str(k).lower(): [str(v).lower() for v in vs] for k, vs in allowed.items() if isinstance(vs, list)}
    if isinstance(allowed, list):  # SEV-SNP: a list of launch MEASUREMENTs
        return {"measurement": [str(v).lower() for v in allowed]}
    return {}


def measurement_rows(
    platform: str | None, claims: Mapping[str, Any], reference_values: Mapping[str, Any] | None
) -> tuple[MeasurementRow, ...]:
    """An evaluation's measurements with expected vs actual: NVIDIA's per index against its RIMs (as the
    verification stored them), a CPU's against the allow-lists of ``reference_values`` (the set in force at
    decision time), each measurement the set names plus MRTD/MEASUREMENT always."""
    stored = claims.get("measurements")
    if isinstance(stored, list):
        return tuple(
            MeasurementRow(
                name=f"index {m.get('index')} (block {m.get('block')})",
                expected=tuple(str(e) for e in m.get("expected") or ()),
                actual=None if m.get("actual") is None else str(m.get("actual")),
                matches={"match": True, "mismatch": False}.get(str(m.get("result"))),
                source=None if m.get("source") is None else str(m.get("source")),
            )
            for m in stored
            if isinstance(m, Mapping)
        )
    allowed = _allowed(reference_values or {})
    names = [n for n in _MEASUREMENT_NAMES if n in allowed or (n in ("mrtd", "measurement") and n in claims)]
    rows = []
    for name in names:
        actual = claims.get(name)
        expected = tuple(allowed.get(name, ()))
        text = None if actual is None else str(actual).lower()
        rows.append(MeasurementRow(name.upper(), expected, text, (text in expected) if expected else None))
    return tuple(rows)


# -- a whole attestation ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckRow:
    check: Check
    status: CheckStatus
    reasons: tuple[Explanation, ...] = ()


@dataclass(frozen=True, slots=True)
class EvaluationExplained:
    """One evidence item (a CPU report, or one GPU): its checks and measurements."""

    evaluation: EvaluationView
    title: str  # "intel-tdx", "nvidia-gpu GPU-3"
    checks: tuple[CheckRow, ...]
    measurements: tuple[MeasurementRow, ...]
    reference: str

    @property
    def failed(self) -> bool:
        return any(c.status is CheckStatus.FAILED for c in self.checks)


@dataclass(frozen=True, slots=True)
class Explained:
    """An attestation's answer: why it was rejected (every reason, as sentences), the attestation's own checks in
    decision order, and each evaluation's."""

    summary: tuple[Explanation, ...]
    checks: tuple[CheckRow, ...]
    evaluations: tuple[EvaluationExplained, ...]


def _same(a: ReasonView, b: ReasonView) -> bool:
    return (a.code, a.message, a.expected, a.actual) == (b.code, b.message, b.expected, b.actual)


def _item_checks(evaluation: EvaluationView, explained: Iterable[Explanation]) -> tuple[CheckRow, ...]:
    failures: dict[Check, list[Explanation]] = {}
    for e in explained:
        failures.setdefault(check_of(e.code), []).append(e)
    listed = _GPU_CHECKS if evaluation.platform == "nvidia-gpu" else _ITEM_CHECKS
    rows = []
    for check in (*listed, *(c for c in failures if c not in listed)):
        if check in failures:
            rows.append(CheckRow(check, CheckStatus.FAILED, tuple(failures[check])))
        elif not evaluation.verified and (check in _APPRAISAL or failures):
            rows.append(CheckRow(check, CheckStatus.NOT_REACHED))
        else:
            rows.append(CheckRow(check, CheckStatus.PASSED))
    return tuple(rows)


_STAGES: Final = (Check.CHALLENGE, Check.EVIDENCE, Check.TOGETHER, Check.LICENCE, Check.RELEASE)


def _attestation_checks(
    detail: AttestationDetail, summary: Sequence[Explanation], items: Sequence[EvaluationExplained]
) -> tuple[CheckRow, ...]:
    """The decision's stages in order: the first that failed is failed, those after it not reached (the decision
    stops there), those before passed. An acceptance passed them all; a pending one reached none."""
    items_failed = any(i.failed for i in items) or (detail.status == "rejected" and not items and not summary)
    failed_at: int | None = None
    by_stage: dict[int, list[Explanation]] = {}
    for e in summary:
        check = check_of(e.code)
        stage = _STAGES.index(check) if check in _STAGES else 1
        by_stage.setdefault(stage, []).append(e)
    if by_stage:
        failed_at = min(by_stage)
    elif items_failed:
        failed_at = 1
    gpus = "nvidia-gpu" in detail.platforms or 2 in by_stage
    rows = []
    for stage, check in enumerate(_STAGES):
        if check is Check.TOGETHER and not gpus:
            continue
        if detail.status == "pending":
            status = CheckStatus.NOT_REACHED
        elif failed_at is None or stage < failed_at:
            status = CheckStatus.PASSED
        elif stage == failed_at or stage in by_stage:
            status = CheckStatus.FAILED
        else:
            status = CheckStatus.NOT_REACHED
        rows.append(CheckRow(check, status, tuple(by_stage.get(stage, ()))))
    return tuple(rows)


def explain_detail(detail: AttestationDetail) -> Explained:
    """Everything the attestation page says about why: the summary sentences (each stored reason, with the
    context of the evaluation that holds it), the attestation's checks, and each evaluation's checks and
    measurements."""
    sets = detail.reference_sets

    def reference(platform: str | None) -> str:
        return reference_phrase(
            sets, platform, model=detail.model, version=detail.model_version, recorded=detail.inputs_recorded
        )

    def values(platform: str | None) -> Mapping[str, Any] | None:
        mine = [s for s in sets if s.platform == platform]
        return mine[0].values if len(mine) == 1 else None

    items = []
    for ev in detail.evaluations:
        explained = [
            explain(r, platform=ev.platform, device=ev.device, claims=ev.claims, reference=reference(ev.platform))
            for r in ev.reasons
        ]
        items.append(
            EvaluationExplained(
                evaluation=ev,
                title=" ".join(p for p in (ev.platform or "evidence", ev.device) if p),
                checks=_item_checks(ev, explained),
                measurements=measurement_rows(ev.platform, ev.claims, values(ev.platform)),
                reference=reference(ev.platform),
            )
        )
    summary = []
    for r in detail.reasons:
        holder = next((ev for ev in detail.evaluations if any(_same(r, x) for x in ev.reasons)), None)
        if holder is None:
            summary.append(explain(r, reference=reference(detail.platforms[0] if detail.platforms else None)))
        else:
            summary.append(
                explain(
                    r,
                    platform=holder.platform,
                    device=holder.device,
                    claims=holder.claims,
                    reference=reference(holder.platform),
                )
            )
    return Explained(tuple(summary), _attestation_checks(detail, summary, items), tuple(items))
