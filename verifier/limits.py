"""Named limits for every size that comes from an untrusted party.

Parsers check these *before* allocating or slicing, so a hostile length field can never make Keyward read
past a buffer or allocate without bound. Change a value here, never inline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

#: Largest DCAP quote buffer accepted (raw bytes). Real quotes are 4-8 KiB including padding.
MAX_QUOTE_BYTES: Final = 64 * 1024
#: Largest QE authentication data (u16 on the wire, so at most 65535; Intel QEs send 32 bytes).
MAX_QE_AUTH_DATA_BYTES: Final = 4096
#: Largest certification data blob (the PEM PCK chain is ~3.7 KiB).
MAX_CERT_DATA_BYTES: Final = 32 * 1024
#: Certificates in a PCK chain (leaf, Platform/Processor CA, root): exactly this many.
PCK_CHAIN_LENGTH: Final = 3
#: Largest collateral document (TCB Info, QE Identity, CRL, issuer chain) accepted.
MAX_COLLATERAL_ITEM_BYTES: Final = 512 * 1024
#: Most TCB levels in one TCB Info / QE Identity / module identity (Intel serves ~10-30).
MAX_TCB_LEVELS: Final = 256
#: Most TDX module identities in one TCB Info.
MAX_TDX_MODULE_IDENTITIES: Final = 64
#: Most advisory IDs on one TCB level.
MAX_ADVISORY_IDS: Final = 512
#: Certificates accepted in a collateral issuer chain (signer + root).
MAX_ISSUER_CHAIN_CERTS: Final = 4
#: Entries kept in an in-process verification cache before least-recently-used eviction.
VERIFICATION_CACHE_ENTRIES: Final = 4096
#: Entries in each map of the in-process collateral cache (parsed supplied collateral is ~10-20 KB an entry, and
#: a worker sees a handful of platforms and collateral versions at a time).
COLLATERAL_CACHE_ENTRIES: Final = 256
#: Vendor-collateral rows a worker keeps as read from the database (verifier/worker/collateral_rows.py): a few KB
#: each (RIMs up to MAX_NVIDIA_RIM_BYTES); a decision needs 2-10, one per chip for AMD VCEKs.
COLLATERAL_ROWS_CACHED: Final = 1024
#: Hex text evidence: characters accepted (twice the binary limit plus a little whitespace).
MAX_HEX_EVIDENCE_CHARS: Final = 2 * MAX_QUOTE_BYTES + 64

# -- Enclave keys (keywrap/enclave.py) ----------------------------------------------------------------------------
#: Largest RSA enclave key modulus accepted (bits). The SDK makes RSA-3072; 4096 is the other common size. Larger
#: keys only cost time in the worker, and beyond 16384 bits OpenSSL refuses to encrypt to them at all.
MAX_ENCLAVE_RSA_BITS: Final = 4096
#: Members in an enclave JWK (a public RSA/EC JWK has 3-4, plus optional kid/alg/use/key_ops).
MAX_JWK_MEMBERS: Final = 16
#: Characters in one JWK member name or value, checked before any is decoded (base64url of a 4096-bit modulus is
#: 683 characters; EC P-384 coordinates are 64).
MAX_JWK_MEMBER_CHARS: Final = 1024

# -- Request bodies (api/enclave.py, app.py) -------------------------------------------------------------------
# Field limits are characters of the JSON strings; sizes of the real vectors (tests/vectors) are given for scale.
#: Whole HTTP request body (bytes), refused with 413 ``request.too_large`` before it is read. A real TDX quote plus
#: its collateral JSON is ~30 KiB in the body; eight such items fit more than four times over.
MAX_REQUEST_BODY_BYTES: Final = 1024 * 1024
#: Evidence items in one attestation request (one per TEE/device of the workload): CPU evidence and up to 16
#: NVIDIA devices (an HGX board: 8 GPUs and 4 NVSwitches; a GPU item is ~12 KiB of JSON).
MAX_EVIDENCE_ITEMS: Final = 24
#: Intel collateral JSON text per item (dcap-qvl QuoteCollateralV3; real ones are 14-24 KiB).
MAX_COLLATERAL_JSON_CHARS: Final = 256 * 1024
#: base64 DER of a VCEK/VLEK (real ones are ~1.3 KiB, ~1.8 KiB as base64).
MAX_VCEK_B64_CHARS: Final = 16 * 1024
#: base64 extended-report certificate table (VCEK + ASK + ARK is ~4.5 KiB, ~6 KiB as base64).
MAX_CERT_TABLE_B64_CHARS: Final = 64 * 1024
#: base64 DER of an AMD KDS CRL (an ARK-signed CRL is ~1-2 KiB).
MAX_CRL_B64_CHARS: Final = 64 * 1024
#: base64 of confidential-ACI runtime data, the JSON ``{nonce, keys}`` (one or two JWKs, ~1-3 KiB).
MAX_RUNTIME_DATA_B64_CHARS: Final = 16 * 1024
#: Base64 characters of an Azure UVM endorsement (COSE_Sign1 with its x5chain; the real one is 10,864 bytes,
#: ~14.5 Ki characters).
MAX_UVM_ENDORSEMENT_B64_CHARS: Final = 64 * 1024
#: base64url challenge nonce (Keyward's are 43 characters).
MAX_NONCE_CHARS: Final = 256
#: Model and deployment names (as in the admin API).
MAX_NAME_CHARS: Final = 200
#: Model version label (as in the admin API).
MAX_VERSION_CHARS: Final = 64
#: A confidential ACI CCE policy uploaded on the dashboard (rego text or its base64; real ones are a few KiB to
#: tens of KiB: every container's layers and environment are listed).
MAX_CCE_POLICY_BYTES: Final = 256 * 1024

# -- Admin input (api/admin_schemas.py, catalog/service.py, entitlement/licensing.py) -------------------------------
# Staff input is bounded like enclave input: every value must be one both databases store (PostgreSQL and the
# embedded profile's SQLite) and the API can render back.
#: Nesting of a free-form admin JSON document (a policy's ``document``, a reference value set's ``values``): the
#: document itself is level 1, each object or array inside it one more. Real ones nest 3 deep
#: (``{"min_tcb": {"milan": {"snp": 22}}}``); the response serializer gives up near 255.
MAX_ADMIN_DOCUMENT_DEPTH: Final = 16
#: A free-form admin JSON document, as compact UTF-8 JSON (room for two CCE policies of MAX_CCE_POLICY_BYTES).
MAX_ADMIN_DOCUMENT_BYTES: Final = 2 * MAX_CCE_POLICY_BYTES
#: Concurrent deployments one entitlement may hold (a product bound, far below PostgreSQL's INTEGER, 2^31 - 1).
MAX_SEATS: Final = 100_000
#: GPUs one deployment of an entitlement may attest (``max_gpus``; 0 is CPU only).
MAX_ENTITLEMENT_GPUS: Final = 1024
#: Versions one entitlement may list in ``allowed_versions`` (empty: every version).
MAX_ALLOWED_VERSIONS: Final = 50
#: The instants an admin timestamp (a validity date, a time filter) may name, after normalising to UTC: each is
#: one both databases store and date arithmetic on it (a lease's expiry, a day bucket) cannot overflow; nothing
#: Keyward records predates the epoch. Python's own range (years 1-9999) is narrower than PostgreSQL's.
EARLIEST_TIMESTAMP: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP: Final = datetime(9999, 1, 1, tzinfo=UTC)

# -- NVIDIA GPU / NVSwitch evidence (evidence/nvidia.py; nvidia-gpu.md §1-§3) ----------------------------------
#: Largest GPU/NVSwitch attestation report (raw bytes): NVML's ``attestationReport`` buffer is 0x2000 bytes. Real
#: reports are 4049-4274 bytes (Hopper), 4140 (Blackwell), 2168-2172 (NVSwitch).
MAX_NVIDIA_REPORT_BYTES: Final = 0x2000
#: Hex text of a report: twice the binary limit plus a little whitespace.
MAX_NVIDIA_REPORT_HEX_CHARS: Final = 2 * MAX_NVIDIA_REPORT_BYTES + 64
#: Device certificate chain PEM text (NVML's ``attestationCertChain`` buffer is 0x1000 + 0x1400; real chains are
#: ~4.8-4.9 KiB).
MAX_NVIDIA_CHAIN_PEM_BYTES: Final = 16 * 1024
#: Certificates in a device chain: NVIDIA's chains have exactly 5 (leaf ... root); the verifier checks exactness.
MAX_NVIDIA_CHAIN_CERTS: Final = 5
#: DER size of one device-chain certificate (real ones are 0.6-1.1 KiB).
MAX_NVIDIA_CERT_DER_BYTES: Final = 4096
#: Serialized-evidence JSON text (one item is ~12 KiB; an 8-GPU list ~100 KiB).
MAX_NVIDIA_EVIDENCE_JSON_BYTES: Final = 512 * 1024
#: Devices in one serialized-evidence list (8 GPUs, or 4 NVSwitches, per HGX board; room for both at once).
MAX_NVIDIA_EVIDENCE_ITEMS: Final = 16
#: A RIM (signed SWID XML): real ones are 18-26 KiB.
MAX_NVIDIA_RIM_BYTES: Final = 256 * 1024
#: Element depth of a RIM document (real ones nest 4 deep); deeper XML is refused before any use.
MAX_NVIDIA_RIM_DEPTH: Final = 16
#: Measurement entries in one RIM (real ones: 64 GPU, 31 NVSwitch) and alternatives per entry (real: up to 4).
MAX_NVIDIA_RIM_MEASUREMENTS: Final = 256
MAX_NVIDIA_RIM_ALTERNATIVES: Final = 16
#: Certificates embedded in a RIM's KeyInfo (real: 4, L4 signer .. root).
MAX_NVIDIA_RIM_CERTS: Final = 8
#: A DER OCSPResponse (real ones are ~1 KiB).
MAX_OCSP_RESPONSE_BYTES: Final = 16 * 1024
#: Base64 characters of an evidence item's NVIDIA device chain (the PEM text, base64).
MAX_NVIDIA_CHAIN_B64_CHARS: Final = (MAX_NVIDIA_CHAIN_PEM_BYTES + 2) // 3 * 4
#: RIMs and OCSP responses an NVIDIA evidence item may carry (its driver and VBIOS RIMs; the OCSP answers for its
#: device chain and both RIM signing chains: 3 + 3 + 3), and the base64 characters of each.
MAX_NVIDIA_ITEM_RIMS: Final = 4
MAX_NVIDIA_ITEM_OCSP: Final = 12
MAX_NVIDIA_RIM_B64_CHARS: Final = (MAX_NVIDIA_RIM_BYTES + 2) // 3 * 4
MAX_OCSP_RESPONSE_B64_CHARS: Final = (MAX_OCSP_RESPONSE_BYTES + 2) // 3 * 4

# -- Azure confidential VMs (evidence/azure_hcl.py, azure_cvm.py, tpm.py; azure-cvm.md §9 step 1) ---------------
#: HCL report (vTPM NV 0x01400001): real ones are the NV size, 2600 bytes (2048 in the 2023 format).
MAX_AZURE_HCL_BYTES: Final = 8192
#: Runtime claims inside it: real ones are 583-1202 bytes.
MAX_AZURE_CLAIMS_BYTES: Final = 4096
#: TPMS_ATTEST of a quote: real ones are 113 + nonce bytes (116-161).
MAX_TPM_ATTEST_BYTES: Final = 1024
#: An AK certificate or its NV 0x01C101D0 image (4096 bytes: DER + zero padding).
MAX_AZURE_AK_CERT_BYTES: Final = 4096
#: AK intermediates carried in the evidence (the 2026 hierarchy has two).
MAX_AZURE_AK_INTERMEDIATES: Final = 4
#: The az-snp-vtpm / az-tdx-vtpm evidence JSON text (real ones are 8-20 KiB; the most with a TD quote, an AK
#: certificate NV image and its two intermediates).
MAX_AZURE_EVIDENCE_JSON_BYTES: Final = 96 * 1024
