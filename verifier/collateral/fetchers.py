"""Worker-side fetchers for vendor collateral: Intel PCS v4 / PCCS and AMD KDS (the only network code).

Each fetch returns the document *as served* (body bytes plus the issuer-chain header where Intel sends one);
:mod:`verifier.worker.vendor_documents` says what to fetch and stores it with
:func:`verifier.collateral.repository.put_document`. Nothing is
verified here: verification re-checks every signature, chain and validity window when it reads the cache. A
non-200 answer, a timeout, a transport error or an oversized body raises :class:`FetchError` and stores nothing.
Timeouts come from the ``httpx.Client`` the caller passes; the body is read in chunks and cut off at
:data:`verifier.limits.MAX_COLLATERAL_ITEM_BYTES`.
"""

from __future__ import annotations

import binascii
import json
import re
from datetime import UTC, datetime
from typing import Final, Literal

import httpx

from verifier import limits
from verifier.errors import Code, CollateralUnavailable
from verifier.evidence.snp import (
    Product,
    SigningKeyName,
    TcbVersion,
)

Tee = Literal["sgx", "tdx"]
CaKind = Literal["platform", "processor"]

TCB_INFO_CHAIN_HEADER: Final = "TCB-Info-Issuer-Chain"
QE_IDENTITY_CHAIN_HEADER: Final = "SGX-Enclave-Identity-Issuer-Chain"
PCK_CRL_CHAIN_HEADER: Final = "SGX-PCK-CRL-Issuer-Chain"
KDS_PRODUCT_NAMES: Final[dict[Product, str]] = {"milan": "Milan", "genoa": "Genoa", "turin": "Turin"}
_FMSPC_RE: Final = re.compile(r"\A[0-9a-fA-F]{12}\Z")
_HEX_RE: Final = re.compile(rb"\A[0-9a-fA-F]+\Z")


class FetchError(CollateralUnavailable):
    """A vendor service did not deliver a document: HTTP error status, timeout, transport error, oversized or
    unusable body. A transport failure, not a judgement of any collateral (fault ``unavailable``; python-tuf's
    ``DownloadError`` beside its ``RepositoryError``). ``status`` is the HTTP status (None for transport errors);
    ``retryable`` is True for 429, 5xx and transport errors (back off and retry), False for an answer that will
    not change (404: an unknown FMSPC or chip); ``retry_after`` is the server's Retry-After in seconds."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        url: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, actual=status)
        self.url = url
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def exchange(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    code: Code,
    what: str,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> tuple[int, bytes, httpx.Headers, float | None]:
    """One request: (status, body of at most ``max_bytes``, headers, Retry-After) whatever the status. A body over
    the limit (declared or read), a timeout or a transport error raises :class:`FetchError` with ``code``."""
    try:
        with client.stream(method, url, headers=headers, content=content) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(code, f"{what}: response larger than {max_bytes} bytes", url=url, status=200)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError(code, f"{what}: response larger than {max_bytes} bytes", url=url, status=200)
            return response.status_code, bytes(body), response.headers, _retry_after(response)
    except httpx.TimeoutException as exc:
        raise FetchError(code, f"{what}: timed out fetching {url}", url=url) from exc
    except httpx.HTTPError as exc:
        raise FetchError(code, f"{what}: {type(exc).__name__} fetching {url}", url=url) from exc


def _get(
    client: httpx.Client, url: str, code: Code, what: str, max_bytes: int = limits.MAX_COLLATERAL_ITEM_BYTES
) -> tuple[bytes, httpx.Headers]:
    """GET ``url``; return (body, headers) only when the status is 200 and the body is at most ``max_bytes``."""
    status, body, headers, retry_after = exchange(client, "GET", url, code=code, what=what, max_bytes=max_bytes)
    if status != 200:
        raise FetchError(code, f"{what}: HTTP {status} from {url}", url=url, status=status, retry_after=retry_after)
    return body, headers


def _header(headers: httpx.Headers, name: str, url: str, what: str) -> str:
    value = headers.get(name)
    if not value:
        raise FetchError(
            Code.INTEL_COLLATERAL_UNAVAILABLE, f"{what}: response has no {name} header", url=url, status=200
        )
    return str(value)


# ----------------------------------------------------------------------------------------------------------
# Intel PCS v4 / PCCS


class IntelPcsClient:
    """Intel PCS v4 (``https://api.trustedservices.intel.com``) or a PCCS (same paths). The Root CA CRL comes
    from ``root_ca_crl_url`` (Intel: ``https://certificates.trustedservices.intel.com/IntelSGXRootCA.der``,
    DER); by default the PCCS path ``/sgx/certification/v4/rootcacrl`` (hex text of the DER). Both are accepted."""

    def __init__(self, base_url: str, client: httpx.Client, *, root_ca_crl_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.root_ca_crl_url = root_ca_crl_url or f"{self.base_url}/sgx/certification/v4/rootcacrl"

    def tcb_info_url(self, tee: Tee, fmspc: str) -> str:
        if tee not in ("sgx", "tdx"):
            raise ValueError(f"unknown TEE {tee!r}")
        if not _FMSPC_RE.match(fmspc):
            raise ValueError("FMSPC must be 12 hex digits")
        return f"{self.base_url}/{tee}/certification/v4/tcb?fmspc={fmspc.upper()}"

    def qe_identity_url(self, tee: Tee) -> str:
        if tee not in ("sgx", "tdx"):
            raise ValueError(f"unknown TEE {tee!r}")
        return f"{self.base_url}/{tee}/certification/v4/qe/identity"

    def pck_crl_url(self, ca: CaKind) -> str:
        if ca not in ("platform", "processor"):
            raise ValueError(f"unknown PCK CA {ca!r}")
        return f"{self.base_url}/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"

    def fetch_tcb_info(self, tee: Tee, fmspc: str) -> tuple[bytes, str]:
        """(TCB Info JSON body, ``TCB-Info-Issuer-Chain`` header value)."""
        url = self.tcb_info_url(tee, fmspc)
        body, headers = _get(self.client, url, Code.INTEL_COLLATERAL_UNAVAILABLE, "TCB Info")
        return body, _header(headers, TCB_INFO_CHAIN_HEADER, url, "TCB Info")

    def fetch_qe_identity(self, tee: Tee) -> tuple[bytes, str]:
        """(QE Identity JSON body, ``SGX-Enclave-Identity-Issuer-Chain`` header value)."""
        url = self.qe_identity_url(tee)
        body, headers = _get(self.client, url, Code.INTEL_COLLATERAL_UNAVAILABLE, "QE Identity")
        return body, _header(headers, QE_IDENTITY_CHAIN_HEADER, url, "QE Identity")

    def fetch_pck_crl(self, ca: CaKind) -> tuple[bytes, str]:
        """(PCK CRL DER, ``SGX-PCK-CRL-Issuer-Chain`` header value)."""
        url = self.pck_crl_url(ca)
        body, headers = _get(self.client, url, Code.INTEL_COLLATERAL_UNAVAILABLE, "PCK CRL")
        return _crl_der(body, url, "PCK CRL"), _header(headers, PCK_CRL_CHAIN_HEADER, url, "PCK CRL")

    def fetch_root_ca_crl(self) -> bytes:
        """The Root CA CRL as DER (a PCCS serves the hex text of the DER; Intel serves DER)."""
        url = self.root_ca_crl_url
        body, _headers = _get(self.client, url, Code.INTEL_COLLATERAL_UNAVAILABLE, "Root CA CRL")
        return _crl_der(body, url, "Root CA CRL")


def _is_der_sequence(data: bytes) -> bool:
    """True when ``data`` is exactly one DER SEQUENCE (tag 0x30, definite length covering the rest)."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        return 2 + first == len(data)
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        return False
    return 2 + n + int.from_bytes(data[2 : 2 + n], "big") == len(data)


def _crl_der(body: bytes, url: str, what: str) -> bytes:
    """DER as is; hex text (PCCS) decoded. Anything else is refused (never stored)."""
    if _is_der_sequence(body):
        return body
    text = body.strip()
    if text and len(text) % 2 == 0 and _HEX_RE.match(text):
        der = binascii.unhexlify(text)
        if _is_der_sequence(der):
            return der
    raise FetchError(Code.INTEL_COLLATERAL_UNAVAILABLE, f"{what}: body is neither DER nor hex DER", url=url, status=200)


def _next_update(body: bytes, member: str, url: str) -> datetime:
    try:
        doc = json.loads(body)
        value = doc[member]["nextUpdate"]
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError) as exc:
        raise FetchError(
            Code.INTEL_COLLATERAL_UNAVAILABLE, f"{member}: body is not a signed {member} document", url=url, status=200
        ) from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------------------------------------
# AMD KDS


class AmdKdsClient:
    """AMD KDS (``https://kdsintf.amd.com``): VCEK by product, hwID and REPORTED_TCB SPLs, and the ARK-signed CRL of
    each product's VCEK and VLEK chains. Returns DER."""

    def __init__(self, base_url: str, client: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client

    def vcek_url(self, product: Product, chip_id: bytes, reported_tcb: TcbVersion) -> str:
        name = KDS_PRODUCT_NAMES[product]
        if product == "turin":
            if reported_tcb.fmc is None:
                raise ValueError("a Turin TCB_VERSION has an FMC SPL")
            hwid = chip_id[:8].hex()
            query = f"fmcSPL={reported_tcb.fmc}&"
        else:
            hwid = chip_id.hex()
            query = ""
        query += (
            f"blSPL={reported_tcb.bootloader}&teeSPL={reported_tcb.tee}"
            f"&snpSPL={reported_tcb.snp}&ucodeSPL={reported_tcb.microcode}"
        )
        return f"{self.base_url}/vcek/v1/{name}/{hwid}?{query}"

    def fetch_vcek(self, product: Product, chip_id: bytes, reported_tcb: TcbVersion) -> bytes:
        """The VCEK (DER) for this chip at this TCB. Raises :class:`FetchError` (``snp.leaf.unavailable``)."""
        url = self.vcek_url(product, chip_id, reported_tcb)
        body, _headers = _get(self.client, url, Code.SNP_LEAF_UNAVAILABLE, "KDS VCEK")
        if not _is_der_sequence(body):  # parsed for real at verification (KDS VCEKs have serial 0)
            raise FetchError(Code.SNP_LEAF_UNAVAILABLE, "KDS VCEK: body is not a DER certificate", url=url, status=200)
        return body

    def crl_url(self, product: Product, signing_key: SigningKeyName) -> str:
        return f"{self.base_url}/{signing_key}/v1/{KDS_PRODUCT_NAMES[product]}/crl"

    def fetch_crl(self, product: Product, signing_key: SigningKeyName) -> bytes:
        """The CRL (DER, issued and signed by the product's ARK) of the ``vcek`` or ``vlek`` chain. Raises
        :class:`FetchError` (``snp.crl.unavailable``); its signature and window are checked at verification."""
        url = self.crl_url(product, signing_key)
        body, _headers = _get(self.client, url, Code.SNP_CRL_UNAVAILABLE, "KDS CRL")
        if not _is_der_sequence(body):
            raise FetchError(Code.SNP_CRL_UNAVAILABLE, "KDS CRL: body is not a DER CRL", url=url, status=200)
        return body
