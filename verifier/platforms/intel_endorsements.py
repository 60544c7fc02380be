"""Intel DCAP endorsements (intel-dcap.md §4 steps 2-5): the PCK chain, the CRLs and the signed collateral.

Everything here is a pure function of its bytes and the trust store: no time, no I/O. Validity windows are
*returned* (as :class:`~verifier.trust.chains.Window`) for the caller to check against ``now`` on every call,
which is what makes the results safe to memoise by content hash in :class:`IntelVerificationCache`.
:mod:`verifier.platforms.intel_dcap` runs the whole algorithm on top of these.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from verifier import limits
from verifier.errors import Code, CollateralError, EvidenceMalformed, KeywardError, VerificationFailed
from verifier.platforms.intel_tcb import sgx_matching_levels
from verifier.trust.chains import (
    ContentCache,
    Window,
    cert_window,
    crl_signed_by,
    load_der_certificate,
    signature_verifies,
    verify_p256_raw,
)
from verifier.trust.der import (
    OID_CRL_NUMBER,
    SignedView,
    authority_key_id,
    certificate_view,
    common_name,
    crl_view,
    is_ca,
    subject_key_id,
)
from verifier.trust.intel_collateral import Collateral, pem_certificates
from verifier.trust.intel_pck import SGX_EXTENSION_OID_DER, PckExtensions, parse_sgx_extension_value
from verifier.trust.intel_tcb_info import QeIdentity, TcbInfo, parse_qe_identity, parse_tcb_info
from verifier.trust.store import INTEL_SGX_ROOT, TrustStore

_PCK_LEAF_CN_SUFFIX: Final = "SGX PCK Certificate"
_PLATFORM_CA_CN_SUFFIX: Final = "SGX PCK Platform CA"
_PROCESSOR_CA_CN_SUFFIX: Final = "SGX PCK Processor CA"
_TCB_SIGNING_CN_PART: Final = "SGX TCB Signing"


@dataclass(frozen=True, slots=True)
class CollateralSummary:
    """Which collateral was used and its validity, for the result and the audit trail."""

    tcb_info_issue_date: datetime
    tcb_info_next_update: datetime
    qe_identity_issue_date: datetime
    qe_identity_next_update: datetime
    root_ca_crl_this_update: datetime
    root_ca_crl_next_update: datetime
    pck_crl_this_update: datetime
    pck_crl_next_update: datetime
    tcb_info_eval_number: int
    qe_identity_eval_number: int
    earliest_expiry: datetime
    latest_issue: datetime
    fmspc: str
    tcb_info_digest: str

    @property
    def tcb_eval_number(self) -> int:
        """Intel reports the minimum of the two evaluation data numbers (intel-dcap.md §5)."""
        return min(self.tcb_info_eval_number, self.qe_identity_eval_number)


# ----------------------------------------------------------------------------------------------------------
# Cached, time-independent results


@dataclass(frozen=True, slots=True)
class PckChain:
    leaf: x509.Certificate
    intermediate: x509.Certificate
    intermediate_view: SignedView
    leaf_key: ec.EllipticCurvePublicKey
    extensions: PckExtensions
    platform_ca: bool
    windows: tuple[Window, ...]


@dataclass(frozen=True, slots=True)
class SignedCollateral:
    tcb_info: TcbInfo
    qe_identity: QeIdentity
    root_crl: x509.CertificateRevocationList
    windows: tuple[Window, ...]  # root CRL, TCB signer, TCB Info, QE signer, QE Identity
    tcb_info_digest: str


@dataclass(frozen=True, slots=True)
class Binding:
    """Chain x collateral: revocation checked; every validity window in step order; the collateral summary."""

    pck_crl: x509.CertificateRevocationList
    windows: tuple[Window, ...]
    summary: CollateralSummary
    sgx_levels: tuple[int, ...]  # TCB Info levels this PCK meets (intel_tcb.sgx_matching_levels)


class IntelVerificationCache:
    """Content-hash memo of steps 2-5 (see module docstring). Safe to share across threads."""

    def __init__(self, max_entries: int = limits.VERIFICATION_CACHE_ENTRIES) -> None:
        self.chains: ContentCache[PckChain] = ContentCache(max_entries)
        self.collateral: ContentCache[SignedCollateral] = ContentCache(max_entries)
        self.bindings: ContentCache[Binding] = ContentCache(max_entries)
        #: Parsed attestation keys by their raw bytes (parsing is pure; every quote signature is still checked).
        self.keys: ContentCache[ec.EllipticCurvePublicKey] = ContentCache(max_entries)


# ----------------------------------------------------------------------------------------------------------
# Step 2: the PCK chain


def _pinned_root(trust: TrustStore) -> tuple[x509.Certificate, SignedView]:
    root = trust.root(INTEL_SGX_ROOT)
    return root.certificate, _pinned_view(root.der)


@lru_cache(maxsize=8)
def _pinned_view(der: bytes) -> SignedView:
    """Raw parts of a pinned root (a handful per process: the genuine root and test roots)."""
    return certificate_view(der)


def _check_pinned(cert_der: bytes, trust: TrustStore, code: Code, what: str, error: type[KeywardError]) -> None:
    pinned = trust.root(INTEL_SGX_ROOT).der
    if cert_der != pinned:
        raise error(
            code,
            f"{what} root is not the pinned Intel SGX Root CA",
            expected=hashlib.sha256(pinned).hexdigest(),
            actual=hashlib.sha256(cert_der).hexdigest(),
        )


def _verify_pck_chain(chain_pem: bytes, trust: TrustStore) -> PckChain:
    try:
        ders = pem_certificates(chain_pem, what="PCK certificate chain")
    except CollateralError as e:
        raise EvidenceMalformed(Code.INTEL_PCK_CHAIN_MALFORMED, e.message) from e
    if len(ders) != limits.PCK_CHAIN_LENGTH:
        raise EvidenceMalformed(
            Code.INTEL_PCK_CHAIN_MALFORMED,
            "PCK chain must be leaf, intermediate and root",
            expected=limits.PCK_CHAIN_LENGTH,
            actual=len(ders),
        )
    # 2a. The root is byte-equal to the pinned Intel SGX Root CA (QVL compares it too); it is not parsed again.
    _check_pinned(ders[2], trust, Code.INTEL_PCK_CHAIN_UNTRUSTED, "PCK chain", VerificationFailed)
    root, root_view = _pinned_root(trust)
    leaf, inter = (
        load_der_certificate(d, Code.INTEL_PCK_CHAIN_MALFORMED, "PCK chain certificate", EvidenceMalformed)
        for d in ders[:2]
    )
    leaf_view, inter_view = certificate_view(ders[0]), certificate_view(ders[1])
    # 2b. Names: leaf "... SGX PCK Certificate", intermediate "... SGX PCK Platform CA" / "Processor CA".
    inter_cn = common_name(inter_view.subject)
    platform_ca = inter_cn.endswith(_PLATFORM_CA_CN_SUFFIX)
    if not (platform_ca or inter_cn.endswith(_PROCESSOR_CA_CN_SUFFIX)) or not is_ca(inter_view):
        raise VerificationFailed(
            Code.INTEL_PCK_SUBJECT_INVALID,
            "intermediate is not an SGX PCK Platform/Processor CA",
            expected="CN=Intel SGX PCK Platform CA | Processor CA (CA=true)",
            actual=inter_cn,
        )
    leaf_cn = common_name(leaf_view.subject)
    if not leaf_cn.endswith(_PCK_LEAF_CN_SUFFIX) or is_ca(leaf_view):
        raise VerificationFailed(
            Code.INTEL_PCK_SUBJECT_INVALID,
            "leaf is not an SGX PCK certificate",
            expected="CN=Intel SGX PCK Certificate (CA=false)",
            actual=leaf_cn,
        )
    # 2c. Links: intermediate issued by the root, leaf issued by the intermediate (names and ECDSA-SHA256).
    links = ((inter, inter_view, root, root_view, "PCK intermediate"), (leaf, leaf_view, inter, inter_view, "PCK leaf"))
    for cert, view, issuer, issuer_view, what in links:
        if view.issuer != issuer_view.subject:
            raise VerificationFailed(
                Code.INTEL_PCK_ISSUER_MISMATCH,
                f"{what} issuer name does not match its issuer",
                expected=issuer.subject.rfc4514_string(),
                actual=cert.issuer.rfc4514_string(),
            )
        if not signature_verifies(cert, issuer, view.tbs):
            raise VerificationFailed(
                Code.INTEL_PCK_SIGNATURE_INVALID, f"{what} signature does not verify under its issuer"
            )
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise EvidenceMalformed(Code.INTEL_PCK_CHAIN_MALFORMED, "PCK leaf key is not P-256")
    windows = tuple(
        cert_window(c, what, Code.INTEL_PCK_EXPIRED, Code.INTEL_PCK_NOT_YET_VALID, VerificationFailed)
        for c, what in ((root, "Intel SGX Root CA"), (inter, "PCK intermediate CA"), (leaf, "PCK certificate"))
    )
    sgx = leaf_view.extension(SGX_EXTENSION_OID_DER)
    if sgx is None:
        raise VerificationFailed(Code.INTEL_PCK_EXTENSIONS_INVALID, "PCK SGX extension: missing")
    extensions = parse_sgx_extension_value(sgx, platform_ca=platform_ca)
    return PckChain(leaf, inter, inter_view, key, extensions, platform_ca, windows)


# ----------------------------------------------------------------------------------------------------------
# Steps 3-5: CRLs and signed collateral


def _load_crl(der: bytes, what: str) -> tuple[x509.CertificateRevocationList, SignedView, Window]:
    """Load a DER CRL that has CRL Number, AKI and nextUpdate; return it, its raw parts and its validity window."""
    try:
        crl = x509.load_der_x509_crl(der)
        view = crl_view(der)
    except ValueError as e:
        raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, f"{what} is not a valid DER CRL") from e
    if OID_CRL_NUMBER not in view.extensions or authority_key_id(view) is None:
        raise CollateralError(
            Code.INTEL_COLLATERAL_CRL_EXTENSIONS_MISSING, f"{what} lacks CRL Number or Authority Key Identifier"
        )
    next_update = crl.next_update_utc
    if next_update is None:
        raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, f"{what} has no nextUpdate")
    window = Window(
        what,
        crl.last_update_utc,
        next_update,
        Code.INTEL_COLLATERAL_CRL_EXPIRED,
        Code.INTEL_COLLATERAL_CRL_NOT_YET_VALID,
        CollateralError,
    )
    return crl, view, window


def _check_crl_issuer(
    crl: x509.CertificateRevocationList,
    view: SignedView,
    issuer: x509.Certificate,
    issuer_view: SignedView,
    what: str,
) -> None:
    """The CRL names ``issuer``, its AKI is the issuer's SKI (automata PR #23), and ``issuer`` signed it."""
    if view.issuer != issuer_view.subject:
        raise CollateralError(
            Code.INTEL_COLLATERAL_CRL_WRONG_ISSUER,
            f"{what} is not issued by the expected CA",
            expected=issuer.subject.rfc4514_string(),
            actual=crl.issuer.rfc4514_string(),
        )
    aki, ski = authority_key_id(view), subject_key_id(issuer_view)
    if aki is not None and ski is not None and aki != ski:
        raise CollateralError(
            Code.INTEL_COLLATERAL_CRL_WRONG_ISSUER,
            f"{what} AKI is not the issuer's key id",
            expected=ski.hex(),
            actual=aki.hex(),
        )
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not crl_signed_by(crl, key, view.tbs):
        raise CollateralError(Code.INTEL_COLLATERAL_CRL_SIGNATURE_INVALID, f"{what} signature does not verify")


def _verify_signing_chain(
    chain: tuple[bytes, ...], root_crl: x509.CertificateRevocationList, trust: TrustStore, what: str
) -> tuple[ec.EllipticCurvePublicKey, Window]:
    """Steps 4/5 chain: [TCB Signing, Root]; root pinned; signer issued by it and not revoked."""
    code = Code.INTEL_COLLATERAL_SIGNING_CHAIN_UNTRUSTED
    if not 2 <= len(chain) <= limits.MAX_ISSUER_CHAIN_CERTS:
        raise CollateralError(code, f"{what} issuer chain must be [signer, root]", expected=2, actual=len(chain))
    _check_pinned(chain[-1], trust, code, f"{what} issuer chain", CollateralError)
    signer = load_der_certificate(
        chain[0], Code.INTEL_COLLATERAL_MALFORMED, f"{what} signing certificate", CollateralError
    )
    view = certificate_view(chain[0])
    root, root_view = _pinned_root(trust)
    if (
        _TCB_SIGNING_CN_PART not in common_name(view.subject)
        or view.issuer != root_view.subject
        or not signature_verifies(signer, root, view.tbs)
    ):
        raise CollateralError(
            code,
            f"{what} signer is not an SGX TCB Signing certificate issued by the root",
            actual=signer.subject.rfc4514_string(),
        )
    if root_crl.get_revoked_certificate_by_serial_number(signer.serial_number) is not None:
        raise CollateralError(
            Code.INTEL_COLLATERAL_SIGNING_CERT_REVOKED,
            f"{what} signing certificate is revoked",
            actual=format(signer.serial_number, "x"),
        )
    key = signer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CollateralError(code, f"{what} signing key is not ECDSA")
    window = cert_window(
        signer,
        f"{what} signing certificate",
        Code.INTEL_COLLATERAL_SIGNING_CERT_EXPIRED,
        Code.INTEL_COLLATERAL_SIGNING_CERT_EXPIRED,
        CollateralError,
    )
    return key, window


def _verify_signed_collateral(c: Collateral, trust: TrustStore) -> SignedCollateral:
    root, root_view = _pinned_root(trust)
    # 3a. Root CA CRL: issued and signed by the pinned root, with CRL Number and AKI.
    root_crl, root_crl_view, root_crl_window = _load_crl(c.root_ca_crl, "Root CA CRL")
    _check_crl_issuer(root_crl, root_crl_view, root, root_view, "Root CA CRL")
    # 4. TCB Info: signing chain, signature over the exact signed bytes, then parse.
    tcb_key, tcb_signer_window = _verify_signing_chain(c.tcb_info_issuer_chain, root_crl, trust, "TCB Info")
    if not verify_p256_raw(tcb_key, c.tcb_info_signature, c.tcb_info_raw):
        raise CollateralError(Code.INTEL_COLLATERAL_TCB_INFO_SIGNATURE_INVALID, "TCB Info signature does not verify")
    tcb_info = parse_tcb_info(c.tcb_info_raw)
    # 5. QE Identity: same chain rules.
    if c.qe_identity_issuer_chain == c.tcb_info_issuer_chain:  # the usual case: one TCB Signing cert for both
        qe_key = tcb_key
        qe_signer_window = replace(tcb_signer_window, what="QE Identity signing certificate")
    else:
        qe_key, qe_signer_window = _verify_signing_chain(c.qe_identity_issuer_chain, root_crl, trust, "QE Identity")
    if not verify_p256_raw(qe_key, c.qe_identity_signature, c.qe_identity_raw):
        raise CollateralError(
            Code.INTEL_COLLATERAL_QE_IDENTITY_SIGNATURE_INVALID, "QE Identity signature does not verify"
        )
    qe_identity = parse_qe_identity(c.qe_identity_raw)
    windows = (
        root_crl_window,
        tcb_signer_window,
        Window(
            "TCB Info",
            tcb_info.issue_date,
            tcb_info.next_update,
            Code.INTEL_COLLATERAL_TCB_INFO_EXPIRED,
            Code.INTEL_COLLATERAL_TCB_INFO_NOT_YET_VALID,
            CollateralError,
        ),
        qe_signer_window,
        Window(
            "QE Identity",
            qe_identity.issue_date,
            qe_identity.next_update,
            Code.INTEL_COLLATERAL_QE_IDENTITY_EXPIRED,
            Code.INTEL_COLLATERAL_QE_IDENTITY_NOT_YET_VALID,
            CollateralError,
        ),
    )
    return SignedCollateral(tcb_info, qe_identity, root_crl, windows, hashlib.sha256(c.tcb_info_raw).hexdigest())


def _verify_binding(chain: PckChain, c: Collateral, signed: SignedCollateral) -> Binding:
    # 3b. The intermediate is not on the Root CA CRL.
    if signed.root_crl.get_revoked_certificate_by_serial_number(chain.intermediate.serial_number) is not None:
        raise VerificationFailed(
            Code.INTEL_PCK_INTERMEDIATE_REVOKED,
            "PCK intermediate CA is revoked",
            actual=format(chain.intermediate.serial_number, "x"),
        )
    # 3c. PCK CRL: issued and signed by the PCK's own issuer; the PCK is not on it.
    pck_crl, pck_crl_view, window = _load_crl(c.pck_crl, "PCK CRL")
    _check_crl_issuer(pck_crl, pck_crl_view, chain.intermediate, chain.intermediate_view, "PCK CRL")
    if pck_crl.get_revoked_certificate_by_serial_number(chain.leaf.serial_number) is not None:
        raise VerificationFailed(
            Code.INTEL_PCK_REVOKED, "PCK certificate is revoked", actual=format(chain.leaf.serial_number, "x")
        )
    tcb_info, qe_identity = signed.tcb_info, signed.qe_identity
    # Step order: PCK chain, Root CA CRL, PCK CRL, TCB signer, TCB Info, QE signer, QE Identity.
    windows = (*chain.windows, signed.windows[0], window, *signed.windows[1:])
    root_crl_w = signed.windows[0]
    summary = CollateralSummary(
        tcb_info_issue_date=tcb_info.issue_date,
        tcb_info_next_update=tcb_info.next_update,
        qe_identity_issue_date=qe_identity.issue_date,
        qe_identity_next_update=qe_identity.next_update,
        root_ca_crl_this_update=root_crl_w.not_before,
        root_ca_crl_next_update=root_crl_w.not_after,
        pck_crl_this_update=window.not_before,
        pck_crl_next_update=window.not_after,
        tcb_info_eval_number=tcb_info.eval_number,
        qe_identity_eval_number=qe_identity.eval_number,
        earliest_expiry=min(w.not_after for w in windows),
        latest_issue=max(w.not_before for w in windows),
        fmspc=tcb_info.fmspc.hex(),
        tcb_info_digest=signed.tcb_info_digest,
    )
    sgx_levels = sgx_matching_levels(tcb_info, chain.extensions.tcb_components, chain.extensions.pcesvn)
    return Binding(pck_crl, windows, summary, sgx_levels)


# ----------------------------------------------------------------------------------------------------------
# Public entry points: library parsing errors become our codes where they arise
#
# cryptography parses names, extensions and versions lazily, so a corrupted certificate or CRL can raise
# ValueError, TypeError or x509.InvalidVersion from any attribute access, not only from loading.
_LIBRARY_ERRORS = (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension, UnsupportedAlgorithm)


def verify_pck_chain(chain_pem: bytes, trust: TrustStore) -> PckChain:
    """Step 2: the PCK chain from the quote, to the pinned root (time-independent part)."""
    try:
        return _verify_pck_chain(chain_pem, trust)
    except _LIBRARY_ERRORS as e:
        raise EvidenceMalformed(Code.INTEL_PCK_CHAIN_MALFORMED, f"PCK chain does not parse: {e}") from e


def verify_signed_collateral(c: Collateral, trust: TrustStore) -> SignedCollateral:
    """Steps 3a, 4, 5: Root CA CRL, TCB Info and QE Identity (time-independent part)."""
    try:
        return _verify_signed_collateral(c, trust)
    except _LIBRARY_ERRORS as e:
        raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, f"collateral does not parse: {e}") from e


def verify_binding(chain: PckChain, c: Collateral, signed: SignedCollateral) -> Binding:
    """Steps 3b-3c: revocation of the PCK chain; the collateral windows and summary for this chain."""
    try:
        return _verify_binding(chain, c, signed)
    except _LIBRARY_ERRORS as e:
        raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, f"PCK CRL does not parse: {e}") from e
