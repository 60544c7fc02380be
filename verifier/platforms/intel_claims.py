"""Claims of an Intel quote as a JSON-ready dict: names as in intel-dcap.md §7, lower_snake_case.

Byte fields are lower-case hex strings, integers stay integers. The PPID is never exposed. This is the
stable shape of ``claims`` in ``keyward verify --json`` and in stored attestation results.
"""

from __future__ import annotations

from datetime import datetime

from verifier.evidence.dcap import Quote
from verifier.evidence.sgx import SgxReportBody
from verifier.platforms.intel_dcap import CollateralSummary, IntelVerification

ClaimValue = str | int | bool | None | list[str]


def quote_claims(quote: Quote) -> dict[str, ClaimValue]:
    """Claims read from the quote alone (also shown, marked unverified, when verification fails)."""
    h = quote.header
    c: dict[str, ClaimValue] = {
        "quote_version": h.version,
        "tee_type": "tdx" if quote.is_tdx else "sgx",
        "body_type": quote.body_type,
        "qe_svn": h.qe_svn,
        "pce_svn": h.pce_svn,
        "debug": quote.body.debug,
        "trailing_bytes": quote.trailing_bytes,
    }
    b = quote.body
    if isinstance(b, SgxReportBody):
        c.update(
            mrenclave=b.mrenclave.hex(),
            mrsigner=b.mrsigner.hex(),
            isvprodid=b.isvprodid,
            isvsvn=b.isvsvn,
            attributes=b.attributes.hex(),
            xfrm=b.xfrm.hex(),
            miscselect=b.miscselect_bytes.hex(),
            cpusvn=b.cpusvn.hex(),
            configid=b.configid.hex(),
            configsvn=b.configsvn,
            isvextprodid=b.isvextprodid.hex(),
            isvfamilyid=b.isvfamilyid.hex(),
            reportdata=b.reportdata.hex(),
        )
        return c
    c.update(
        tee_tcb_svn=b.tee_tcb_svn.hex(),
        mrseam=b.mrseam.hex(),
        mrsignerseam=b.mrsignerseam.hex(),
        seamattributes=b.seamattributes.hex(),
        tdattributes=b.tdattributes.hex(),
        xfam=b.xfam.hex(),
        mrtd=b.mrtd.hex(),
        mrconfigid=b.mrconfigid.hex(),
        mrowner=b.mrowner.hex(),
        mrownerconfig=b.mrownerconfig.hex(),
        rtmr0=b.rtmr0.hex(),
        rtmr1=b.rtmr1.hex(),
        rtmr2=b.rtmr2.hex(),
        rtmr3=b.rtmr3.hex(),
        reportdata=b.reportdata.hex(),
    )
    if b.tee_tcb_svn2 is not None and b.mrservicetd is not None:
        c.update(tee_tcb_svn2=b.tee_tcb_svn2.hex(), mrservicetd=b.mrservicetd.hex())
    if b.extras is not None:
        e = b.extras
        c.update(
            vmid=e.vmid.hex(),
            td_id=e.td_id.hex(),
            dev_info=e.dev_info.hex(),
            init_service_td_hash=e.init_service_td_hash.hex(),
            init_service_td_attributes=e.init_service_td_attributes.hex(),
            init_cpu_svn=e.init_cpu_svn.hex(),
            init_tee_tcb_svn=e.init_tee_tcb_svn.hex(),
            init_tee_fmspc=e.init_tee_fmspc.hex(),
            cur_service_td_hash=e.cur_service_td_hash.hex(),
            cur_service_td_attributes=e.cur_service_td_attributes.hex(),
        )
    return c


def verified_claims(v: IntelVerification) -> dict[str, ClaimValue]:
    """Quote claims plus what verification established (PCK values and the matched TCB level)."""
    c = quote_claims(v.quote)
    p, t = v.pck, v.tcb
    c.update(
        fmspc=p.fmspc.hex(),
        pce_id=p.pce_id.hex(),
        sgx_type=p.sgx_type,
        pck_pcesvn=p.pcesvn,
        pck_cpusvn=p.cpusvn.hex(),
        dynamic_platform=p.dynamic_platform,
        cached_keys=p.cached_keys,
        smt_enabled=p.smt_enabled,
        tcb_date=t.tcb_date,
        platform_tcb_status=t.platform_status,
        qe_tcb_status=t.qe_status,
        tdx_module_tcb_status=t.module_status,
    )
    return c


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def collateral_json(s: CollateralSummary) -> dict[str, str | int]:
    return {
        "fmspc": s.fmspc,
        "tcb_info_issue_date": _iso(s.tcb_info_issue_date),
        "tcb_info_next_update": _iso(s.tcb_info_next_update),
        "qe_identity_issue_date": _iso(s.qe_identity_issue_date),
        "qe_identity_next_update": _iso(s.qe_identity_next_update),
        "root_ca_crl_this_update": _iso(s.root_ca_crl_this_update),
        "root_ca_crl_next_update": _iso(s.root_ca_crl_next_update),
        "pck_crl_this_update": _iso(s.pck_crl_this_update),
        "pck_crl_next_update": _iso(s.pck_crl_next_update),
        "tcb_eval_number": s.tcb_eval_number,
        "tcb_info_eval_number": s.tcb_info_eval_number,
        "qe_identity_eval_number": s.qe_identity_eval_number,
        "earliest_expiry": _iso(s.earliest_expiry),
        "latest_issue": _iso(s.latest_issue),
        "tcb_info_sha256": s.tcb_info_digest,
    }
