"""Intel DCAP collateral: one internal model for two input shapes, plus typed TCB Info and QE Identity.

Input shapes (intel-dcap.md §3, §6):

* dcap-qvl ``QuoteCollateralV3`` JSON (the shape of ``shared/vectors/intel/*.collateral.json``):
  :func:`parse_collateral_json`.
* Raw Intel PCS / PCCS responses (body as served + the URL-encoded issuer-chain header):
  :func:`collateral_from_pcs`.

Both give a :class:`Collateral` that keeps the *exact signed bytes* of TCB Info and QE Identity (the value
of the ``tcbInfo`` / ``enclaveIdentity`` member, never re-serialised), the raw signatures, the issuer chains as
DER, and the CRLs as DER. :mod:`verifier.trust.intel_tcb_info` turns the signed bytes into typed, validated
structures; the verifier does that only after the signature over those bytes verified.

Pure: no I/O, no clock. Errors are :class:`~verifier.errors.CollateralError` with ``intel.collateral.*`` codes.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import orjson

from verifier import limits
from verifier.encoding import is_hex_text, pem_blocks, strip_whitespace
from verifier.errors import Code, CollateralError


def malformed(message: str) -> CollateralError:
    return CollateralError(Code.INTEL_COLLATERAL_MALFORMED, message)


def json_document(data: bytes | str, what: str) -> Any:
    """Strict JSON (RFC 8259: no NaN/Infinity, valid UTF-8, integers within 64 bits, nesting <= 1024) whose every
    failure is ``intel.collateral.malformed``. orjson: this parse is a large share of a cold verification."""
    try:
        return orjson.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise malformed(f"{what} is not JSON: {type(e).__name__}") from e


def _utf8(text: str, what: str) -> bytes:
    """UTF-8 bytes of a JSON string; lone surrogates (valid JSON escapes, invalid UTF-8) are malformed."""
    try:
        return text.encode()
    except UnicodeEncodeError as e:
        raise malformed(f"{what} is not valid UTF-8 text") from e


# ----------------------------------------------------------------------------------------------------------
# The raw collateral bundle


@dataclass(frozen=True, slots=True)
class Collateral:
    """Everything a DCAP verification needs besides the quote and the pinned root, as raw signed bytes."""

    tcb_info_raw: bytes
    tcb_info_signature: bytes
    tcb_info_issuer_chain: tuple[bytes, ...]
    qe_identity_raw: bytes
    qe_identity_signature: bytes
    qe_identity_issuer_chain: tuple[bytes, ...]
    pck_crl: bytes
    root_ca_crl: bytes
    pck_crl_issuer_chain: tuple[bytes, ...] = ()
    #: SHA-256 over every signed component: the content-hash cache key for verified collateral.
    digest: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        for part in (
            self.tcb_info_raw,
            self.tcb_info_signature,
            *self.tcb_info_issuer_chain,
            b"|",
            self.qe_identity_raw,
            self.qe_identity_signature,
            *self.qe_identity_issuer_chain,
            b"|",
            self.pck_crl,
            self.root_ca_crl,
        ):
            h.update(len(part).to_bytes(4, "big"))
            h.update(part)
        object.__setattr__(self, "digest", h.digest())


def pem_certificates(data: bytes, *, what: str) -> tuple[bytes, ...]:
    """Split concatenated PEM certificates into DER blobs (strict base64). NUL padding is tolerated."""
    try:
        out = pem_blocks(data, "CERTIFICATE")
    except ValueError as e:
        raise malformed(f"{what}: {e}") from e
    if not out:
        raise malformed(f"{what}: no PEM certificate found")
    return tuple(out)


def crl_der(data: bytes | str, *, what: str) -> bytes:
    """Accept a CRL as DER, PEM, or hex text of DER (PCCS serves the root CA CRL as hex) and return DER."""
    raw = _utf8(data, what) if isinstance(data, str) else bytes(data)
    if len(raw) > limits.MAX_COLLATERAL_ITEM_BYTES:
        raise malformed(f"{what}: larger than {limits.MAX_COLLATERAL_ITEM_BYTES} bytes")
    if raw[:1] == b"\x30":  # DER SEQUENCE
        return raw
    try:
        blocks = pem_blocks(raw, "X509 CRL")
    except ValueError as e:
        raise malformed(f"{what}: {e}") from e
    if blocks:
        return blocks[0]
    digits = strip_whitespace(raw)
    if is_hex_text(digits):
        try:
            return binascii.unhexlify(digits)
        except binascii.Error as e:
            raise malformed(f"{what}: odd-length hex") from e
    raise malformed(f"{what}: not DER, PEM or hex")


def _signature(hex_text: object, *, what: str) -> bytes:
    if not isinstance(hex_text, str) or len(hex_text) != 128:
        raise malformed(f"{what}: signature must be 128 hex characters (r||s)")
    try:
        return bytes.fromhex(hex_text)
    except ValueError as e:
        raise malformed(f"{what}: signature is not hex") from e


def parse_collateral_json(data: bytes | str) -> Collateral:
    """Parse dcap-qvl ``QuoteCollateralV3`` JSON into :class:`Collateral`."""
    raw = _utf8(data, "collateral") if isinstance(data, str) else data
    if len(raw) > limits.MAX_COLLATERAL_ITEM_BYTES:
        raise malformed("collateral document is too large")
    doc = json_document(raw, "collateral")
    if not isinstance(doc, dict):
        raise malformed("collateral must be a JSON object")
    need = (
        "tcb_info",
        "tcb_info_signature",
        "tcb_info_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
        "qe_identity_issuer_chain",
        "pck_crl",
        "root_ca_crl",
    )
    for key in need:
        if not isinstance(doc.get(key), str):
            raise malformed(f"collateral field {key!r} missing or not a string")
    chain_pck = doc.get("pck_crl_issuer_chain")
    return Collateral(
        tcb_info_raw=_utf8(doc["tcb_info"], "tcb_info"),
        tcb_info_signature=_signature(doc["tcb_info_signature"], what="tcb_info_signature"),
        tcb_info_issuer_chain=pem_certificates(
            _utf8(doc["tcb_info_issuer_chain"], "tcb_info_issuer_chain"), what="tcb_info_issuer_chain"
        ),
        qe_identity_raw=_utf8(doc["qe_identity"], "qe_identity"),
        qe_identity_signature=_signature(doc["qe_identity_signature"], what="qe_identity_signature"),
        qe_identity_issuer_chain=pem_certificates(
            _utf8(doc["qe_identity_issuer_chain"], "qe_identity_issuer_chain"), what="qe_identity_issuer_chain"
        ),
        pck_crl=crl_der(doc["pck_crl"], what="pck_crl"),
        root_ca_crl=crl_der(doc["root_ca_crl"], what="root_ca_crl"),
        pck_crl_issuer_chain=(
            pem_certificates(_utf8(chain_pck, "pck_crl_issuer_chain"), what="pck_crl_issuer_chain")
            if isinstance(chain_pck, str)
            else ()
        ),
    )


def signed_member(body: bytes, member: str) -> tuple[bytes, bytes]:
    """Cut the exact bytes of ``member``'s object value and the hex ``signature`` out of a PCS response body.

    The signature covers the member's value byte for byte as served, so it is located in the original text
    (string-aware brace matching) rather than re-serialised; the cut is then cross-checked against a full JSON
    parse so a crafted body cannot make the two disagree.
    """
    if len(body) > limits.MAX_COLLATERAL_ITEM_BYTES:
        raise malformed(f"{member} response is too large")
    doc = json_document(body, f"{member} response")
    if not isinstance(doc, dict) or set(doc) != {member, "signature"} or not isinstance(doc[member], dict):
        raise malformed(f"response must be {{{member!r}: {{...}}, 'signature': ...}}")
    key = json.dumps(member).encode()
    start = -1
    for m in re.finditer(re.escape(key) + rb"\s*:\s*\{", body):
        start = m.end() - 1
        break
    if start < 0:
        raise malformed(f"{member} object not found in response")
    end = _matching_brace(body, start)
    raw = body[start : end + 1]
    if json_document(raw, member) != doc[member]:
        raise malformed(f"{member} bytes do not match the parsed response")
    return raw, _signature(doc["signature"], what=f"{member} signature")


def _matching_brace(text: bytes, start: int) -> int:
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c == 0x7B:  # {
            depth += 1
        elif c == 0x7D:  # }
            depth -= 1
            if depth == 0:
                return i
    raise malformed("unbalanced braces in collateral response")


def issuer_chain_header(value: str, *, what: str) -> tuple[bytes, ...]:
    """Decode a PCS ``*-Issuer-Chain`` header: URL-encoded concatenated PEM, signer first, root last."""
    return pem_certificates(_utf8(urllib.parse.unquote(value), what), what=what)


def collateral_from_pcs(
    *,
    tcb_info_body: bytes,
    tcb_info_issuer_chain: str,
    qe_identity_body: bytes,
    qe_identity_issuer_chain: str,
    pck_crl: bytes | str,
    root_ca_crl: bytes | str,
    pck_crl_issuer_chain: str | None = None,
) -> Collateral:
    """Build :class:`Collateral` from raw PCS/PCCS responses (bodies as served, header values as sent)."""
    tcb_raw, tcb_sig = signed_member(tcb_info_body, "tcbInfo")
    qe_raw, qe_sig = signed_member(qe_identity_body, "enclaveIdentity")
    return Collateral(
        tcb_info_raw=tcb_raw,
        tcb_info_signature=tcb_sig,
        tcb_info_issuer_chain=issuer_chain_header(tcb_info_issuer_chain, what="TCB-Info-Issuer-Chain"),
        qe_identity_raw=qe_raw,
        qe_identity_signature=qe_sig,
        qe_identity_issuer_chain=issuer_chain_header(
            qe_identity_issuer_chain, what="SGX-Enclave-Identity-Issuer-Chain"
        ),
        pck_crl=crl_der(pck_crl, what="PCK CRL"),
        root_ca_crl=crl_der(root_ca_crl, what="Root CA CRL"),
        pck_crl_issuer_chain=(
            issuer_chain_header(pck_crl_issuer_chain, what="SGX-PCK-CRL-Issuer-Chain") if pck_crl_issuer_chain else ()
        ),
    )
