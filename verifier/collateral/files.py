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

Reading is I/O at the edge (CLI, worker; :func:`load_intel_collateral`, :func:`read_file`); building the
:class:`Collateral` from bytes already read is pure (:func:`collateral_from_pcs_files`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from verifier import limits
from verifier.errors import Code, CollateralError, error_for
from verifier.trust.intel_collateral import Collateral, collateral_from_pcs, parse_collateral_json

#: The files of a directory of raw PCS responses; all but ``pck_crl.issuer_chain`` are required.
PCS_FILES: Final = (
    "tcb_info.json",
    "tcb_info.issuer_chain",
    "qe_identity.json",
    "qe_identity.issuer_chain",
    "pck_crl.der",
    "root_ca_crl.der",
    "pck_crl.issuer_chain",
)


def read_file(path: Path, *, max_bytes: int | None = None, code: Code = Code.INTEL_COLLATERAL_MALFORMED) -> bytes:
    """A file's bytes; ``code`` when it is larger than ``max_bytes`` or cannot be read."""
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise error_for(code, f"{path.name} is too large")
        return path.read_bytes()
    except OSError as e:
        raise error_for(code, f"cannot read {path}: {e.strerror}") from e


def _read(path: Path) -> bytes:
    return read_file(path, max_bytes=limits.MAX_COLLATERAL_ITEM_BYTES)


def load_intel_collateral(path: Path) -> Collateral:
    if not path.is_dir():
        return parse_collateral_json(_read(path))
    return collateral_from_pcs_files({n: _read(path / n) for n in PCS_FILES if (path / n).exists()}, str(path))


def collateral_from_pcs_files(files: Mapping[str, bytes], where: str) -> Collateral:
    """Collateral from the :data:`PCS_FILES` read from directory ``where`` (pure: the bytes are arguments)."""

    def required(name: str) -> bytes:
        if name not in files:
            raise CollateralError(
                Code.INTEL_COLLATERAL_MALFORMED, f"cannot read {Path(where) / name}: No such file or directory"
            )
        return files[name]

    def header(name: str) -> str:
        return required(name).decode("ascii", "replace").strip()

    chain = files.get("pck_crl.issuer_chain")
    return collateral_from_pcs(
        tcb_info_body=required("tcb_info.json"),
        tcb_info_issuer_chain=header("tcb_info.issuer_chain"),
        qe_identity_body=required("qe_identity.json"),
        qe_identity_issuer_chain=header("qe_identity.issuer_chain"),
        pck_crl=required("pck_crl.der"),
        root_ca_crl=required("root_ca_crl.der"),
        pck_crl_issuer_chain=None if chain is None else chain.decode("ascii", "replace").strip(),
    )
