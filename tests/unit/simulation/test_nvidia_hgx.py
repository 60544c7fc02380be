"""The simulated HGX board in protected-PCIe mode: 12 devices with the caller's nonces, each verifiable on its own,
whose reports agree on the topology (GPUs list the switches' PDIs byte-reversed, switches list the same 8 GPU
PDIs); each defect breaks exactly one relation on one device. Also ``carry_collateral`` on a single Hopper GPU."""

from __future__ import annotations

import base64
import functools
from collections import Counter

import pytest

from tests.unit.simulation.nvidia_checks import links_ok, report_signed_by
from verifier.evidence.nvidia import GpuReport, parse_gpu_report
from verifier.simulation.nvidia_hgx import (
    DEFECT_GPU,
    DEFECT_LISTED_GPU,
    DEFECT_SWITCH,
    DEFECT_TARGET,
    EXPECTED_HGX_CODES,
    NOT_PPCIE_GPU,
    HgxDefect,
    HgxEvidence,
    build_hgx,
)
from verifier.simulation.nvidia_options import gpu_port_switches
from verifier.simulation.nvidia_pki import default_nvidia_pki

NONCES = tuple(bytes([i]) * 32 for i in range(12))


@functools.cache
def _hgx(defect: HgxDefect | None = None) -> HgxEvidence:
    return build_hgx(NONCES, defect=defect)


def _reports(hgx: HgxEvidence) -> list[GpuReport]:
    return [parse_gpu_report(d.report) for d in hgx.devices]


def _switch_pdis(hgx: HgxEvidence) -> list[bytes]:
    out = []
    for r in _reports(hgx)[8:]:
        assert r.response.opaque.switch_pdis is not None
        out.append(r.response.opaque.switch_pdis[0])
    return out


def _gpu_ports(report: GpuReport) -> tuple[bytes, ...]:
    assert report.response.opaque.switch_pdis is not None
    return report.response.opaque.switch_pdis


def test_hgx_items_are_twelve_devices_with_the_callers_nonces() -> None:
    hgx = _hgx()
    items = hgx.items()
    assert [i["device_index"] for i in items] == list(range(12))
    assert all(i["type"] == "nvidia-gpu" for i in items)
    reports = [parse_gpu_report(base64.b64decode(str(i["evidence"]))) for i in items]
    assert [r.request.nonce for r in reports] == list(NONCES)
    assert [r.response.number_of_blocks for r in reports] == [64] * 8 + [31] * 4


def test_hgx_every_device_verifies_on_its_own() -> None:
    hgx = _hgx()
    for device in hgx.devices:
        assert report_signed_by(device.report, device.chain[0])
        assert links_ok(device.chain) == [True] * 4
    assert len({d.chain[0].public_key().public_numbers() for d in hgx.devices}) == 12  # type: ignore[union-attr]


def test_hgx_gpus_are_in_ppcie_mode() -> None:
    for report in _reports(_hgx())[:8]:
        o = report.response.opaque
        assert (o.protected_pcie_status, o.feature_flag) == (0xAA, 2)
        assert (o.project, o.project_sku, o.chip_sku) == ("G520", "0200", "885")
        assert len(_gpu_ports(report)) == 18


def test_hgx_gpus_list_the_switch_pdis_byte_reversed() -> None:
    hgx = _hgx()
    switch_pdis = _switch_pdis(hgx)
    assert switch_pdis == [s.pdi for s in hgx.switches]
    for g, report in enumerate(_reports(hgx)[:8]):
        ports = _gpu_ports(report)
        assert set(ports) == {p[::-1] for p in switch_pdis}
        assert list(ports) == [switch_pdis[s][::-1] for s in gpu_port_switches(g)]


def test_hgx_switches_list_the_same_eight_gpu_pdis() -> None:
    hgx = _hgx()
    lists = [r.response.opaque.switch_gpu_pdis for r in _reports(hgx)[8:]]
    assert all(lst == lists[0] for lst in lists)
    assert lists[0] is not None
    assert len(set(lists[0])) == 8
    # the PDI a switch lists for a GPU is the tail of that GPU's BROM serial (as on the real M1/M2 sets)
    assert list(lists[0]) == [gpu.chain[1].serial_number.to_bytes(9, "big")[1:] for gpu in hgx.gpus]


def test_hgx_switch_port_slots_agree_with_gpu_links() -> None:
    reports = _reports(_hgx())
    for s, report in enumerate(reports[8:]):
        slots = report.response.opaque.switch_port_gpu_slots
        assert slots is not None
        links = Counter(g for g in range(8) for target in gpu_port_switches(g) if target == s)
        assert Counter(b for b in slots if b != 0xFF) == links


def test_hgx_unconnected_port_reads_zero_at_both_ends() -> None:
    down = build_hgx(NONCES, unconnected=[(1, 4)])
    target = gpu_port_switches(1)[4]
    ports = _gpu_ports(parse_gpu_report(down.gpus[1].report))
    genuine = _gpu_ports(parse_gpu_report(_hgx().gpus[1].report))
    assert ports[4] == bytes(8)
    assert [i for i in range(18) if ports[i] != genuine[i]] == [4]
    slots = [parse_gpu_report(s.report).response.opaque.switch_port_gpu_slots for s in down.switches]
    good = [parse_gpu_report(s.report).response.opaque.switch_port_gpu_slots for s in _hgx().switches]
    assert [s for s in range(4) if slots[s] != good[s]] == [target]
    down_slots, good_slots = slots[target], good[target]
    assert down_slots is not None
    assert good_slots is not None
    assert down_slots.count(1) == good_slots.count(1) - 1


def test_hgx_same_nonces_same_bytes() -> None:
    assert [d.report for d in build_hgx(NONCES).devices] == [d.report for d in _hgx().devices]


@pytest.mark.parametrize("nonces", [NONCES[:11], (*NONCES[:11], b"short")], ids=["eleven", "short-nonce"])
def test_hgx_rejects_wrong_nonces(nonces: tuple[bytes, ...]) -> None:
    with pytest.raises(ValueError, match="nonces"):
        build_hgx(nonces)


# -- defects ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("defect", list(HgxDefect), ids=[d.value for d in HgxDefect])
def test_hgx_defect_changes_only_its_device_report(defect: HgxDefect) -> None:
    kind, index = DEFECT_TARGET[defect]
    target = index if kind == "gpu" else 8 + index
    good, bad = _hgx(), _hgx(defect)
    assert [i for i in range(12) if good.devices[i].report != bad.devices[i].report] == [target]
    assert all(g.chain == b.chain and g.rims == b.rims for g, b in zip(good.devices, bad.devices, strict=True))
    assert all(
        [e.response for e in g.ocsp] == [e.response for e in b.ocsp]
        for g, b in zip(good.devices, bad.devices, strict=True)
    )
    assert report_signed_by(bad.devices[target].report, bad.devices[target].chain[0])
    assert EXPECTED_HGX_CODES[defect].value.startswith("nvidia.")


def test_hgx_gpu_switch_pdi_wrong_changes_one_port_to_no_switch() -> None:
    good = _gpu_ports(parse_gpu_report(_hgx().gpus[DEFECT_GPU].report))
    bad = _gpu_ports(parse_gpu_report(_hgx(HgxDefect.GPU_SWITCH_PDI_WRONG).gpus[DEFECT_GPU].report))
    assert [i for i in range(18) if good[i] != bad[i]] == [0]
    assert bad[0] not in {p[::-1] for p in _switch_pdis(_hgx())}
    assert bad[0] not in set(_switch_pdis(_hgx()))


def test_hgx_gpu_switch_pdi_not_reversed_lists_switch_byte_order() -> None:
    bad = _gpu_ports(parse_gpu_report(_hgx(HgxDefect.GPU_SWITCH_PDI_NOT_REVERSED).gpus[DEFECT_GPU].report))
    switch_pdis = _switch_pdis(_hgx())
    assert list(bad) == [switch_pdis[s] for s in gpu_port_switches(DEFECT_GPU)]
    assert not set(bad) & {p[::-1] for p in switch_pdis}


def test_hgx_switch_gpu_list_differs_in_one_entry() -> None:
    good = _reports(_hgx())[8 + DEFECT_SWITCH].response.opaque
    bad = _reports(_hgx(HgxDefect.SWITCH_GPU_LIST_DIFFERS))[8 + DEFECT_SWITCH].response.opaque
    assert good.switch_gpu_pdis is not None
    assert bad.switch_gpu_pdis is not None
    assert [i for i in range(8) if good.switch_gpu_pdis[i] != bad.switch_gpu_pdis[i]] == [DEFECT_LISTED_GPU]
    assert bad.switch_gpu_pdis[DEFECT_LISTED_GPU] not in good.switch_gpu_pdis
    assert bad.switch_port_gpu_slots == good.switch_port_gpu_slots


def test_hgx_gpu_not_ppcie_changes_only_the_mode_fields() -> None:
    good = _reports(_hgx())[NOT_PPCIE_GPU].response.opaque
    bad = _reports(_hgx(HgxDefect.GPU_NOT_PPCIE))[NOT_PPCIE_GPU].response.opaque
    assert (bad.protected_pcie_status, bad.feature_flag) == (0x55, 1)
    changed = {g.type for g, b in zip(good.fields, bad.fields, strict=True) if g != b}
    assert changed == {21, 36}


# -- carry_collateral on a single Hopper GPU ----------------------------------------------------------------


def test_hopper_evidence_item_carries_rims_and_ocsp_on_request() -> None:
    ev = default_nvidia_pki().build()
    plain = ev.evidence_item()
    assert set(plain) == {"type", "evidence", "certs", "device_index"}
    item = ev.evidence_item(5, carry_collateral=True)
    assert item["device_index"] == 5
    assert item["rims"] == [base64.b64encode(r.xml).decode() for r in ev.rims]
    assert item["ocsp"] == [base64.b64encode(e.response).decode() for e in ev.ocsp]
    answered = {e.cert.serial_number for e in ev.ocsp}
    assert {c.serial_number for c in ev.chain[1:4]} <= answered
    assert {c.serial_number for r in ev.rims for c in r.signer_chain[:3]} <= answered
