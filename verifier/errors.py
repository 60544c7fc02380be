"""One error tree with stable reason codes.

Every failure Keyward can report has a :class:`Code`: a dotted, lower_snake_case string
(``"intel.quote.truncated"``) that never changes meaning once released. Tests, the CLI's JSON, the API and the
audit log all carry the code; messages are for people and may change.

Each code belongs to exactly one exception class (:data:`CODE_CLASS`, checked when the error is made and, for every
raise site, by ``tests/unit/test_errors.py``), and each class to one :class:`Fault`, which decides the HTTP status
and whether retrying helps (python-tuf's exceptions by fault, sigstore's ``InvalidBundle`` vs ``VerificationError``):

* :class:`EvidenceMalformed` (``malformed``, 400): the evidence bytes do not parse (the attester sent garbage).
* :class:`VerificationFailed` (``failed``, 403): the evidence parses but a signature, chain, binding or identity
  check fails.
* :class:`CollateralError` (``collateral``, 403): the vendor endorsements (CRLs, TCB Info, QE Identity) are bad,
  expired or missing.
* :class:`PolicyRejected` (``policy``): the appraisal policy or reference values do not accept genuine evidence.
  Policy outcomes are not raised: appraisal returns a Verdict whose reasons carry these codes.
* :class:`NotEntitled` (``entitlement``, 403): the licence does not cover the request.
* :class:`Unavailable` (``unavailable``, 503, retryable): the database, or a vendor service
  (:class:`CollateralUnavailable`, a root of its own: not bad collateral, only none delivered).
* :class:`InternalError` (``internal``, 500): Keyward's bug or configuration; :class:`TrustStoreError` (the pinned
  vendor roots are missing or do not match their manifest) is one.
* :class:`UsageError`, :class:`NotFound`, :class:`Conflict` (``request``, 400/404/409): the API caller's request.
* :class:`AuthError`, :class:`Forbidden` (``auth``, 401/403): credentials.
* :class:`EarError` (``failed``, 401): an attestation-result token that does not verify.

A :class:`Reason` (one failed check, as stored with a decision) carries its code's fault. This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final


class Code(StrEnum):
    """Stable reason codes. Append only; never reuse or rename a value, never move one to another class."""

    @property
    def fault(self) -> Fault:
        """The code's fault, fixed by its class (:data:`CODE_CLASS`)."""
        return CODE_CLASS[self].fault

    # -- Intel quote parsing (intel-dcap.md §1) --------------------------------------------------------------
    INTEL_QUOTE_ENCODING = "intel.quote.encoding"
    INTEL_QUOTE_TOO_LARGE = "intel.quote.too_large"
    INTEL_QUOTE_TRUNCATED = "intel.quote.truncated"
    INTEL_QUOTE_UNSUPPORTED_VERSION = "intel.quote.unsupported_version"
    INTEL_QUOTE_UNSUPPORTED_KEY_TYPE = "intel.quote.unsupported_key_type"
    INTEL_QUOTE_UNSUPPORTED_TEE_TYPE = "intel.quote.unsupported_tee_type"
    INTEL_QUOTE_VENDOR_MISMATCH = "intel.quote.vendor_mismatch"
    INTEL_QUOTE_BODY_TYPE_INVALID = "intel.quote.body_type_invalid"
    INTEL_QUOTE_BODY_SIZE_INVALID = "intel.quote.body_size_invalid"
    INTEL_QUOTE_LENGTH_INVALID = "intel.quote.length_invalid"
    INTEL_QUOTE_RESERVED_NONZERO = "intel.quote.reserved_nonzero"
    INTEL_QUOTE_CERT_TYPE_UNSUPPORTED = "intel.quote.cert_type_unsupported"
    INTEL_QUOTE_SIGNATURE_INVALID = "intel.quote.signature_invalid"
    INTEL_QUOTE_ATTESTATION_KEY_INVALID = "intel.quote.attestation_key_invalid"

    # -- PCK certificate chain (intel-dcap.md §2, §4 step 2) --------------------------------------------------
    INTEL_PCK_CHAIN_MALFORMED = "intel.pck.chain_malformed"
    INTEL_PCK_CHAIN_UNTRUSTED = "intel.pck.chain_untrusted"
    INTEL_PCK_SUBJECT_INVALID = "intel.pck.subject_invalid"
    INTEL_PCK_ISSUER_MISMATCH = "intel.pck.issuer_mismatch"
    INTEL_PCK_SIGNATURE_INVALID = "intel.pck.signature_invalid"
    INTEL_PCK_EXPIRED = "intel.pck.expired"
    INTEL_PCK_NOT_YET_VALID = "intel.pck.not_yet_valid"
    INTEL_PCK_REVOKED = "intel.pck.revoked"
    INTEL_PCK_INTERMEDIATE_REVOKED = "intel.pck.intermediate_revoked"
    INTEL_PCK_EXTENSIONS_INVALID = "intel.pck.extensions_invalid"

    # -- QE report and identity (§4 steps 6-8) -----------------------------------------------------------------
    INTEL_QE_REPORT_SIGNATURE_INVALID = "intel.qe_report.signature_invalid"
    INTEL_QE_REPORT_AK_BINDING = "intel.qe_report.ak_binding_mismatch"
    INTEL_QE_IDENTITY_MISMATCH = "intel.qe_identity.mismatch"
    INTEL_TDX_MODULE_MISMATCH = "intel.tdx_module.mismatch"

    # -- Collateral (§3, §4 steps 3-5) ---------------------------------------------------------------------------
    INTEL_COLLATERAL_MALFORMED = "intel.collateral.malformed"
    INTEL_COLLATERAL_CRL_SIGNATURE_INVALID = "intel.collateral.crl_signature_invalid"
    INTEL_COLLATERAL_CRL_WRONG_ISSUER = "intel.collateral.crl_wrong_issuer"
    INTEL_COLLATERAL_CRL_EXPIRED = "intel.collateral.crl_expired"
    INTEL_COLLATERAL_CRL_NOT_YET_VALID = "intel.collateral.crl_not_yet_valid"
    INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING = "intel.collateral.crl_extensions_missing"
    INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED = "intel.collateral.signing_chain_untrusted"
    INTEL_COLLATERAL_SIGNING_CERT_REVOKED = "intel.collateral.signing_cert_revoked"
    INTEL_COLLATERAL_SIGNING_CERT_EXPIRED = "intel.collateral.signing_cert_expired"
    INTEL_COLLATERAL_TCB_INFO_SIGNATURE_INVALID = "intel.collateral.tcb_info_signature_invalid"
    INTEL_COLLATERAL_TCB_INFO_EXPIRED = "intel.collateral.tcb_info_expired"
    INTEL_COLLATERAL_TCB_INFO_NOT_YET_VALID = "intel.collateral.tcb_info_not_yet_valid"
    INTEL_COLLATERAL_TCB_INFO_WRONG_TEE = "intel.collateral.tcb_info_wrong_tee"
    INTEL_COLLATERAL_TCB_INFO_UNSUPPORTED = "intel.collateral.tcb_info_unsupported"
    INTEL_COLLATERAL_FMSPC_MISMATCH = "intel.collateral.fmspc_mismatch"
    INTEL_COLLATERAL_PCE_ID_MISMATCH = "intel.collateral.pce_id_mismatch"
    INTEL_COLLATERAL_QE_IDENTITY_SIGNATURE_INVALID = "intel.collateral.qe_identity_signature_invalid"
    INTEL_COLLATERAL_QE_IDENTITY_EXPIRED = "intel.collateral.qe_identity_expired"
    INTEL_COLLATERAL_QE_IDENTITY_NOT_YET_VALID = "intel.collateral.qe_identity_not_yet_valid"
    INTEL_COLLATERAL_QE_IDENTITY_WRONG_TEE = "intel.collateral.qe_identity_wrong_tee"
    INTEL_COLLATERAL_TCB_STATUS_UNRECOGNIZED = "intel.collateral.tcb_status_unrecognized"

    INTEL_COLLATERAL_MISSING = "intel.collateral.missing"  # the decision has no collateral for the quote

    # -- TCB evaluation (§5) --------------------------------------------------------------------------------------
    INTEL_TCB_NOT_SUPPORTED = "intel.tcb.not_supported"

    # -- Intel appraisal policy (§7; appraisal/intel.py) ------------------------------------------------------
    INTEL_POLICY_SGX_DEBUG = "intel.policy.sgx_debug"
    INTEL_POLICY_TD_DEBUG = "intel.policy.td_debug"
    INTEL_POLICY_TD_RESERVED_ATTRIBUTES = "intel.policy.td_reserved_attributes"
    INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF = "intel.policy.td_sept_ve_disable_off"
    INTEL_POLICY_TD_MIGRATABLE = "intel.policy.td_migratable"
    INTEL_POLICY_MRSERVICETD_NONZERO = "intel.policy.mrservicetd_nonzero"
    INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED = "intel.policy.tcb_status_not_accepted"
    INTEL_POLICY_ADVISORY_DENIED = "intel.policy.advisory_denied"
    INTEL_POLICY_TCB_EVAL_NUMBER_TOO_LOW = "intel.policy.tcb_eval_number_too_low"
    INTEL_POLICY_REPORT_DATA_MISMATCH = "intel.policy.report_data_mismatch"
    INTEL_POLICY_MEASUREMENT_NOT_ALLOWED = "intel.policy.measurement_not_allowed"
    INTEL_POLICY_SGX_ISV_PROD_ID = "intel.policy.sgx_isv_prod_id_not_allowed"
    INTEL_POLICY_SGX_ISV_SVN_TOO_LOW = "intel.policy.sgx_isv_svn_too_low"

    # -- AMD SEV-SNP report parsing (amd-snp.md §1, §4.1, §9 step 1) ------------------------------------------
    SNP_REPORT_ENCODING = "snp.report.encoding"
    SNP_REPORT_TRUNCATED = "snp.report.truncated"
    SNP_REPORT_TRAILING_DATA = "snp.report.trailing_data"
    SNP_REPORT_UNSUPPORTED_VERSION = "snp.report.unsupported_version"
    SNP_REPORT_SIGNATURE_ALGO = "snp.report.signature_algo_unsupported"
    SNP_REPORT_RESERVED_NONZERO = "snp.report.reserved_nonzero"
    SNP_REPORT_SIGNING_KEY_INVALID = "snp.report.signing_key_invalid"
    SNP_REPORT_MASK_CHIP_KEY = "snp.report.mask_chip_key"
    SNP_REPORT_CPUID_INVALID = "snp.report.cpuid_invalid"
    SNP_REPORT_AUTHOR_KEY_INCONSISTENT = "snp.report.author_key_inconsistent"
    SNP_CERT_TABLE_MALFORMED = "snp.cert_table.malformed"

    # -- AMD certificate chain, CRL, VCEK/VLEK (§3, §9 steps 2-4) --------------------------------------------
    SNP_CHAIN_MALFORMED = "snp.chain.malformed"
    SNP_CHAIN_UNTRUSTED = "snp.chain.untrusted"
    SNP_CHAIN_SIGNATURE_INVALID = "snp.chain.signature_invalid"
    SNP_CHAIN_PSS_PARAMETERS = "snp.chain.pss_parameters_invalid"
    SNP_CHAIN_EXPIRED = "snp.chain.expired"
    SNP_CHAIN_NOT_YET_VALID = "snp.chain.not_yet_valid"
    SNP_CHAIN_PRODUCT_MISMATCH = "snp.chain.product_mismatch"
    SNP_CHAIN_REVOKED = "snp.chain.revoked"
    SNP_CRL_MALFORMED = "snp.crl.malformed"
    SNP_CRL_WRONG_ISSUER = "snp.crl.wrong_issuer"
    SNP_CRL_SIGNATURE_INVALID = "snp.crl.signature_invalid"
    SNP_CRL_EXPIRED = "snp.crl.expired"
    SNP_CRL_NOT_YET_VALID = "snp.crl.not_yet_valid"
    SNP_CRL_MISSING = "snp.crl.missing"
    SNP_LEAF_MISSING = "snp.leaf.missing"
    SNP_LEAF_MALFORMED = "snp.leaf.malformed"
    SNP_LEAF_KEY_INVALID = "snp.leaf.key_invalid"
    SNP_LEAF_EXPIRED = "snp.leaf.expired"
    SNP_LEAF_NOT_YET_VALID = "snp.leaf.not_yet_valid"
    SNP_LEAF_REVOKED = "snp.leaf.revoked"
    SNP_LEAF_KEY_TYPE_MISMATCH = "snp.leaf.key_type_mismatch"
    SNP_LEAF_EXTENSIONS_INVALID = "snp.leaf.extensions_invalid"
    SNP_LEAF_TCB_MISMATCH = "snp.leaf.tcb_mismatch"
    SNP_LEAF_HWID_MISMATCH = "snp.leaf.hwid_mismatch"
    SNP_SIGNATURE_INVALID = "snp.signature.invalid"
    SNP_SIGNATURE_MALFORMED = "snp.signature.malformed"

    # -- AMD SEV-SNP appraisal policy (§2, §7, §9 step 6) --------------------------------------------------------
    SNP_POLICY_DEBUG = "snp.policy.debug"
    SNP_POLICY_MIGRATE_MA = "snp.policy.migrate_ma"
    SNP_POLICY_RESERVED_BITS = "snp.policy.reserved_bits"
    SNP_POLICY_SMT = "snp.policy.smt_not_allowed"
    SNP_POLICY_SINGLE_SOCKET = "snp.policy.single_socket_required"
    SNP_POLICY_CXL = "snp.policy.cxl_not_allowed"
    SNP_POLICY_MEM_AES_256_XTS = "snp.policy.mem_aes_256_xts_required"
    SNP_POLICY_RAPL_DIS = "snp.policy.rapl_dis_required"
    SNP_POLICY_CIPHERTEXT_HIDING = "snp.policy.ciphertext_hiding_required"
    SNP_POLICY_VMPL = "snp.policy.vmpl_not_allowed"
    SNP_POLICY_PLATFORM_INFO = "snp.policy.platform_info"
    SNP_POLICY_TCB_TOO_LOW = "snp.policy.tcb_too_low"
    SNP_POLICY_FIRMWARE_TOO_LOW = "snp.policy.firmware_too_low"
    SNP_POLICY_GUEST_SVN_TOO_LOW = "snp.policy.guest_svn_too_low"
    SNP_POLICY_MEASUREMENT = "snp.policy.measurement_not_allowed"
    SNP_POLICY_HOST_DATA = "snp.policy.host_data_not_allowed"
    SNP_POLICY_ID_KEY_DIGEST = "snp.policy.id_key_digest_not_allowed"
    SNP_POLICY_AUTHOR_KEY_DIGEST = "snp.policy.author_key_digest_not_allowed"
    SNP_POLICY_FAMILY_ID = "snp.policy.family_id_not_allowed"
    SNP_POLICY_IMAGE_ID = "snp.policy.image_id_not_allowed"
    SNP_POLICY_REPORT_DATA = "snp.policy.report_data_mismatch"
    SNP_POLICY_SIGNING_KEY = "snp.policy.signing_key_not_allowed"
    SNP_POLICY_CSP_ID = "snp.policy.csp_id_not_allowed"

    # -- Key release (keywrap/) -----------------------------------------------------------------------------------
    KEYWRAP_JWK_INVALID = "keywrap.jwk_invalid"
    KEYWRAP_JWK_WEAK = "keywrap.jwk_weak"
    KEYWRAP_UNWRAP_FAILED = "keywrap.unwrap_failed"
    EAR_INVALID = "ear.invalid"
    EAR_EXPIRED = "ear.expired"
    EAR_KEY_UNKNOWN = "ear.key_unknown"
    EAR_SIGNING_KEY_INVALID = "ear.signing_key_invalid"

    # -- The attestation decision (attestation/flows.py) ---------------------------------------------------------
    ATTESTATION_NOT_FOUND = "attestation.not_found"
    ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED = "attestation.evidence_type_unsupported"
    ATTESTATION_EVIDENCE_MALFORMED = "attestation.evidence_malformed"
    ATTESTATION_REFERENCE_VALUES_MISSING = "attestation.reference_values_missing"
    ATTESTATION_MODEL_KEY_MISSING = "attestation.model_key_missing"
    LEASE_NOT_RENEWABLE = "lease.not_renewable"
    ATTESTATION_BINDING_MISMATCH = "attestation.binding_mismatch"
    #: The active reference value set pins no guest identity (appraisal/reference_values.py).
    ATTESTATION_REFERENCE_VALUES_UNCONSTRAINED = "attestation.reference_values_unconstrained"
    #: The request waited longer than ``max_decision_age_seconds`` for its decision; attest again (flows.py).
    ATTESTATION_REQUEST_STALE = "attestation.request_stale"
    #: The deployment was granted a lease for a request that arrived after this one; this one must not displace it.
    ATTESTATION_SUPERSEDED_BY_NEWER = "attestation.superseded_by_newer"

    # -- API credentials ------------------------------------------------------------------------------------------
    AUTH_MISSING = "auth.missing"
    AUTH_INVALID = "auth.invalid"
    AUTH_FORBIDDEN = "auth.forbidden"
    AUTH_CUSTOMER_SUSPENDED = "auth.customer_suspended"  # a licence key of a suspended customer (403)
    AUTH_CSRF_INVALID = "auth.csrf_invalid"  # a dashboard form without its session's CSRF token (403)

    # -- Staff accounts (the dashboard's users) ---------------------------------------------------------------
    STAFF_USERNAME_INVALID = "staff.username_invalid"
    STAFF_PASSWORD_WEAK = "staff.password_weak"  # noqa: S105 - an error code, not a password

    # -- Trust store, policy files, usage ---------------------------------------------------------------------
    TRUST_MANIFEST_INVALID = "trust.manifest_invalid"
    TRUST_ROOT_MISMATCH = "trust.root_mismatch"
    POLICY_INVALID = "policy.invalid"
    USAGE_INVALID = "usage.invalid"
    RESOURCE_NOT_FOUND = "resource.not_found"
    RESOURCE_CONFLICT = "resource.conflict"
    REQUEST_INVALID = "request.invalid"  # the body, query or path does not match the API schema
    REQUEST_TOO_LARGE = "request.too_large"  # the body is over limits.MAX_REQUEST_BODY_BYTES (HTTP 413)
    REQUEST_RATE_LIMITED = "request.rate_limited"  # a licence key over its requests per minute (HTTP 429)
    REQUEST_STORAGE_QUOTA = "request.storage_quota_exceeded"  # a licence key over its stored bytes per hour (429)
    INTERNAL_ERROR = "internal.error"
    SERVICE_UNAVAILABLE = "service.unavailable"  # the database cannot be reached right now; try again

    # -- Azure UVM endorsement
    AZURE_UVM_COSE_MALFORMED = "azure.uvm.cose_malformed"
    AZURE_UVM_ALGORITHM_UNSUPPORTED = "azure.uvm.algorithm_unsupported"
    AZURE_UVM_CHAIN_MALFORMED = "azure.uvm.chain_malformed"
    AZURE_UVM_CHAIN_UNTRUSTED = "azure.uvm.chain_untrusted"
    AZURE_UVM_CHAIN_SIGNATURE_INVALID = "azure.uvm.chain_signature_invalid"
    AZURE_UVM_EXPIRED = "azure.uvm.expired"
    AZURE_UVM_NOT_YET_VALID = "azure.uvm.not_yet_valid"
    AZURE_UVM_ISSUER_MISMATCH = "azure.uvm.issuer_mismatch"
    AZURE_UVM_EKU_MISSING = "azure.uvm.eku_missing"
    AZURE_UVM_FEED_MISMATCH = "azure.uvm.feed_mismatch"
    AZURE_UVM_SIGNATURE_INVALID = "azure.uvm.signature_invalid"
    AZURE_UVM_PAYLOAD_INVALID = "azure.uvm.payload_invalid"

    # -- Azure confidential VMs: HCL report, runtime claims, vTPM quote, AK certificate (azure-cvm.md §9)
    AZURE_EVIDENCE_MALFORMED = "azure.evidence.malformed"  # the az-snp-vtpm / az-tdx-vtpm evidence JSON
    AZURE_HCL_TOO_LARGE = "azure.hcl.too_large"  # HCL report over 8 KiB or runtime claims over 4 KiB
    AZURE_HCL_TRUNCATED = "azure.hcl.truncated"  # ends before the IGVM request data or inside the runtime claims
    AZURE_HCL_SIGNATURE_INVALID = "azure.hcl.signature_invalid"  # the header is not HCLA (a magic, not crypto)
    AZURE_HCL_UNSUPPORTED_VERSION = "azure.hcl.unsupported_version"  # header version not 1 or 2; IGVM version not 1
    AZURE_HCL_REQUEST_TYPE_INVALID = "azure.hcl.request_type_invalid"  # RequestType is not 2 (AkCertRequest)
    AZURE_HCL_RESERVED_NONZERO = "azure.hcl.reserved_nonzero"  # header Status / reserved bytes not zero
    AZURE_HCL_REPORT_TYPE_MISMATCH = "azure.hcl.report_type_mismatch"  # ReportType not the evidence type's
    AZURE_HCL_UNSUPPORTED_HASH_TYPE = "azure.hcl.unsupported_hash_type"  # ReportDataHashType is not 1 (SHA-256)
    AZURE_HCL_HEADER_INCONSISTENT = "azure.hcl.header_inconsistent"  # ReportSize / DataSize vs VariableDataSize
    AZURE_HCL_PADDING_NONZERO = "azure.hcl.padding_nonzero"  # bytes after the claims or the TD report are not zero
    AZURE_TD_REPORT_MALFORMED = "azure.td_report.malformed"  # TDREPORT_STRUCT type or reserved bytes
    AZURE_CLAIMS_MALFORMED = "azure.claims.malformed"  # runtime claims: not one UTF-8 JSON object, duplicates, types
    AZURE_CLAIMS_AK_MISSING = "azure.claims.ak_missing"  # not exactly one HCLAkPub in the runtime claims
    AZURE_CLAIMS_AK_INVALID = "azure.claims.ak_invalid"  # HCLAkPub is not RSA-2048 with e = 65537
    AZURE_TPM_TOO_LARGE = "azure.tpm.too_large"  # TPMS_ATTEST over 1 KiB
    AZURE_TPM_TRUNCATED = "azure.tpm.truncated"  # TPMS_ATTEST ends inside a field
    AZURE_TPM_TRAILING_DATA = "azure.tpm.trailing_data"  # bytes after the TPMS_ATTEST
    AZURE_TPM_MAGIC_INVALID = "azure.tpm.magic_invalid"  # not TPM_GENERATED_VALUE
    AZURE_TPM_TYPE_INVALID = "azure.tpm.type_invalid"  # not TPM_ST_ATTEST_QUOTE
    AZURE_TPM_MALFORMED = "azure.tpm.malformed"  # a TPM2B longer than its type allows, clockInfo.safe not 0/1
    AZURE_TPM_PCR_SELECTION_INVALID = "azure.tpm.pcr_selection_invalid"  # not one SHA-256 bank of PCRs 0-23
    AZURE_TPM_SIGNATURE_MALFORMED = "azure.tpm.signature_malformed"  # not a 256-byte RSASSA-SHA256 signature
    AZURE_TPM_PCR_VALUES_MALFORMED = "azure.tpm.pcr_values_malformed"  # PCR values not 0 or 24 x 32 bytes
    AZURE_AK_CERT_MALFORMED = "azure.ak_cert.malformed"  # the AK certificate / NV image / an intermediate
    AZURE_HCL_RUNTIME_CLAIMS_HASH_MISMATCH = "azure.hcl.runtime_claims_hash_mismatch"  # REPORT_DATA != SHA-256(claims)
    AZURE_HCL_TD_QUOTE_MISMATCH = "azure.hcl.td_quote_mismatch"  # the TD quote body is not the HCL TD report
    AZURE_TPM_QUOTE_SIGNATURE_INVALID = "azure.tpm.quote_signature_invalid"  # HCLAkPub does not verify the quote
    AZURE_TPM_NONCE_MISMATCH = "azure.tpm.nonce_mismatch"  # extraData is not the expected nonce binding
    AZURE_TPM_PCR_DIGEST_MISMATCH = "azure.tpm.pcr_digest_mismatch"  # SHA-256 of the selected PCR values != pcrDigest
    AZURE_CLAIMS_USER_DATA_MISMATCH = "azure.claims.user_data_mismatch"  # v2: user-data does not start with the nonce
    AZURE_AK_CERT_KEY_MISMATCH = "azure.ak_cert.key_mismatch"  # the AK certificate's key is not HCLAkPub
    AZURE_AK_CERT_UNTRUSTED = "azure.ak_cert.untrusted"  # no chain to the pinned Azure vTPM root; CA / EKU rules
    AZURE_AK_CERT_SIGNATURE_INVALID = "azure.ak_cert.signature_invalid"  # a link of the AK chain does not verify
    AZURE_AK_CERT_EXPIRED = "azure.ak_cert.expired"  # a certificate of the AK chain expired
    AZURE_AK_CERT_NOT_YET_VALID = "azure.ak_cert.not_yet_valid"  # a certificate of the AK chain is not yet valid
    AZURE_POLICY_SECURE_BOOT = "azure.policy.secure_boot_disabled"  # vm-configuration secure-boot false
    AZURE_POLICY_TPM_DISABLED = "azure.policy.tpm_disabled"  # vm-configuration tpm-enabled false
    AZURE_POLICY_CONSOLE_ENABLED = "azure.policy.console_enabled"  # vm-configuration console-enabled true, not allowed
    AZURE_POLICY_PCR_NOT_ALLOWED = "azure.policy.pcr_not_allowed"  # a PCR value outside its allow-list
    AZURE_POLICY_PCR_NOT_QUOTED = "azure.policy.pcr_not_quoted"  # a PCR the policy pins is not quoted or has no value
    AZURE_POLICY_NONCE_REQUIRED = "azure.policy.nonce_required"  # no nonce binding to check the quote against
    AZURE_POLICY_USER_DATA_REQUIRED = "azure.policy.user_data_binding_required"  # policy requires v2 evidence
    AZURE_POLICY_AK_CERT_REQUIRED = "azure.policy.ak_cert_required"  # policy requires a verified AK certificate

    # -- Challenges and entitlements
    CHALLENGE_EXPIRED = "challenge.expired"
    CHALLENGE_INVALID = "challenge.invalid"
    CHALLENGE_REPLAYED = "challenge.replayed"
    ENTITLEMENT_NOT_FOUND = "entitlement.not_found"
    ENTITLEMENT_INACTIVE = "entitlement.inactive"
    ENTITLEMENT_NOT_YET_VALID = "entitlement.not_yet_valid"
    ENTITLEMENT_EXPIRED = "entitlement.expired"
    ENTITLEMENT_PLATFORM_NOT_ALLOWED = "entitlement.platform_not_allowed"
    ENTITLEMENT_VERSION_NOT_ALLOWED = "entitlement.version_not_allowed"
    ENTITLEMENT_GPUS_EXCEEDED = "entitlement.gpus_exceeded"
    ENTITLEMENT_SEATS_EXHAUSTED = "entitlement.seats_exhausted"
    ENTITLEMENT_CUSTOMER_SUSPENDED = "entitlement.customer_suspended"
    ENTITLEMENT_DEPLOYMENT_SUSPENDED = "entitlement.deployment_suspended"  # staff suspended this deployment

    # -- Billing API (billing/, api/billing.py)
    BILLING_QUERY_INVALID = "billing.query.invalid"
    BILLING_CURSOR_INVALID = "billing.cursor.invalid"

    # -- Trust store code pins (trust/store.py)
    TRUST_ROOT_UNPINNED = "trust.root_unpinned"  # a root that is not the genuine vendor root pinned in code
    TRUST_ROOT_MISSING = "trust.root_missing"  # a root pinned in code is absent from vendor_roots_dir

    # -- Vendor services that did not deliver (collateral/fetchers.py; the worker retries, nothing is decided)
    INTEL_COLLATERAL_UNAVAILABLE = "intel.collateral.unavailable"  # Intel PCS/PCCS
    SNP_LEAF_UNAVAILABLE = "snp.leaf.unavailable"  # AMD KDS, a VCEK
    SNP_CRL_UNAVAILABLE = "snp.crl.unavailable"  # AMD KDS, a chain's CRL

    # -- Records the enclave API names (attestation.not_found is for attestations only)
    LEASE_NOT_FOUND = "lease.not_found"
    MODEL_VERSION_NOT_FOUND = "model_version.not_found"

    # -- NVIDIA GPU / NVSwitch evidence parsing (nvidia-gpu.md §1-§3; evidence/nvidia.py)
    NVIDIA_REPORT_ENCODING = "nvidia.report.encoding"  # hex text that does not decode
    NVIDIA_REPORT_TOO_LARGE = "nvidia.report.too_large"  # over limits.MAX_NVIDIA_REPORT_BYTES
    NVIDIA_REPORT_TRUNCATED = "nvidia.report.truncated"  # the buffer ends before a field the lengths promise
    NVIDIA_REPORT_UNSUPPORTED = "nvidia.report.unsupported"  # SPDM version, request/response code, parameters
    NVIDIA_REPORT_MALFORMED = "nvidia.report.malformed"  # lengths disagree, bad measurement blocks, reserved bits
    NVIDIA_REPORT_OPAQUE_MALFORMED = "nvidia.report.opaque_malformed"  # NVIDIA's opaque-data TLVs
    NVIDIA_REPORT_SIGNATURE_MALFORMED = "nvidia.report.signature_malformed"  # r or s outside [1, n-1]
    NVIDIA_REPORT_TRAILING_DATA = "nvidia.report.trailing_data"  # non-zero bytes after the signature
    NVIDIA_CHAIN_MALFORMED = "nvidia.chain.malformed"  # the device certificate chain PEM text
    NVIDIA_EVIDENCE_MALFORMED = "nvidia.evidence.malformed"  # NVIDIA's serialized-evidence JSON
    # -- NVIDIA verification (nvidia-gpu.md §2-§4; platforms/nvidia_gpu.py, trust/nvidia_rim.py, trust/ocsp.py)
    NVIDIA_CHAIN_UNTRUSTED = "nvidia.chain.untrusted"  # not 5 certs, a link that does not verify, not the pinned root
    NVIDIA_CHAIN_EXPIRED = "nvidia.chain.expired"  # a device certificate outside its validity at the decision time
    NVIDIA_CHAIN_EXTENSIONS_INVALID = "nvidia.chain.extensions_invalid"  # CA/pathlen/key usage/FWID extension
    NVIDIA_FWID_MISMATCH = "nvidia.fwid.mismatch"  # the report's FWID is not the leaf certificate's
    NVIDIA_FWID_MISSING = "nvidia.fwid.missing"  # policy requires an FWID the report or the leaf lacks
    NVIDIA_REPORT_SIGNATURE_INVALID = "nvidia.report.signature_invalid"  # ECDSA P-384 by the leaf key fails
    NVIDIA_NONCE_MISMATCH = "nvidia.nonce.mismatch"  # the SPDM request nonce is not this device's binding
    NVIDIA_RIM_MALFORMED = "nvidia.rim.malformed"  # not well-formed, DTD/entity, not a SWID tag, bad measurements
    NVIDIA_RIM_TOO_LARGE = "nvidia.rim.too_large"  # over limits.MAX_NVIDIA_RIM_BYTES
    NVIDIA_RIM_UNSIGNED = "nvidia.rim.unsigned"  # no enveloped XML-DSig signature
    NVIDIA_RIM_SIGNATURE_INVALID = "nvidia.rim.signature_invalid"  # digest or ECDSA over SignedInfo fails; wrapping
    NVIDIA_RIM_CHAIN_UNTRUSTED = "nvidia.rim.chain_untrusted"  # the RIM signing chain does not reach the pinned root
    NVIDIA_RIM_CHAIN_EXPIRED = "nvidia.rim.chain_expired"  # a RIM signing certificate outside its validity
    NVIDIA_RIM_MISMATCH = "nvidia.rim.mismatch"  # a RIM for another driver/VBIOS version, product, chip or SKU
    NVIDIA_RIM_MISSING = "nvidia.rim.missing"  # policy requires a RIM (require_rims) and none is available
    NVIDIA_RIM_INDEX_CONFLICT = "nvidia.rim.index_conflict"  # one index active in both the driver and VBIOS RIM
    NVIDIA_RIM_UNAVAILABLE = "nvidia.rim.unavailable"  # the RIM service could not be reached / answered an error
    NVIDIA_MEASUREMENT_MISMATCH = "nvidia.measurement.mismatch"  # a runtime measurement matches no RIM alternative
    NVIDIA_OCSP_MALFORMED = "nvidia.ocsp.malformed"  # not a DER OCSPResponse, not successful, not basic
    NVIDIA_OCSP_SIGNATURE_INVALID = "nvidia.ocsp.signature_invalid"  # responder signature or delegation fails
    NVIDIA_OCSP_WRONG_CERTIFICATE = "nvidia.ocsp.wrong_certificate"  # the response is for another CertID
    NVIDIA_OCSP_STALE = "nvidia.ocsp.stale"  # outside thisUpdate..nextUpdate (+ policy grace) or over max age
    NVIDIA_OCSP_REVOKED = "nvidia.ocsp.revoked"  # a certificate is revoked (certificateHold unless allowed)
    NVIDIA_OCSP_UNKNOWN = "nvidia.ocsp.unknown"  # the responder does not know the certificate
    NVIDIA_OCSP_MISSING = "nvidia.ocsp.missing"  # policy requires OCSP (require_ocsp) and no response is available
    NVIDIA_OCSP_UNAVAILABLE = "nvidia.ocsp.unavailable"  # the OCSP service could not be reached / answered an error
    NVIDIA_TOPOLOGY_MISMATCH = "nvidia.topology.mismatch"  # protected PCIe: GPUs and NVSwitches do not agree
    NVIDIA_DEVICE_DUPLICATE = "nvidia.device.duplicate"  # one device (UEID) or device index twice in one attestation
    NVIDIA_POLICY_GPU_COUNT = "nvidia.policy.gpu_count"  # fewer or more GPUs than policy allows
    NVIDIA_POLICY_ARCHITECTURE = "nvidia.policy.architecture"  # architecture not allowed
    NVIDIA_POLICY_SKU = "nvidia.policy.sku"  # project / project SKU / chip SKU not allowed
    NVIDIA_POLICY_DRIVER_VERSION = "nvidia.policy.driver_version"  # driver older than the policy's minimum
    NVIDIA_POLICY_VBIOS_VERSION = "nvidia.policy.vbios_version"  # VBIOS older than the policy's minimum
    NVIDIA_POLICY_PPCIE_REQUIRED = "nvidia.policy.ppcie_required"  # protected PCIe (NVSwitch) evidence required
    NVIDIA_POLICY_CPU_REQUIRED = "nvidia.policy.cpu_required"  # GPU evidence without CPU evidence to bind it to


class Fault(StrEnum):
    """Whose fault a failure is, and so what helps: the one question a caller, the EAR and staff ask of a code."""

    MALFORMED = "malformed"  # the evidence (or the enclave key) does not parse: the attester sent garbage
    FAILED = "failed"  # it parses but is not genuine, bound, fresh or of the right kind
    COLLATERAL = "collateral"  # the vendor endorsements are malformed, not genuine, expired or missing
    POLICY = "policy"  # genuine, but the appraisal policy or the reference values do not accept it
    ENTITLEMENT = "entitlement"  # the licence does not cover it
    UNAVAILABLE = "unavailable"  # a service Keyward needs (a vendor, the database) cannot answer now: retry later
    INTERNAL = "internal"  # Keyward's own bug or misconfiguration
    REQUEST = "request"  # the API caller's request: unusable input, an unknown record, a clash with current state
    AUTH = "auth"  # no credential, an invalid one, or one that may not do this

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later unchanged."""
        return self is Fault.UNAVAILABLE


@dataclass(frozen=True, slots=True)
class Reason:
    """One failed check: which check (code), what it means, and expected vs actual where that makes sense.

    Its :attr:`fault` is the code's (:func:`error_class`); it is written into the JSON so that the API, the EAR and
    staff can read it, and recomputed when a stored reason is read back (reasons stored before faults have none).
    """

    code: Code
    message: str
    expected: str | None = None
    actual: str | None = None

    @property
    def fault(self) -> Fault:
        return self.code.fault

    def to_json(self) -> dict[str, str | None]:
        return {
            "code": self.code.value,
            "fault": self.fault.value,
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Reason:
        """A stored reason (``to_json``), with or without its fault."""
        expected, actual = doc.get("expected"), doc.get("actual")
        return cls(
            Code(doc["code"]),
            str(doc.get("message", "")),
            None if expected is None else str(expected),
            None if actual is None else str(actual),
        )


def fault_of(code: str) -> Fault:
    """The fault of a code as stored (a string); a code this version does not know is :attr:`Fault.INTERNAL`."""
    try:
        return Code(code).fault
    except ValueError:
        return Fault.INTERNAL


def with_fault(reason: Mapping[str, Any]) -> dict[str, Any]:
    """A stored reason's JSON with its ``fault`` (derived from the code where it was stored without one)."""
    return {**reason, "fault": reason.get("fault") or fault_of(str(reason.get("code"))).value}


class KeywardError(Exception):
    """Base of every error Keyward raises on purpose. Carries a stable :class:`Code`.

    The class is the code's (:data:`CODE_CLASS`), which fixes the fault and the HTTP status: constructing a code
    under another class raises TypeError. Raise a subclass (or :func:`error_for` where the code is a variable), never
    this base class itself; ``tests/unit/test_errors.py`` checks every raise site.
    """

    fault: ClassVar[Fault] = Fault.INTERNAL
    http_status: ClassVar[int] = 500

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        expected: object | None = None,
        actual: object | None = None,
    ) -> None:
        owner = error_class(code)
        if type(self) is not KeywardError and not isinstance(self, owner):
            raise TypeError(f"{code.value} is a {owner.__name__}, not a {type(self).__name__}")
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.expected = None if expected is None else _render(expected)
        self.actual = None if actual is None else _render(actual)

    @property
    def retryable(self) -> bool:
        return self.fault.retryable

    def to_reason(self) -> Reason:
        return Reason(self.code, self.message, self.expected, self.actual)


def _render(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


class EvidenceMalformed(KeywardError):
    """The evidence does not parse: wrong size, unknown version, a length field out of range."""

    fault = Fault.MALFORMED
    http_status = 400


class VerificationFailed(KeywardError):
    """The evidence parses but is not genuine or not bound as claimed (signature, chain, identity)."""

    fault = Fault.FAILED
    http_status = 403


class CollateralError(KeywardError):
    """The vendor collateral is malformed, not genuine, expired, or does not belong to this evidence."""

    fault = Fault.COLLATERAL
    http_status = 403


class PolicyRejected(KeywardError):
    """Genuine evidence the appraisal policy or the reference values do not accept. Appraisal returns these codes
    as a Verdict's reasons; only a missing or unusable reference value set is raised."""

    fault = Fault.POLICY
    http_status = 403


class NotEntitled(KeywardError):
    """The licence does not cover the request: unknown, inactive, outside its validity, or out of seats."""

    fault = Fault.ENTITLEMENT
    http_status = 403


class Unavailable(KeywardError):
    """A service Keyward depends on cannot answer right now (the database); the same request may succeed later."""

    fault = Fault.UNAVAILABLE
    http_status = 503


class CollateralUnavailable(Unavailable):
    """A vendor service (Intel PCS/PCCS, AMD KDS) did not deliver a document. Not a judgement of any collateral:
    :class:`verifier.collateral.fetchers.FetchError` carries the HTTP status and whether retrying helps."""


class InternalError(KeywardError):
    """Keyward's own fault: a bug, or a provider configuration it cannot work with (a model version with no key)."""

    fault = Fault.INTERNAL
    http_status = 500


class TrustStoreError(InternalError):
    """The pinned vendor roots are missing or differ from the manifest. Keyward refuses to start."""


class UsageError(KeywardError):
    """The caller's request is unusable (a missing file, a bad time string, an invalid policy file)."""

    fault = Fault.REQUEST
    http_status = 400


class RequestTooLarge(UsageError):
    """The request body is over :data:`verifier.limits.MAX_REQUEST_BODY_BYTES`."""

    http_status = 413


class RateLimited(UsageError):
    """A licence key is over one of its limits (requests per minute, stored bytes per hour); ``retry_after`` is
    how many seconds until its window ends (sent as ``Retry-After``)."""

    http_status = 429

    def __init__(self, code: Code, message: str, *, retry_after: int, actual: object | None = None) -> None:
        super().__init__(code, message, actual=actual)
        self.retry_after = retry_after


class NotFound(KeywardError):
    """The addressed (or referenced) record does not exist."""

    fault = Fault.REQUEST
    http_status = 404


class Conflict(KeywardError):
    """The request clashes with the current state (a duplicate name, a forbidden status change, a lease that is
    no longer renewable, an attestation a newer one for the same deployment superseded)."""

    fault = Fault.REQUEST
    http_status = 409


class AuthError(KeywardError):
    """No credential, or one that does not authenticate."""

    fault = Fault.AUTH
    http_status = 401


class Forbidden(KeywardError):
    """An authenticated credential of a kind that may not do this."""

    fault = Fault.AUTH
    http_status = 403


class EarError(KeywardError):
    """Base of the EAR (attestation-result token) errors; each subclass fixes its code, the message is for people."""

    default_code: ClassVar[Code] = Code.EAR_INVALID
    fault = Fault.FAILED
    http_status = 401

    def __init__(self, message: str) -> None:
        super().__init__(self.default_code, message)


class EarInvalid(EarError):
    """The token is malformed, not signed by a published key, uses a refused algorithm, or has bad claims."""

    default_code = Code.EAR_INVALID


class EarKeyUnknown(EarInvalid):
    """The token's ``kid`` is not in the JWKS (the relying party may refetch the JWKS once)."""

    default_code = Code.EAR_KEY_UNKNOWN


class EarExpired(EarInvalid):
    """The token's ``exp`` has passed (beyond the leeway)."""

    default_code = Code.EAR_EXPIRED


class EarSigningKeyInvalid(EarError):
    """The provider signing key is not an EC P-256 private key (configuration)."""

    default_code = Code.EAR_SIGNING_KEY_INVALID
    fault = Fault.INTERNAL
    http_status = 500


_C = Code
#: Every code under the one class that raises it, and so its fault and HTTP status. A new code goes here too.
_CODES_BY_CLASS: Final[Mapping[type[KeywardError], tuple[Code, ...]]] = {
    EvidenceMalformed: (
        _C.INTEL_QUOTE_ENCODING,
        _C.INTEL_QUOTE_TOO_LARGE,
        _C.INTEL_QUOTE_TRUNCATED,
        _C.INTEL_QUOTE_UNSUPPORTED_VERSION,
        _C.INTEL_QUOTE_UNSUPPORTED_KEY_TYPE,
        _C.INTEL_QUOTE_UNSUPPORTED_TEE_TYPE,
        _C.INTEL_QUOTE_VENDOR_MISMATCH,
        _C.INTEL_QUOTE_BODY_TYPE_INVALID,
        _C.INTEL_QUOTE_BODY_SIZE_INVALID,
        _C.INTEL_QUOTE_LENGTH_INVALID,
        _C.INTEL_QUOTE_RESERVED_NONZERO,
        _C.INTEL_QUOTE_CERT_TYPE_UNSUPPORTED,
        _C.INTEL_PCK_CHAIN_MALFORMED,
        _C.SNP_REPORT_ENCODING,
        _C.SNP_REPORT_TRUNCATED,
        _C.SNP_REPORT_TRAILING_DATA,
        _C.SNP_REPORT_UNSUPPORTED_VERSION,
        _C.SNP_REPORT_SIGNATURE_ALGO,
        _C.SNP_REPORT_RESERVED_NONZERO,
        _C.SNP_REPORT_SIGNING_KEY_INVALID,
        _C.SNP_REPORT_MASK_CHIP_KEY,
        _C.SNP_REPORT_CPUID_INVALID,
        _C.SNP_REPORT_AUTHOR_KEY_INCONSISTENT,
        _C.SNP_CERT_TABLE_MALFORMED,
        _C.SNP_SIGNATURE_MALFORMED,
        _C.KEYWRAP_JWK_INVALID,
        _C.KEYWRAP_JWK_WEAK,
        _C.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
        _C.ATTESTATION_EVIDENCE_MALFORMED,
        _C.AZURE_UVM_COSE_MALFORMED,
        _C.AZURE_UVM_ALGORITHM_UNSUPPORTED,
        _C.AZURE_UVM_CHAIN_MALFORMED,
        _C.NVIDIA_REPORT_ENCODING,
        _C.NVIDIA_REPORT_TOO_LARGE,
        _C.NVIDIA_REPORT_TRUNCATED,
        _C.NVIDIA_REPORT_UNSUPPORTED,
        _C.NVIDIA_REPORT_MALFORMED,
        _C.NVIDIA_REPORT_OPAQUE_MALFORMED,
        _C.NVIDIA_REPORT_SIGNATURE_MALFORMED,
        _C.NVIDIA_REPORT_TRAILING_DATA,
        _C.NVIDIA_CHAIN_MALFORMED,
        _C.NVIDIA_EVIDENCE_MALFORMED,
        _C.NVIDIA_RIM_MALFORMED,
        _C.NVIDIA_RIM_TOO_LARGE,
        _C.AZURE_EVIDENCE_MALFORMED,
        _C.AZURE_HCL_TOO_LARGE,
        _C.AZURE_HCL_TRUNCATED,
        _C.AZURE_HCL_SIGNATURE_INVALID,
        _C.AZURE_HCL_UNSUPPORTED_VERSION,
        _C.AZURE_HCL_REQUEST_TYPE_INVALID,
        _C.AZURE_HCL_RESERVED_NONZERO,
        _C.AZURE_HCL_REPORT_TYPE_MISMATCH,
        _C.AZURE_HCL_UNSUPPORTED_HASH_TYPE,
        _C.AZURE_HCL_HEADER_INCONSISTENT,
        _C.AZURE_HCL_PADDING_NONZERO,
        _C.AZURE_TD_REPORT_MALFORMED,
        _C.AZURE_CLAIMS_MALFORMED,
        _C.AZURE_CLAIMS_AK_MISSING,
        _C.AZURE_CLAIMS_AK_INVALID,
        _C.AZURE_TPM_TOO_LARGE,
        _C.AZURE_TPM_TRUNCATED,
        _C.AZURE_TPM_TRAILING_DATA,
        _C.AZURE_TPM_MAGIC_INVALID,
        _C.AZURE_TPM_TYPE_INVALID,
        _C.AZURE_TPM_MALFORMED,
        _C.AZURE_TPM_PCR_SELECTION_INVALID,
        _C.AZURE_TPM_SIGNATURE_MALFORMED,
        _C.AZURE_TPM_PCR_VALUES_MALFORMED,
        _C.AZURE_AK_CERT_MALFORMED,
    ),
    VerificationFailed: (
        _C.INTEL_QUOTE_SIGNATURE_INVALID,
        _C.INTEL_QUOTE_ATTESTATION_KEY_INVALID,
        _C.INTEL_PCK_CHAIN_UNTRUSTED,
        _C.INTEL_PCK_SUBJECT_INVALID,
        _C.INTEL_PCK_ISSUER_MISMATCH,
        _C.INTEL_PCK_SIGNATURE_INVALID,
        _C.INTEL_PCK_EXPIRED,
        _C.INTEL_PCK_NOT_YET_VALID,
        _C.INTEL_PCK_REVOKED,
        _C.INTEL_PCK_INTERMEDIATE_REVOKED,
        _C.INTEL_PCK_EXTENSIONS_INVALID,
        _C.INTEL_QE_REPORT_SIGNATURE_INVALID,
        _C.INTEL_QE_REPORT_AK_BINDING,
        _C.INTEL_QE_IDENTITY_MISMATCH,
        _C.INTEL_TDX_MODULE_MISMATCH,
        _C.INTEL_TCB_NOT_SUPPORTED,
        _C.SNP_CHAIN_MALFORMED,
        _C.SNP_CHAIN_UNTRUSTED,
        _C.SNP_CHAIN_SIGNATURE_INVALID,
        _C.SNP_CHAIN_PSS_PARAMETERS,
        _C.SNP_CHAIN_EXPIRED,
        _C.SNP_CHAIN_NOT_YET_VALID,
        _C.SNP_CHAIN_PRODUCT_MISMATCH,
        _C.SNP_CHAIN_REVOKED,
        _C.SNP_LEAF_MISSING,
        _C.SNP_LEAF_MALFORMED,
        _C.SNP_LEAF_KEY_INVALID,
        _C.SNP_LEAF_EXPIRED,
        _C.SNP_LEAF_NOT_YET_VALID,
        _C.SNP_LEAF_REVOKED,
        _C.SNP_LEAF_KEY_TYPE_MISMATCH,
        _C.SNP_LEAF_EXTENSIONS_INVALID,
        _C.SNP_LEAF_TCB_MISMATCH,
        _C.SNP_LEAF_HWID_MISMATCH,
        _C.SNP_SIGNATURE_INVALID,
        _C.ATTESTATION_BINDING_MISMATCH,
        _C.AZURE_UVM_CHAIN_UNTRUSTED,
        _C.AZURE_UVM_CHAIN_SIGNATURE_INVALID,
        _C.AZURE_UVM_EXPIRED,
        _C.AZURE_UVM_NOT_YET_VALID,
        _C.AZURE_UVM_ISSUER_MISMATCH,
        _C.AZURE_UVM_EKU_MISSING,
        _C.AZURE_UVM_FEED_MISMATCH,
        _C.AZURE_UVM_SIGNATURE_INVALID,
        _C.AZURE_UVM_PAYLOAD_INVALID,
        _C.NVIDIA_CHAIN_UNTRUSTED,
        _C.NVIDIA_CHAIN_EXPIRED,
        _C.NVIDIA_CHAIN_EXTENSIONS_INVALID,
        _C.NVIDIA_FWID_MISMATCH,
        _C.NVIDIA_REPORT_SIGNATURE_INVALID,
        _C.NVIDIA_NONCE_MISMATCH,
        _C.NVIDIA_MEASUREMENT_MISMATCH,
        _C.NVIDIA_TOPOLOGY_MISMATCH,
        _C.NVIDIA_DEVICE_DUPLICATE,
        _C.NVIDIA_OCSP_REVOKED,
        _C.NVIDIA_OCSP_UNKNOWN,
        _C.CHALLENGE_EXPIRED,
        _C.CHALLENGE_INVALID,
        _C.CHALLENGE_REPLAYED,
        _C.ATTESTATION_REQUEST_STALE,
        _C.AZURE_HCL_RUNTIME_CLAIMS_HASH_MISMATCH,
        _C.AZURE_HCL_TD_QUOTE_MISMATCH,
        _C.AZURE_TPM_QUOTE_SIGNATURE_INVALID,
        _C.AZURE_TPM_NONCE_MISMATCH,
        _C.AZURE_TPM_PCR_DIGEST_MISMATCH,
        _C.AZURE_CLAIMS_USER_DATA_MISMATCH,
        _C.AZURE_AK_CERT_KEY_MISMATCH,
        _C.AZURE_AK_CERT_UNTRUSTED,
        _C.AZURE_AK_CERT_SIGNATURE_INVALID,
        _C.AZURE_AK_CERT_EXPIRED,
        _C.AZURE_AK_CERT_NOT_YET_VALID,
    ),
    CollateralError: (
        _C.INTEL_COLLATERAL_MALFORMED,
        _C.INTEL_COLLATERAL_CRL_SIGNATURE_INVALID,
        _C.INTEL_COLLATERAL_CRL_WRONG_ISSUER,
        _C.INTEL_COLLATERAL_CRL_EXPIRED,
        _C.INTEL_COLLATERAL_CRL_NOT_YET_VALID,
        _C.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING,
        _C.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED,
        _C.INTEL_COLLATERAL_SIGNING_CERT_REVOKED,
        _C.INTEL_COLLATERAL_SIGNING_CERT_EXPIRED,
        _C.INTEL_COLLATERAL_TCB_INFO_SIGNATURE_INVALID,
        _C.INTEL_COLLATERAL_TCB_INFO_EXPIRED,
        _C.INTEL_COLLATERAL_TCB_INFO_NOT_YET_VALID,
        _C.INTEL_COLLATERAL_TCB_INFO_WRONG_TEE,
        _C.INTEL_COLLATERAL_TCB_INFO_UNSUPPORTED,
        _C.INTEL_COLLATERAL_FMSPC_MISMATCH,
        _C.INTEL_COLLATERAL_PCE_ID_MISMATCH,
        _C.INTEL_COLLATERAL_QE_IDENTITY_SIGNATURE_INVALID,
        _C.INTEL_COLLATERAL_QE_IDENTITY_EXPIRED,
        _C.INTEL_COLLATERAL_QE_IDENTITY_NOT_YET_VALID,
        _C.INTEL_COLLATERAL_QE_IDENTITY_WRONG_TEE,
        _C.INTEL_COLLATERAL_TCB_STATUS_UNRECOGNIZED,
        _C.INTEL_COLLATERAL_MISSING,
        _C.SNP_CRL_MALFORMED,
        _C.SNP_CRL_WRONG_ISSUER,
        _C.SNP_CRL_SIGNATURE_INVALID,
        _C.SNP_CRL_EXPIRED,
        _C.SNP_CRL_NOT_YET_VALID,
        _C.NVIDIA_RIM_UNSIGNED,
        _C.NVIDIA_RIM_SIGNATURE_INVALID,
        _C.NVIDIA_RIM_CHAIN_UNTRUSTED,
        _C.NVIDIA_RIM_CHAIN_EXPIRED,
        _C.NVIDIA_RIM_MISMATCH,
        _C.NVIDIA_RIM_INDEX_CONFLICT,
        _C.NVIDIA_OCSP_MALFORMED,
        _C.NVIDIA_OCSP_SIGNATURE_INVALID,
        _C.NVIDIA_OCSP_WRONG_CERTIFICATE,
        _C.NVIDIA_OCSP_STALE,
    ),
    PolicyRejected: (
        _C.INTEL_POLICY_SGX_DEBUG,
        _C.INTEL_POLICY_TD_DEBUG,
        _C.INTEL_POLICY_TD_RESERVED_ATTRIBUTES,
        _C.INTEL_POLICY_TD_SEPT_VE_DISABLE_OFF,
        _C.INTEL_POLICY_TD_MIGRATABLE,
        _C.INTEL_POLICY_MRSERVICETD_NONZERO,
        _C.INTEL_POLICY_TCB_STATUS_NOT_ACCEPTED,
        _C.INTEL_POLICY_ADVISORY_DENIED,
        _C.INTEL_POLICY_TCB_EVAL_NUMBER_TOO_LOW,
        _C.INTEL_POLICY_REPORT_DATA_MISMATCH,
        _C.INTEL_POLICY_MEASUREMENT_NOT_ALLOWED,
        _C.INTEL_POLICY_SGX_ISV_PROD_ID,
        _C.INTEL_POLICY_SGX_ISV_SVN_TOO_LOW,
        _C.SNP_CRL_MISSING,
        _C.SNP_POLICY_DEBUG,
        _C.SNP_POLICY_MIGRATE_MA,
        _C.SNP_POLICY_RESERVED_BITS,
        _C.SNP_POLICY_SMT,
        _C.SNP_POLICY_SINGLE_SOCKET,
        _C.SNP_POLICY_CXL,
        _C.SNP_POLICY_MEM_AES_256_XTS,
        _C.SNP_POLICY_RAPL_DIS,
        _C.SNP_POLICY_CIPHERTEXT_HIDING,
        _C.SNP_POLICY_VMPL,
        _C.SNP_POLICY_PLATFORM_INFO,
        _C.SNP_POLICY_TCB_TOO_LOW,
        _C.SNP_POLICY_FIRMWARE_TOO_LOW,
        _C.SNP_POLICY_GUEST_SVN_TOO_LOW,
        _C.SNP_POLICY_MEASUREMENT,
        _C.SNP_POLICY_HOST_DATA,
        _C.SNP_POLICY_ID_KEY_DIGEST,
        _C.SNP_POLICY_AUTHOR_KEY_DIGEST,
        _C.SNP_POLICY_FAMILY_ID,
        _C.SNP_POLICY_IMAGE_ID,
        _C.SNP_POLICY_REPORT_DATA,
        _C.SNP_POLICY_SIGNING_KEY,
        _C.SNP_POLICY_CSP_ID,
        _C.ATTESTATION_REFERENCE_VALUES_MISSING,
        _C.ATTESTATION_REFERENCE_VALUES_UNCONSTRAINED,
        _C.NVIDIA_FWID_MISSING,
        _C.NVIDIA_RIM_MISSING,
        _C.NVIDIA_OCSP_MISSING,
        _C.NVIDIA_POLICY_GPU_COUNT,
        _C.NVIDIA_POLICY_ARCHITECTURE,
        _C.NVIDIA_POLICY_SKU,
        _C.NVIDIA_POLICY_DRIVER_VERSION,
        _C.NVIDIA_POLICY_VBIOS_VERSION,
        _C.NVIDIA_POLICY_PPCIE_REQUIRED,
        _C.NVIDIA_POLICY_CPU_REQUIRED,
        _C.AZURE_POLICY_SECURE_BOOT,
        _C.AZURE_POLICY_TPM_DISABLED,
        _C.AZURE_POLICY_CONSOLE_ENABLED,
        _C.AZURE_POLICY_PCR_NOT_ALLOWED,
        _C.AZURE_POLICY_PCR_NOT_QUOTED,
        _C.AZURE_POLICY_NONCE_REQUIRED,
        _C.AZURE_POLICY_USER_DATA_REQUIRED,
        _C.AZURE_POLICY_AK_CERT_REQUIRED,
    ),
    NotEntitled: (
        _C.ENTITLEMENT_NOT_FOUND,
        _C.ENTITLEMENT_INACTIVE,
        _C.ENTITLEMENT_NOT_YET_VALID,
        _C.ENTITLEMENT_EXPIRED,
        _C.ENTITLEMENT_PLATFORM_NOT_ALLOWED,
        _C.ENTITLEMENT_VERSION_NOT_ALLOWED,
        _C.ENTITLEMENT_GPUS_EXCEEDED,
        _C.ENTITLEMENT_SEATS_EXHAUSTED,
        _C.ENTITLEMENT_CUSTOMER_SUSPENDED,
        _C.ENTITLEMENT_DEPLOYMENT_SUSPENDED,
    ),
    CollateralUnavailable: (
        _C.INTEL_COLLATERAL_UNAVAILABLE,
        _C.SNP_LEAF_UNAVAILABLE,
        _C.SNP_CRL_UNAVAILABLE,
        _C.NVIDIA_RIM_UNAVAILABLE,
        _C.NVIDIA_OCSP_UNAVAILABLE,
    ),
    Unavailable: (_C.SERVICE_UNAVAILABLE,),
    InternalError: (
        _C.KEYWRAP_UNWRAP_FAILED,
        _C.ATTESTATION_MODEL_KEY_MISSING,
        _C.INTERNAL_ERROR,
    ),
    TrustStoreError: (
        _C.TRUST_MANIFEST_INVALID,
        _C.TRUST_ROOT_MISMATCH,
        _C.TRUST_ROOT_UNPINNED,
        _C.TRUST_ROOT_MISSING,
    ),
    UsageError: (
        _C.POLICY_INVALID,
        _C.USAGE_INVALID,
        _C.REQUEST_INVALID,
        _C.BILLING_QUERY_INVALID,
        _C.BILLING_CURSOR_INVALID,
        _C.STAFF_USERNAME_INVALID,
        _C.STAFF_PASSWORD_WEAK,
    ),
    RequestTooLarge: (_C.REQUEST_TOO_LARGE,),
    RateLimited: (_C.REQUEST_RATE_LIMITED, _C.REQUEST_STORAGE_QUOTA),
    NotFound: (
        _C.ATTESTATION_NOT_FOUND,
        _C.RESOURCE_NOT_FOUND,
        _C.LEASE_NOT_FOUND,
        _C.MODEL_VERSION_NOT_FOUND,
    ),
    Conflict: (
        _C.LEASE_NOT_RENEWABLE,
        _C.RESOURCE_CONFLICT,
        _C.ATTESTATION_SUPERSEDED_BY_NEWER,
    ),
    AuthError: (
        _C.AUTH_MISSING,
        _C.AUTH_INVALID,
    ),
    Forbidden: (
        _C.AUTH_FORBIDDEN,
        _C.AUTH_CUSTOMER_SUSPENDED,
        _C.AUTH_CSRF_INVALID,
    ),
    EarInvalid: (_C.EAR_INVALID,),
    EarKeyUnknown: (_C.EAR_KEY_UNKNOWN,),
    EarExpired: (_C.EAR_EXPIRED,),
    EarSigningKeyInvalid: (_C.EAR_SIGNING_KEY_INVALID,),
}


def _by_code() -> dict[Code, type[KeywardError]]:
    table: dict[Code, type[KeywardError]] = {}
    for cls, codes in _CODES_BY_CLASS.items():
        for code in codes:
            if code in table:
                raise AssertionError(f"{code.value} is under both {table[code].__name__} and {cls.__name__}")
            table[code] = cls
    if missing := [c.value for c in Code if c not in table]:
        raise AssertionError(f"codes under no class: {', '.join(missing)}")
    return table


#: The class of each code: ``CODE_CLASS[code].fault`` and ``.http_status`` are the code's.
CODE_CLASS: Final[Mapping[Code, type[KeywardError]]] = MappingProxyType(_by_code())


def error_class(code: Code) -> type[KeywardError]:
    """The one class a code is raised under."""
    return CODE_CLASS[code]


def error_for(
    code: Code, message: str, *, expected: object | None = None, actual: object | None = None
) -> KeywardError:
    """The error for ``code``, of the code's class: for raise sites whose code is a variable."""
    cls = error_class(code)
    if issubclass(cls, EarError):  # one code per EAR class: it takes the message only
        return cls(message)
    return cls(code, message, expected=expected, actual=actual)
