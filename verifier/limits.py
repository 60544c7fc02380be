"""Named limits for every size that comes from an untrusted party.

Parsers check these *before* allocating or slicing, so a hostile length field can never make Keyward read
past a buffer or allocate without bound. Change a value here, never inline.
"""

from __future__ import annotations

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
#: Hex text evidence: characters accepted (twice the binary limit plus a little whitespace).
MAX_HEX_EVIDENCE_CHARS: Final = 2 * MAX_QUOTE_BYTES + 64
