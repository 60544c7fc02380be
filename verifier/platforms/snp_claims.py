"""Claims of an SEV-SNP report as a JSON-ready dict (every report field; hex strings and integers).

The stable shape of ``claims`` for ``platform = "amd-sev-snp"`` in ``keyward verify --json`` and stored results.
"""

from __future__ import annotations

from verifier.evidence.snp import (
    POLICY_CIPHERTEXT_HIDING,
    POLICY_CXL_ALLOW,
    POLICY_DEBUG,
    POLICY_MEM_AES_256_XTS,
    POLICY_MIGRATE_MA,
    POLICY_PAGE_SWAP_DISABLE,
    POLICY_RAPL_DIS,
    POLICY_SINGLE_SOCKET,
    POLICY_SMT,
    SnpReport,
    TcbVersion,
)
from verifier.platforms.amd_snp import SnpVerification

ClaimValue = str | int | bool | None | dict[str, int | bool | str | None]

_POLICY_BITS = {
    "smt": POLICY_SMT,
    "migrate_ma": POLICY_MIGRATE_MA,
    "debug": POLICY_DEBUG,
    "single_socket": POLICY_SINGLE_SOCKET,
    "cxl_allow": POLICY_CXL_ALLOW,
    "mem_aes_256_xts": POLICY_MEM_AES_256_XTS,
    "rapl_dis": POLICY_RAPL_DIS,
    "ciphertext_hiding_dram": POLICY_CIPHERTEXT_HIDING,
    "page_swap_disable": POLICY_PAGE_SWAP_DISABLE,
}
_PLATFORM_BITS = {
    "smt_en": 0,
    "tsme_en": 1,
    "ecc_en": 2,
    "rapl_dis": 3,
    "ciphertext_hiding_dram_en": 4,
    "alias_check_complete": 5,
    "iommu_write_safe": 6,
    "sev_tio_en": 7,
}


def _tcb(t: TcbVersion) -> dict[str, int | bool | str | None]:
    return dict(t.components())


def report_claims(r: SnpReport) -> dict[str, ClaimValue]:
    """Every field of the report (read from the report alone; unverified until verification passes)."""
    policy: dict[str, int | bool | str | None] = {
        "abi_minor": r.policy & 0xFF,
        "abi_major": (r.policy >> 8) & 0xFF,
        **{k: bool(r.policy & bit) for k, bit in _POLICY_BITS.items()},
    }
    return {
        "version": r.version,
        "guest_svn": r.guest_svn,
        "policy": hex(r.policy),
        "policy_decoded": policy,
        "family_id": r.family_id.hex(),
        "image_id": r.image_id.hex(),
        "vmpl": r.vmpl,
        "signature_algo": r.signature_algo,
        "current_tcb_raw": r.current_tcb.hex(),
        "platform_info": hex(r.platform_info),
        "platform_info_decoded": {k: bool(r.platform_info >> bit & 1) for k, bit in _PLATFORM_BITS.items()},
        "author_key_en": r.author_key_en,
        "mask_chip_key": r.mask_chip_key,
        "signing_key": r.signing_key_name,
        "report_data": r.report_data.hex(),
        "measurement": r.measurement.hex(),
        "host_data": r.host_data.hex(),
        "id_key_digest": r.id_key_digest.hex(),
        "author_key_digest": r.author_key_digest.hex(),
        "report_id": r.report_id.hex(),
        "report_id_ma": r.report_id_ma.hex(),
        "reported_tcb_raw": r.reported_tcb.hex(),
        "cpuid_fam_id": r.cpuid_fam_id,
        "cpuid_mod_id": r.cpuid_mod_id,
        "cpuid_step": r.cpuid_step,
        "chip_id": r.chip_id.hex(),
        "committed_tcb_raw": r.committed_tcb.hex(),
        "current_firmware": ".".join(map(str, r.current_version)),
        "committed_firmware": ".".join(map(str, r.committed_version)),
        "launch_tcb_raw": r.launch_tcb.hex(),
        "launch_mit_vector": r.launch_mit_vector,
        "current_mit_vector": r.current_mit_vector,
        "debug": r.debug,
    }


def verified_claims(v: SnpVerification) -> dict[str, ClaimValue]:
    """Report claims plus what verification decided: product, key type, decoded TCBs, leaf identity."""
    c = report_claims(v.report)
    c.update(
        product=v.product,
        signing_key_type=v.signing_key,
        reported_tcb=_tcb(v.reported_tcb),
        committed_tcb=_tcb(v.committed_tcb),
        current_tcb=_tcb(v.current_tcb),
        launch_tcb=_tcb(v.launch_tcb),
        leaf_product_name=v.leaf.product_name,
        csp_id=v.leaf.csp_id,
    )
    return c
