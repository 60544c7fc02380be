"""Single-defect simulated NVIDIA evidence: each defect, injected alone, is rejected with its own stable code.

The fake NVIDIA PKI (verifier/simulation/nvidia_pki.py) builds byte-exact SPDM reports, device chains, signed RIMs
and OCSP responses under simulated roots. The genuine build of every family (Hopper GPU, NVSwitch LS10, Blackwell
GPU, the protected-PCIe HGX board) is accepted under a strict policy (expected nonce, RIMs and OCSP required, at the
simulation's ``now``), so each rejection below is caused by its defect alone. Expected codes are written out here
(and checked against the simulation's own table); every case asserts the SET of reason codes.

Some defects legitimately fail twice (:data:`CONSEQUENCES`): a RIM that fails verification is not used, so its role
has no RIM. A forged device root fails once: the device levels under it are not OCSP-checked (the chain failure is
the reason), and the claims say so.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import pytest

from verifier.appraisal.nvidia import NvidiaPolicy, parse_nvidia_policy
from verifier.errors import Code
from verifier.evidence import nvidia as report_format
from verifier.evidence.nvidia import GpuReport, parse_gpu_report
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import EvidenceItem
from verifier.platforms.nvidia_evidence import ParsedDevice, nvidia_attestation_rules, parse_nvidia_item
from verifier.platforms.nvidia_gpu import check_topology, evaluate_device, evaluate_gpu_report
from verifier.simulation.nvidia_hgx import (
    DEFECT_TARGET,
    EXPECTED_HGX_CODES,
    HGX_DEVICES,
    NOT_PPCIE_GPU,
    HgxDefect,
    HgxEvidence,
    build_hgx,
)
from verifier.simulation.nvidia_pki import (
    BLACKWELL_CHANGED_INDEX,
    DEFAULT_CHANGED_INDEX,
    EXPECTED_CODES,
    OTHER_DRIVER_VERSION,
    Defect,
    GpuOptions,
    NvidiaEvidence,
    SwitchEvidence,
    SwitchOptions,
    blackwell_options,
    default_nvidia_pki,
    defect_applies,
)
from verifier.trust.ocsp import cert_id_key
from verifier.trust.store import TrustStore

C = Code
Family = Literal["hopper", "switch", "blackwell"]
FAMILIES: tuple[Family, ...] = ("hopper", "switch", "blackwell")
Evidence = NvidiaEvidence | SwitchEvidence

#: Each defect's own code, written out (not read from the simulation).
EXPECTED: dict[Defect, Code] = {
    Defect.WRONG_ROOT: C.NVIDIA_CHAIN_UNTRUSTED,
    Defect.LEAF_WRONG_BROM: C.NVIDIA_CHAIN_UNTRUSTED,
    Defect.FWID_MISMATCH: C.NVIDIA_FWID_MISMATCH,
    Defect.FWID_MISSING: C.NVIDIA_FWID_MISSING,
    Defect.LEAF_FWID_EXTENSION_MISSING: C.NVIDIA_FWID_MISSING,
    Defect.REPORT_SIGNATURE_BAD: C.NVIDIA_REPORT_SIGNATURE_INVALID,
    Defect.WRONG_NONCE: C.NVIDIA_NONCE_MISMATCH,
    Defect.MEASUREMENT_CHANGED: C.NVIDIA_MEASUREMENT_MISMATCH,
    Defect.DRIVER_VERSION_CHANGED: C.NVIDIA_RIM_MISMATCH,
    Defect.RIM_TAMPERED: C.NVIDIA_RIM_SIGNATURE_INVALID,
    Defect.RIM_UNSIGNED: C.NVIDIA_RIM_UNSIGNED,
    Defect.RIM_WRONG_KEY: C.NVIDIA_RIM_SIGNATURE_INVALID,
    Defect.RIM_WRONG_ROOT: C.NVIDIA_RIM_CHAIN_UNTRUSTED,
    Defect.RIM_DOCTYPE: C.NVIDIA_RIM_MALFORMED,
    Defect.RIM_SIGNER_EXPIRED: C.NVIDIA_RIM_CHAIN_EXPIRED,
    Defect.DEVICE_CERT_REVOKED: C.NVIDIA_OCSP_REVOKED,
    Defect.DEVICE_CERT_HOLD: C.NVIDIA_OCSP_REVOKED,
    Defect.RIM_SIGNER_REVOKED: C.NVIDIA_OCSP_REVOKED,
    Defect.OCSP_STALE: C.NVIDIA_OCSP_STALE,
    Defect.OCSP_UNKNOWN: C.NVIDIA_OCSP_UNKNOWN,
    Defect.OCSP_NOT_DELEGATED: C.NVIDIA_OCSP_SIGNATURE_INVALID,
    Defect.TRAILING_BYTES: C.NVIDIA_REPORT_TRAILING_DATA,
    Defect.TRAILING_ZERO_BYTE: C.NVIDIA_REPORT_TRAILING_DATA,
    Defect.TRUNCATED: C.NVIDIA_REPORT_TRUNCATED,
}
_UNUSED_RIM = C.NVIDIA_RIM_MISSING
#: The second failure a defect legitimately causes. A RIM that fails verification is never used, so with RIMs
#: required its role (driver RIM, or a switch's BIOS RIM) has none.
CONSEQUENCES: dict[Defect, Code] = {
    Defect.RIM_TAMPERED: _UNUSED_RIM,
    Defect.RIM_UNSIGNED: _UNUSED_RIM,
    Defect.RIM_WRONG_KEY: _UNUSED_RIM,
    Defect.RIM_WRONG_ROOT: _UNUSED_RIM,
    Defect.RIM_DOCTYPE: _UNUSED_RIM,
    Defect.RIM_SIGNER_EXPIRED: _UNUSED_RIM,
}
EXPECTED_HGX: dict[HgxDefect, Code] = {
    HgxDefect.GPU_SWITCH_PDI_WRONG: C.NVIDIA_TOPOLOGY_MISMATCH,
    HgxDefect.GPU_SWITCH_PDI_NOT_REVERSED: C.NVIDIA_TOPOLOGY_MISMATCH,
    HgxDefect.SWITCH_GPU_LIST_DIFFERS: C.NVIDIA_TOPOLOGY_MISMATCH,
    HgxDefect.GPU_NOT_PPCIE: C.NVIDIA_POLICY_PPCIE_REQUIRED,
}
ARCHITECTURE: dict[Family, str] = {"hopper": "HOPPER", "switch": "LS10", "blackwell": "BLACKWELL"}


# ----------------------------------------------------------------------------------------------------------
# Building and evaluating (cached: every evidence is built and evaluated once per module)


def _options(family: Family) -> GpuOptions | SwitchOptions:
    if family == "switch":
        return SwitchOptions()
    return blackwell_options() if family == "blackwell" else GpuOptions()


@functools.cache
def _evidence(family: Family, defect: Defect | None = None, **options: Any) -> Evidence:
    pki = default_nvidia_pki()
    base = _options(family)
    if isinstance(base, SwitchOptions):
        return pki.build_switch(replace(base, **options), defect)
    return pki.build(replace(base, **options), defect)


def _policy(ev: Evidence, **changes: Any) -> NvidiaPolicy:
    """The strict policy: this device's nonce expected, RIMs and OCSP required (the defaults)."""
    return NvidiaPolicy(expected_nonce=ev.nonce, **changes)


def _evaluate(
    ev: Evidence,
    policy: NvidiaPolicy | None = None,
    *,
    report: bytes | None = None,
    rims: Sequence[bytes] | None = None,
    ocsp: Sequence[bytes] | Mapping[str, bytes] | None = None,
    trust: TrustStore | None = None,
) -> Evaluation:
    return evaluate_gpu_report(
        ev.report if report is None else report,
        ev.chain_pem,
        tuple(r.xml for r in ev.rims) if rims is None else rims,
        tuple(e.response for e in ev.ocsp) if ocsp is None else ocsp,
        _policy(ev) if policy is None else policy,
        ev.trust_store if trust is None else trust,
        ev.now,
    )


@functools.cache
def _evaluation(family: Family, defect: Defect | None = None) -> Evaluation:
    return _evaluate(_evidence(family, defect))


def _codes(ev: Evaluation) -> set[Code]:
    return {r.code for r in ev.reasons}


def _claim(ev: Evaluation, key: str) -> Any:
    return ev.claims[key]


def _ocsp_statuses(ev: Evaluation) -> dict[str, str]:
    entries = _claim(ev, "ocsp")
    assert isinstance(entries, list)
    return {e["level"]: e["status"] for e in entries}


DEFECT_CASES = [
    pytest.param(family, defect, id=f"{family}-{defect.value}")
    for family in FAMILIES
    for defect in Defect
    if defect_applies(defect, _options(family))
]


# ----------------------------------------------------------------------------------------------------------
# Genuine evidence


def test_nvidia_defects_expected_codes_agree_with_the_simulation() -> None:
    assert dict(EXPECTED_CODES) == EXPECTED
    assert dict(EXPECTED_HGX_CODES) == EXPECTED_HGX


@pytest.mark.parametrize("family", FAMILIES)
def test_nvidia_defects_genuine_accepted(family: Family) -> None:
    ev = _evaluation(family)
    assert ev.reasons == ()
    assert ev.verified
    assert ev.accepted
    assert ev.simulated
    assert _claim(ev, "architecture") == ARCHITECTURE[family]
    assert _claim(ev, "device_kind") == ("switch" if family == "switch" else "gpu")
    assert _claim(ev, "measres") == "success"
    assert _claim(ev, "signature_verified") is True
    assert _claim(ev, "nonce_match") is True
    assert _claim(ev, "chain")["status"] == "valid"
    statuses = _ocsp_statuses(ev)
    assert statuses  # device certs 1..3 and each RIM's signing chain
    assert set(statuses.values()) == {"good"}
    assert {"device-L4", "device-L3", "device-L2"} <= statuses.keys()


@pytest.mark.parametrize("family", ["hopper", "blackwell"])
def test_nvidia_defects_genuine_gpu_fwid_bound(family: Family) -> None:
    ev = _evaluation(family)
    assert _claim(ev, "fwid_match") is True
    assert _claim(ev, "fwid") == _evidence(family).fwid.hex()


def test_nvidia_defects_genuine_ocsp_keyed_by_cert_id_accepted() -> None:
    ev = _evidence("hopper")
    keyed = {cert_id_key(e.cert, e.issuer): e.response for e in ev.ocsp}
    assert _evaluate(ev, ocsp=keyed).accepted


@pytest.mark.parametrize("family", FAMILIES)
def test_nvidia_defects_genuine_rejected_under_pinned_roots(family: Family, trust: TrustStore) -> None:
    ev = _evaluate(_evidence(family), trust=trust)
    assert not ev.simulated
    assert not ev.verified
    assert not ev.accepted
    assert C.NVIDIA_CHAIN_UNTRUSTED in _codes(ev)  # simulated roots are never NVIDIA's
    assert C.NVIDIA_RIM_CHAIN_UNTRUSTED in _codes(ev)


# ----------------------------------------------------------------------------------------------------------
# One defect, one code


@pytest.mark.parametrize(("family", "defect"), DEFECT_CASES)
def test_nvidia_defect_rejected_with_its_code(family: Family, defect: Defect) -> None:
    ev = _evaluation(family, defect)
    expected = {EXPECTED[defect]} | ({CONSEQUENCES[defect]} if defect in CONSEQUENCES else set())
    assert _codes(ev) == expected
    assert not ev.accepted
    assert ev.simulated


@pytest.mark.parametrize("family", FAMILIES)
def test_nvidia_defect_wrong_root_device_ocsp_not_checked(family: Family) -> None:
    ev = _evaluation(family, Defect.WRONG_ROOT)
    statuses = _ocsp_statuses(ev)
    device = {level: statuses.pop(level) for level in ("device-L4", "device-L3", "device-L2")}
    assert device == dict.fromkeys(device, "not_checked")  # their responses only verify under the forged issuers
    assert statuses  # each RIM's signing chain, under its own (genuine) root
    assert set(statuses.values()) == {"good"}
    entries = {e["level"]: e for e in _claim(ev, "ocsp")}
    assert "age_seconds" not in entries["device-L4"]
    assert "Identity" in entries["device-L2"]["subject"]


@pytest.mark.parametrize(
    ("family", "defect"),
    [p for p in DEFECT_CASES if p.values[1] in CONSEQUENCES and p.values[1] is not Defect.WRONG_ROOT],
)
def test_nvidia_defect_broken_rim_leaves_only_its_role_missing(family: Family, defect: Defect) -> None:
    ev = _evaluation(family, defect)
    role = "bios" if family == "switch" else "driver"
    missing = [r for r in ev.reasons if r.code == C.NVIDIA_RIM_MISSING]
    assert [r.message for r in missing] == [f"no {role} RIM"]
    assert _claim(ev, "rims")[role]["status"] == "missing"
    assert _claim(ev, "measres") == "unavailable"


@pytest.mark.parametrize("family", FAMILIES)
def test_nvidia_defect_measurement_changed_names_its_index(family: Family) -> None:
    ev = _evaluation(family, Defect.MEASUREMENT_CHANGED)
    index = BLACKWELL_CHANGED_INDEX if family == "blackwell" else DEFAULT_CHANGED_INDEX
    (reason,) = ev.reasons
    assert reason.message.startswith(f"measurement index {index} ")
    genuine = parse_gpu_report(_evidence(family).report).measurements[index + 1]
    changed = parse_gpu_report(_evidence(family, Defect.MEASUREMENT_CHANGED).report).measurements[index + 1]
    assert reason.expected is not None
    assert genuine.hex() in reason.expected.split(" | ")
    assert reason.actual == changed.hex()
    results = {m["index"]: m["result"] for m in _claim(ev, "measurements")}
    assert [i for i, r in results.items() if r == "mismatch"] == [index]
    assert _claim(ev, "measres") == "fail"


def test_nvidia_defect_rim_for_other_driver_version_names_both() -> None:
    (reason,) = _evaluation("hopper", Defect.DRIVER_VERSION_CHANGED).reasons
    assert reason.expected == f"GH100 {OTHER_DRIVER_VERSION}"  # the report's (signed) driver
    assert reason.actual == f"GH100 {GpuOptions().driver_version}"  # the only driver RIM supplied


@pytest.mark.parametrize("family", FAMILIES)
def test_nvidia_defect_revoked_brom_is_the_revoked_level(family: Family) -> None:
    ev = _evaluation(family, Defect.DEVICE_CERT_REVOKED)
    statuses = _ocsp_statuses(ev)
    assert statuses.pop("device-L4") == "revoked"
    assert set(statuses.values()) == {"good"}


# ----------------------------------------------------------------------------------------------------------
# Truncation at every field boundary (Hopper report)

_OPAQUE_NAMES: dict[int, str] = {
    value: name.removeprefix("OPAQUE_")
    for name, value in vars(report_format).items()
    if name.startswith("OPAQUE_") and isinstance(value, int)
}


def _block_fields(prefix: str, start: int) -> list[tuple[str, int]]:
    """A measurement block's fields (BLOCK_HEADER: Index, MeasurementSpecification, MeasurementSize, ValueType,
    ValueSize; then the value)."""
    offsets = (("index", 0), ("specification", 1), ("measurement_size", 2), ("value_type", 4), ("value_size", 5))
    return [(f"{prefix}.{name}", start + off) for name, off in offsets] + [
        (f"{prefix}.value", start + report_format.BLOCK_HEADER.size)
    ]


def _boundaries(report: GpuReport) -> list[tuple[str, int]]:
    """(field, offset) for every field of the report: cutting the report at ``offset`` ends it just before that
    field. Offsets are walked from the parsed report's own lengths."""
    request = [
        ("request.spdm_version", 0),
        ("request.request_code", 1),
        ("request.param1", 2),
        ("request.param2", 3),
        ("request.nonce", 4),
        ("request.slot_id", 36),
    ]
    base = report_format.REQUEST_SIZE
    header = [
        (f"response.{name}", base + off)
        for name, off in (
            ("spdm_version", 0),
            ("response_code", 1),
            ("param1", 2),
            ("param2", 3),
            ("number_of_blocks", 4),
            ("measurement_record_length", 5),
        )
    ]
    off = base + report_format.RESPONSE_HEADER.size
    starts = []
    for block in report.response.blocks:
        starts.append((block.index, off))
        off += 4 + block.measurement_size
    (first, first_at), (last, last_at) = starts[0], starts[-1]
    blocks = _block_fields(f"block[{first}]", first_at) + _block_fields(f"block[{last}]", last_at)
    middle = [("response.responder_nonce", off), ("response.opaque_length", off + 32)]
    off += report_format.RESPONSE_MIDDLE.size
    tlvs = []
    for field in report.response.opaque.fields:
        name = f"opaque[{field.type}:{_OPAQUE_NAMES.get(field.type, '?')}]"
        tlvs += [(f"{name}.type", off), (f"{name}.length", off + 2)]
        if field.value:
            tlvs.append((f"{name}.value", off + 4))
        off += 4 + len(field.value)
    signature = [("signature.r", off), ("signature.s", off + 48), ("signature.last_byte", off + 95)]
    assert off + report_format.SIGNATURE_SIZE == len(report.raw)
    return request + header + blocks + middle + tlvs + signature


_HOPPER_REPORT = parse_gpu_report(_evidence("hopper").report)
_BOUNDARIES = _boundaries(_HOPPER_REPORT)
TRUNCATIONS = [pytest.param(offset, id=name) for name, offset in _BOUNDARIES]


def test_nvidia_truncation_boundaries_cover_every_opaque_field() -> None:
    names = [name for name, _ in _BOUNDARIES]
    assert len(set(names)) == len(names)
    assert len([n for n in names if n.endswith(".type")]) == len(_HOPPER_REPORT.response.opaque.fields)
    assert len({offset for _, offset in _BOUNDARIES}) == len(_BOUNDARIES)
    assert len(_HOPPER_REPORT.response.blocks) > 1


@pytest.mark.parametrize("offset", TRUNCATIONS)
def test_nvidia_truncated_report_rejected(offset: int) -> None:
    ev = _evaluate(_evidence("hopper"), report=_HOPPER_REPORT.raw[:offset])
    assert _codes(ev) == {C.NVIDIA_REPORT_TRUNCATED}
    assert not ev.verified
    assert ev.simulated


# ----------------------------------------------------------------------------------------------------------
# Policy defects (each a policy the genuine evidence, or one genuine variation, fails)


def _doc_policy(ev: Evidence, **document: Any) -> NvidiaPolicy:
    """A policy from its JSON document (the keys a model version's policy uses), this device's nonce expected."""
    return parse_nvidia_policy({"expected_report_data": ev.nonce.hex(), **document})


PolicyCase = tuple[Family, dict[str, Any], dict[str, Any], Code]
POLICY_DEFECTS: dict[str, PolicyCase] = {
    "architecture-not-allowed": ("hopper", {}, {"architectures": ["BLACKWELL"]}, C.NVIDIA_POLICY_ARCHITECTURE),
    "switch-architecture-not-allowed": ("switch", {}, {"architectures": ["HOPPER"]}, C.NVIDIA_POLICY_ARCHITECTURE),
    "project-not-allowed": ("hopper", {}, {"projects": ["G520"]}, C.NVIDIA_POLICY_SKU),
    "project-sku-not-allowed": ("hopper", {}, {"project_skus": ["0220"]}, C.NVIDIA_POLICY_SKU),
    "chip-sku-not-allowed": ("hopper", {}, {"chip_skus": ["885"]}, C.NVIDIA_POLICY_SKU),
    "driver-below-min": ("hopper", {}, {"min_driver_version": "550.90.8"}, C.NVIDIA_POLICY_DRIVER_VERSION),
    "vbios-below-min": ("hopper", {}, {"min_vbios_version": "96.00.9F.00.02"}, C.NVIDIA_POLICY_VBIOS_VERSION),
    "ppcie-required": ("hopper", {}, {"require_ppcie": True}, C.NVIDIA_POLICY_PPCIE_REQUIRED),
    "fwid-missing-default-required": ("hopper", {"include_fwid": False}, {}, C.NVIDIA_FWID_MISSING),
    "fwid-missing-policy-required": (
        "hopper",
        {"include_fwid": False, "opaque_data_version": None, "driver_version": "535.129.03"},
        {"require_fwid": True},
        C.NVIDIA_FWID_MISSING,
    ),
    "cert-hold-not-allowed": ("hopper", {}, {"allow_cert_hold": False}, C.NVIDIA_OCSP_REVOKED),
    "airgapped-max-age-exceeded": ("hopper", {}, {"ocsp_max_age_seconds": 1800}, C.NVIDIA_OCSP_STALE),
    "trailing-zeros-not-allowed": ("hopper", {}, {"allow_trailing_zeros": False}, C.NVIDIA_REPORT_TRAILING_DATA),
}
#: The same variations under the policy that allows them: accepted, so the code above is the policy's doing.
POLICY_ALLOWS: dict[str, PolicyCase] = {
    "architecture-allowed": ("hopper", {}, {"architectures": ["HOPPER", "BLACKWELL"]}, C.NVIDIA_POLICY_ARCHITECTURE),
    "switch-architecture-allowed": ("switch", {}, {"architectures": ["LS10"]}, C.NVIDIA_POLICY_ARCHITECTURE),
    "skus-allowed": (
        "hopper",
        {},
        {"projects": ["1010"], "project_skus": ["0200"], "chip_skus": ["882", "885"]},
        C.NVIDIA_POLICY_SKU,
    ),
    "driver-at-min": ("hopper", {}, {"min_driver_version": "550.90.07"}, C.NVIDIA_POLICY_DRIVER_VERSION),
    "vbios-at-min": ("hopper", {}, {"min_vbios_version": "96.00.9F.00.01"}, C.NVIDIA_POLICY_VBIOS_VERSION),
    "fwid-not-required": ("hopper", {"include_fwid": False}, {"require_fwid": False}, C.NVIDIA_FWID_MISSING),
    "fwid-default-not-required": (
        "hopper",
        {"include_fwid": False, "opaque_data_version": None, "driver_version": "535.129.03"},
        {},
        C.NVIDIA_FWID_MISSING,
    ),
    "cert-hold-allowed": ("hopper", {}, {"allow_cert_hold": True}, C.NVIDIA_OCSP_REVOKED),
    "airgapped-within-max-age": ("hopper", {}, {"ocsp_max_age_seconds": 7200}, C.NVIDIA_OCSP_STALE),
    "ocsp-grace-covers-stale": ("hopper", {}, {"ocsp_grace_seconds": 2 * 86400}, C.NVIDIA_OCSP_STALE),
    "trailing-zeros-allowed": ("hopper", {}, {"allow_trailing_zeros": True}, C.NVIDIA_REPORT_TRAILING_DATA),
}
#: Policy cases that need a defective build: the one the policy judges.
_POLICY_BUILD_DEFECT: dict[str, Defect] = {
    "cert-hold-not-allowed": Defect.DEVICE_CERT_HOLD,
    "cert-hold-allowed": Defect.DEVICE_CERT_HOLD,
    "ocsp-grace-covers-stale": Defect.OCSP_STALE,
    "trailing-zeros-not-allowed": Defect.TRAILING_ZERO_BYTE,
    "trailing-zeros-allowed": Defect.TRAILING_ZERO_BYTE,
}


def _policy_case(name: str, case: PolicyCase) -> Evaluation:
    family, options, document, _ = case
    ev = _evidence(family, _POLICY_BUILD_DEFECT.get(name), **options)
    return _evaluate(ev, _doc_policy(ev, **document))


@pytest.mark.parametrize("name", list(POLICY_DEFECTS))
def test_nvidia_policy_defect_rejected_with_its_code(name: str) -> None:
    ev = _policy_case(name, POLICY_DEFECTS[name])
    assert _codes(ev) == {POLICY_DEFECTS[name][3]}
    assert not ev.accepted


@pytest.mark.parametrize("name", list(POLICY_ALLOWS))
def test_nvidia_policy_allowing_the_variation_accepts(name: str) -> None:
    ev = _policy_case(name, POLICY_ALLOWS[name])
    assert ev.reasons == ()
    assert ev.accepted


def test_nvidia_policy_cert_hold_allowed_is_reported() -> None:
    ev = _policy_case("cert-hold-allowed", POLICY_ALLOWS["cert-hold-allowed"])
    (brom,) = [e for e in _claim(ev, "ocsp") if e["level"] == "device-L4"]
    assert brom["status"] == "good"
    assert brom["revocation_reason"] == "certificate_hold"


def test_nvidia_policy_fwid_not_required_said_in_claims() -> None:
    ev = _policy_case("fwid-not-required", POLICY_ALLOWS["fwid-not-required"])
    assert _claim(ev, "fwid_match") is None
    assert _claim(ev, "fwid") is None


def test_nvidia_policy_ocsp_required_without_responses_missing() -> None:
    ev = _evaluate(_evidence("hopper"), ocsp=())
    assert _codes(ev) == {C.NVIDIA_OCSP_MISSING}
    statuses = _ocsp_statuses(ev)
    assert set(statuses.values()) == {"missing"}
    assert len(ev.reasons) == len(statuses) == len(_ocsp_statuses(_evaluation("hopper")))


def test_nvidia_policy_ocsp_not_required_without_responses_skipped() -> None:
    ev = _evaluate(_evidence("hopper"), _policy(_evidence("hopper"), require_ocsp=False), ocsp=())
    assert ev.accepted
    assert _claim(ev, "ocsp") == "skipped"


def test_nvidia_policy_ocsp_stale_beyond_max_age_names_every_level() -> None:
    ev = _policy_case("airgapped-max-age-exceeded", POLICY_DEFECTS["airgapped-max-age-exceeded"])
    assert len(ev.reasons) == len(_ocsp_statuses(_evaluation("hopper")))
    assert set(_ocsp_statuses(ev).values()) == {"invalid"}


@pytest.mark.parametrize(
    ("keep", "missing"),
    [((), ("driver", "vbios")), (("driver",), ("vbios",)), (("vbios",), ("driver",))],
    ids=["no-rims", "no-vbios-rim", "no-driver-rim"],
)
def test_nvidia_policy_rims_required_missing(keep: tuple[str, ...], missing: tuple[str, ...]) -> None:
    ev = _evidence("hopper")
    result = _evaluate(ev, rims=[r.xml for r in ev.rims if r.role in keep])
    assert _codes(result) == {C.NVIDIA_RIM_MISSING}
    ids: dict[str, str] = {r.role: r.rim_id for r in ev.rims}
    assert sorted(r.expected or "" for r in result.reasons) == sorted(ids[role] for role in missing)
    assert _claim(result, "measres") == "unavailable"


def test_nvidia_policy_rims_not_required_without_rims_unavailable() -> None:
    ev = _evidence("hopper")
    result = _evaluate(ev, _policy(ev, require_rims=False), rims=())
    assert result.accepted
    assert _claim(result, "measres") == "unavailable"


def test_nvidia_policy_nonce_not_expected_not_checked() -> None:
    ev = _evidence("hopper", Defect.WRONG_NONCE)
    result = _evaluate(ev, NvidiaPolicy())
    assert result.accepted
    assert _claim(result, "nonce_match") == "not_checked"


# ----------------------------------------------------------------------------------------------------------
# The protected-PCIe HGX board (8 GPUs + 4 NVSwitches)

HGX_NONCES = tuple(bytes([0xA0 + i]) * 32 for i in range(HGX_DEVICES))
HGX_DOCUMENT: dict[str, Any] = {"require_ppcie": True, "min_gpus": 8, "max_gpus": 8}


@functools.cache
def _hgx(defect: HgxDefect | None = None) -> HgxEvidence:
    return build_hgx(HGX_NONCES, defect=defect)


@functools.cache
def _hgx_parsed(defect: HgxDefect | None = None) -> tuple[ParsedDevice, ...]:
    items = _hgx(defect).items(carry_collateral=True)
    return tuple(parse_nvidia_item(EvidenceItem.model_validate(item)) for item in items)


@functools.cache
def _hgx_evaluations(defect: HgxDefect | None = None) -> tuple[Evaluation, ...]:
    hgx = _hgx(defect)
    out = []
    for device, parsed in zip(hgx.devices, _hgx_parsed(defect), strict=True):
        assert isinstance(parsed.report, GpuReport)
        assert not isinstance(parsed.chain, Exception)
        policy = _policy(device, require_ppcie=True)
        rims, ocsp = parsed.carried_rims, parsed.carried_ocsp
        out.append(evaluate_device(parsed.report, parsed.chain, rims, ocsp, policy, device.trust_store, device.now))
    return tuple(out)


def _hgx_rules(defect: HgxDefect | None) -> tuple[Any, ...]:
    return nvidia_attestation_rules(_hgx_parsed(defect), 1, _hgx_evaluations(defect), HGX_DOCUMENT)


def _reports(defect: HgxDefect | None) -> tuple[list[GpuReport], list[GpuReport]]:
    reports = [p.report for p in _hgx_parsed(defect) if isinstance(p.report, GpuReport)]
    return reports[:8], reports[8:]


def test_nvidia_hgx_genuine_board_accepted() -> None:
    evaluations = _hgx_evaluations()
    assert [e.reasons for e in evaluations] == [()] * HGX_DEVICES
    assert all(e.accepted and e.simulated for e in evaluations)
    assert [_claim(e, "device_kind") for e in evaluations] == ["gpu"] * 8 + ["switch"] * 4
    assert all(_claim(e, "mode") == "PPCIE" for e in evaluations[:8])
    assert _hgx_rules(None) == ()
    assert check_topology(*_reports(None)) == ()


@pytest.mark.parametrize("defect", list(HgxDefect), ids=[d.value for d in HgxDefect])
def test_nvidia_hgx_defect_rejected_with_its_code(defect: HgxDefect) -> None:
    """A broken relation between devices is the attestation rules'; a GPU out of PPCIe mode is its own evaluation's
    (the rules, run only once every device passed, then add nothing)."""
    own = [r for e in _hgx_evaluations(defect) for r in e.reasons]
    reasons = own or list(_hgx_rules(defect))
    assert {r.code for r in reasons} == {EXPECTED_HGX[defect]}
    assert len(reasons) == 1  # one broken relation, one reason


_TOPOLOGY_DEFECTS = [d for d in HgxDefect if EXPECTED_HGX[d] is C.NVIDIA_TOPOLOGY_MISMATCH]


@pytest.mark.parametrize("defect", _TOPOLOGY_DEFECTS, ids=[d.value for d in _TOPOLOGY_DEFECTS])
def test_nvidia_hgx_topology_defect_names_its_device(defect: HgxDefect) -> None:
    (reason,) = check_topology(*_reports(defect))
    kind, index = DEFECT_TARGET[defect]
    assert reason.code is C.NVIDIA_TOPOLOGY_MISMATCH
    assert reason.message.startswith(f"{'GPU' if kind == 'gpu' else 'NVSwitch'} {index}")


@pytest.mark.parametrize("defect", _TOPOLOGY_DEFECTS, ids=[d.value for d in _TOPOLOGY_DEFECTS])
def test_nvidia_hgx_topology_defect_devices_each_verify(defect: HgxDefect) -> None:
    assert all(e.accepted for e in _hgx_evaluations(defect))  # only the relation between devices is broken


def test_nvidia_hgx_gpu_not_ppcie_rejected_on_its_own() -> None:
    evaluations = _hgx_evaluations(HgxDefect.GPU_NOT_PPCIE)
    rejected = {i: _codes(e) for i, e in enumerate(evaluations) if not e.accepted}
    assert rejected == {NOT_PPCIE_GPU: {C.NVIDIA_POLICY_PPCIE_REQUIRED}}
    assert _claim(evaluations[NOT_PPCIE_GPU], "protected_pcie") is False


def test_nvidia_hgx_gpu_not_ppcie_passes_when_not_required() -> None:
    defect = HgxDefect.GPU_NOT_PPCIE
    document = {**HGX_DOCUMENT, "require_ppcie": False}
    assert nvidia_attestation_rules(_hgx_parsed(defect), 1, _hgx_evaluations(defect), document) == ()
