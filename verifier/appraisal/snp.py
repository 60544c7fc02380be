"""Appraisal of verified AMD SEV-SNP claims against reference values and policy (amd-snp.md §2, §7, §9 step 6).

Input: an :class:`~verifier.platforms.amd_snp.SnpVerification` and an :class:`SnpPolicy`. Output: a
:class:`~verifier.appraisal.verdict.Verdict` with every failed check (code, expected, actual). Pure.

Always enforced (not configurable): DEBUG and MIGRATE_MA rejected unless explicitly allowed, POLICY bit 17 set,
reserved POLICY bits 26-63 clear. Defaults: VMPL 0 only, CXL not allowed, ALIAS_CHECK_COMPLETE required on v3+
reports (BadRAM mitigation active), every TCB at or above the built-in per-product floor (:data:`DEFAULT_MIN_TCB`),
and VLEK-signed reports only from a cloud provider the policy names (``allowed_csp_ids``; none by default).
Everything else is a reference value or knob the provider sets.

TCB floor: ``min_tcb`` can only *raise* it (component-wise maximum with the built-in floor). Accepting a TCB below
the built-in floor takes the explicit ``min_tcb_override``, which replaces the built-in floor for each product it
names (``{"milan": {}}`` removes Milan's); ``min_tcb`` still applies on top of it.

Confidential ACI (§7): HOST_DATA is SHA-256 of the CCE policy (rego text). A reference value can be the policy
itself (:func:`cce_policy_digest` accepts the rego text or its base64 from the ARM template); the verdict names the
policy that matched.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from verifier.appraisal.documents import policy_object
from verifier.appraisal.verdict import Verdict
from verifier.errors import Code, Reason, UsageError
from verifier.evidence.snp import (
    PLATFORM_ALIAS_CHECK_COMPLETE,
    POLICY_CIPHERTEXT_HIDING,
    POLICY_CXL_ALLOW,
    POLICY_DEBUG,
    POLICY_MEM_AES_256_XTS,
    POLICY_MIGRATE_MA,
    POLICY_RAPL_DIS,
    POLICY_RESERVED_MASK,
    POLICY_RESERVED_MBO,
    POLICY_SINGLE_SOCKET,
    POLICY_SMT,
    PRODUCTS,
    SnpReport,
    TcbVersion,
)
from verifier.platforms.amd_snp import SnpVerification

TCB_COMPONENTS: Final = ("bootloader", "tee", "snp", "microcode", "fmc")

#: Built-in TCB floor per product (amd-snp.md §9 step 6): the AMD-SB-3019 fixes need SNP SPL >= 0x18 on Milan and
#: >= 0x17 on Genoa (Genoa also covers Bergamo/Siena; microsoft/CCF#6812). The SNP SPL is the SNP firmware's security
#: version, so this is also the firmware floor. The spec names no Turin value, so Turin has no built-in floor.
DEFAULT_MIN_TCB: Final[Mapping[str, Mapping[str, int]]] = {"milan": {"snp": 0x18}, "genoa": {"snp": 0x17}}


def cce_policy_digest(policy: bytes) -> bytes:
    """SHA-256 of a CCE policy given as rego text or as its base64 (the ARM template's ``ccePolicy``)."""
    text = policy.strip()
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    # base64 of rego decodes to printable text; raw rego text is (almost) never valid base64.
    if decoded and b"package" in decoded:
        return hashlib.sha256(decoded).digest()
    return hashlib.sha256(policy).digest()


@dataclass(frozen=True, slots=True)
class SnpPolicy:
    allowed_measurements: frozenset[bytes] = frozenset()
    allowed_host_data: frozenset[bytes] = frozenset()
    #: name -> SHA-256 of a CCE policy (confidential ACI); HOST_DATA must equal one of these (or allowed_host_data).
    cce_policies: Mapping[str, bytes] = field(default_factory=dict)
    allowed_id_key_digests: frozenset[bytes] = frozenset()
    allowed_author_key_digests: frozenset[bytes] = frozenset()
    allowed_family_ids: frozenset[bytes] = frozenset()
    allowed_image_ids: frozenset[bytes] = frozenset()
    min_guest_svn: int | None = None
    allowed_vmpls: frozenset[int] = frozenset({0})
    allow_debug: bool = False
    allow_migrate_ma: bool = False
    allow_smt: bool = True
    allow_cxl: bool = False
    require_single_socket: bool = False
    require_mem_aes_256_xts: bool = False
    require_rapl_dis: bool = False
    require_ciphertext_hiding: bool = False
    require_alias_check_complete: bool = True
    #: product -> component -> minimum SPL on top of the floor (component-wise maximum: it can only raise it).
    #: The floor (:meth:`tcb_floor`) is checked for REPORTED, COMMITTED, CURRENT and LAUNCH TCB.
    min_tcb: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: product -> component -> minimum SPL that replaces :data:`DEFAULT_MIN_TCB` for each product named here; the
    #: only way to accept a TCB below the built-in floor (``{"milan": {}}``: no Milan floor at all).
    min_tcb_override: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: (major, minor, build) minimum for the current and committed firmware (on top of the SNP SPL floor).
    min_firmware: tuple[int, int, int] | None = None
    expected_report_data: bytes | None = None
    #: Confidential ACI: MEASUREMENT must be a launch measurement endorsed by a verified Microsoft UVM
    #: endorsement (COSE_Sign1, verifier.platforms.azure_uvm) passed to appraisal.
    require_uvm_endorsement: bool = False
    allowed_signing_keys: frozenset[str] = frozenset({"vcek", "vlek"})
    #: cspIDs whose VLEK may sign (amd-snp.md §3.1: allow-listed per deployment). Empty: no VLEK-signed report passes.
    allowed_csp_ids: frozenset[str] = frozenset()
    #: Revocation must have been checked: the verification had a current AMD CRL (the service sets this unless the
    #: provider's policy says ``"require_crl": false``; the CLI checks a CRL only when one is given).
    require_crl: bool = False

    def __post_init__(self) -> None:
        sizes = (
            (self.allowed_measurements, 48, "allowed_measurements"),
            (self.allowed_host_data, 32, "allowed_host_data"),
            (self.allowed_id_key_digests, 48, "allowed_id_key_digests"),
            (self.allowed_author_key_digests, 48, "allowed_author_key_digests"),
            (self.allowed_family_ids, 16, "allowed_family_ids"),
            (self.allowed_image_ids, 16, "allowed_image_ids"),
        )
        for values, size, name in sizes:
            if any(len(v) != size for v in values):
                raise UsageError(Code.POLICY_INVALID, f"{name} values must be {size} bytes")
        if any(len(v) != 32 for v in self.cce_policies.values()):
            raise UsageError(Code.POLICY_INVALID, "cce_policies digests must be 32 bytes")
        if self.expected_report_data is not None and len(self.expected_report_data) != 64:
            raise UsageError(Code.POLICY_INVALID, "expected_report_data must be 64 bytes")
        for name, floors in (("min_tcb", self.min_tcb), ("min_tcb_override", self.min_tcb_override)):
            for product, comps in floors.items():
                if product not in PRODUCTS or not set(comps) <= set(TCB_COMPONENTS):
                    raise UsageError(
                        Code.POLICY_INVALID,
                        f"{name}: unknown product or component in {product!r}",
                        expected=f"{PRODUCTS} x {TCB_COMPONENTS}",
                        actual=f"{product}: {sorted(comps)}",
                    )
                if not all(0 <= n <= 0xFF for n in comps.values()):
                    raise UsageError(
                        Code.POLICY_INVALID, f"{name}: SPLs are 0..255", actual=f"{product}: {dict(comps)}"
                    )
        if not self.allowed_signing_keys <= {"vcek", "vlek"}:
            raise UsageError(Code.POLICY_INVALID, "allowed_signing_keys must be vcek and/or vlek")

    def tcb_floor(self, product: str) -> dict[str, int]:
        """The minimum SPL per component for ``product``: the built-in floor (or its override), raised by min_tcb."""
        floor = dict(self.min_tcb_override.get(product, DEFAULT_MIN_TCB.get(product, {})))
        for component, spl in self.min_tcb.get(product, {}).items():
            floor[component] = max(floor.get(component, 0), spl)
        return floor


def appraise_snp(
    v: SnpVerification, policy: SnpPolicy, *, endorsed_measurements: frozenset[bytes] = frozenset()
) -> Verdict:
    """Check every rule, area by area (as go-sev-guest's ``validate``), and list every failure in this order.

    ``endorsed_measurements``: launch measurements from *verified* UVM endorsements; a MEASUREMENT among them
    satisfies the measurement allow-list.
    """
    report = v.report
    reasons = [
        *_guest_policy_reasons(report.policy, policy),
        *_vmpl_and_platform_reasons(report, policy),
        *_signing_key_reasons(v, policy),
        *_tcb_floor_reasons(v, policy),
        *_firmware_reasons(report, policy),
        *_measurement_and_identity_reasons(report, policy, endorsed_measurements),
        *_host_data_reasons(v, policy),
        *_guest_svn_reasons(report, policy),
        *_binding_reasons(report, policy),
    ]
    return Verdict.of(reasons, simulated=v.simulated)


def _reason(code: Code, message: str, expected: object, actual: object) -> Reason:
    return Reason(code, message, str(expected), str(actual))


def _guest_policy_reasons(guest_policy: int, policy: SnpPolicy) -> list[Reason]:
    """The report's guest POLICY field (§2): forbidden bits, reserved bits, and bits the policy requires."""
    reasons = []
    if guest_policy & POLICY_DEBUG and not policy.allow_debug:
        reasons.append(
            _reason(Code.SNP_POLICY_DEBUG, "guest POLICY.DEBUG is set (bit 19): the host can read guest memory", 0, 1)
        )
    if guest_policy & POLICY_MIGRATE_MA and not policy.allow_migrate_ma:
        reasons.append(_reason(Code.SNP_POLICY_MIGRATE_MA, "guest POLICY.MIGRATE_MA is set (bit 18)", 0, 1))
    if not guest_policy & POLICY_RESERVED_MBO or guest_policy & POLICY_RESERVED_MASK:
        reasons.append(
            _reason(
                Code.SNP_POLICY_RESERVED_BITS,
                "guest POLICY reserved bits: bit 17 must be 1, bits 26-63 must be 0",
                "bit17=1, bits26-63=0",
                hex(guest_policy),
            )
        )
    if guest_policy & POLICY_SMT and not policy.allow_smt:
        reasons.append(_reason(Code.SNP_POLICY_SMT, "guest POLICY allows SMT", 0, 1))
    if guest_policy & POLICY_CXL_ALLOW and not policy.allow_cxl:
        reasons.append(_reason(Code.SNP_POLICY_CXL, "guest POLICY allows CXL memory (bit 21)", 0, 1))
    required_bits = (
        (policy.require_single_socket, POLICY_SINGLE_SOCKET, Code.SNP_POLICY_SINGLE_SOCKET, "SINGLE_SOCKET"),
        (policy.require_mem_aes_256_xts, POLICY_MEM_AES_256_XTS, Code.SNP_POLICY_MEM_AES_256_XTS, "MEM_AES_256_XTS"),
        (policy.require_rapl_dis, POLICY_RAPL_DIS, Code.SNP_POLICY_RAPL_DIS, "RAPL_DIS"),
        (
            policy.require_ciphertext_hiding,
            POLICY_CIPHERTEXT_HIDING,
            Code.SNP_POLICY_CIPHERTEXT_HIDING,
            "CIPHERTEXT_HIDING_DRAM",
        ),
    )
    reasons.extend(
        _reason(code, f"guest POLICY.{name} is required", 1, 0)
        for required, bit, code, name in required_bits
        if required and not guest_policy & bit
    )
    return reasons


def _vmpl_and_platform_reasons(report: SnpReport, policy: SnpPolicy) -> list[Reason]:
    """The VMPL the report was requested from, and PLATFORM_INFO.ALIAS_CHECK_COMPLETE (BadRAM) on v3+ reports."""
    reasons = []
    if report.vmpl not in policy.allowed_vmpls:
        reasons.append(
            _reason(
                Code.SNP_POLICY_VMPL,
                "report was requested from a VMPL that is not allowed",
                sorted(policy.allowed_vmpls),
                report.vmpl,
            )
        )
    alias_check_complete = report.platform_info & PLATFORM_ALIAS_CHECK_COMPLETE
    if policy.require_alias_check_complete and report.version >= 3 and not alias_check_complete:
        reasons.append(
            _reason(
                Code.SNP_POLICY_PLATFORM_INFO, "PLATFORM_INFO.ALIAS_CHECK_COMPLETE is not set (BadRAM mitigation)", 1, 0
            )
        )
    return reasons


def _signing_key_reasons(verification: SnpVerification, policy: SnpPolicy) -> list[Reason]:
    """Revocation checked, the signing key kind (VCEK/VLEK), and a VLEK's cspID on the allow-list (§3.1)."""
    reasons = []
    if policy.require_crl and not verification.crl_checked:
        reasons.append(
            _reason(
                Code.SNP_CRL_MISSING,
                "no AMD CRL was available to check the ASK/ASVK and the leaf for revocation",
                "a current CRL signed by the ARK",
                "none",
            )
        )
    signing_key, csp_id = verification.signing_key, verification.leaf.csp_id
    if signing_key not in policy.allowed_signing_keys:
        reasons.append(
            _reason(
                Code.SNP_POLICY_SIGNING_KEY,
                "signing key type is not allowed",
                sorted(policy.allowed_signing_keys),
                signing_key,
            )
        )
    if (signing_key == "vlek" or csp_id is not None) and csp_id not in policy.allowed_csp_ids:
        if policy.allowed_csp_ids:
            reasons.append(
                _reason(Code.SNP_POLICY_CSP_ID, "VLEK cspID is not allowed", sorted(policy.allowed_csp_ids), csp_id)
            )
        else:
            reasons.append(
                _reason(
                    Code.SNP_POLICY_CSP_ID,
                    "VLEK-signed report, but the policy allows no cloud provider (allowed_csp_ids is empty)",
                    "a cspID listed in allowed_csp_ids",
                    csp_id,
                )
            )
    return reasons


def _tcb_floor_reasons(verification: SnpVerification, policy: SnpPolicy) -> list[Reason]:
    """The TCB floor for the product (:meth:`SnpPolicy.tcb_floor`), component-wise, on every TCB the report carries."""
    product = verification.product
    minimum = policy.tcb_floor(product)
    built_in = product not in policy.min_tcb_override and bool(DEFAULT_MIN_TCB.get(product))
    reasons = []
    for label, tcb in (
        ("REPORTED", verification.reported_tcb),
        ("COMMITTED", verification.committed_tcb),
        ("CURRENT", verification.current_tcb),
        ("LAUNCH", verification.launch_tcb),
    ):
        low = _below(tcb, minimum)
        if low:
            reasons.append(
                _reason(
                    Code.SNP_POLICY_TCB_TOO_LOW,
                    f"{label}_TCB is below the minimum for {product}"
                    + (" (includes the built-in AMD-SB-3019 floor; see min_tcb_override)" if built_in else ""),
                    ", ".join(f"{component}>={minimum[component]}" for component in low),
                    ", ".join(f"{component}={tcb.components().get(component)}" for component in low),
                )
            )
    return reasons


def _firmware_reasons(report: SnpReport, policy: SnpPolicy) -> list[Reason]:
    """The current and committed SNP firmware versions against ``min_firmware``."""
    if policy.min_firmware is None:
        return []
    minimum = ".".join(map(str, policy.min_firmware))
    return [
        _reason(
            Code.SNP_POLICY_FIRMWARE_TOO_LOW,
            f"{label} SNP firmware is older than the minimum",
            ">= " + minimum,
            ".".join(map(str, version)),
        )
        for label, version in (("current", report.current_version), ("committed", report.committed_version))
        if version < policy.min_firmware
    ]


def _measurement_and_identity_reasons(
    report: SnpReport, policy: SnpPolicy, endorsed_measurements: frozenset[bytes]
) -> list[Reason]:
    """MEASUREMENT (or a verified UVM endorsement), ID and author key digests, FAMILY_ID and IMAGE_ID.

    An empty allow-list means "not constrained"; an endorsed MEASUREMENT satisfies the measurement allow-list.
    """
    endorsed = report.measurement in endorsed_measurements
    reasons = []
    if policy.require_uvm_endorsement and not endorsed:
        reasons.append(
            _reason(
                Code.SNP_POLICY_MEASUREMENT,
                "MEASUREMENT is not endorsed by a verified UVM endorsement",
                _one_of(endorsed_measurements) if endorsed_measurements else "an endorsed UVM measurement",
                report.measurement.hex(),
            )
        )
    allow_lists = (
        (policy.allowed_measurements, report.measurement, Code.SNP_POLICY_MEASUREMENT, "MEASUREMENT"),
        (policy.allowed_id_key_digests, report.id_key_digest, Code.SNP_POLICY_ID_KEY_DIGEST, "ID_KEY_DIGEST"),
        (
            policy.allowed_author_key_digests,
            report.author_key_digest,
            Code.SNP_POLICY_AUTHOR_KEY_DIGEST,
            "AUTHOR_KEY_DIGEST",
        ),
        (policy.allowed_family_ids, report.family_id, Code.SNP_POLICY_FAMILY_ID, "FAMILY_ID"),
        (policy.allowed_image_ids, report.image_id, Code.SNP_POLICY_IMAGE_ID, "IMAGE_ID"),
    )
    reasons.extend(
        _reason(code, f"{name} is not an allowed reference value", _one_of(allowed), value.hex())
        for allowed, value, code, name in allow_lists
        if not (name == "MEASUREMENT" and endorsed) and allowed and value not in allowed
    )
    return reasons


def _host_data_reasons(verification: SnpVerification, policy: SnpPolicy) -> list[Reason]:
    """HOST_DATA equals an allowed value or the digest of a CCE policy (confidential ACI, §7), when constrained."""
    host_data = verification.report.host_data
    if not (policy.allowed_host_data or policy.cce_policies):
        return []
    if host_data in policy.allowed_host_data or matched_cce_policy(verification, policy) is not None:
        return []
    expected = _one_of(policy.allowed_host_data | frozenset(policy.cce_policies.values()))
    return [
        _reason(
            Code.SNP_POLICY_HOST_DATA, "HOST_DATA matches no allowed value or CCE policy", expected, host_data.hex()
        )
    ]


def _guest_svn_reasons(report: SnpReport, policy: SnpPolicy) -> list[Reason]:
    """GUEST_SVN against ``min_guest_svn``."""
    if policy.min_guest_svn is None or report.guest_svn >= policy.min_guest_svn:
        return []
    return [
        _reason(
            Code.SNP_POLICY_GUEST_SVN_TOO_LOW,
            "GUEST_SVN is below the minimum",
            f">= {policy.min_guest_svn}",
            report.guest_svn,
        )
    ]


def _binding_reasons(report: SnpReport, policy: SnpPolicy) -> list[Reason]:
    """REPORT_DATA against the expected binding (all 64 bytes)."""
    if policy.expected_report_data is None or report.report_data == policy.expected_report_data:
        return []
    return [
        _reason(
            Code.SNP_POLICY_REPORT_DATA,
            "REPORT_DATA is not the expected binding",
            policy.expected_report_data.hex(),
            report.report_data.hex(),
        )
    ]


def matched_cce_policy(v: SnpVerification, policy: SnpPolicy) -> str | None:
    """Name of the CCE policy whose SHA-256 is this report's HOST_DATA, if any."""
    for name, digest in sorted(policy.cce_policies.items()):
        if digest == v.report.host_data:
            return name
    return None


def _spl(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"SPL must be an integer, not {value!r}")
    return value


def _below(tcb: TcbVersion, minimum: Mapping[str, int]) -> list[str]:
    have = tcb.components()
    return [c for c in TCB_COMPONENTS if c in minimum and have.get(c, 0) < minimum[c]]


def _one_of(values: frozenset[bytes]) -> str:
    return "one of " + ", ".join(sorted(v.hex() for v in values))


_KEYS: Final = frozenset(SnpPolicy.__dataclass_fields__)
_HEX_SETS: Final = (
    "allowed_measurements",
    "allowed_host_data",
    "allowed_id_key_digests",
    "allowed_author_key_digests",
    "allowed_family_ids",
    "allowed_image_ids",
)
_BOOLS: Final = (
    "allow_debug",
    "allow_migrate_ma",
    "allow_smt",
    "allow_cxl",
    "require_single_socket",
    "require_mem_aes_256_xts",
    "require_rapl_dis",
    "require_ciphertext_hiding",
    "require_alias_check_complete",
    "require_uvm_endorsement",
    "require_crl",
)


def parse_snp_policy(doc: Any, *, cce_policies: Mapping[str, bytes] | None = None) -> SnpPolicy:
    """Build an :class:`SnpPolicy` from a parsed JSON object; unknown keys are an error.

    ``cce_policies`` in JSON maps names to the policy as rego text or base64; its digest is computed here.
    """
    doc = policy_object(doc, _KEYS, what="SNP policy")
    kw: dict[str, Any] = {}
    try:
        for key in _HEX_SETS:
            if key in doc:
                kw[key] = frozenset(bytes.fromhex(x) for x in doc[key])
        for key in _BOOLS:
            if key in doc:
                if not isinstance(doc[key], bool):
                    raise TypeError(f"{key} must be true or false")
                kw[key] = doc[key]
        if "allowed_vmpls" in doc:
            kw["allowed_vmpls"] = frozenset(int(x) for x in doc["allowed_vmpls"])
        if "min_guest_svn" in doc:
            kw["min_guest_svn"] = int(doc["min_guest_svn"])
        for key in ("min_tcb", "min_tcb_override"):
            if key in doc:
                kw[key] = {str(p): {str(c): _spl(n) for c, n in comps.items()} for p, comps in doc[key].items()}
        if "min_firmware" in doc:
            major, minor, build = (int(x) for x in str(doc["min_firmware"]).split("."))
            kw["min_firmware"] = (major, minor, build)
        if "expected_report_data" in doc:
            kw["expected_report_data"] = bytes.fromhex(doc["expected_report_data"])
        if "allowed_signing_keys" in doc:
            kw["allowed_signing_keys"] = frozenset(str(x) for x in doc["allowed_signing_keys"])
        if "allowed_csp_ids" in doc:
            kw["allowed_csp_ids"] = frozenset(str(x) for x in doc["allowed_csp_ids"])
        cce = {str(k): cce_policy_digest(str(v).encode()) for k, v in doc.get("cce_policies", {}).items()}
    except (TypeError, ValueError, AttributeError) as e:
        raise UsageError(Code.POLICY_INVALID, f"invalid SNP policy: {e}") from e
    cce.update(cce_policies or {})
    if cce:
        kw["cce_policies"] = cce
    return SnpPolicy(**kw)
