"""An Intel TDX or SGX evidence item, parsed once: its quote, the collateral sent with it and the cache rows it is
verified with (:func:`intel_needs`); and its evaluation from those rows (:func:`evaluate_intel`).

The registry (:mod:`verifier.platforms.registry`) names these functions for ``intel-tdx`` and ``intel-sgx``, and
:data:`INTEL_CLI` for ``keyward verify`` (raw quote bytes, ``--collateral``). Pure: no I/O, no clock; the cached
documents, the files read, the policy, the roots and ``now`` are arguments.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, Final

from verifier import limits
from verifier.appraisal.intel import IntelPolicy, parse_intel_policy
from verifier.collateral.documents import (
    INTEL,
    CollateralCache,
    Documents,
    IntelKeys,
    Wanted,
    intel_collateral,
    intel_keys,
    supplied_collateral,
    text_digest,
)
from verifier.collateral.files import PCS_FILES, collateral_from_pcs_files
from verifier.errors import Code, EvidenceMalformed, KeywardError
from verifier.evidence.dcap import HEADER_SIZE, Quote, decode_quote_bytes, parse_quote
from verifier.platforms.cli_inputs import CliFamily, CliInput, InputDir, Inputs
from verifier.platforms.evaluation import (
    Evaluation,
    evaluate_intel_quote,
    evaluate_quote,
    quote_platform,
    rejected,
    unverified,
)
from verifier.platforms.item import EvidenceItem, Verifying, b64
from verifier.trust.intel_collateral import Collateral, parse_collateral_json


@dataclass(frozen=True, slots=True)
class ParsedQuote:
    """An Intel item decoded and parsed: the quote, or why it does not parse (the evaluation reports it); the
    collateral sent with it; the keys of the cache rows the quote names (None when its PCK chain cannot say)."""

    item: EvidenceItem
    quote: Quote | KeywardError
    supplied: Collateral | None
    keys: IntelKeys | None
    #: SHA-256 of the supplied collateral's exact text (set when parsed through a cache; the selection's cache key).
    supplied_digest: bytes | None = None


def parse_intel_item(item: EvidenceItem, cache: CollateralCache | None = None) -> ParsedQuote:
    """Decode and parse an Intel item. Raises ``attestation.evidence_malformed`` (base64) or the collateral's code
    for an item that cannot be evaluated at all; a quote that does not parse is kept as the item's ``problem``.
    With a ``cache``, the supplied collateral and the PCK chain's keys are parsed once per distinct content."""
    evidence = b64(item.evidence, "evidence")
    digest = text_digest(item.collateral) if item.collateral and cache is not None else None
    supplied = supplied_collateral(item.collateral, cache) if item.collateral else None
    try:
        quote = parse_quote(evidence)
    except KeywardError as e:
        return ParsedQuote(item, e, supplied, None, digest)
    try:
        keys: IntelKeys | None = intel_keys(quote, cache)
    except (KeywardError, ValueError):
        keys = None  # verification rejects the PCK chain with its own code
    return ParsedQuote(item, quote, supplied, keys, digest)


def intel_needs(parsed: ParsedQuote) -> tuple[Wanted, ...]:
    """TCB Info and QE Identity for the quote's TEE and FMSPC, the CRL of its PCK CA and the Root CA CRL; each
    ``optional`` when the item brings its own collateral (the decision verifies the newer copy)."""
    if parsed.keys is None:
        return ()
    own = parsed.supplied is not None
    return tuple(Wanted(INTEL, kind, key, optional=own) for kind, key in parsed.keys.rows())


def intel_policy(document: dict[str, Any]) -> IntelPolicy:
    """The Intel appraisal policy of a merged policy document (``policy.invalid`` when it is not one)."""
    return parse_intel_policy(json.dumps(document))


def evaluate_intel(parsed: ParsedQuote, documents: Documents, policy: IntelPolicy, env: Verifying) -> Evaluation:
    """Verify and appraise the quote with the newer of the supplied and the cached collateral. Raises
    ``attestation.evidence_type_unsupported`` for a quote that is not of its declared type."""
    quote = parsed.quote
    if isinstance(quote, KeywardError):
        return unverified(None, {}, quote, env.trust)
    platform = quote_platform(quote)
    if platform != parsed.item.type:
        raise EvidenceMalformed(
            Code.ATTESTATION_EVIDENCE_TYPE_UNSUPPORTED,
            "evidence is not of its declared type",
            expected=parsed.item.type,
            actual=platform,
        )
    cache = env.collateral_cache
    digest = parsed.supplied_digest
    if cache is not None and digest is None and parsed.item.collateral:
        digest = text_digest(parsed.item.collateral)
    collateral = intel_collateral(parsed.keys, documents, parsed.supplied, cache, digest)
    return evaluate_quote(quote, collateral, env.trust, env.now, policy, env.intel_cache)


# ----------------------------------------------------------------------------------------------------------
# keyward verify


def sniff_intel(data: bytes) -> bool:
    """A DCAP quote header (binary or hex): version 3, 4 or 5 and an ECDSA attestation key type (2 or 3)."""
    try:
        raw = decode_quote_bytes(data)
    except KeywardError:
        return False
    if len(raw) < HEADER_SIZE:
        return False
    version, key_type = struct.unpack_from("<HH", raw, 0)
    return version in (3, 4, 5) and key_type in (2, 3)


def evaluate_intel_cli(data: bytes, inputs: Inputs, policy: IntelPolicy, env: Verifying) -> Evaluation:
    """Parse, verify and appraise a quote with the collateral given (``--collateral``: QuoteCollateralV3 JSON or
    a directory of raw PCS responses). Never raises for bad evidence or collateral."""
    given = inputs.file_or_dir("collateral")
    try:
        if given is None:
            collateral = None
        elif isinstance(given, InputDir):
            collateral = collateral_from_pcs_files(given.files, given.path)
        else:
            collateral = parse_collateral_json(given.data)
    except KeywardError as e:
        return rejected(e.to_reason())
    return evaluate_intel_quote(data, collateral, env.trust, env.now, policy)


#: TDX and SGX on the command line. The fallback: evidence no family recognises is parsed as a quote, whose
#: parser says what is wrong with it.
INTEL_CLI: Final[CliFamily[IntelPolicy]] = CliFamily(
    family="intel",
    inputs=(
        CliInput(
            "--collateral",
            "collateral",
            "Intel: dcap-qvl QuoteCollateralV3 JSON, or a directory of raw Intel PCS responses.",
            kind="file_or_dir",
            dir_files=PCS_FILES,
            max_bytes=limits.MAX_COLLATERAL_ITEM_BYTES,
            read_error=Code.INTEL_COLLATERAL_MALFORMED,
        ),
    ),
    sniff=sniff_intel,
    policy=intel_policy,
    evaluate=evaluate_intel_cli,
    fallback=True,
)
