"""A SIMULATED AMD SEV-SNP PKI: test ARKs, ASKs, ASVKs, VCEKs, VLEKs, CRLs and signed reports, byte-exact.

SIMULATION ONLY. Nothing here is AMD's: every key is derived from a fixed seed in this module and every
certificate, CRL, certificate table and ATTESTATION_REPORT it produces is simulated. The certificates use
AMD's names (``ARK-Milan``, ``SEV-Milan``, ``SEV-VLEK-Milan``, ``SEV-VCEK``, ...) so that name handling is
exercised, but the key material is ours: these roots never enter ``vendor_roots/`` and are trusted only when a
developer explicitly enables simulated roots for development. Evidence built here must be verified under
:attr:`AmdEvidence.trust_store`, which is marked ``simulated=True``, so every result computed under it is
marked simulated.

What it does: mirrors AMD's PKI shape (amd-snp.md §3) for Milan, Genoa and Turin: a self-signed RSA-4096 ARK,
the ASK (VCEK issuer) and ASVK (VLEK issuer) under it, all RSASSA-PSS SHA-384 / MGF1-SHA-384 / salt 48;
VCEK/VLEK leaves with a P-384 key, serial number 0 and only the AMD extensions (§3.1, built by hand below); the
ARK-signed CRL (§3.2); reports of versions 2, 3 and 5 via :mod:`verifier.simulation.amd_report_builder`; and the
extended-report certificate table (§4.1). One :class:`Defect` at a time can be injected; each one makes the
evidence fail exactly one check of an exact verifier (suggested code: :func:`expected_code`).

Usage::

    pki = default_amd_pki()                                    # cached per process; keys are deterministic
    ev = pki.build(ReportOptions(product="genoa", version=5, signing_key="vcek"))
    bad = pki.build(ReportOptions(product="turin"), defect=Defect.TCB_EXT_MISMATCH_FMC)
    ev.report, ev.leaf_der, ev.chain_pem, ev.cert_table, ev.crl_der, ev.now, ev.trust_store

Everything is deterministic: RSA primes and EC keys are derived from the seed, ECDSA signatures use RFC 6979 and
RSASSA-PSS salts are derived from the signed message, so the same options give the same bytes (RSA keys:
:mod:`verifier.simulation.rsa_keys`; DER surgery for what cryptography will not build: :mod:`verifier.simulation.der`;
the options and the defect catalogue: :mod:`verifier.simulation.amd_options`, re-exported here).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from verifier.simulation.amd_options import (
    DECOY_REVOKED_SERIAL,
    DEFAULT_CSP_ID,
    KINDS,
    POLICY_DEFECTS,
    CrlOptions,
    Defect,
    Kind,
    ReportOptions,
    applicable_defects,
    defect_applies,
    expected_code,
    sim_bytes,
)
from verifier.simulation.amd_report_builder import (
    CPUID,
    DEFAULT_FIRMWARE,
    DEFAULT_PLATFORM_INFO,
    DEFAULT_TCB,
    GUID_ARK,
    GUID_ASK,
    GUID_VCEK,
    GUID_VLEK,
    P384_ORDER,
    POLICY_DEBUG,
    POLICY_MIGRATE_MA,
    POLICY_RESERVED_MBO,
    PRODUCTS,
    SIGNATURE_ALGO_ECDSA_P384_SHA384,
    SIGNING_KEY_NONE,
    SIGNING_KEY_VCEK,
    SIGNING_KEY_VLEK,
    Product,
    ReportBody,
    Tcb,
    cert_table,
    put,
    sign_report,
    signer_info,
)
from verifier.simulation.der import (
    assemble_signed,
    der_ia5,
    der_int,
    signed_parts,
    tbs_crl_serial_to_zero,
    tbs_with_serial_zero,
)
from verifier.simulation.rsa_keys import HINTED_SEED, PSS_SALT, RsaKey
from verifier.trust.store import TrustStore, trust_store_from_certificates

#: The verification time every simulated item is valid around.
SIM_NOW: Final = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC)
DEFAULT_SEED: Final = HINTED_SEED
AMD_OID: Final = "1.3.6.1.4.1.3704.1"
TITLE: Final[Mapping[Product, str]] = {"milan": "Milan", "genoa": "Genoa", "turin": "Turin"}
#: productName as KDS writes it: VCEKs carry the stepping on Milan only, VLEKs never (§3.1).
PRODUCT_NAME: Final[Mapping[tuple[Product, Kind], str]] = {
    ("milan", "vcek"): "Milan-B0",
    ("genoa", "vcek"): "Genoa",
    ("turin", "vcek"): "Turin",
    ("milan", "vlek"): "Milan",
    ("genoa", "vlek"): "Genoa",
    ("turin", "vlek"): "Turin",
}
#: Serial numbers of AMD's real ARK / ASK / ASVK (amd-snp.md §5); leaves always have serial 0.
SERIALS: Final[Mapping[tuple[Product, str], int]] = {
    ("milan", "ark"): 0x10000,
    ("milan", "ask"): 0x10001,
    ("milan", "asvk"): 0x10101,
    ("genoa", "ark"): 0x20000,
    ("genoa", "ask"): 0x20002,
    ("genoa", "asvk"): 0x20101,
    ("turin", "ark"): 0x30000,
    ("turin", "ask"): 0x30001,
    ("turin", "asvk"): 0x30101,
}
LEAF_SERIAL: Final = 0
_DAY: Final = timedelta(days=1)
_P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _utc(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


#: (notBefore, notAfter) of ARK, ASK, ASVK per product: AMD's real dates (amd-snp.md §5).
_CA_VALIDITY: Final[Mapping[tuple[Product, str], tuple[datetime, datetime]]] = {
    ("milan", "ark"): (_utc(2020, 10, 22), _utc(2045, 10, 22)),
    ("milan", "ask"): (_utc(2020, 10, 22), _utc(2045, 10, 22)),
    ("milan", "asvk"): (_utc(2022, 11, 16), _utc(2047, 11, 16)),
    ("genoa", "ark"): (_utc(2022, 1, 26), _utc(2047, 1, 26)),
    ("genoa", "ask"): (_utc(2022, 10, 31), _utc(2047, 10, 31)),
    ("genoa", "asvk"): (_utc(2022, 11, 18), _utc(2047, 11, 18)),
    ("turin", "ark"): (_utc(2023, 5, 15), _utc(2048, 5, 15)),
    ("turin", "ask"): (_utc(2023, 5, 15), _utc(2048, 5, 15)),
    ("turin", "asvk"): (_utc(2023, 5, 15), _utc(2048, 5, 15)),
}


T = TypeVar("T")


def _pick(d: Defect | None, choices: Mapping[Defect, T], default: T) -> T:
    """``choices[d]`` when the active defect has an entry, else ``default``."""
    return default if d is None else choices.get(d, default)


def _pss(salt_length: int = PSS_SALT) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=salt_length)


def amd_name(cn: str) -> x509.Name:
    """AMD's name shape: OU=Engineering, C=US, L=Santa Clara, ST=CA, O=Advanced Micro Devices, CN=<cn>."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Engineering"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Santa Clara"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Advanced Micro Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def intermediate_role(kind: Kind) -> str:
    """``"ask"`` issues VCEKs, ``"asvk"`` issues VLEKs."""
    return "asvk" if kind == "vlek" else "ask"


def _ca_cn(product: Product, role: str) -> str:
    return {"ark": "ARK-", "ask": "SEV-", "asvk": "SEV-VLEK-"}[role] + TITLE[product]


def _crl_url(product: Product, kind: Kind) -> str:
    # Deliberately not kdsintf.amd.com: nothing should ever fetch anything for a simulated certificate.
    return f"https://sim.keyward.invalid/{kind}/v1/{TITLE[product]}/crl"


# ----------------------------------------------------------------------------------------------------------
# VCEK / VLEK leaves (amd-snp.md §3.1)


@dataclass(frozen=True, slots=True)
class LeafSpec:
    """Everything a VCEK/VLEK certifies and who signs it. Extensions follow ``product``'s KDS layout."""

    product: Product
    kind: Kind
    tcb: Tcb
    hwid: bytes | None  # VCEK: 64 bytes (8 on Turin), raw; None leaves the extension out
    csp_id: str | None  # VLEK only; None leaves the extension out
    not_before: datetime
    not_after: datetime
    key_label: str
    curve: Literal["p384", "p256"] = "p384"
    issuer_product: Product | None = None  # whose ASK/ASVK name goes in the issuer (None: ``product``)
    signer: str | None = None  # RSA key label that signs (None: the genuine ASK/ASVK of the issuer product)
    salt_length: int = PSS_SALT


def leaf_extensions(spec: LeafSpec) -> list[x509.UnrecognizedExtension]:
    """The AMD extensions in KDS's order. extnValue holds DER for .1/.2/.3.x/.5 and the raw bytes for .4."""

    def ext(arc: str, value: bytes) -> x509.UnrecognizedExtension:
        return x509.UnrecognizedExtension(x509.ObjectIdentifier(f"{AMD_OID}.{arc}"), value)

    t = spec.tcb
    head = [
        ext("1", der_int(1 if spec.product == "turin" else 0)),
        ext("2", der_ia5(PRODUCT_NAME[spec.product, spec.kind])),
    ]
    if spec.product == "turin":  # real Turin VCEK: .1 .2 .3.9 .3.1 .3.2 .3.3 .3.5 .3.6 .3.7 .3.8 .4 (no spl4)
        spl = [("3.9", t.fmc), ("3.1", t.bl), ("3.2", t.tee), ("3.3", t.snp)]
        spl += [("3.5", 0), ("3.6", 0), ("3.7", 0), ("3.8", t.ucode)]
    else:  # real Milan/Genoa VCEK: .1 .2 .3.1 .3.2 .3.4 .3.5 .3.6 .3.7 .3.3 .3.8 .4
        spl = [("3.1", t.bl), ("3.2", t.tee), ("3.4", 0), ("3.5", 0), ("3.6", 0), ("3.7", 0)]
        spl += [("3.3", t.snp), ("3.8", t.ucode)]
    tail = []
    if spec.hwid is not None:
        tail.append(ext("4", spec.hwid))
    if spec.csp_id is not None:
        tail.append(ext("5", der_ia5(spec.csp_id)))
    return [*head, *(ext(arc, der_int(v)) for arc, v in spl), *tail]


Window = tuple[datetime, datetime]
_GENUINE: Final = ReportOptions()  # build()'s defaults (frozen)
_WITH_CRL: Final = CrlOptions()


# ----------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class AmdEvidence:
    """A simulated report with everything that travels with it, the time it is valid at and the trust store."""

    report: bytes  # 1184 bytes
    leaf_der: bytes  # VCEK or VLEK (serial 0)
    chain_pem: str  # ASK (VCEK) or ASVK (VLEK), then ARK: KDS's cert_chain order
    cert_table: bytes  # SNP_GET_EXT_REPORT / configfs-tsm auxblob: ARK, ASK|ASVK, VCEK|VLEK
    crl_der: bytes | None  # the ARK-signed CRL, None when CrlOptions.include is False
    now: datetime
    trust_store: TrustStore  # always the *genuine* simulated ARK/ASK/ASVK of every product, simulated=True
    options: ReportOptions
    defect: Defect | None
    crl_options: CrlOptions = field(default_factory=CrlOptions)

    @property
    def simulated(self) -> bool:
        return self.trust_store.simulated

    @property
    def product(self) -> Product:
        return self.options.product


# ----------------------------------------------------------------------------------------------------------
# The PKI


_OTHER_PRODUCT: Final[Mapping[Product, Product]] = {"milan": "genoa", "genoa": "milan", "turin": "genoa"}
_TCB_DEFECTS: Final[Mapping[Defect, str]] = {
    Defect.TCB_EXT_MISMATCH_BL: "bl",
    Defect.TCB_EXT_MISMATCH_TEE: "tee",
    Defect.TCB_EXT_MISMATCH_SNP: "snp",
    Defect.TCB_EXT_MISMATCH_UCODE: "ucode",
    Defect.TCB_EXT_MISMATCH_FMC: "fmc",
}


class AmdPki:
    """A simulated AMD SEV-SNP PKI with deterministic keys (see module docstring). Use :func:`default_amd_pki`."""

    def __init__(self, seed: str = DEFAULT_SEED) -> None:
        self._seed = seed
        self._rsa: dict[str, RsaKey] = {}
        self._certs: dict[tuple[object, ...], x509.Certificate] = {}
        self._leaves: dict[LeafSpec, bytes] = {}
        self._crls: dict[tuple[object, ...], bytes] = {}
        self.ark = {p: self.ark_cert(p) for p in PRODUCTS}
        self.ask = {p: self.intermediate_cert(p, "vcek") for p in PRODUCTS}
        self.asvk = {p: self.intermediate_cert(p, "vlek") for p in PRODUCTS}
        roots: dict[str, x509.Certificate] = {}
        for p in PRODUCTS:
            roots |= {f"amd.{p}.ark": self.ark[p], f"amd.{p}.ask": self.ask[p], f"amd.{p}.asvk": self.asvk[p]}
        self.trust_store = trust_store_from_certificates(roots, simulated=True)

    # -- keys ---------------------------------------------------------------------------------------------

    def rsa_key(self, label: str) -> RsaKey:
        """RSA-4096 key ``label`` ("<product>/ark|ask|asvk", "alt/ark", "alt/ask", "rogue"), built once."""
        if label not in self._rsa:
            self._rsa[label] = RsaKey.derive(self._seed, label)
        return self._rsa[label]

    def ec_key(self, label: str, curve: Literal["p384", "p256"] = "p384") -> ec.EllipticCurvePrivateKey:
        """An EC key derived from the seed and ``label`` (test use only)."""
        order, crv = (P384_ORDER, ec.SECP384R1()) if curve == "p384" else (_P256_ORDER, ec.SECP256R1())
        digest = hashlib.sha512(f"{self._seed}/ec/{curve}/{label}".encode()).digest()
        return ec.derive_private_key(int.from_bytes(digest, "big") % (order - 1) + 1, crv)

    def leaf_key(self, product: Product, kind: Kind) -> ec.EllipticCurvePrivateKey:
        return self.ec_key(f"{product}/{kind}")

    def chip_id(self, product: Product, label: str = "chip") -> bytes:
        """This PKI's CHIP_ID for ``product``: 64 bytes, or 8 meaningful bytes + 56 zeros on Turin."""
        raw = hashlib.sha512(f"{self._seed}/{label}/{product}".encode()).digest()
        return raw[:8] + bytes(56) if product == "turin" else raw

    # -- certificates --------------------------------------------------------------------------------------

    def _issue(
        self,
        *,
        subject: x509.Name,
        issuer: x509.Name,
        public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
        serial: int,
        validity: Window,
        extensions: Iterable[tuple[x509.ExtensionType, bool]],
        signer: RsaKey,
        salt_length: int = PSS_SALT,
    ) -> bytes:
        """DER of a certificate signed RSASSA-PSS SHA-384 by ``signer``. cryptography builds the TBS (with a
        throw-away signature); the TBS is then signed deterministically and the certificate assembled by hand,
        which is also how serial 0 gets in: built as 1, patched to 0 in the TBS before signing."""
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(serial or 1)
            .not_valid_before(validity[0])
            .not_valid_after(validity[1])
        )
        for ext, critical in extensions:
            b = b.add_extension(ext, critical=critical)
        scratch = b.sign(signer.private, hashes.SHA384(), rsa_padding=_pss(salt_length))
        tbs, alg_id = signed_parts(scratch.public_bytes(Encoding.DER))
        if serial == 0:
            tbs = tbs_with_serial_zero(tbs)
        return assemble_signed(tbs, alg_id, signer.sign_pss(tbs, salt_length))

    def ark_cert(self, product: Product, key_label: str | None = None) -> x509.Certificate:
        """ARK-<P>: self-signed, CA, keyCertSign+cRLSign. ``key_label`` "alt/ark" gives a forger's twin."""
        label = key_label or f"{product}/ark"
        cache_key: tuple[object, ...] = ("ark", product, label)
        if cache_key not in self._certs:
            key = self.rsa_key(label)
            name = amd_name(_ca_cn(product, "ark"))
            der = self._issue(
                subject=name,
                issuer=name,
                public_key=key.public,
                serial=SERIALS[product, "ark"],
                validity=_CA_VALIDITY[product, "ark"],
                extensions=[
                    (_key_usage(crl_sign=True), True),
                    (x509.SubjectKeyIdentifier.from_public_key(key.public), False),
                    (x509.BasicConstraints(ca=True, path_length=None), True),
                    (_crl_dp(_crl_url(product, "vcek")), False),
                ],
                signer=key,
            )
            self._certs[cache_key] = x509.load_der_x509_certificate(der)
        return self._certs[cache_key]

    def intermediate_cert(
        self,
        product: Product,
        kind: Kind,
        *,
        key_label: str | None = None,
        signer_label: str | None = None,
        salt_length: int = PSS_SALT,
    ) -> x509.Certificate:
        """ASK (``kind`` vcek, CN SEV-<P>) or ASVK (vlek, CN SEV-VLEK-<P>) under ARK-<P>'s name: CA pathlen 0,
        keyCertSign. Defaults give the genuine one; other labels/salt give defect variants with AMD's names."""
        role = intermediate_role(kind)
        key = self.rsa_key(key_label or f"{product}/{role}")
        signer = self.rsa_key(signer_label or f"{product}/ark")
        cache_key: tuple[object, ...] = (role, product, key.label, signer.label, salt_length)
        if cache_key not in self._certs:
            ark_key = self.rsa_key("alt/ark" if signer.label == "alt/ark" else f"{product}/ark")
            der = self._issue(
                subject=amd_name(_ca_cn(product, role)),
                issuer=amd_name(_ca_cn(product, "ark")),
                public_key=key.public,
                serial=SERIALS[product, role],
                validity=_CA_VALIDITY[product, role],
                extensions=[
                    (x509.SubjectKeyIdentifier.from_public_key(key.public), False),
                    (x509.AuthorityKeyIdentifier.from_issuer_public_key(ark_key.public), False),
                    (x509.BasicConstraints(ca=True, path_length=0), True),
                    (_key_usage(crl_sign=False), True),
                    (_crl_dp(_crl_url(product, kind)), False),
                ],
                signer=signer,
                salt_length=salt_length,
            )
            self._certs[cache_key] = x509.load_der_x509_certificate(der)
        return self._certs[cache_key]

    def intermediate(self, product: Product, kind: Kind) -> x509.Certificate:
        """The genuine ASK (vcek) or ASVK (vlek) of ``product``."""
        return self.ask[product] if kind == "vcek" else self.asvk[product]

    def leaf_spec(self, product: Product, kind: Kind, tcb: Tcb | None = None) -> LeafSpec:
        """The genuine VCEK/VLEK for this PKI's chip at ``tcb`` (default: the product's default TCB), issued 30
        days before :data:`SIM_NOW`: VCEKs for 7 years, VLEKs for 1 year."""
        not_before = SIM_NOW - 30 * _DAY
        return LeafSpec(
            product=product,
            kind=kind,
            tcb=tcb or DEFAULT_TCB[product],
            hwid=self.chip_id(product)[: 8 if product == "turin" else 64] if kind == "vcek" else None,
            csp_id=DEFAULT_CSP_ID if kind == "vlek" else None,
            not_before=not_before,
            not_after=not_before.replace(year=not_before.year + 7) if kind == "vcek" else not_before + 365 * _DAY,
            key_label=f"{product}/{kind}",
        )

    def leaf(self, spec: LeafSpec) -> bytes:
        """DER of the VCEK/VLEK ``spec`` describes: serial 0, CN SEV-VCEK|SEV-VLEK, only AMD extensions."""
        if spec not in self._leaves:
            issuer_product = spec.issuer_product or spec.product
            role = intermediate_role(spec.kind)
            signer = self.rsa_key(spec.signer or f"{issuer_product}/{role}")
            self._leaves[spec] = self._issue(
                subject=amd_name("SEV-VLEK" if spec.kind == "vlek" else "SEV-VCEK"),
                issuer=amd_name(_ca_cn(issuer_product, role)),
                public_key=self.ec_key(spec.key_label, spec.curve).public_key(),
                serial=LEAF_SERIAL,
                validity=(spec.not_before, spec.not_after),
                extensions=[(e, False) for e in leaf_extensions(spec)],
                signer=signer,
                salt_length=spec.salt_length,
            )
        return self._leaves[spec]

    def crl(
        self,
        product: Product,
        *,
        revoked: Iterable[int] = (DECOY_REVOKED_SERIAL,),
        window: Window | None = None,
        signer_label: str | None = None,
    ) -> bytes:
        """DER of the AMD CRL for ``product``: issuer ARK-<P>, RSASSA-PSS SHA-384 by the ARK (``signer_label``
        for another key), thisUpdate/nextUpdate = ``window`` (default: now-5d .. now+25d), CRL Number and
        AKI. Serial 0 (every VCEK/VLEK) can be listed: it is patched in, as cryptography refuses to build it."""
        serials = tuple(sorted(set(revoked)))
        win = window or (SIM_NOW - 5 * _DAY, SIM_NOW + 25 * _DAY)
        signer = self.rsa_key(signer_label or f"{product}/ark")
        cache_key: tuple[object, ...] = (product, serials, win, signer.label)
        if cache_key not in self._crls:
            ark = self.ark[product]
            placeholder = next(i for i in range(1, 0x80) if i not in serials) if 0 in serials else None
            b = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(ark.subject)
                .last_update(win[0])
                .next_update(win[1])
                .add_extension(x509.CRLNumber(1), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.rsa_key(f"{product}/ark").public),
                    critical=False,
                )
            )
            for serial in serials:
                b = b.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial or placeholder or 1)
                    .revocation_date(win[0] - _DAY)
                    .build()
                )
            scratch = b.sign(signer.private, hashes.SHA384(), rsa_padding=_pss())
            tbs, alg_id = signed_parts(scratch.public_bytes(Encoding.DER))
            if placeholder is not None:
                tbs = tbs_crl_serial_to_zero(tbs, placeholder)
            self._crls[cache_key] = assemble_signed(tbs, alg_id, signer.sign_pss(tbs))
        return self._crls[cache_key]

    # -- the one entry point -------------------------------------------------------------------------------

    def build(
        self,
        options: ReportOptions = _GENUINE,
        defect: Defect | None = None,
        crl: CrlOptions = _WITH_CRL,
    ) -> AmdEvidence:
        """Build a report, its leaf, chain, certificate table and CRL, genuine unless ``defect`` is given.
        Raises ValueError for impossible options or a defect that does not apply (:func:`defect_applies`)."""
        options.check()
        if defect is not None and not defect_applies(defect, options):
            raise ValueError(f"defect {defect.value!r} does not apply to {options}")
        d, product, kind = defect, options.product, options.signing_key
        tcbs = self._tcbs(options, d)
        chip_id = options.chip_id if options.chip_id is not None else self._default_chip_id(product, kind)
        spec = self._leaf_spec_for(options, d, tcbs, chip_id)
        leaf_der = self.leaf(spec)
        report = self._report(options, d, tcbs, chip_id, self.ec_key(spec.key_label, spec.curve))
        inter, ark = self._chain(options, d)
        claimed: Kind = _pick(d, {Defect.VLEK_PRESENTED_AS_VCEK: "vcek", Defect.VCEK_PRESENTED_AS_VLEK: "vlek"}, kind)
        table = cert_table(
            [(GUID_ARK, ark), (GUID_ASK, inter), (GUID_VLEK if claimed == "vlek" else GUID_VCEK, leaf_der)],
            options.cert_format,
        )
        return AmdEvidence(
            report=report,
            leaf_der=leaf_der,
            chain_pem="".join(c.public_bytes(Encoding.PEM).decode() for c in (inter, ark)),
            cert_table=table,
            crl_der=self._crl_for(options, d, crl),
            now=SIM_NOW,
            trust_store=self.trust_store,
            options=options,
            defect=d,
            crl_options=crl,
        )

    def _default_chip_id(self, product: Product, kind: Kind) -> bytes:
        return self.chip_id(product) if kind == "vcek" else bytes(64)

    @staticmethod
    def _tcbs(o: ReportOptions, d: Defect | None) -> dict[str, Tcb]:
        """1. REPORTED / COMMITTED / CURRENT / LAUNCH TCB (COMMITTED and CURRENT raised for CURRENT_TCB_USED)."""
        reported = o.reported_tcb or DEFAULT_TCB[o.product]
        current = o.current_tcb or reported
        committed = o.committed_tcb or reported
        if d is Defect.CURRENT_TCB_USED and current == reported:
            current = committed = reported.bumped("snp").bumped("ucode")
        return {"reported": reported, "current": current, "committed": committed, "launch": o.launch_tcb or reported}

    def _leaf_spec_for(self, o: ReportOptions, d: Defect | None, tcbs: Mapping[str, Tcb], chip_id: bytes) -> LeafSpec:
        """2. What the leaf certifies and who signs it (§3.1; defects on the leaf and its issuer)."""
        product, kind = o.product, o.signing_key
        spec = self.leaf_spec(product, kind, tcbs["reported"])
        hwid_len = 8 if product == "turin" else 64
        spec = replace(spec, hwid=chip_id[:hwid_len]) if kind == "vcek" else replace(spec, csp_id=o.csp_id)
        lifetime = spec.not_after - spec.not_before
        if d is None:
            return spec
        if d in _TCB_DEFECTS:
            return replace(spec, tcb=spec.tcb.bumped(_TCB_DEFECTS[d]))
        if d is Defect.CURRENT_TCB_USED:
            return replace(spec, tcb=tcbs["current"])
        if d is Defect.HWID_MISMATCH:
            return replace(spec, hwid=self.chip_id(product, "other-chip")[:hwid_len])
        if d is Defect.HWID_MISSING:
            return replace(spec, hwid=None)
        if d is Defect.CSPID_MISSING:
            return replace(spec, csp_id=None)
        if d is Defect.LEAF_EXPIRED:
            return replace(spec, not_before=SIM_NOW - lifetime - _DAY, not_after=SIM_NOW - _DAY)
        if d is Defect.LEAF_NOT_YET_VALID:
            return replace(spec, not_before=SIM_NOW + _DAY, not_after=SIM_NOW + _DAY + lifetime)
        if d is Defect.LEAF_NOT_P384:
            return replace(spec, curve="p256")
        if d is Defect.LEAF_BAD_SIGNATURE:
            return replace(spec, signer="rogue")
        if d in (Defect.ASK_BAD_SIGNATURE, Defect.WRONG_ROOT):  # signed by the (forged) ASK's own key
            return replace(spec, signer="alt/ask")
        if d is Defect.WRONG_PRODUCT_CHAIN:
            return replace(spec, issuer_product=_OTHER_PRODUCT[product])
        if d is Defect.LEAF_PSS_WRONG_SALT:
            return replace(spec, salt_length=32)
        return spec

    def _report(
        self,
        o: ReportOptions,
        d: Defect | None,
        tcbs: Mapping[str, Tcb],
        chip_id: bytes,
        leaf_key: ec.EllipticCurvePrivateKey,
    ) -> bytes:
        """3. The report (§1): fields, defects in the signed body, signature, defects in the signature."""
        product, version = o.product, o.version
        version = _pick(d, {Defect.UNKNOWN_VERSION_4: 4, Defect.UNKNOWN_VERSION_6: 6}, version)
        signing_key = _pick(
            d,
            {
                Defect.VLEK_PRESENTED_AS_VCEK: SIGNING_KEY_VCEK,
                Defect.VCEK_PRESENTED_AS_VLEK: SIGNING_KEY_VLEK,
                Defect.SIGNING_KEY_NONE: SIGNING_KEY_NONE,
            },
            SIGNING_KEY_VLEK if o.signing_key == "vlek" else SIGNING_KEY_VCEK,
        )
        policy = o.policy | _pick(
            d,
            {
                Defect.DEBUG_POLICY: POLICY_DEBUG,
                Defect.MIGRATE_MA: POLICY_MIGRATE_MA,
                Defect.POLICY_RESERVED_BIT: 1 << 40,
            },
            0,
        )
        if d is Defect.POLICY_BIT17_CLEAR:
            policy &= ~POLICY_RESERVED_MBO
        author_digest = sim_bytes("author-key", 48) if d is Defect.AUTHOR_KEY_DIGEST_WITHOUT_EN else o.author_key_digest
        fw = DEFAULT_FIRMWARE[product, o.version]
        body = ReportBody(
            version=version,
            guest_svn=o.guest_svn,
            policy=policy,
            family_id=o.family_id,
            image_id=o.image_id,
            vmpl=3 if d is Defect.VMPL3 else o.vmpl,
            signature_algo=0 if d is Defect.SIGNATURE_ALGO_ZERO else SIGNATURE_ALGO_ECDSA_P384_SHA384,
            current_tcb=tcbs["current"].encode(product),
            platform_info=DEFAULT_PLATFORM_INFO[o.version] if o.platform_info is None else o.platform_info,
            signer_info=signer_info(
                signing_key=signing_key, mask_chip_key=d is Defect.MASK_CHIP_KEY, author_key_en=o.author_key_en
            ),
            report_data=o.report_data,
            measurement=o.measurement,
            host_data=o.host_data,
            id_key_digest=o.id_key_digest,
            author_key_digest=author_digest,
            report_id=o.report_id,
            report_id_ma=o.report_id_ma,
            reported_tcb=tcbs["reported"].encode(product),
            cpuid=CPUID[product] if o.version >= 3 and d is not Defect.CPUID_ZERO_V3 else (0, 0, 0),
            chip_id=chip_id,
            committed_tcb=tcbs["committed"].encode(product),
            current_version=o.current_version or fw,
            committed_version=o.committed_version or o.current_version or fw,
            launch_tcb=tcbs["launch"].encode(product),
            launch_mit_vector=o.launch_mit_vector,
            current_mit_vector=o.current_mit_vector,
            reserved={"reserved_04c": (1).to_bytes(4, "little")} if d is Defect.RESERVED_NONZERO else {},
        )
        signer = self.ec_key("rogue") if d is Defect.REPORT_SIGNATURE_BAD else leaf_key
        report = bytearray(sign_report(body.pack(), signer))
        if d is Defect.R_OUT_OF_RANGE:
            put(report, "signature_r", P384_ORDER)
        elif d is Defect.S_ZERO:
            put(report, "signature_s", 0)
        elif d is Defect.SIGNATURE_PADDING_NONZERO:
            report[0x2D0] = 0x01
        return bytes(report)

    def _chain(self, o: ReportOptions, d: Defect | None) -> tuple[x509.Certificate, x509.Certificate]:
        """4. The supplied chain: (ASK|ASVK, ARK) as KDS's cert_chain and the certificate table carry them."""
        product, kind = o.product, o.signing_key
        if d is Defect.WRONG_ROOT:
            alt = self.intermediate_cert(product, kind, key_label="alt/ask", signer_label="alt/ark")
            return alt, self.ark_cert(product, "alt/ark")
        if d is Defect.ASK_BAD_SIGNATURE:
            return self.intermediate_cert(product, kind, key_label="alt/ask", signer_label="rogue"), self.ark[product]
        if d is Defect.PSS_WRONG_SALT:
            return self.intermediate_cert(product, kind, salt_length=32), self.ark[product]
        if d is Defect.WRONG_PRODUCT_CHAIN:
            other = _OTHER_PRODUCT[product]
            return self.intermediate(other, kind), self.ark[other]
        return self.intermediate(product, kind), self.ark[product]

    def _crl_for(self, o: ReportOptions, d: Defect | None, c: CrlOptions) -> bytes | None:
        """5. The CRL (§3.2), with its defects. CRL defects always produce a CRL."""
        crl_defects = {Defect.LEAF_REVOKED, Defect.ASK_REVOKED, Defect.CRL_EXPIRED}
        crl_defects |= {Defect.CRL_NOT_YET_VALID, Defect.CRL_BAD_SIGNATURE}
        if not c.include and d not in crl_defects:
            return None
        revoked = set(c.revoked_serials)
        if d is Defect.LEAF_REVOKED:
            revoked.add(LEAF_SERIAL)
        if d is Defect.ASK_REVOKED:
            revoked.add(SERIALS[o.product, intermediate_role(o.signing_key)])
        window: Window | None = _pick(
            d,
            {
                Defect.CRL_EXPIRED: (SIM_NOW - 31 * _DAY, SIM_NOW - _DAY),
                Defect.CRL_NOT_YET_VALID: (SIM_NOW + _DAY, SIM_NOW + 31 * _DAY),
            },
            None,
        )
        return self.crl(
            o.product,
            revoked=revoked,
            window=window,
            signer_label="rogue" if d is Defect.CRL_BAD_SIGNATURE else None,
        )


def _key_usage(*, crl_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])


@functools.cache
def default_amd_pki() -> AmdPki:
    """The process-wide simulated AMD PKI (deterministic, built once)."""
    return AmdPki()


__all__ = [
    "DECOY_REVOKED_SERIAL",
    "DEFAULT_CSP_ID",
    "KINDS",
    "LEAF_SERIAL",
    "POLICY_DEFECTS",
    "PRODUCT_NAME",
    "SERIALS",
    "SIM_NOW",
    "AmdEvidence",
    "AmdPki",
    "CrlOptions",
    "Defect",
    "Kind",
    "LeafSpec",
    "ReportOptions",
    "RsaKey",
    "amd_name",
    "applicable_defects",
    "default_amd_pki",
    "defect_applies",
    "expected_code",
    "leaf_extensions",
]
