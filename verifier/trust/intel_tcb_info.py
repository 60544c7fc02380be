"""Typed, validated Intel TCB Info (v2/v3, SGX and TDX) and QE Identity (v2), parsed from the exact signed bytes.

The verifier calls these only after the signature over those bytes verified (intel-dcap.md §3). Strict: exactly
16 TCB components per level (never zip unequal arrays), recognised statuses only, typed fields with bounds.
Pure; errors are :class:`~verifier.errors.CollateralError` (``intel.collateral.*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from verifier import limits
from verifier.errors import Code, CollateralError
from verifier.trust.intel_collateral import json_document, malformed

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
            raise malformed(f"{path} must be an object")
        self.d: dict[str, Any] = d
        self.path = path

    def has(self, key: str) -> bool:
        return key in self.d

    def integer(self, key: str, *, lo: int = 0, hi: int = 2**32 - 1) -> int:
        v = self.d.get(key)
        if type(v) is not int or not lo <= v <= hi:
            raise malformed(f"{self.path}.{key} must be an integer in [{lo}, {hi}]")
        return v

    def string(self, key: str) -> str:
        v = self.d.get(key)
        if not isinstance(v, str):
            raise malformed(f"{self.path}.{key} must be a string")
        return v

    def hexbytes(self, key: str, size: int) -> bytes:
        v = self.string(key)
        if len(v) != 2 * size:
            raise malformed(f"{self.path}.{key} must be {size} bytes of hex")
        try:
            return bytes.fromhex(v)
        except ValueError as e:
            raise malformed(f"{self.path}.{key} is not hex") from e

    def timestamp(self, key: str) -> datetime:
        v = self.string(key)
        try:
            t = datetime.fromisoformat(v)
        except ValueError as e:
            raise malformed(f"{self.path}.{key} is not an ISO 8601 time") from e
        if t.tzinfo is None:
            raise malformed(f"{self.path}.{key} has no time zone")
        return t

    def obj(self, key: str) -> _Doc:
        return _Doc(self.d.get(key), f"{self.path}.{key}")

    def array(self, key: str, *, max_items: int) -> list[Any]:
        v = self.d.get(key)
        if not isinstance(v, list) or len(v) > max_items:
            raise malformed(f"{self.path}.{key} must be a list of at most {max_items} items")
        return v


def _load(raw: bytes, what: str) -> _Doc:
    return _Doc(json_document(raw, what), what)


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
        raise malformed(f"{doc.path}.advisoryIDs must be strings")
    return tuple(ids)


def _components(doc: _Doc, key: str) -> tuple[int, ...]:
    comps = doc.array(key, max_items=16)
    if len(comps) != 16:  # never zip unequal arrays (intel-dcap.md §5, GHSA-6q6c-vvf9-fj3w)
        raise malformed(f"{doc.path}.{key} must have exactly 16 components, has {len(comps)}")
    # Hot loop of TCB Info parsing: one comprehension, then one pass of checks (same rules as _Doc.integer).
    svns: tuple[Any, ...] = tuple([c.get("svn") if type(c) is dict else None for c in comps])
    if {type(v) for v in svns} != {int} or min(svns) < 0 or max(svns) > 255:
        bad = next(i for i, v in enumerate(svns) if type(v) is not int or not 0 <= v <= 255)
        raise malformed(f"{doc.path}.{key}[{bad}].svn must be an integer in [0, 255]")
    return svns


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
        raise malformed(f"{doc.path}.tcbLevels is empty")
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
        raise malformed("tcbInfo.tcbLevels is empty")
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
        raise malformed("TDX TCB Info lacks tdxModule")
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
