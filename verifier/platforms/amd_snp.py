"""AMD SEV-SNP report verification (amd-snp.md §9 steps 2-5), pure: report + leaf + trust store + ``now``.

``verify_snp_report(report, leaf_der, trust, now, ...)`` returns an :class:`SnpVerification` or raises a
:class:`~verifier.errors.KeywardError` naming the first failed step:

1. (parsing, :mod:`verifier.evidence.snp`) size, version, algorithm, reserved bytes, signing key.
2. Product: from CPUID (v3+; an explicit ``product`` must agree) or, for v2 reports, the product whose pinned
   chain actually issued the leaf (Milan, then Genoa; never Turin for v2). Never hard-coded.
3. Chain: SIGNING_KEY decides VCEK (ARK -> ASK -> VCEK) or VLEK (ARK -> ASVK -> VLEK); the leaf's own
   extensions must say the same kind. ARK self-signature, ASK|ASVK by ARK, leaf by ASK|ASVK: RSASSA-PSS with
   exactly SHA-384 / MGF1-SHA-384 / salt 48, issuer DER equal to the issuer's subject, validity at ``now`` for all
   three, leaf key P-384. Only pinned ARK/ASK/ASVK are used; a chain supplied with the evidence is ignored.
   The AMD CRL, when supplied: issued and signed by the ARK, current at ``now``, ASK/ASVK and leaf not listed.
4. Leaf extensions equal REPORTED_TCB component by component (never CURRENT_TCB); VCEK hwID equals CHIP_ID
   (Turin: the 8-byte hwID equals CHIP_ID[0:8] and the rest of CHIP_ID is zero); structVersion fits the product.
5. The report signature: ECDSA P-384 / SHA-384 over bytes 0x000..0x29F with the leaf key.

Policy (debug, TCB minimums, measurements) is :mod:`verifier.appraisal.snp`. Time-independent chain work is
memoised by content in :class:`SnpVerificationCache`; steps 4-5 and every validity check run on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import SignatureAlgorithmOID

from verifier import limits
from verifier.errors import Code, CollateralError, VerificationFailed
from verifier.evidence.snp import (
    PRODUCTS,
    SIGNING_KEY_VLEK,
    Product,
    SnpReport,
    TcbVersion,
    decode_tcb,
    product_from_cpuid,
)
from verifier.trust.amd_certs import AmdLeafExtensions, LeafCert, load_leaf, parse_amd_extensions
from verifier.trust.chains import ContentCache, Window
from verifier.trust.store import TrustStore

PLATFORM_SNP: Final = "amd-sev-snp"
_PSS_SALT: Final = 48
_SHA384 = hashes.SHA384()
_PSS = padding.PSS(mgf=padding.MGF1(_SHA384), salt_length=_PSS_SALT)
_PSS_ANY = padding.PSS(mgf=padding.MGF1(_SHA384), salt_length=padding.PSS.AUTO)
_ECDSA_SHA384 = ec.ECDSA(_SHA384)
_V2_CANDIDATES: Final[tuple[Product, ...]] = ("milan", "genoa")


@dataclass(frozen=True, slots=True)
class SnpVerification:
    """A report that verified. TCBs are decoded for its product; nothing about policy has been decided."""

    report: SnpReport
    product: Product
    signing_key: str  # "vcek" | "vlek"
    leaf: AmdLeafExtensions
    reported_tcb: TcbVersion
    current_tcb: TcbVersion
    committed_tcb: TcbVersion
    launch_tcb: TcbVersion
    leaf_not_before: datetime
    leaf_not_after: datetime
    crl_checked: bool
    simulated: bool


@dataclass(frozen=True, slots=True)
class _Chain:
    """ARK -> intermediate checked (time-independent part) for one product and key kind."""

    ark: x509.Certificate
    intermediate: x509.Certificate
    windows: tuple[Window, ...]


class SnpVerificationCache:
    """Content memo of the pinned-chain checks and of leaf-under-intermediate signatures."""

    def __init__(self, max_entries: int = limits.VERIFICATION_CACHE_ENTRIES) -> None:
        self.chains: ContentCache[_Chain] = ContentCache(max_entries)
        self.leaves: ContentCache[LeafCert] = ContentCache(max_entries)
        #: Parsed AMD extensions of a leaf, by its DER (parsing is pure; the binding checks run every call).
        self.extensions: ContentCache[AmdLeafExtensions] = ContentCache(max_entries)


def _pss_verify(key: rsa.RSAPublicKey, signature: bytes, message: bytes, what: str) -> None:
    try:
        key.verify(signature, message, _PSS, _SHA384)
    except InvalidSignature:
        try:  # distinguish "right key, wrong PSS parameters" from "wrong signature" for a precise reason
            key.verify(signature, message, _PSS_ANY, _SHA384)
        except InvalidSignature:
            raise VerificationFailed(Code.SNP_CHAIN_SIGNATURE_INVALID, f"{what} signature does not verify") from None
        raise VerificationFailed(
            Code.SNP_CHAIN_PSS_PARAMETERS,
            f"{what} is not RSASSA-PSS with salt 48",
            expected="SHA-384 / MGF1-SHA-384 / salt 48",
        ) from None


def _rsa(cert: x509.Certificate, what: str) -> rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise VerificationFailed(Code.SNP_CHAIN_MALFORMED, f"{what} key is not RSA")
    return key


def _check_cert_link(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    if cert.issuer != issuer.subject:
        raise VerificationFailed(
            Code.SNP_CHAIN_UNTRUSTED,
            f"{what} is not issued by {issuer.subject.rfc4514_string()}",
            expected=issuer.subject.rfc4514_string(),
            actual=cert.issuer.rfc4514_string(),
        )
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.RSASSA_PSS or not isinstance(
        cert.signature_hash_algorithm, hashes.SHA384
    ):
        raise VerificationFailed(Code.SNP_CHAIN_PSS_PARAMETERS, f"{what} is not signed with RSASSA-PSS SHA-384")
    _pss_verify(_rsa(issuer, "issuer"), cert.signature, cert.tbs_certificate_bytes, what)


def _chain_window(cert: x509.Certificate, what: str) -> Window:
    return Window(
        what,
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        Code.SNP_CHAIN_EXPIRED,
        Code.SNP_CHAIN_NOT_YET_VALID,
        VerificationFailed,
    )


def _verify_pinned_chain(trust: TrustStore, product: Product, kind: str) -> _Chain:
    ark = trust.root(f"amd.{product}.ark").certificate
    inter = trust.root(f"amd.{product}.{'asvk' if kind == 'vlek' else 'ask'}").certificate
    _check_cert_link(ark, ark, f"ARK-{product}")  # self-signed
    _check_cert_link(inter, ark, f"{'ASVK' if kind == 'vlek' else 'ASK'}-{product}")
    return _Chain(ark, inter, (_chain_window(ark, f"ARK-{product}"), _chain_window(inter, f"ASK/ASVK-{product}")))


def _verify_leaf_signature(leaf_der: bytes, chain: _Chain) -> LeafCert:
    leaf = load_leaf(leaf_der)
    if leaf.issuer_der != chain.intermediate.subject.public_bytes():
        raise VerificationFailed(
            Code.SNP_CHAIN_UNTRUSTED,
            "VCEK/VLEK is not issued by the pinned ASK/ASVK",
            expected=chain.intermediate.subject.rfc4514_string(),
        )
    _pss_verify(_rsa(chain.intermediate, "ASK/ASVK"), leaf.signature, leaf.tbs, "VCEK/VLEK")
    if not isinstance(leaf.public_key.curve, ec.SECP384R1):
        raise VerificationFailed(
            Code.SNP_LEAF_KEY_INVALID,
            "VCEK/VLEK key is not P-384",
            expected="secp384r1",
            actual=leaf.public_key.curve.name,
        )
    return leaf


def _check_crl(crl_der: bytes, chain: _Chain, leaf: LeafCert, now: datetime) -> None:
    try:
        crl = x509.load_der_x509_crl(crl_der)
        # cryptography parses the issuer, times and revoked entries lazily: read all that is used below here, so
        # a malformed field is snp.crl.malformed now rather than a stray ValueError later.
        _ = (crl.issuer.rfc4514_string(), crl.tbs_certlist_bytes, crl.signature, crl.last_update_utc)
        _ = (crl.next_update_utc, [r.serial_number for r in crl])
    except Exception as e:
        # Deliberately broad (as in azure_uvm._load_chain): on untrusted DER the lazy parsers raise ValueError,
        # TypeError and cryptography's own exception types; each means "not a CRL we can check".
        raise CollateralError(Code.SNP_CRL_MALFORMED, "AMD CRL is not a DER CRL") from e
    if crl.issuer != chain.ark.subject:
        raise CollateralError(
            Code.SNP_CRL_WRONG_ISSUER,
            "AMD CRL is not issued by the ARK",
            expected=chain.ark.subject.rfc4514_string(),
            actual=crl.issuer.rfc4514_string(),
        )
    try:
        _rsa(chain.ark, "ARK").verify(crl.signature, crl.tbs_certlist_bytes, _PSS, _SHA384)
    except (InvalidSignature, UnsupportedAlgorithm) as e:
        raise CollateralError(Code.SNP_CRL_SIGNATURE_INVALID, "AMD CRL signature does not verify under the ARK") from e
    next_update = crl.next_update_utc
    if next_update is None:
        raise CollateralError(Code.SNP_CRL_MALFORMED, "AMD CRL has no nextUpdate")
    Window(
        "AMD CRL", crl.last_update_utc, next_update, Code.SNP_CRL_EXPIRED, Code.SNP_CRL_NOT_YET_VALID, CollateralError
    ).check(now)
    if crl.get_revoked_certificate_by_serial_number(chain.intermediate.serial_number) is not None:
        raise VerificationFailed(
            Code.SNP_CHAIN_REVOKED,
            "ASK/ASVK is revoked by the AMD CRL",
            actual=format(chain.intermediate.serial_number, "x"),
        )
    if crl.get_revoked_certificate_by_serial_number(leaf.serial) is not None:
        raise VerificationFailed(
            Code.SNP_LEAF_REVOKED, "VCEK/VLEK is revoked by the AMD CRL", actual=format(leaf.serial, "x")
        )


def _leaf_kind(leaf_der: bytes) -> AmdLeafExtensions:
    return parse_amd_extensions(load_leaf(leaf_der))


def _decide_product(report: SnpReport, hint: Product | None) -> tuple[Product, ...]:
    """Candidate products, in the order to try. CPUID (v3+) decides alone; v2 tries the chains (§1.3)."""
    from_cpuid = product_from_cpuid(report)
    if from_cpuid is not None:
        if hint is not None and hint != from_cpuid:
            raise VerificationFailed(
                Code.SNP_CHAIN_PRODUCT_MISMATCH,
                "requested product contradicts the CPUID",
                expected=from_cpuid,
                actual=hint,
            )
        return (from_cpuid,)
    if hint == "turin":
        raise VerificationFailed(
            Code.SNP_CHAIN_PRODUCT_MISMATCH,
            "Turin never emits version 2 reports",
            expected="milan | genoa",
            actual=hint,
        )
    return (hint,) if hint is not None else _V2_CANDIDATES


def verify_snp_report(
    report: SnpReport,
    leaf_der: bytes | None,
    trust: TrustStore,
    now: datetime,
    *,
    product: Product | None = None,
    crl_der: bytes | None = None,
    cache: SnpVerificationCache | None = None,
) -> SnpVerification:
    """Verify ``report`` signed by the VCEK/VLEK ``leaf_der`` under the pinned AMD roots at ``now``.

    Raises:
        EvidenceMalformed: TCB reserved bytes, CPUID of an unknown product.
        VerificationFailed: chain, leaf, TCB/hwID binding or signature failures (``snp.chain.*``, ``snp.leaf.*``).
        CollateralError: a supplied CRL that is malformed, not the ARK's, or not current.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if leaf_der is None:
        raise VerificationFailed(Code.SNP_LEAF_MISSING, "no VCEK/VLEK supplied (certs, cert table or KDS cache)")
    kind = "vlek" if report.signing_key == SIGNING_KEY_VLEK else "vcek"
    # 3a. The leaf's kind (hwID vs cspID) must be the one SIGNING_KEY names: a VLEK never passes as a VCEK.
    ext = cache.extensions.get_or_compute((leaf_der,), lambda: _leaf_kind(leaf_der)) if cache else _leaf_kind(leaf_der)
    if ext.kind != kind:
        raise VerificationFailed(
            Code.SNP_LEAF_KEY_TYPE_MISMATCH, "certificate kind differs from SIGNING_KEY", expected=kind, actual=ext.kind
        )
    # 2-3. Product and pinned chain; for v2 the product is whichever pinned chain issued the leaf.
    candidates = _decide_product(report, product)
    chosen, chain, leaf = _issuing_chain(leaf_der, trust, kind, candidates, cache)
    # 3b. Validity of ARK, ASK/ASVK and the leaf at `now`; the CRL when supplied.
    for w in chain.windows:
        w.check(now)
    Window(
        "VCEK/VLEK",
        leaf.not_before,
        leaf.not_after,
        Code.SNP_LEAF_EXPIRED,
        Code.SNP_LEAF_NOT_YET_VALID,
        VerificationFailed,
    ).check(now)
    if crl_der is not None:
        _check_crl(crl_der, chain, leaf, now)
    # 4. Leaf extensions vs REPORTED_TCB (never CURRENT_TCB), hwID vs CHIP_ID, structVersion vs product.
    reported = decode_tcb(report.reported_tcb, chosen)
    check_leaf_binding(report, chosen, ext, reported)
    # 5. The report signature.
    der = encode_dss_signature(report.signature_r, report.signature_s)
    try:
        leaf.public_key.verify(der, report.signed, _ECDSA_SHA384)
    except InvalidSignature as e:
        raise VerificationFailed(
            Code.SNP_SIGNATURE_INVALID, "report signature does not verify under the VCEK/VLEK"
        ) from e
    return SnpVerification(
        report=report,
        product=chosen,
        signing_key=kind,
        leaf=ext,
        reported_tcb=reported,
        current_tcb=decode_tcb(report.current_tcb, chosen),
        committed_tcb=decode_tcb(report.committed_tcb, chosen),
        launch_tcb=decode_tcb(report.launch_tcb, chosen),
        leaf_not_before=leaf.not_before,
        leaf_not_after=leaf.not_after,
        crl_checked=crl_der is not None,
        simulated=trust.simulated,
    )


def _issuing_chain(
    leaf_der: bytes, trust: TrustStore, kind: str, candidates: tuple[Product, ...], cache: SnpVerificationCache | None
) -> tuple[Product, _Chain, LeafCert]:
    """The first candidate product whose pinned ASK/ASVK issued the leaf; otherwise the most precise reason."""
    errors: list[VerificationFailed] = []
    for p in candidates:
        key = (trust.fingerprint, p.encode(), kind.encode())
        chain = (
            cache.chains.get_or_compute(key, lambda p=p: _verify_pinned_chain(trust, p, kind))  # type: ignore[misc]
            if cache
            else _verify_pinned_chain(trust, p, kind)
        )
        try:
            leaf = (
                cache.leaves.get_or_compute((*key, leaf_der), lambda c=chain: _verify_leaf_signature(leaf_der, c))  # type: ignore[misc]
                if cache
                else _verify_leaf_signature(leaf_der, chain)
            )
        except VerificationFailed as e:
            if e.code not in (Code.SNP_CHAIN_UNTRUSTED, Code.SNP_CHAIN_SIGNATURE_INVALID):
                raise
            errors.append(e)
            continue
        return p, chain, leaf
    # No candidate issued it. A candidate whose ASK names the leaf's issuer but whose key does not verify it is
    # the precise story (signature invalid); a leaf issued by another product's pinned ASK is a product mismatch.
    precise = [e for e in errors if e.code == Code.SNP_CHAIN_SIGNATURE_INVALID]
    if precise:
        raise precise[0]
    issuer = load_leaf(leaf_der).issuer_der
    role = "asvk" if kind == "vlek" else "ask"
    for other in PRODUCTS:
        if other not in candidates and issuer == trust.root(f"amd.{other}.{role}").certificate.subject.public_bytes():
            raise VerificationFailed(
                Code.SNP_CHAIN_PRODUCT_MISMATCH,
                "VCEK/VLEK is issued by another product's key",
                expected=" | ".join(candidates),
                actual=other,
            )
    raise errors[0]


def check_leaf_binding(report: SnpReport, product: Product, ext: AmdLeafExtensions, reported: TcbVersion) -> None:
    """Step 4: the leaf's structVersion fits ``product``, its SPLs equal REPORTED_TCB, a VCEK's hwID is CHIP_ID.
    Pure; the enclave SDK also uses it to leave out a sidecar's VCEK that this check would refuse."""
    want_struct = 1 if product == "turin" else 0
    if ext.struct_version != want_struct:
        raise VerificationFailed(
            Code.SNP_LEAF_EXTENSIONS_INVALID,
            f"structVersion does not fit {product}",
            expected=want_struct,
            actual=ext.struct_version,
        )
    pairs = [
        ("bootloader", ext.bl_spl, reported.bootloader),
        ("tee", ext.tee_spl, reported.tee),
        ("snp", ext.snp_spl, reported.snp),
        ("microcode", ext.ucode_spl, reported.microcode),
    ]
    if product == "turin":
        if ext.fmc_spl is None:
            raise VerificationFailed(Code.SNP_LEAF_EXTENSIONS_INVALID, "Turin VCEK/VLEK lacks fmcSPL")
        pairs.append(("fmc", ext.fmc_spl, reported.fmc or 0))
    for name, cert_value, report_value in pairs:
        if cert_value != report_value:
            raise VerificationFailed(
                Code.SNP_LEAF_TCB_MISMATCH,
                f"VCEK/VLEK {name} SPL differs from REPORTED_TCB",
                expected=f"{name}={report_value}",
                actual=f"{name}={cert_value}",
            )
    if ext.hwid is not None:  # VCEK: bound to this chip
        if product == "turin":
            ok = len(ext.hwid) == 8 and report.chip_id[:8] == ext.hwid and not any(report.chip_id[8:])
        else:
            ok = len(ext.hwid) == 64 and report.chip_id == ext.hwid
        if not ok:
            raise VerificationFailed(
                Code.SNP_LEAF_HWID_MISMATCH,
                "VCEK hwID is not this report's CHIP_ID",
                expected=report.chip_id.hex(),
                actual=ext.hwid.hex(),
            )


__all__ = ["PLATFORM_SNP", "SnpVerification", "SnpVerificationCache", "check_leaf_binding", "verify_snp_report"]
