"""The pinned root store refuses to start on any mismatch."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from verifier.errors import Code, TrustStoreError
from verifier.trust.store import DEFAULT_VENDOR_ROOTS, INTEL_SGX_ROOT, TrustStore, load_trust_store

INTEL_ROOT_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"


def test_load_trust_store_genuine_intel_root(trust: TrustStore) -> None:
    root = trust.root(INTEL_SGX_ROOT)
    assert root.sha256 == INTEL_ROOT_SHA256
    assert hashlib.sha256(root.der).hexdigest() == INTEL_ROOT_SHA256
    assert root.certificate.subject.rfc4514_string() == (
        "C=US,ST=CA,L=Santa Clara,O=Intel Corporation,CN=Intel SGX Root CA"
    )
    assert trust.simulated is False


@pytest.fixture
def roots_copy(tmp_path: Path) -> Path:
    shutil.copytree(DEFAULT_VENDOR_ROOTS, tmp_path / "roots")
    return tmp_path / "roots"


def _manifest(d: Path) -> Path:
    return d / "MANIFEST.toml"


def test_load_trust_store_tampered_root_refused(roots_copy: Path) -> None:
    # Replace the Intel root with another (genuine, but not the pinned) certificate.
    other = Path(__file__).resolve().parents[2] / "vectors/intel/roots/Intel_SGX_PCK_Platform_CA.pem"
    shutil.copy(other, roots_copy / "intel/Intel_SGX_Provisioning_Certification_RootCA.pem")
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_ROOT_MISMATCH
    assert exc.value.expected == INTEL_ROOT_SHA256


def test_load_trust_store_wrong_digest_refused(roots_copy: Path) -> None:
    m = _manifest(roots_copy)
    m.write_text(m.read_text().replace(INTEL_ROOT_SHA256, "00" * 32))
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_ROOT_MISMATCH


def test_load_trust_store_missing_file_refused(roots_copy: Path) -> None:
    (roots_copy / "intel/Intel_SGX_Provisioning_Certification_RootCA.pem").unlink()
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_ROOT_MISMATCH


@pytest.mark.parametrize(
    "manifest",
    ["", "not toml [[[", "[[root]]\nkey = 'x'\n", "[[root]]\nkey='a'\nfile='../../etc/passwd'\nsha256='00'\n"],
    ids=["empty", "not-toml", "no-file", "path-escape"],
)
def test_load_trust_store_bad_manifest_refused(roots_copy: Path, manifest: str) -> None:
    _manifest(roots_copy).write_text(manifest)
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_MANIFEST_INVALID


def test_load_trust_store_duplicate_key_refused(roots_copy: Path) -> None:
    m = _manifest(roots_copy)
    text = m.read_text()
    m.write_text(text + "\n" + text[text.index("[[root]]") :])
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_MANIFEST_INVALID


def test_trust_store_fingerprint_distinguishes_simulated(trust: TrustStore) -> None:
    sim = TrustStore(trust.roots, simulated=True)
    assert sim.fingerprint != trust.fingerprint
