"""Intel DCAP collateral: one internal model for two input shapes, plus typed TCB Info and QE Identity.

Input shapes (intel-dcap.md §3, §6):

* dcap-qvl ``QuoteCollateralV3`` JSON (the shape of ``shared/vectors/intel/*.collateral.json``):
  :func:`parse_collateral_json`.
* Raw Intel PCS / PCCS responses (body as served + the URL-encoded issuer-chain header):
  :func:`collateral_from_pcs`.

Both give a :class:`Collateral` that keeps the *exact signed bytes* of TCB Info and QE Identity (the value
of the ``tcbInfo`` / ``enclaveIdentity`` member, never re-serialised), the raw signatures, the issuer chains as
DER, and the CRLs as DER. :func:`parse_tcb_info` and :func:`parse_qe_identity` turn the signed bytes into typed,
validated structures; the verifier calls them only after the signature over those bytes verified.

Pure: no I/O, no clock. Errors are :class:`~verifier.errors.CollateralError` with ``intel.collateral.*`` codes.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from verifier import limits
from verifier.encoding import is_hex_text, pem_blocks, strip_whitespace
from verifier.errors import Code, CollateralError

TCB_STATUSES: Final = frozenset(
    {
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    }
)
#: Statuses a QE / TDX-module identity level may carry.
IDENTITY_STATUSES: Final = frozenset({"UpToDate", "OutOfDate", "Revoked"})


def _malformed(message: str) -> CollateralError:
    return CollateralError(Code.INTEL_COLLATERAL_MALFORMED, message)


def _json(data: bytes | str, what: str) -> Any:
    """``json.loads`` whose every failure (syntax, encoding, nesting too deep) is ``intel.collateral.malformed``."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _malformed(f"{what} is not JSON: {type(e).__name__}") from e


def _utf8(text: str, what: str) -> bytes:
    """UTF-8 bytes of a JSON string; lone surrogates (valid JSON escapes, invalid UTF-8) are malformed."""
    try:
        return text.encode()
    except UnicodeEncodeError as e:
        raise _malformed(f"{what} is not valid UTF-8 text") from e


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
        raise _malformed(f"{what}: {e}") from e
    if not out:
        raise _malformed(f"{what}: no PEM certificate found")
    return tuple(out)


def crl_der(data: bytes | str, *, what: str) -> bytes:
    """Accept a CRL as DER, PEM, or hex text of DER (PCCS serves the root CA CRL as hex) and return DER."""
    raw = _utf8(data, what) if isinstance(data, str) else bytes(data)
    if len(raw) > limits.MAX_COLLATERAL_ITEM_BYTES:
        raise _malformed(f"{what}: larger than {limits.MAX_COLLATERAL_ITEM_BYTES} bytes")
    if raw[:1] == b"\x30":  # DER SEQUENCE
        return raw
    try:
        blocks = pem_blocks(raw, "X509 CRL")
    except ValueError as e:
        raise _malformed(f"{what}: {e}") from e
    if blocks:
        return blocks[0]
    digits = strip_whitespace(raw)
    if is_hex_text(digits):
        try:
            return binascii.unhexlify(digits)
        except binascii.Error as e:
            raise _malformed(f"{what}: odd-length hex") from e
    raise _malformed(f"{what}: not DER, PEM or hex")


def _signature(hex_text: object, *, what: str) -> bytes:
    if not isinstance(hex_text, str) or len(hex_text) != 128:
        raise _malformed(f"{what}: signature must be 128 hex characters (r||s)")
    try:
        return bytes.fromhex(hex_text)
    except ValueError as e:
        raise _malformed(f"{what}: signature is not hex") from e


def parse_collateral_json(data: bytes | str) -> Collateral:
    """Parse dcap-qvl ``QuoteCollateralV3`` JSON into :class:`Collateral`."""
    raw = _utf8(data, "collateral") if isinstance(data, str) else data
    if len(raw) > limits.MAX_COLLATERAL_ITEM_BYTES:
        raise _malformed("collateral document is too large")
    doc = _json(raw, "collateral")
    if not isinstance(doc, dict):
        raise _malformed("collateral must be a JSON object")
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
            raise _malformed(f"collateral field {key!r} missing or not a string")
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
        raise _malformed(f"{member} response is too large")
    doc = _json(body, f"{member} response")
    if not isinstance(doc, dict) or set(doc) != {member, "signature"} or not isinstance(doc[member], dict):
        raise _malformed(f"response must be {{{member!r}: {{...}}, 'signature': ...}}")
    key = json.dumps(member).encode()
    start = -1
    for m in re.finditer(re.escape(key) + rb"\s*:\s*\{", body):
        start = m.end() - 1
        break
    if start < 0:
        raise _malformed(f"{member} object not found in response")
    end = _matching_brace(body, start)
    raw = body[start : end + 1]
    if _json(raw, member) != doc[member]:
        raise _malformed(f"{member} bytes do not match the parsed response")
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
    raise _malformed("unbalanced braces in collateral response")


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


# ----------------------------------------------------------------------------------------------------------
# Typed TCB Info and QE Identity (parsed from the signed bytes after the signature verified)


@dataclass(frozen=True, slots=True)
class TcbLevel:
    sgx_components: tuple[int, ...]
    pcesvn: int
    tdx_components: tuple[int, ...] | None
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IdentityLevel:
    """A QE or TDX-module identity TCB level (``tcb.isvsvn``)."""

    isvsvn: int
    tcb_date: str
    status: str
    advisory_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TdxModuleIdentity:
    id: str
    mrsigner: bytes
    attributes: bytes
    attributes_mask: bytes
    levels: tuple[IdentityLevel, ...]


@dataclass(frozen=True, slots=True)
class TcbInfo:
    id: str  # "SGX" or "TDX" ("SGX" for version 2, which has no id)
    version: int
    issue_date: datetime
    next_update: datetime
    fmspc: bytes
    pce_id: bytes
    tcb_type: int
    eval_number: int
    levels: tuple[TcbLevel, ...]
    tdx_module: TdxModuleIdentity | None
    tdx_module_identities: tuple[TdxModuleIdentity, ...]

    def module_identity(self, major: int) -> TdxModuleIdentity | None:
        """The ``TDX_%02X`` module identity for TDX module ``major`` (case-insensitive id), or None."""
        want = f"TDX_{major:02X}"
        for ident in self.tdx_module_identities:
            if ident.id.upper() == want:
                return ident
        return None


@dataclass(frozen=True, slots=True)
class QeIdentity:
    id: str
    version: int
    issue_date: datetime
    next_update: datetime
    eval_number: int
    miscselect: bytes
    miscselect_mask: bytes
    attributes: bytes
    attributes_mask: bytes
    mrsigner: bytes
    isvprodid: int
    levels: tuple[IdentityLevel, ...]

    @property
    def miscselect_mask_int(self) -> int:
        return int.from_bytes(self.miscselect_mask, "big")

    @property
    def miscselect_int(self) -> int:
        """Expected MISCSELECT, already masked (compare with ``report & miscselect_mask_int``)."""
        return int.from_bytes(self.miscselect, "big") & self.miscselect_mask_int

    @property
    def attributes_mask_int(self) -> int:
        return int.from_bytes(self.attributes_mask, "big")

    @property
    def attributes_int(self) -> int:
        """Expected ATTRIBUTES in report byte order, already masked."""
        return int.from_bytes(self.attributes, "big") & self.attributes_mask_int


class _Doc:
    """Typed accessors over a JSON object that raise ``intel.collateral.malformed`` with a path."""

    __slots__ = ("d", "path")

    def __init__(self, d: object, path: str) -> None:
        if not isinstance(d, dict):
            raise _malformed(f"{path} must be an object")
        self.d: dict[str, Any] = d
        self.path = path

    def has(self, key: str) -> bool:
        return key in self.d

    def integer(self, key: str, *, lo: int = 0, hi: int = 2**32 - 1) -> int:
        v = self.d.get(key)
        if type(v) is not int or not lo <= v <= hi:
            raise _malformed(f"{self.path}.{key} must be an integer in [{lo}, {hi}]")
        return v

    def string(self, key: str) -> str:
        v = self.d.get(key)
        if not isinstance(v, str):
            raise _malformed(f"{self.path}.{key} must be a string")
        return v

    def hexbytes(self, key: str, size: int) -> bytes:
        v = self.string(key)
        if len(v) != 2 * size:
            raise _malformed(f"{self.path}.{key} must be {size} bytes of hex")
        try:
            return bytes.fromhex(v)
        except ValueError as e:
            raise _malformed(f"{self.path}.{key} is not hex") from e

    def timestamp(self, key: str) -> datetime:
        v = self.string(key)
        try:
            t = datetime.fromisoformat(v)
        except ValueError as e:
            raise _malformed(f"{self.path}.{key} is not an ISO 8601 time") from e
        if t.tzinfo is None:
            raise _malformed(f"{self.path}.{key} has no time zone")
        return t

    def obj(self, key: str) -> _Doc:
        return _Doc(self.d.get(key), f"{self.path}.{key}")

    def array(self, key: str, *, max_items: int) -> list[Any]:
        v = self.d.get(key)
        if not isinstance(v, list) or len(v) > max_items:
            raise _malformed(f"{self.path}.{key} must be a list of at most {max_items} items")
        return v


def _load(raw: bytes, what: str) -> _Doc:
    return _Doc(_json(raw, what), what)


def _status(value: str, allowed: frozenset[str], path: str) -> str:
    if value not in allowed:
        raise CollateralError(
            Code.INTEL_COLLATERAL_TCB_STATUS_UNRECOGNIZED,
            f"{path}: unrecognized TCB status",
            expected=" | ".join(sorted(allowed)),
            actual=value,
        )
    return value


def _advisories(doc: _Doc) -> tuple[str, ...]:
    if not doc.has("advisoryIDs"):
        return ()
    ids = doc.array("advisoryIDs", max_items=limits.MAX_ADVISORY_IDS)
    if not all(isinstance(i, str) for i in ids):
        raise _malformed(f"{doc.path}.advisoryIDs must be strings")
    return tuple(ids)


def _components(doc: _Doc, key: str) -> tuple[int, ...]:
    comps = doc.array(key, max_items=16)
    if len(comps) != 16:  # never zip unequal arrays (intel-dcap.md §5, GHSA-6q6c-vvf9-fj3w)
        raise _malformed(f"{doc.path}.{key} must have exactly 16 components, has {len(comps)}")
    out: list[int] = []
    for c in comps:  # hot loop of TCB Info parsing: plain dict access, same checks as _Doc.integer
        svn = c.get("svn") if type(c) is dict else None
        if type(svn) is not int or not 0 <= svn <= 255:
            raise _malformed(f"{doc.path}.{key}[{len(out)}].svn must be an integer in [0, 255]")
        out.append(svn)
    return tuple(out)


def _identity_levels(doc: _Doc) -> tuple[IdentityLevel, ...]:
    out = []
    for i, lvl in enumerate(doc.array("tcbLevels", max_items=limits.MAX_TCB_LEVELS)):
        ld = _Doc(lvl, f"{doc.path}.tcbLevels[{i}]")
        out.append(
            IdentityLevel(
                isvsvn=ld.obj("tcb").integer("isvsvn", hi=0xFFFF),
                tcb_date=ld.string("tcbDate"),
                status=_status(ld.string("tcbStatus"), IDENTITY_STATUSES, ld.path),
                advisory_ids=_advisories(ld),
            )
        )
    if not out:
        raise _malformed(f"{doc.path}.tcbLevels is empty")
    # Matching walks levels from the highest isvsvn down (QVL sorts them the same way).
    return tuple(sorted(out, key=lambda lv: lv.isvsvn, reverse=True))


def _module_identity(doc: _Doc, *, with_levels: bool) -> TdxModuleIdentity:
    return TdxModuleIdentity(
        id=doc.string("id") if with_levels else "",
        mrsigner=doc.hexbytes("mrsigner", 48),
        attributes=doc.hexbytes("attributes", 8),
        attributes_mask=doc.hexbytes("attributesMask", 8),
        levels=_identity_levels(doc) if with_levels else (),
    )


def parse_tcb_info(raw: bytes) -> TcbInfo:
    """Parse the signed ``tcbInfo`` bytes (version 2 for SGX, version 3 for SGX and TDX)."""
    d = _load(raw, "tcbInfo")
    version = d.integer("version")
    if version not in (2, 3):
        raise CollateralError(
            Code.INTEL_COLLATERAL_TCB_INFO_UNSUPPORTED,
            "unsupported TCB Info version",
            expected="2 or 3",
            actual=version,
        )
    tee_id = d.string("id") if version == 3 else "SGX"
    if tee_id not in ("SGX", "TDX"):
        raise CollateralError(
            Code.INTEL_COLLATERAL_TCB_INFO_UNSUPPORTED, "unknown TCB Info id", expected="SGX or TDX", actual=tee_id
        )
    is_tdx = tee_id == "TDX"
    levels = []
    for i, lvl in enumerate(d.array("tcbLevels", max_items=limits.MAX_TCB_LEVELS)):
        ld = _Doc(lvl, f"tcbInfo.tcbLevels[{i}]")
        tcb = ld.obj("tcb")
        if version == 2:
            sgx = tuple(tcb.integer(f"sgxtcbcomp{n:02d}svn", hi=255) for n in range(1, 17))
        else:
            sgx = _components(tcb, "sgxtcbcomponents")
        levels.append(
            TcbLevel(
                sgx_components=sgx,
                pcesvn=tcb.integer("pcesvn", hi=0xFFFF),
                tdx_components=_components(tcb, "tdxtcbcomponents") if is_tdx else None,
                tcb_date=ld.string("tcbDate"),
                status=_status(ld.string("tcbStatus"), TCB_STATUSES, ld.path),
                advisory_ids=_advisories(ld),
            )
        )
    if not levels:
        raise _malformed("tcbInfo.tcbLevels is empty")
    # QVL order: descending by the 16 SGX components, then PCESVN, then (TDX) the TDX components.
    levels.sort(key=lambda lv: (lv.sgx_components, lv.pcesvn, lv.tdx_components or ()), reverse=True)
    module = _module_identity(d.obj("tdxModule"), with_levels=False) if is_tdx and d.has("tdxModule") else None
    identities: tuple[TdxModuleIdentity, ...] = ()
    if is_tdx and d.has("tdxModuleIdentities"):
        items = d.array("tdxModuleIdentities", max_items=limits.MAX_TDX_MODULE_IDENTITIES)
        identities = tuple(
            _module_identity(_Doc(m, f"tcbInfo.tdxModuleIdentities[{i}]"), with_levels=True)
            for i, m in enumerate(items)
        )
    if is_tdx and module is None:
        raise _malformed("TDX TCB Info lacks tdxModule")
    return TcbInfo(
        id=tee_id,
        version=version,
        issue_date=d.timestamp("issueDate"),
        next_update=d.timestamp("nextUpdate"),
        fmspc=d.hexbytes("fmspc", 6),
        pce_id=d.hexbytes("pceId", 2),
        tcb_type=d.integer("tcbType") if version == 3 else 0,
        eval_number=d.integer("tcbEvaluationDataNumber"),
        levels=tuple(levels),
        tdx_module=module,
        tdx_module_identities=identities,
    )


def parse_qe_identity(raw: bytes) -> QeIdentity:
    """Parse the signed ``enclaveIdentity`` bytes (version 2)."""
    d = _load(raw, "enclaveIdentity")
    version = d.integer("version")
    if version != 2:
        raise CollateralError(
            Code.INTEL_COLLATERAL_TCB_INFO_UNSUPPORTED, "unsupported QE Identity version", expected=2, actual=version
        )
    return QeIdentity(
        id=d.string("id"),
        version=version,
        issue_date=d.timestamp("issueDate"),
        next_update=d.timestamp("nextUpdate"),
        eval_number=d.integer("tcbEvaluationDataNumber"),
        miscselect=d.hexbytes("miscselect", 4),
        miscselect_mask=d.hexbytes("miscselectMask", 4),
        attributes=d.hexbytes("attributes", 16),
        attributes_mask=d.hexbytes("attributesMask", 16),
        mrsigner=d.hexbytes("mrsigner", 32),
        isvprodid=d.integer("isvprodid", hi=0xFFFF),
        levels=_identity_levels(d),
    )
