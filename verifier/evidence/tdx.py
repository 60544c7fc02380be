"""TD report bodies of TDX quotes: TD 1.0 (584 bytes), TD 1.5 (648 bytes) and TD 1.5 "ex" (885 bytes).

Parses bytes into a frozen dataclass; verifies nothing (intel-dcap.md §1.2). Offsets are inside the body;
the quote offset is +48 for quote v4 and +54 for quote v5.

| off | size | field            | notes                                                         |
|-----|------|------------------|---------------------------------------------------------------|
|   0 |   16 | TEE_TCB_SVN      | [0] module SVN, [1] module major, [2] late microcode          |
|  16 |   48 | MRSEAM           |                                                               |
|  64 |   48 | MRSIGNERSEAM     | zero for the Intel TDX module                                 |
| 112 |    8 | SEAMATTRIBUTES   |                                                               |
| 120 |    8 | TDATTRIBUTES     | u64 LE; bit 0 DEBUG, 28 SEPT_VE_DISABLE, 29 MIGRATABLE, ...   |
| 128 |    8 | XFAM             |                                                               |
| 136 |   48 | MRTD             |                                                               |
| 184 |   48 | MRCONFIGID       |                                                               |
| 232 |   48 | MROWNER          |                                                               |
| 280 |   48 | MROWNERCONFIG    |                                                               |
| 328 | 4x48 | RTMR0..RTMR3     |                                                               |
| 520 |   64 | REPORTDATA       |                                                               |
|                       TD 1.5 (body type 3) adds:                                                  |
| 584 |   16 | TEE_TCB_SVN2     |                                                               |
| 600 |   48 | MRSERVICETD      |                                                               |
|                       TD 1.5 "ex" (body type 4) adds, verified exactly like type 3:                |
| 648 |    1 | VMID             |                                                               |
| 649 |   32 | TD_ID            |                                                               |
| 681 |   48 | DEV_INFO         |                                                               |
| 729 |   48 | INIT_SERVICE_TD_HASH                                                             |
| 777 |    8 | INIT_SERVICE_TD_ATTRIBUTES                                                       |
| 785 |   16 | INIT_CPU_SVN     |                                                               |
| 801 |   16 | INIT_TEE_TCB_SVN |                                                               |
| 817 |   12 | INIT_TEE_FMSPC   |                                                               |
| 829 |   48 | CUR_SERVICE_TD_HASH                                                              |
| 877 |    8 | CUR_SERVICE_TD_ATTRIBUTES (ends at 885)                                          |
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from verifier.errors import Code, EvidenceMalformed

TD_REPORT10 = struct.Struct("<16s48s48s8s8s8s48s48s48s48s48s48s48s48s64s")
TD_REPORT10_SIZE: Final = 584
assert TD_REPORT10.size == TD_REPORT10_SIZE

TD_REPORT15_EXTRA = struct.Struct("<16s48s")  # TEE_TCB_SVN2, MRSERVICETD at body offset 584
TD_REPORT15_SIZE: Final = 648
assert TD_REPORT10_SIZE + TD_REPORT15_EXTRA.size == TD_REPORT15_SIZE

#: Body type 4 extras at body offset 648: VMID, TD_ID, DEV_INFO, INIT_SERVICE_TD_HASH,
#: INIT_SERVICE_TD_ATTRIBUTES, INIT_CPU_SVN, INIT_TEE_TCB_SVN, INIT_TEE_FMSPC, CUR_SERVICE_TD_HASH,
#: CUR_SERVICE_TD_ATTRIBUTES.
TD15_EX_EXTRA = struct.Struct("<1s32s48s48s8s16s16s12s48s8s")
TD_REPORT15_EX_SIZE: Final = 885
assert TD_REPORT15_SIZE + TD15_EX_EXTRA.size == TD_REPORT15_EX_SIZE

#: TDATTRIBUTES bits (TDX 1.5 ABI; intel-dcap.md §1.2).
TD_ATTR_DEBUG: Final = 1 << 0
TD_ATTR_TUD_MASK: Final = 0xFF  # bits 0-7: the "TD under debug" group (DEBUG and profiling)
TD_ATTR_SEPT_VE_DISABLE: Final = 1 << 28
TD_ATTR_MIGRATABLE: Final = 1 << 29
TD_ATTR_PKS: Final = 1 << 30
TD_ATTR_KL: Final = 1 << 31
#: Bits that must be zero per the TDX 1.5 ABI: 1-3, 7-15, 23-26, 32-61.
TD_ATTR_RESERVED_MASK: Final = (
    (0b1110)
    | sum(1 << b for b in range(7, 16))
    | sum(1 << b for b in range(23, 27))
    | sum(1 << b for b in range(32, 62))
)


@dataclass(frozen=True, slots=True)
class TdReportExtras:
    """The body-type-4 ("TD 1.5 ex") fields. Exposed as claims; not used by verification."""

    vmid: bytes
    td_id: bytes
    dev_info: bytes
    init_service_td_hash: bytes
    init_service_td_attributes: bytes
    init_cpu_svn: bytes
    init_tee_tcb_svn: bytes
    init_tee_fmspc: bytes
    cur_service_td_hash: bytes
    cur_service_td_attributes: bytes


@dataclass(frozen=True, slots=True)
class TdReportBody:
    """A TD report body. ``tee_tcb_svn2``/``mrservicetd`` are None for TD 1.0; ``extras`` only for type 4."""

    tee_tcb_svn: bytes
    mrseam: bytes
    mrsignerseam: bytes
    seamattributes: bytes
    tdattributes: bytes
    xfam: bytes
    mrtd: bytes
    mrconfigid: bytes
    mrowner: bytes
    mrownerconfig: bytes
    rtmr0: bytes
    rtmr1: bytes
    rtmr2: bytes
    rtmr3: bytes
    reportdata: bytes
    tee_tcb_svn2: bytes | None = None
    mrservicetd: bytes | None = None
    extras: TdReportExtras | None = None

    @property
    def tdattributes_int(self) -> int:
        return int.from_bytes(self.tdattributes, "little")

    @property
    def debug(self) -> bool:
        return bool(self.tdattributes[0] & TD_ATTR_DEBUG)

    @property
    def is_td15(self) -> bool:
        return self.tee_tcb_svn2 is not None


def parse_td_report_body(data: bytes) -> TdReportBody:
    """Parse a 584-, 648- or 885-byte TD report body (the caller has already matched size to body type)."""
    size = len(data)
    if size not in (TD_REPORT10_SIZE, TD_REPORT15_SIZE, TD_REPORT15_EX_SIZE):
        raise EvidenceMalformed(
            Code.INTEL_QUOTE_BODY_SIZE_INVALID,
            "TD report body has an unknown size",
            expected=f"{TD_REPORT10_SIZE}, {TD_REPORT15_SIZE} or {TD_REPORT15_EX_SIZE}",
            actual=size,
        )
    f = TD_REPORT10.unpack_from(data, 0)
    svn2: bytes | None = None
    servicetd: bytes | None = None
    extras: TdReportExtras | None = None
    if size >= TD_REPORT15_SIZE:
        svn2, servicetd = TD_REPORT15_EXTRA.unpack_from(data, TD_REPORT10_SIZE)
    if size == TD_REPORT15_EX_SIZE:
        extras = TdReportExtras(*TD15_EX_EXTRA.unpack_from(data, TD_REPORT15_SIZE))
    return TdReportBody(
        tee_tcb_svn=f[0],
        mrseam=f[1],
        mrsignerseam=f[2],
        seamattributes=f[3],
        tdattributes=f[4],
        xfam=f[5],
        mrtd=f[6],
        mrconfigid=f[7],
        mrowner=f[8],
        mrownerconfig=f[9],
        rtmr0=f[10],
        rtmr1=f[11],
        rtmr2=f[12],
        rtmr3=f[13],
        reportdata=f[14],
        tee_tcb_svn2=svn2,
        mrservicetd=servicetd,
        extras=extras,
    )
