"""The simulated NVIDIA report builder: it rebuilds the real H100 report N1 byte for byte from its fields, and what
it builds parses with Keyward's parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from verifier.evidence.nvidia import parse_gpu_report
from verifier.simulation.nvidia_report_builder import (
    encode_opaque,
    hopper_opaque,
    replace_tlv,
    signed_part,
    vbios_bytes,
)

N1 = Path(__file__).parents[2] / "vectors" / "nvidia" / "hopperAttestationReport.bin"


def test_report_builder_rebuilds_real_n1_signed_bytes() -> None:
    real = parse_gpu_report(N1.read_bytes())
    o = real.response.opaque
    assert o.driver_version
    assert o.vbios_version
    assert o.project
    assert o.project_sku
    assert o.chip_sku
    assert o.msrscnt
    opaque = hopper_opaque(
        driver_version=o.driver_version,
        vbios_version=o.vbios_version,
        project=o.project,
        project_sku=o.project_sku,
        chip_sku=o.chip_sku,
        fwid=o.fwid,
        nvdec0_status=o.nvdec0_status or 0,
        protected_pcie_status=o.protected_pcie_status or 0,
        msrscnt=o.msrscnt,
        board_id=o.board_id or 0,
        switch_pdis=None,
        opaque_data_version=None,
        feature_flag=None,
    )
    rebuilt = signed_part(
        nonce=real.request.nonce,
        values=real.measurements,
        responder_nonce=real.response.responder_nonce,
        opaque=opaque,
    )
    assert rebuilt == real.signed


def test_report_builder_vbios_encoding_matches_spec_example() -> None:
    assert vbios_bytes("96.00.9F.00.01") == bytes.fromhex("009f009601000000")


@pytest.mark.parametrize("text", ["96.00.9F.00", "96.00.9F.00.100"], ids=["four-parts", "part-too-big"])
def test_report_builder_vbios_rejects_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="VBIOS"):
        vbios_bytes(text)


def test_report_builder_replace_tlv_changes_one_value() -> None:
    tlvs = ((3, b"a\x00"), (11, b"\x55"))
    assert replace_tlv(tlvs, 11, b"\xaa") == ((3, b"a\x00"), (11, b"\xaa"))
    assert replace_tlv(tlvs, 3, None) == ((11, b"\x55"),)
    with pytest.raises(ValueError, match="no opaque TLV"):
        replace_tlv(tlvs, 20, b"")


def test_report_builder_encode_opaque_is_little_endian_tlv() -> None:
    assert encode_opaque(((0x0103, b"xy"),)) == bytes.fromhex("03010200") + b"xy"
