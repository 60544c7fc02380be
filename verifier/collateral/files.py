"""Read Intel collateral from files: a dcap-qvl ``QuoteCollateralV3`` JSON file, or a directory of raw PCS
responses saved as served.

Directory layout (names follow the PCS v4 endpoints; header files hold the header value as sent, URL-encoded
or plain PEM):

    tcb_info.json                 body of GET /{sgx,tdx}/certification/v4/tcb?fmspc=...
    tcb_info.issuer_chain         value of the TCB-Info-Issuer-Chain header
    qe_identity.json              body of GET /{sgx,tdx}/certification/v4/qe/identity
    qe_identity.issuer_chain      value of the SGX-Enclave-Identity-Issuer-Chain header
    pck_crl.der                   body of GET /sgx/certification/v4/pckcrl?ca=platform|processor (DER, PEM or hex)
    pck_crl.issuer_chain          value of SGX-PCK-CRL-Issuer-Chain (optional)
    root_ca_crl.der               the Intel SGX Root CA CRL (DER, PEM, or the PCCS hex body)

This is I/O at the edge (CLI, worker); verification receives the resulting :class:`Collateral`.
"""

from __future__ import annotations

from pathlib import Path

from verifier import limits
from verifier.errors import Code, CollateralError
from verifier.trust.intel_collateral import Collateral, collateral_from_pcs, parse_collateral_json


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > limits.MAX_COLLATERAL_ITEM_BYTES:
            raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, f"{path.name} is too large")
        return path.read_bytes()
    except OSError as e:
        raise CollateralError(Code.INTEL_COLLATERAL_MALFORMED, f"cannot read {path}: {e.strerror}") from e


def load_intel_collateral(path: Path) -> Collateral:
    if not path.is_dir():
        return parse_collateral_json(_read(path))
    chain = path / "pck_crl.issuer_chain"
    return collateral_from_pcs(
        tcb_info_body=_read(path / "tcb_info.json"),
        tcb_info_issuer_chain=_read(path / "tcb_info.issuer_chain").decode("ascii", "replace").strip(),
        qe_identity_body=_read(path / "qe_identity.json"),
        qe_identity_issuer_chain=_read(path / "qe_identity.issuer_chain").decode("ascii", "replace").strip(),
        pck_crl=_read(path / "pck_crl.der"),
        root_ca_crl=_read(path / "root_ca_crl.der"),
        pck_crl_issuer_chain=_read(chain).decode("ascii", "replace").strip() if chain.exists() else None,
    )
