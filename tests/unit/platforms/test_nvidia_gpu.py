"""NVIDIA GPU / NVSwitch verification on real hardware reports (tests/vectors/nvidia/, PROVENANCE-verify.md).

Expected values come from tests/vectors/nvidia/devices/expected-verify.json (generated from the shared vectors'
expected.json). Every one of the 37 real reports (N1, S1, M1-M4) verifies (chain, FWID, signature, nonce); M1 and
M2 pass the protected-PCIe topology check; single defects each give their own reason.

The RIM and OCSP paths need verifier/trust/nvidia_rim.py and verifier/trust/ocsp.py (helper B); while their bodies
still raise NotImplementedError those tests skip (``RIM_READY`` / ``OCSP_READY``) and run once both are merged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.appraisal.nvidia import NvidiaPolicy
from verifier.errors import Code, KeywardError, error_for
from verifier.evidence.nvidia import GpuReport, parse_device_chain, parse_gpu_report
from verifier.platforms import nvidia_gpu
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.nvidia_gpu import (
    PLATFORM_NVIDIA,
    architecture,
    blackwell_fwid,
    check_topology,
    device_kind,
    evaluate_device,
    evaluate_gpu_report,
    hopper_fwid,
    leaf_fwid,
    ocsp_targets,
    rim_ids,
)
from verifier.trust import der
from verifier.trust.nvidia_rim import RimMeasurement, VerifiedRim, verify_rim
from verifier.trust.ocsp import OcspPolicy, OcspResult, check_ocsp
from verifier.trust.store import INTEL_SGX_ROOT, TrustStore, trust_store_from_certificates

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "nvidia"
DEVICES = VECTORS / "devices"
RIMS = VECTORS / "rim"
OCSP = VECTORS / "ocsp"
EXPECTED: dict[str, Any] = json.loads((DEVICES / "expected-verify.json").read_text())
DEVICE_ROWS: list[dict[str, Any]] = EXPECTED["devices"]
IDS = [f"{d['case']}-{d['name']}" for d in DEVICE_ROWS]
#: Device chains never expire (notAfter 9999); any time after the newest notBefore will do for them.
DEVICE_NOW = datetime(2025, 10, 24, 12, tzinfo=UTC)
REAL_NOW = max(datetime.now(UTC), datetime(2026, 11, 23, tzinfo=UTC))
CRYPTO_ONLY = NvidiaPolicy(require_rims=False, require_ocsp=False)
LEAF_ARCH = {"GH100 A01 GSP FMC LF": "HOPPER", "GB100 A01 GSP FMC LF": "BLACKWELL", "LS_10 A01 FSP FMC LF": "LS10"}


def _implemented(probe: Callable[[], object]) -> bool:
    """False while helper B's bodies still raise NotImplementedError."""
    try:
        probe()
    except NotImplementedError:
        return False
    except (KeywardError, ValueError, TypeError):
        return True
    return True


def _any_cert() -> x509.Certificate:
    return x509.load_der_x509_certificate(parse_device_chain((DEVICES / "N1-hopper.pem").read_bytes())[1])


RIM_READY = _implemented(lambda: verify_rim(b"", trust_store_from_certificates({}, simulated=True), DEVICE_NOW))
OCSP_READY = _implemented(lambda: check_ocsp(b"", _any_cert(), _any_cert(), DEVICE_NOW, OcspPolicy()))
needs_rims = pytest.mark.skipif(not RIM_READY, reason="verify_rim not implemented yet (helper B)")
needs_ocsp = pytest.mark.skipif(not (RIM_READY and OCSP_READY), reason="check_ocsp not implemented yet (helper B)")


def _bytes(name: str) -> bytes:
    return (DEVICES / f"{name}.bin").read_bytes()


def _pem(name: str) -> bytes:
    return (DEVICES / f"{name}.pem").read_bytes()


def _report(name: str) -> GpuReport:
    return parse_gpu_report(_bytes(name))


def _chain(name: str) -> tuple[bytes, ...]:
    return parse_device_chain(_pem(name))


def _evaluate(
    name: str,
    policy: NvidiaPolicy = CRYPTO_ONLY,
    now: datetime = DEVICE_NOW,
    *,
    trust: TrustStore,
    report: bytes | None = None,
    chain: bytes | None = None,
    rims: tuple[bytes, ...] = (),
    ocsp: tuple[bytes, ...] = (),
) -> Evaluation:
    return evaluate_gpu_report(
        _bytes(name) if report is None else report,
        _pem(name) if chain is None else chain,
        rims,
        ocsp,
        policy,
        trust,
        now,
    )


def _claim(ev: Evaluation, *path: str) -> Any:
    """A claim, or a member of a nested claim."""
    value: Any = ev.claims
    for key in path:
        value = value[key]
    return value


def _codes(ev: Evaluation) -> list[Code]:
    return [r.code for r in ev.reasons]


# ---------------------------------------------------------------------------------------------------------
# All 37 real reports


def test_expected_covers_every_case() -> None:
    assert len(DEVICE_ROWS) == 37
    assert {d["case"] for d in DEVICE_ROWS} == {"N1", "S1", "M1", "M2", "M3", "M4"}


@pytest.mark.parametrize("row", DEVICE_ROWS, ids=IDS)
def test_evaluate_gpu_report_real_vector_verifies(row: dict[str, Any], trust: TrustStore) -> None:
    policy = NvidiaPolicy(require_rims=False, require_ocsp=False, expected_nonce=bytes.fromhex(row["request_nonce"]))
    ev = _evaluate(row["name"], policy, trust=trust)
    assert ev.reasons == ()
    assert ev.verified
    assert ev.accepted
    assert ev.platform == PLATFORM_NVIDIA
    assert ev.simulated is False
    claims = ev.claims
    assert claims["signature_verified"] is True
    assert claims["nonce_match"] is True
    assert claims["fwid_match"] is row["fwid_match"]
    assert claims["chain"] == {"status": "valid", "earliest_expiry": "9999-12-31T23:59:59Z"}
    assert claims["ueid"] == row["ueid"]
    assert claims["architecture"] == LEAF_ARCH[row["leaf_cn"]]
    assert claims["device_kind"] == ("switch" if row["leaf_cn"].startswith("LS_10") else "gpu")
    for key in ("driver_version", "vbios_version", "project", "project_sku", "chip_sku", "chip_info"):
        if key in row:
            assert claims[key] == row[key], key
    assert claims["request_nonce"] == row["request_nonce"]
    if "hwmodel" in row:
        assert claims["hwmodel"] == row["hwmodel"]
    if row.get("fwid_report"):
        assert claims["fwid"] == row["fwid_report"]
    assert claims["ocsp"] == "skipped"
    assert claims["measres"] == "unavailable"


@pytest.mark.parametrize("row", DEVICE_ROWS, ids=IDS)
def test_rim_ids_real_vector(row: dict[str, Any]) -> None:
    ids = rim_ids(_report(row["name"]))
    if row["leaf_cn"].startswith("LS_10"):
        assert ids.driver is None
        assert ids.firmware == "NV_SWITCH_BIOS_5612_0002_890_" + row["vbios_version"].replace(".", "")
    else:
        assert (ids.driver, ids.firmware) == (row["driver_rim_id"], row["vbios_rim_id"])


def test_rim_ids_switch_s1_expected() -> None:
    row = next(d for d in DEVICE_ROWS if d["case"] == "S1")
    assert rim_ids(_report(row["name"])).firmware == row["switch_bios_rim_id"]


@pytest.mark.parametrize("row", DEVICE_ROWS, ids=IDS)
def test_architecture_and_kind_from_report_and_chain_agree(row: dict[str, Any]) -> None:
    report = _report(row["name"])
    chain = [x509.load_der_x509_certificate(d) for d in _chain(row["name"])]
    want = LEAF_ARCH[row["leaf_cn"]]
    assert architecture(report, chain) == want
    assert architecture(report, None) == want
    assert device_kind(report) == ("switch" if want == "LS10" else "gpu")


def test_architecture_report_and_chain_disagree_rejected() -> None:
    report = _report("N1-hopper")
    blackwell = [x509.load_der_x509_certificate(d) for d in _chain("M3-blackwell-mpt-gpu0")]
    with pytest.raises(KeywardError) as e:
        architecture(report, blackwell)
    assert e.value.code is Code.NVIDIA_CHAIN_UNTRUSTED


def test_evaluate_device_hopper_report_blackwell_chain_unverified(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem("M3-blackwell-mpt-gpu0"))
    assert not ev.verified
    assert _codes(ev) == [Code.NVIDIA_CHAIN_UNTRUSTED]


# ---------------------------------------------------------------------------------------------------------
# Signature, nonce, trailing bytes


def test_evaluate_switch_report_with_other_switch_chain_signature_invalid(trust: TrustStore) -> None:
    ev = _evaluate("M2-switch1-other-capture", trust=trust, chain=_pem("M2-switch0-chain"))
    assert _codes(ev) == [Code.NVIDIA_REPORT_SIGNATURE_INVALID]
    assert not ev.verified
    assert _claim(ev, "signature_verified") is False
    assert _claim(ev, "chain") == {"status": "valid", "earliest_expiry": "9999-12-31T23:59:59Z"}


def test_evaluate_switch_report_other_capture_own_chain_verifies(trust: TrustStore) -> None:
    ev = _evaluate("M2-switch1-other-capture", trust=trust, chain=_pem("M2-ppcie-switch1"))
    assert ev.accepted


@pytest.mark.parametrize(
    ("what", "offset"),
    [("request_nonce", 10), ("responder_nonce", 37 + 8 + 64 * 55 + 3), ("measurement_block", 37 + 8 + 7 + 2)],
)
def test_evaluate_one_bit_flip_in_signed_bytes_signature_invalid(what: str, offset: int, trust: TrustStore) -> None:
    data = bytearray(_bytes("N1-hopper"))
    assert offset < len(parse_gpu_report(bytes(data)).signed)
    data[offset] ^= 0x01
    ev = _evaluate("N1-hopper", trust=trust, report=bytes(data))
    assert Code.NVIDIA_REPORT_SIGNATURE_INVALID in _codes(ev), what
    assert not ev.verified


def test_evaluate_one_bit_flip_in_signature_invalid(trust: TrustStore) -> None:
    data = bytearray(_bytes("N1-hopper"))
    data[-5] ^= 0x01
    ev = _evaluate("N1-hopper", trust=trust, report=bytes(data))
    assert _codes(ev) == [Code.NVIDIA_REPORT_SIGNATURE_INVALID]


def test_evaluate_nonce_mismatch(trust: TrustStore) -> None:
    ev = _evaluate(
        "N1-hopper", NvidiaPolicy(require_rims=False, require_ocsp=False, expected_nonce=bytes(32)), trust=trust
    )
    assert _codes(ev) == [Code.NVIDIA_NONCE_MISMATCH]
    assert ev.reasons[0].actual == _report("N1-hopper").nonce.hex()
    assert _claim(ev, "nonce_match") is False
    assert not ev.verified


def test_evaluate_nonce_not_checked_said_in_claims(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust)
    assert _claim(ev, "nonce_match") == "not_checked"


def test_evaluate_trailing_zero_byte_rejected_by_default(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, report=_bytes("N1-hopper") + b"\x00")
    assert _codes(ev) == [Code.NVIDIA_REPORT_TRAILING_DATA]
    assert not ev.verified


def test_evaluate_trailing_zero_byte_allowed_by_policy(trust: TrustStore) -> None:
    policy = NvidiaPolicy(require_rims=False, require_ocsp=False, allow_trailing_zeros=True)
    ev = _evaluate("N1-hopper", policy, trust=trust, report=_bytes("N1-hopper") + b"\x00")
    assert ev.accepted


def test_evaluate_trailing_nonzero_byte_malformed(trust: TrustStore) -> None:
    policy = NvidiaPolicy(require_rims=False, require_ocsp=False, allow_trailing_zeros=True)
    ev = _evaluate("N1-hopper", policy, trust=trust, report=_bytes("N1-hopper") + b"\x01")
    assert _codes(ev) == [Code.NVIDIA_REPORT_TRAILING_DATA]
    assert ev.claims == {}


def test_evaluate_hex_report_text_accepted(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, report=_bytes("N1-hopper").hex().encode())
    assert ev.accepted


def test_evaluate_garbage_report_unverified(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, report=_bytes("N1-hopper")[:40])
    assert not ev.verified
    assert ev.reasons[0].code is Code.NVIDIA_REPORT_TRUNCATED


def test_evaluate_garbage_chain_unverified_with_report_claims(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, chain=b"not a chain")
    assert _codes(ev) == [Code.NVIDIA_CHAIN_MALFORMED]
    assert _claim(ev, "driver_version") == "550.90.07"


def test_evaluate_device_empty_chain_unverified(trust: TrustStore) -> None:
    ev = evaluate_device(_report("N1-hopper"), (), (), (), CRYPTO_ONLY, trust, DEVICE_NOW)
    assert _codes(ev) == [Code.NVIDIA_CHAIN_MALFORMED]


def test_evaluate_device_trust_store_without_nvidia_roots_unverified(trust: TrustStore) -> None:
    other = trust_store_from_certificates({INTEL_SGX_ROOT: trust.root(INTEL_SGX_ROOT).certificate}, simulated=True)
    ev = evaluate_device(_report("N1-hopper"), _chain("N1-hopper"), (), (), CRYPTO_ONLY, other, DEVICE_NOW)
    assert _codes(ev) == [Code.TRUST_ROOT_MISMATCH]
    assert not ev.verified


# ---------------------------------------------------------------------------------------------------------
# Device chain


def _pem_of(ders: list[bytes]) -> bytes:
    return b"".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM) for d in ders)


def test_evaluate_chain_of_four_untrusted(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem_of(list(_chain("N1-hopper"))[:4]))
    assert _codes(ev) == [Code.NVIDIA_CHAIN_UNTRUSTED]
    assert _claim(ev, "chain") == {"status": "invalid", "earliest_expiry": None}
    assert not ev.verified


def test_evaluate_chain_supplied_root_not_pinned_untrusted(trust: TrustStore) -> None:
    chain = list(_chain("N1-hopper"))
    chain[4] = chain[3]  # a 5th certificate that is not the pinned root; the pinned one still closes the path
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem_of(chain))
    assert _codes(ev) == [Code.NVIDIA_CHAIN_UNTRUSTED]
    assert "pinned" in ev.reasons[0].message
    assert _claim(ev, "signature_verified") is True


def test_evaluate_chain_intermediate_from_other_device_untrusted(trust: TrustStore) -> None:
    chain = list(_chain("N1-hopper"))
    chain[1] = _chain("M4-hopper_evidence_cert_hold")[1]  # another GPU's BROM certificate
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem_of(chain))
    assert _codes(ev) == [Code.NVIDIA_CHAIN_UNTRUSTED]
    assert "certificate 0" in ev.reasons[0].message


def test_evaluate_chain_order_swapped_untrusted(trust: TrustStore) -> None:
    chain = list(_chain("N1-hopper"))
    chain[2], chain[3] = chain[3], chain[2]
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem_of(chain))
    assert set(_codes(ev)) == {Code.NVIDIA_CHAIN_UNTRUSTED}
    assert not ev.verified


def test_evaluate_chain_before_validity_expired(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", trust=trust, now=datetime(2019, 1, 1, tzinfo=UTC))
    assert set(_codes(ev)) == {Code.NVIDIA_CHAIN_EXPIRED}
    assert _claim(ev, "chain", "status") == "expired"
    assert not ev.verified


def test_ocsp_targets_device_certs_one_to_three(trust: TrustStore) -> None:
    chain = _chain("N1-hopper")
    targets = ocsp_targets(chain, trust)
    assert [c.public_bytes(Encoding.DER) for c, _ in targets] == list(chain[1:4])
    assert targets[-1][1] == trust.root("nvidia.device_identity_ca").certificate
    assert [i.subject for _, i in targets[:2]] == [c.subject for c, _ in targets[1:]]


def test_ocsp_targets_short_chain_rejected(trust: TrustStore) -> None:
    with pytest.raises(KeywardError) as e:
        ocsp_targets(_chain("N1-hopper")[:4], trust)
    assert e.value.code is Code.NVIDIA_CHAIN_UNTRUSTED


# ---------------------------------------------------------------------------------------------------------
# FWID


def _leaf(name: str) -> x509.Certificate:
    return x509.load_der_x509_certificate(_chain(name)[0])


def _ext(name: str, oid: str) -> bytes:
    value = _leaf(name).extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value
    assert isinstance(value, x509.UnrecognizedExtension)
    return value.value


def test_hopper_fwid_is_last_48_bytes() -> None:
    value = _ext("N1-hopper", "2.23.133.5.4.1")
    assert hopper_fwid(value) == value[-48:] == _report("N1-hopper").response.opaque.fwid


def test_blackwell_fwid_is_first_fwids_entry() -> None:
    value = _ext("M3-blackwell-mpt-gpu0", "2.23.133.5.4.1.1")
    assert blackwell_fwid(value) == _report("M3-blackwell-mpt-gpu0").response.opaque.fwid
    assert blackwell_fwid(value) != value[-48:]  # fwids[1] is all zero: "last 48 bytes" would be wrong here


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("truncated", lambda v: v[:-1]),
        ("trailing_byte", lambda v: v + b"\x00"),
        ("not_sequence", lambda v: b"\x31" + v[1:]),
        (
            "digest_47_bytes",
            lambda v: v[:2] + bytes((v[2] - 1,)) + v[3:-50] + bytes((v[-50] - 1, v[-49] - 1)) + v[-47:],
        ),
    ],
)
def test_hopper_fwid_malformed_rejected(name: str, mutate: Callable[[bytes], bytes]) -> None:
    with pytest.raises(der.DerError):
        hopper_fwid(mutate(_ext("N1-hopper", "2.23.133.5.4.1")))


def test_blackwell_fwid_fields_out_of_order_rejected() -> None:
    # SEQUENCE { [1] "x", [0] "y" }
    with pytest.raises(der.DerError, match="increasing"):
        blackwell_fwid(bytes.fromhex("3006810178800179"))


def test_blackwell_fwid_without_fwids_rejected() -> None:
    with pytest.raises(der.DerError, match="no fwids"):
        blackwell_fwid(bytes.fromhex("3003800178"))


def test_blackwell_fwid_empty_fwids_rejected() -> None:
    with pytest.raises(der.DerError, match="empty"):
        blackwell_fwid(bytes.fromhex("3005800178a600"))


def test_blackwell_fwid_wrong_hash_rejected() -> None:
    # [6] { SEQUENCE { OID sha256, OCTET STRING(48) } }
    digest = bytes(range(48))
    fwid = bytes.fromhex("0609608648016503040201") + b"\x04\x30" + digest
    body = b"\xa6" + bytes((len(fwid) + 2,)) + b"\x30" + bytes((len(fwid),)) + fwid
    with pytest.raises(der.DerError, match="SHA-384"):
        blackwell_fwid(b"\x30" + bytes((len(body),)) + body)


def test_leaf_fwid_absent_extension_none() -> None:
    assert leaf_fwid(_leaf("N1-hopper"), "BLACKWELL") is None


def test_evaluate_fwid_mismatch_other_gpu_leaf(trust: TrustStore) -> None:
    # N1's report under another H100's chain: its FWID differs (and so does its key)
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem("M4-hopper_evidence_cert_hold"))
    assert _codes(ev) == [Code.NVIDIA_FWID_MISMATCH, Code.NVIDIA_REPORT_SIGNATURE_INVALID]
    assert ev.reasons[0].actual == _claim(ev, "fwid") == DEVICE_ROWS[0]["fwid_report"]
    assert _claim(ev, "fwid_match") is False


def test_evaluate_fwid_required_switch_without_fwid_missing(trust: TrustStore) -> None:
    policy = NvidiaPolicy(require_rims=False, require_ocsp=False, require_fwid=True)
    ev = _evaluate("S1-switch_evidence_ls10", policy, trust=trust)
    assert _codes(ev) == [Code.NVIDIA_FWID_MISSING]
    assert not ev.verified


# ---------------------------------------------------------------------------------------------------------
# RIMs and OCSP absent: never silent


def test_evaluate_default_policy_without_collateral_rejected(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", NvidiaPolicy(), trust=trust)
    assert ev.verified
    assert not ev.accepted
    assert _codes(ev) == [Code.NVIDIA_RIM_MISSING] * 2 + [Code.NVIDIA_OCSP_MISSING] * 3
    assert [r.expected for r in ev.reasons[:2]] == [
        "NV_GPU_DRIVER_GH100_550.90.07",
        "NV_GPU_VBIOS_1010_0200_882_96009F0001",
    ]
    assert [e["status"] for e in _claim(ev, "ocsp")] == ["missing"] * 3


def test_evaluate_switch_default_policy_only_bios_rim_missing(trust: TrustStore) -> None:
    ev = _evaluate("S1-switch_evidence_ls10", NvidiaPolicy(require_ocsp=False), trust=trust)
    assert _codes(ev) == [Code.NVIDIA_RIM_MISSING]
    assert ev.reasons[0].expected == "NV_SWITCH_BIOS_5612_0002_890_9610550001"


def test_evaluate_policy_reason_reported(trust: TrustStore) -> None:
    policy = NvidiaPolicy(require_rims=False, require_ocsp=False, require_ppcie=True)
    ev = _evaluate("N1-hopper", policy, trust=trust)
    assert ev.verified
    assert _codes(ev) == [Code.NVIDIA_POLICY_PPCIE_REQUIRED]


# ---------------------------------------------------------------------------------------------------------
# Protected PCIe topology


def _set(prefix: str, gpu: str, switch: str) -> tuple[list[GpuReport], list[GpuReport]]:
    return (
        [_report(f"{prefix}-{gpu}{i}") for i in range(8)],
        [_report(f"{prefix}-{switch}{i}") for i in range(4)],
    )


M1 = ("M1", "gpu", "switch")
M2 = ("M2", "ppcie-gpu", "ppcie-switch")


@pytest.mark.parametrize("case", [M1, M2], ids=["M1", "M2"])
def test_check_topology_real_ppcie_systems_pass(case: tuple[str, str, str]) -> None:
    gpus, switches = _set(*case)
    assert check_topology(gpus, switches) == ()


def test_check_topology_seven_gpus_rejected() -> None:
    gpus, switches = _set(*M1)
    assert [r.code for r in check_topology(gpus[:7], switches)] == [Code.NVIDIA_TOPOLOGY_MISMATCH]


def test_check_topology_switch_from_other_system_rejected() -> None:
    gpus, switches = _set(*M1)
    switches[2] = _report("M2-ppcie-switch2")
    reasons = check_topology(gpus, switches)
    assert reasons
    assert {r.code for r in reasons} == {Code.NVIDIA_TOPOLOGY_MISMATCH}
    assert any("GPU 0" in r.message for r in reasons)
    assert any("NVSwitch 2 lists other GPU PDIs" in r.message for r in reasons)


def test_check_topology_gpu_from_other_system_rejected() -> None:
    gpus, switches = _set(*M1)
    gpus[5] = _report("M2-ppcie-gpu5")
    assert [r.message for r in check_topology(gpus, switches)] == [
        "GPU 5's NVLink switch PDIs are not the NVSwitches' PDIs"
    ]


def test_check_topology_same_switch_twice_rejected() -> None:
    gpus, switches = _set(*M1)
    switches[3] = switches[0]
    messages = [r.message for r in check_topology(gpus, switches)]
    assert "two NVSwitches report the same DEVICE_PDI" in messages


def test_check_topology_gpu_as_switch_rejected() -> None:
    gpus, switches = _set(*M1)
    switches[1] = gpus[0]
    assert any("NVSwitch 1" in r.message for r in check_topology(gpus, switches))


# ---------------------------------------------------------------------------------------------------------
# With RIMs and OCSP (helper B's verify_rim / check_ocsp)


def _rim(name: str) -> bytes:
    return (RIMS / name).read_bytes()


def _n1_rims() -> tuple[bytes, bytes]:
    return _rim(EXPECTED["N1"]["driver_rim"]), _rim(EXPECTED["N1"]["vbios_rim"])


def _n1_ocsp() -> tuple[bytes, ...]:
    return tuple((OCSP / f).read_bytes() for f in EXPECTED["N1"]["ocsp"].values())


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


N1_NOW = _at(EXPECTED["N1"]["pinned_now"]) if "N1" in EXPECTED else DEVICE_NOW
#: The real device OCSP responses are from 2025-08-21 and the RIM ones from 2025-10-24 (24 h each; the device L2
#: responder certificate expired 2025-09-21): no one instant has all seven fresh. Each evaluation below is made at
#: one of the two pinned times with all seven, and must fail exactly on the other time's responses.
N1_DEVICE_OCSP_NOW = _at(EXPECTED["N1"]["pinned_now_device_ocsp"]) if "N1" in EXPECTED else DEVICE_NOW


def _ocsp_by_level(ev: Evaluation) -> dict[str, str]:
    entries = _claim(ev, "ocsp")
    assert isinstance(entries, list)
    return {e["level"]: e["status"] for e in entries}


@needs_ocsp
def test_evaluate_n1_complete_offline_verification_at_rim_time(trust: TrustStore) -> None:
    nonce = bytes.fromhex(DEVICE_ROWS[0]["request_nonce"])
    ev = _evaluate(
        "N1-hopper", NvidiaPolicy(expected_nonce=nonce), N1_NOW, trust=trust, rims=_n1_rims(), ocsp=_n1_ocsp()
    )
    assert ev.verified
    failed = {r.message.split(":", 1)[0] for r in ev.reasons}
    assert failed == {"OCSP device-L2", "OCSP device-L3", "OCSP device-L4"}  # the 2025-08-21 answers only
    assert {r.code for r in ev.reasons} <= {Code.NVIDIA_OCSP_STALE, Code.NVIDIA_OCSP_SIGNATURE_INVALID}
    appraisal = EXPECTED["N1"]["appraisal"]
    assert _claim(ev, "measres") == appraisal["measres"]
    assert _claim(ev, "msr35_skipped") is appraisal["msr35_skipped"]
    assert _claim(ev, "index_conflicts") == appraisal["index_conflicts"]
    compared = [m for m in _claim(ev, "measurements") if m["source"] is not None]
    assert len(compared) == appraisal["active_indices"]
    assert not [m for m in compared if m["result"] == "mismatch"]
    assert _claim(ev, "oemid") == "5703"
    rims = _claim(ev, "rims")
    assert rims["driver"]["id"] == "NV_GPU_DRIVER_GH100_550.90.07"
    assert rims["vbios"]["version"] == "96.00.9F.00.01"
    levels = _ocsp_by_level(ev)
    assert len(levels) == 9  # device L4..L2, driver RIM L4..L2, VBIOS RIM L4..L2 (L3/L2 responses shared)
    assert {s for level, s in levels.items() if "rim" in level} == {"good"}


@needs_ocsp
def test_evaluate_n1_complete_offline_verification_at_device_ocsp_time(trust: TrustStore) -> None:
    nonce = bytes.fromhex(DEVICE_ROWS[0]["request_nonce"])
    policy = NvidiaPolicy(expected_nonce=nonce)
    ev = _evaluate("N1-hopper", policy, N1_DEVICE_OCSP_NOW, trust=trust, rims=_n1_rims(), ocsp=_n1_ocsp())
    assert ev.verified
    failed = {r.message.split(":", 1)[0] for r in ev.reasons}
    assert failed  # the 2025-10-24 answers, not yet issued
    assert all("rim" in f for f in failed)
    assert {r.code for r in ev.reasons} == {Code.NVIDIA_OCSP_STALE}
    assert _claim(ev, "measres") == "success"
    assert {s for level, s in _ocsp_by_level(ev).items() if level.startswith("device")} == {"good"}


@needs_rims
def test_evaluate_n1_rims_without_ocsp_skipped_when_allowed(trust: TrustStore) -> None:
    policy = NvidiaPolicy(require_ocsp=False)
    ev = _evaluate("N1-hopper", policy, N1_NOW, trust=trust, rims=_n1_rims())
    assert ev.accepted
    assert _claim(ev, "ocsp") == "skipped"
    assert _claim(ev, "measres") == "success"


@needs_rims
def test_evaluate_n1_rims_at_real_time_signers_expired(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", NvidiaPolicy(require_ocsp=False), REAL_NOW, trust=trust, rims=_n1_rims())
    codes = _codes(ev)
    assert codes.count(Code.NVIDIA_RIM_CHAIN_EXPIRED) == 2
    assert codes.count(Code.NVIDIA_RIM_MISSING) == 2  # neither expired RIM is used
    assert _claim(ev, "measres") == "unavailable"


@needs_rims
def test_evaluate_n1_driver_rim_of_other_version_mismatch(trust: TrustStore) -> None:
    rims = (_rim("NV_GPU_DRIVER_GH100_550.144.03.xml"), _rim(EXPECTED["N1"]["vbios_rim"]))
    ev = _evaluate("N1-hopper", NvidiaPolicy(require_ocsp=False), N1_NOW, trust=trust, rims=rims)
    assert _codes(ev) == [Code.NVIDIA_RIM_MISMATCH]
    assert ev.reasons[0].expected == "GH100 550.90.07"
    assert ev.reasons[0].actual == "GH100 550.144.03"


@needs_rims
def test_evaluate_n1_other_version_ignored_beside_matching_rim(trust: TrustStore) -> None:
    rims = (_rim("NV_GPU_DRIVER_GH100_550.144.03.xml"), *_n1_rims())
    ev = _evaluate("N1-hopper", NvidiaPolicy(require_ocsp=False), N1_NOW, trust=trust, rims=rims)
    assert ev.accepted


@needs_rims
def test_evaluate_s1_switch_with_bios_rim(trust: TrustStore) -> None:
    now = _at(EXPECTED["S1"]["pinned_now"])
    rims = (_rim(EXPECTED["S1"]["bios_rim"]),)
    ev = _evaluate("S1-switch_evidence_ls10", NvidiaPolicy(require_ocsp=False), now, trust=trust, rims=rims)
    assert ev.accepted
    appraisal = EXPECTED["S1"]["appraisal"]
    assert _claim(ev, "measres") == appraisal["measres"]
    compared = [m for m in _claim(ev, "measurements") if m["source"] is not None]
    assert len(compared) == appraisal["active_indices"]
    assert _claim(ev, "rims", "bios", "id") == "NV_SWITCH_BIOS_5612_0002_890_9610550001"


@needs_rims
def test_evaluate_switch_rim_given_to_gpu_mismatch(trust: TrustStore) -> None:
    rims = (*_n1_rims(), _rim(EXPECTED["S1"]["bios_rim"]))
    ev = _evaluate(
        "N1-hopper", NvidiaPolicy(require_ocsp=False), _at(EXPECTED["S1"]["pinned_now"]), trust=trust, rims=rims
    )
    assert Code.NVIDIA_RIM_MISMATCH in _codes(ev)


#: NVIDIA's negative RIM fixtures (expected-verify.json rim_cases), each given to N1 as its only driver RIM.
NEGATIVE_RIMS = {
    "NV_GPU_DRIVER_GH100_535.86.09_measurement_mismatch.xml": {Code.NVIDIA_RIM_SIGNATURE_INVALID},
    "NV_GPU_DRIVER_GH100_570.124.03_expired.xml": {Code.NVIDIA_RIM_SIGNATURE_INVALID, Code.NVIDIA_RIM_CHAIN_EXPIRED},
    "NV_SWITCH_BIOS_5612_0002_890_9610550001_invalid_signature.xml": {Code.NVIDIA_RIM_SIGNATURE_INVALID},
    "NV_SWITCH_BIOS_5612_0002_890_9610550001_measurement_mismatch.xml": {Code.NVIDIA_RIM_SIGNATURE_INVALID},
    "incorrect_signature_driver_rim.xml": {Code.NVIDIA_RIM_SIGNATURE_INVALID},
    "incorrect_cert_chain_driver_rim.xml": {Code.NVIDIA_RIM_CHAIN_UNTRUSTED},
    # validly signed, but for VBIOS 96.00.5E.00.01: not this GPU's
    "NV_GPU_VBIOS_1010_0200_882_96005E0001_measurement_mismatch.xml": {Code.NVIDIA_RIM_MISMATCH},
}


def test_negative_rims_cover_expected_rim_cases() -> None:
    negatives = {r["file"] for r in EXPECTED["rim_cases"] if not r["expect"].startswith("valid")}
    assert negatives == set(NEGATIVE_RIMS)


@needs_rims
@pytest.mark.parametrize(("name", "codes"), NEGATIVE_RIMS.items(), ids=list(NEGATIVE_RIMS))
def test_evaluate_n1_negative_rim_rejected(name: str, codes: set[Code], trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", NvidiaPolicy(require_ocsp=False), N1_NOW, trust=trust, rims=(_rim(f"negative/{name}"),))
    assert not ev.accepted
    assert ev.verified  # the report itself is genuine
    assert set(_codes(ev)) & codes
    assert _claim(ev, "measres") == "unavailable"


# ---------------------------------------------------------------------------------------------------------
# RIM selection and OCSP aggregation with stand-ins for verify_rim / check_ocsp (no XML, no OCSP DER): the
# choice of RIMs per role and the OCSP verdicts are this module's, whatever helper B's functions answer.


def _verified(version: str, *, name: str = "GH100", edition: str = "GPU", tag: str = "t") -> VerifiedRim:
    return VerifiedRim(
        tag_id=tag,
        name=name,
        version="1.0",
        colloquial_version=version,
        product=name,
        edition=edition,
        firmware_manufacturer_id="5703",
        measurements=(),
        signer_chain=(),
        sha256=tag * 64,
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def fake_rims(monkeypatch: pytest.MonkeyPatch) -> dict[bytes, VerifiedRim | KeywardError]:
    table: dict[bytes, VerifiedRim | KeywardError] = {}

    def fake_verify_rim(xml: bytes, trust: TrustStore, now: datetime) -> VerifiedRim:
        found = table[xml]
        if isinstance(found, KeywardError):
            raise found
        return found

    monkeypatch.setattr(nvidia_gpu, "verify_rim", fake_verify_rim)
    return table


NO_OCSP = NvidiaPolicy(require_ocsp=False)


def test_select_rims_driver_and_vbios_chosen(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims |= {b"d": _verified("550.90.07", tag="a"), b"v": _verified("96.00.9f.00.01", tag="b")}
    ev = _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"v", b"d"))
    assert ev.reasons == ()
    assert _claim(ev, "measres") == "success"  # the stand-in RIMs have no active entries
    assert _claim(ev, "rims", "driver", "sha256") == "a" * 64
    assert _claim(ev, "rims", "vbios", "sha256") == "b" * 64


def test_select_rims_only_candidate_of_other_version_mismatch(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims |= {b"d": _verified("550.144.03"), b"v": _verified("96.00.9F.00.01")}
    ev = _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"d", b"v"))
    assert _codes(ev) == [Code.NVIDIA_RIM_MISMATCH]
    assert _claim(ev, "measres") == "unavailable"


def test_select_rims_product_of_other_chip_mismatch(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims |= {b"d": _verified("550.90.07", name="GB100"), b"v": _verified("96.00.9F.00.01")}
    ev = _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"d", b"v"))
    assert _codes(ev) == [Code.NVIDIA_RIM_MISMATCH]
    assert ev.reasons[0].actual == "GB100 550.90.07"


def test_select_rims_two_different_matching_rims_ambiguous(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims |= {b"d1": _verified("550.90.07", tag="a"), b"d2": _verified("550.90.07", tag="c")}
    fake_rims[b"v"] = _verified("96.00.9F.00.01", tag="b")
    ev = _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"d1", b"d2", b"v"))
    assert _codes(ev) == [Code.NVIDIA_RIM_MISMATCH]
    assert "several" in ev.reasons[0].message


def test_select_rims_same_rim_twice_is_one(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims |= {b"d": _verified("550.90.07", tag="a"), b"v": _verified("96.00.9F.00.01", tag="b")}
    assert _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"d", b"d", b"v")).accepted


def test_select_rims_unverifiable_rim_is_a_reason(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims[b"bad"] = error_for(Code.NVIDIA_RIM_SIGNATURE_INVALID, "digest mismatch")
    fake_rims[b"v"] = _verified("96.00.9F.00.01")
    ev = _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"bad", b"v"))
    assert _codes(ev) == [Code.NVIDIA_RIM_SIGNATURE_INVALID, Code.NVIDIA_RIM_MISSING]
    assert ev.reasons[0].message == "RIM 0: digest mismatch"


def test_select_rims_missing_not_required_is_a_claim(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims[b"v"] = _verified("96.00.9F.00.01")
    ev = _evaluate("N1-hopper", CRYPTO_ONLY, trust=trust, rims=(b"v",))
    assert ev.accepted
    assert _claim(ev, "rims", "driver") == {"id": "NV_GPU_DRIVER_GH100_550.90.07", "status": "missing"}
    assert _claim(ev, "measres") == "unavailable"


def test_select_rims_switch_bios_rim(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims[b"b"] = _verified("96.10.55.00.01", name="LS10", edition="SWITCH")
    ev = _evaluate("S1-switch_evidence_ls10", NO_OCSP, trust=trust, rims=(b"b",))
    assert ev.accepted
    assert _claim(ev, "measres") == "success"
    assert set(_claim(ev, "rims")) == {"bios"}


def test_select_rims_driver_rim_for_switch_mismatch(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    fake_rims |= {b"d": _verified("550.90.07"), b"b": _verified("96.10.55.00.01", name="LS10", edition="SWITCH")}
    ev = _evaluate("S1-switch_evidence_ls10", NO_OCSP, trust=trust, rims=(b"d", b"b"))
    assert _codes(ev) == [Code.NVIDIA_RIM_MISMATCH]


def test_select_rims_measurement_mismatch_through_evaluation(fake_rims: dict[bytes, Any], trust: TrustStore) -> None:
    report = _report("N1-hopper")
    wrong = bytes(48)
    driver = _verified("550.90.07", tag="a")
    fake_rims[b"d"] = VerifiedRim(
        **{
            **{f: getattr(driver, f) for f in driver.__dataclass_fields__},
            "measurements": (
                RimMeasurement(21, True, (report.measurements[22],), 48, "m21"),
                RimMeasurement(22, True, (wrong,), 48, "m22"),
            ),
        }
    )
    fake_rims[b"v"] = _verified("96.00.9F.00.01", tag="b")
    ev = _evaluate("N1-hopper", NO_OCSP, trust=trust, rims=(b"d", b"v"))
    assert _codes(ev) == [Code.NVIDIA_MEASUREMENT_MISMATCH]
    assert "index 22" in ev.reasons[0].message
    assert ev.reasons[0].actual == report.measurements[23].hex()
    assert _claim(ev, "measres") == "fail"
    assert ev.verified


def _good(subject: str) -> OcspResult:
    t = datetime(2025, 10, 24, tzinfo=UTC)
    return OcspResult(subject, 1, "good", None, None, t, t + timedelta(days=1), t, "CN=responder", None, 60)


@pytest.fixture
def fake_ocsp(monkeypatch: pytest.MonkeyPatch) -> dict[str, OcspResult | KeywardError]:
    """Responses keyed by the certificate's CN; the 'DER' handed over is that CN."""
    table: dict[str, OcspResult | KeywardError] = {}

    def fake_check(
        response: bytes,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        now: datetime,
        policy: OcspPolicy,
        *,
        nonce: bytes | None = None,
    ) -> OcspResult:
        found = table[response.decode()]
        if isinstance(found, KeywardError):
            raise found
        return found

    monkeypatch.setattr(nvidia_gpu, "check_ocsp", fake_check)
    monkeypatch.setattr(nvidia_gpu, "cert_id_key", lambda cert, issuer: _cn_of(cert))
    return table


def _cn_of(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


DEVICE_CNS = ("GH100 A01 GSP BROM", "NVIDIA GH100 Provisioner ICA 1", "NVIDIA GH100 Identity")


def _device_ocsp(fake_ocsp: dict[str, Any], **override: OcspResult | KeywardError) -> dict[str, bytes]:
    for cn in DEVICE_CNS:
        fake_ocsp[cn] = override.get(cn.split()[-1], _good(cn))
    return {cn: cn.encode() for cn in DEVICE_CNS}


def test_ocsp_device_all_good(fake_ocsp: dict[str, Any], trust: TrustStore) -> None:
    ocsp = _device_ocsp(fake_ocsp)
    ev = evaluate_device(
        _report("N1-hopper"), _chain("N1-hopper"), (), ocsp, NvidiaPolicy(require_rims=False), trust, DEVICE_NOW
    )
    assert ev.accepted
    entries = _claim(ev, "ocsp")
    assert [(e["level"], e["status"]) for e in entries] == [
        ("device-L4", "good"),
        ("device-L3", "good"),
        ("device-L2", "good"),
    ]


@pytest.mark.parametrize(
    ("status", "code"), [("revoked", Code.NVIDIA_OCSP_REVOKED), ("unknown", Code.NVIDIA_OCSP_UNKNOWN)]
)
def test_ocsp_device_bad_status_rejected(status: str, code: Code, fake_ocsp: dict[str, Any], trust: TrustStore) -> None:
    bad = replace(
        _good("ICA"),
        status="revoked" if status == "revoked" else "unknown",
        revocation_reason="key_compromise" if status == "revoked" else None,
    )
    ocsp = _device_ocsp(fake_ocsp, **{"1": bad})
    ev = evaluate_device(
        _report("N1-hopper"), _chain("N1-hopper"), (), ocsp, NvidiaPolicy(require_rims=False), trust, DEVICE_NOW
    )
    assert _codes(ev) == [code]
    assert "device-L3" in ev.reasons[0].message
    assert ev.verified


def test_ocsp_device_stale_response_rejected(fake_ocsp: dict[str, Any], trust: TrustStore) -> None:
    ocsp = _device_ocsp(fake_ocsp, Identity=error_for(Code.NVIDIA_OCSP_STALE, "past nextUpdate"))
    ev = evaluate_device(
        _report("N1-hopper"), _chain("N1-hopper"), (), ocsp, NvidiaPolicy(require_rims=False), trust, DEVICE_NOW
    )
    assert _codes(ev) == [Code.NVIDIA_OCSP_STALE]
    assert ev.reasons[0].message == "OCSP device-L2: past nextUpdate"


def test_ocsp_partial_not_required_reports_missing_without_reason(fake_ocsp: dict[str, Any], trust: TrustStore) -> None:
    ocsp = _device_ocsp(fake_ocsp)
    del ocsp["NVIDIA GH100 Identity"]
    ev = evaluate_device(_report("N1-hopper"), _chain("N1-hopper"), (), ocsp, CRYPTO_ONLY, trust, DEVICE_NOW)
    assert ev.accepted
    assert [e["status"] for e in _claim(ev, "ocsp")] == ["good", "good", "missing"]


def test_ocsp_partial_required_missing_rejected(fake_ocsp: dict[str, Any], trust: TrustStore) -> None:
    ocsp = _device_ocsp(fake_ocsp)
    del ocsp["GH100 A01 GSP BROM"]
    ev = evaluate_device(
        _report("N1-hopper"), _chain("N1-hopper"), (), ocsp, NvidiaPolicy(require_rims=False), trust, DEVICE_NOW
    )
    assert _codes(ev) == [Code.NVIDIA_OCSP_MISSING]


def test_ocsp_sequence_with_unmatched_garbage_is_missing(trust: TrustStore) -> None:
    ev = _evaluate("N1-hopper", NvidiaPolicy(require_rims=False), trust=trust, ocsp=(b"garbage",))
    assert _codes(ev) == [Code.NVIDIA_OCSP_MISSING] * 3


def test_evaluate_device_certificate_with_damaged_subject_malformed(trust: TrustStore) -> None:
    """A device certificate that loads but whose subject does not parse (its first attribute value's tag zeroed):
    a malformed chain, never a stray ValueError from deep in the chain check."""
    ders = list(parse_device_chain(_pem("N1-hopper")))
    subject = x509.load_der_x509_certificate(ders[2]).subject.public_bytes()
    at = subject.index(b"\x06\x03\x55\x04") + 5
    ders[2] = ders[2].replace(subject, subject[:at] + b"\x00" + subject[at + 1 :], 1)
    ev = _evaluate("N1-hopper", trust=trust, chain=_pem_of(ders))
    assert _codes(ev) == [Code.NVIDIA_CHAIN_MALFORMED]
    assert not ev.verified
