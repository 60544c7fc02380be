"""The TPM quote parsers (azure-cvm.md §6) on the real vTPM quotes of tests/vectors/azure-cvm, and one defect per
rejected case; the Azure evidence JSON container (kbs-protocol.md §1.4)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from tests.support.vectors import AZURE_CASES, AzureCase
from verifier.errors import Code, EvidenceMalformed
from verifier.evidence.azure_cvm import parse_azure_evidence
from verifier.evidence.tpm import (
    parse_pcr_values,
    parse_quote_signature,
    parse_tpm_quote,
    parse_tpmt_signature,
)

QUOTE_CASES = [c for c in AZURE_CASES.values() if c.read("tpm_quote_attest.bin") is not None]
S1_QUOTE = AZURE_CASES["S1"].read("tpm_quote_attest.bin") or b""


@pytest.mark.parametrize("case", QUOTE_CASES, ids=lambda c: c.id)
def test_parse_tpm_quote_real_vectors_match_expected(case: AzureCase) -> None:
    want = case.raw["tpm_quote"]
    quote = parse_tpm_quote(case.read("tpm_quote_attest.bin") or b"")
    assert quote.extra_data.hex() == want["extra_data"]
    assert quote.extra_data == case.read("nonce.bin")
    assert quote.qualified_signer.hex() == want["qualified_signer"]
    assert quote.clock == want["clock"]
    assert quote.reset_count == want["reset_count"]
    assert f"{quote.firmware_version:#x}" == want["firmware_version"]
    assert list(quote.pcr_selection) == want["pcr_selection"][0]["pcrs"]
    assert quote.pcr_digest.hex() == want["pcr_digest"]


def _patch(offset: int, new: bytes) -> Callable[[bytes], bytes]:
    return lambda d: d[:offset] + new + d[offset + len(new) :]


# S1: qualifiedSigner 34 bytes, extraData 9 bytes -> clockInfo at 53, selection at 78, digest size at 87.
@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda d: d[:5], Code.AZURE_TPM_TRUNCATED),
        (lambda d: d[:-1], Code.AZURE_TPM_TRUNCATED),
        (lambda d: d + b"\x00", Code.AZURE_TPM_TRAILING_DATA),
        (lambda d: d + bytes(1024), Code.AZURE_TPM_TOO_LARGE),
        (_patch(0, b"\xff\x54\x43\x48"), Code.AZURE_TPM_MAGIC_INVALID),
        (_patch(4, b"\x80\x17"), Code.AZURE_TPM_TYPE_INVALID),
        (_patch(6, b"\x00\x50"), Code.AZURE_TPM_MALFORMED),
        (_patch(42, b"\x00\x41"), Code.AZURE_TPM_MALFORMED),
        (_patch(42, b"\x00\x40"), Code.AZURE_TPM_TRUNCATED),
        (_patch(69, b"\x02"), Code.AZURE_TPM_MALFORMED),
        (_patch(78, b"\x00\x00\x00\x02"), Code.AZURE_TPM_PCR_SELECTION_INVALID),
        (_patch(82, b"\x00\x04"), Code.AZURE_TPM_PCR_SELECTION_INVALID),
        (_patch(84, b"\x02"), Code.AZURE_TPM_PCR_SELECTION_INVALID),
        (_patch(85, b"\x00\x00\x00"), Code.AZURE_TPM_PCR_SELECTION_INVALID),
        (_patch(88, b"\x30"), Code.AZURE_TPM_PCR_SELECTION_INVALID),
    ],
    ids=[
        "cut-header",
        "cut-digest",
        "trailing",
        "too-large",
        "magic",
        "type-certify",
        "signer-too-long",
        "extra-data-too-long",
        "extra-data-past-end",
        "safe-not-bool",
        "two-banks",
        "sha1-bank",
        "size-of-select",
        "empty-selection",
        "digest-size",
    ],
)
def test_parse_tpm_quote_defect_rejected(mutate: Callable[[bytes], bytes], code: Code) -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_tpm_quote(mutate(S1_QUOTE))
    assert e.value.code is code


def test_parse_tpm_quote_pcr_above_23_rejected() -> None:
    four = S1_QUOTE[:84] + b"\x04\xff\xff\xff\x01" + S1_QUOTE[88:]
    with pytest.raises(EvidenceMalformed) as e:
        parse_tpm_quote(four)
    assert e.value.code is Code.AZURE_TPM_PCR_SELECTION_INVALID


def test_parse_tpmt_signature_accepts_the_tpm_encoding_only() -> None:
    sig = bytes(range(256))
    assert parse_tpmt_signature(b"\x00\x14\x00\x0b\x01\x00" + sig) == sig
    for bad in (b"\x00\x16\x00\x0b\x01\x00" + sig, b"\x00\x14\x00\x0b\x01\x00" + sig + b"\x00", b"\x00\x14"):
        with pytest.raises(EvidenceMalformed) as e:
            parse_tpmt_signature(bad)
        assert e.value.code is Code.AZURE_TPM_SIGNATURE_MALFORMED
    with pytest.raises(EvidenceMalformed):
        parse_quote_signature(sig[:255])


def test_parse_pcr_values_all_or_none() -> None:
    assert parse_pcr_values(()) == ()
    for bad in ((bytes(32),) * 23, (bytes(32),) * 23 + (bytes(31),)):
        with pytest.raises(EvidenceMalformed) as e:
            parse_pcr_values(bad)
        assert e.value.code is Code.AZURE_TPM_PCR_VALUES_MALFORMED


UPSTREAM_V2 = AZURE_CASES["S6"].dir / "upstream" / "evidence-v2.json"


def test_parse_azure_evidence_trustee_v2() -> None:
    evidence = parse_azure_evidence(UPSTREAM_V2.read_bytes(), "snp")
    assert evidence.version == 2
    assert evidence.hcl_report == AZURE_CASES["S6"].read("hcl_report.bin")
    assert evidence.tpm_attest == AZURE_CASES["S6"].read("tpm_quote_attest.bin")
    assert evidence.vcek == AZURE_CASES["S6"].read("vcek.der")
    assert len(evidence.pcrs) == 24


def _evidence(edit: Callable[[dict[str, object]], object]) -> bytes:
    doc = json.loads(UPSTREAM_V2.read_bytes())
    edit(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        _evidence(lambda d: d.update(version=3)),
        _evidence(lambda d: d.update(version="2")),
        _evidence(lambda d: d.update(extra=1)),
        _evidence(lambda d: d.pop("vcek")),
        _evidence(lambda d: d.update(td_quote="AAAA")),
        _evidence(lambda d: d.update(hcl_report="***")),
        _evidence(lambda d: d.update(hcl_report=base64.b64encode(b"\xfb\xff").decode())),
        _evidence(lambda d: d["tpm_quote"].update(message="0")),  # type: ignore[attr-defined]
        _evidence(lambda d: d["tpm_quote"].update(pcrs="00")),  # type: ignore[attr-defined]
        _evidence(lambda d: d.update(ak_intermediates=["AAAA"] * 5)),
    ],
    ids=[
        "not-json",
        "version-3",
        "version-string",
        "unknown-member",
        "no-vcek",
        "tdx-member",
        "hcl-not-b64",
        "hcl-standard-b64",
        "message-odd-hex",
        "pcrs-not-list",
        "too-many-intermediates",
    ],
)
def test_parse_azure_evidence_defect_rejected(raw: bytes) -> None:
    with pytest.raises(EvidenceMalformed) as e:
        parse_azure_evidence(raw, "snp")
    assert e.value.code is Code.AZURE_EVIDENCE_MALFORMED
