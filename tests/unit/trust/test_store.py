"""The pinned root store refuses to start on any mismatch."""

from __future__ import annotations

import hashlib
import json
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from verifier.config import Settings
from verifier.errors import Code, TrustStoreError
from verifier.simulation.intel_pki import default_pki
from verifier.trust.store import (
    AZURE_VTPM_ROOT,
    DEFAULT_VENDOR_ROOTS,
    GENUINE_ROOTS,
    INTEL_SGX_ROOT,
    TrustStore,
    load_trust_store,
    trust_store_from_certificates,
)
from verifier.wiring import trust_store_for

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


# -- Code pins: only the genuine vendor roots, whatever vendor_roots_dir holds -----------------------------------


def _manifest_entries(d: Path) -> dict[str, dict[str, str]]:
    return {e["key"]: e for e in tomllib.loads(_manifest(d).read_text())["root"]}


def _write_manifest(d: Path, entries: list[dict[str, str]]) -> None:
    lines = [line for e in entries for line in ("[[root]]", *(f"{k} = {json.dumps(v)}" for k, v in e.items()), "")]
    _manifest(d).write_text("\n".join(lines))


def _fake_intel_root_pem() -> bytes:
    return default_pki().root.public_bytes(Encoding.PEM)


def _sha256_of_pem(pem: bytes) -> str:
    return hashlib.sha256(x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)).hexdigest()


def test_genuine_roots_are_exactly_the_vendor_roots_manifest(trust: TrustStore) -> None:
    manifest = {key: e["sha256"] for key, e in _manifest_entries(DEFAULT_VENDOR_ROOTS).items()}
    assert dict(GENUINE_ROOTS) == manifest
    assert {key: root.sha256 for key, root in trust.roots.items()} == dict(GENUINE_ROOTS)
    assert GENUINE_ROOTS[INTEL_SGX_ROOT] == INTEL_ROOT_SHA256


def _only_fake_intel_root(d: Path) -> None:
    # The audit's reproduction: a directory holding just the fake Intel root, under a self-consistent manifest.
    for child in d.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    (d / "intel").mkdir()
    (d / "intel/root.pem").write_bytes(_fake_intel_root_pem())
    _write_manifest(
        d, [{"key": INTEL_SGX_ROOT, "file": "intel/root.pem", "sha256": _sha256_of_pem(_fake_intel_root_pem())}]
    )


def _fake_root_replaces_genuine(d: Path) -> None:
    entries = _manifest_entries(d)
    (d / entries[INTEL_SGX_ROOT]["file"]).write_bytes(_fake_intel_root_pem())
    entries[INTEL_SGX_ROOT]["sha256"] = _sha256_of_pem(_fake_intel_root_pem())
    _write_manifest(d, list(entries.values()))


def _extra_root(d: Path) -> None:
    (d / "intel/extra.pem").write_bytes(_fake_intel_root_pem())
    extra = {"key": "intel.extra_root", "file": "intel/extra.pem", "sha256": _sha256_of_pem(_fake_intel_root_pem())}
    _write_manifest(d, [*_manifest_entries(d).values(), extra])


def _genuine_roots_swapped(d: Path) -> None:
    entries = _manifest_entries(d)
    milan, genoa = entries["amd.milan.ark"], entries["amd.genoa.ark"]
    milan["file"], genoa["file"] = genoa["file"], milan["file"]
    milan["sha256"], genoa["sha256"] = genoa["sha256"], milan["sha256"]
    _write_manifest(d, list(entries.values()))


@pytest.mark.parametrize(
    "tamper",
    [_only_fake_intel_root, _fake_root_replaces_genuine, _extra_root, _genuine_roots_swapped],
    ids=["only-fake-intel-root", "fake-root-replaces-genuine", "extra-unpinned-root", "genuine-roots-swapped"],
)
def test_load_trust_store_unpinned_root_refused(roots_copy: Path, tamper: Callable[[Path], None]) -> None:
    tamper(roots_copy)
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_ROOT_UNPINNED


@pytest.mark.parametrize("key", sorted(GENUINE_ROOTS))
def test_load_trust_store_missing_pinned_root_refused(roots_copy: Path, key: str) -> None:
    entries = _manifest_entries(roots_copy)
    (roots_copy / entries.pop(key)["file"]).unlink()
    _write_manifest(roots_copy, list(entries.values()))
    with pytest.raises(TrustStoreError) as exc:
        load_trust_store(roots_copy)
    assert exc.value.code == Code.TRUST_ROOT_MISSING
    assert key in exc.value.message


def test_load_trust_store_rewritten_manifest_is_still_the_genuine_store(roots_copy: Path, trust: TrustStore) -> None:
    # The fixtures above rewrite manifests with _write_manifest; unchanged entries must still load.
    _write_manifest(roots_copy, list(_manifest_entries(roots_copy).values()))
    assert load_trust_store(roots_copy).fingerprint == trust.fingerprint


def test_trust_store_genuine_refuses_unpinned_certificate() -> None:
    fake = default_pki().root
    with pytest.raises(TrustStoreError) as exc:
        trust_store_from_certificates({INTEL_SGX_ROOT: fake}, simulated=False)
    assert exc.value.code == Code.TRUST_ROOT_UNPINNED


def test_trust_store_genuine_refuses_root_under_another_key(trust: TrustStore) -> None:
    with pytest.raises(TrustStoreError) as exc:
        TrustStore({INTEL_SGX_ROOT: trust.root("amd.milan.ark")}, simulated=False)
    assert exc.value.code == Code.TRUST_ROOT_UNPINNED


def test_trust_store_simulated_accepts_test_roots() -> None:
    store = trust_store_from_certificates({INTEL_SGX_ROOT: default_pki().root}, simulated=True)
    assert store.simulated is True
    assert store.root(INTEL_SGX_ROOT).certificate == default_pki().root


def test_trust_store_for_development_with_simulated_roots_uses_test_pkis() -> None:
    store = trust_store_for(Settings(allow_simulated_roots=True))
    assert store.simulated is True
    assert store.root(INTEL_SGX_ROOT).sha256 != GENUINE_ROOTS[INTEL_SGX_ROOT]
    assert trust_store_for(Settings()).simulated is False


def test_trust_store_for_development_pins_simulated_azure_vtpm_root() -> None:
    from verifier.simulation.azure_cvm_builder import simulated_azure_vtpm_root

    simulated = trust_store_for(Settings(allow_simulated_roots=True)).root(AZURE_VTPM_ROOT).certificate
    assert simulated == simulated_azure_vtpm_root()
    assert trust_store_for(Settings()).root(AZURE_VTPM_ROOT).certificate != simulated
