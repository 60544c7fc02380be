"""Benchmark: the worker's CPU per warm decision, old against new in the same run: the collateral path (issue 16,
perf-floor.md (3) row 2) and the JOSE (row 11).

One op is the decide task's body on a throw-away PostgreSQL database, in process (no broker, no API): lock the
pending row, parse the evidence, the prefetch check (which cached documents are missing or due), the decision
(nonce, catalog, every item verified and appraised, seat, lease, the JWE to the enclave key, the EAR, the audit
events) and the commit. The evidence is the simulated TDX quote re-signed for each attestation's nonce and enclave
key, its collateral sent with it (the shape ``bench.e2e_service`` sends) and the same platform's four documents in
the collateral cache (as a worker that has fetched them holds them; ``--scenario supplied``: none cached, as in the
e2e bench, whose worker cannot reach Intel PCS).

    .venv/bin/python -m bench.worker_decision            # 5 rounds x 300 decisions per row
    .venv/bin/python -m bench.worker_decision --quick    # 3 rounds x 100
    .venv/bin/python -m bench.worker_decision --curve P-256 --scenario supplied --json
    .venv/bin/python -m bench.worker_decision --quick --rows new --no-jose   # one row, no JOSE table

Rows (every row decides the same kind of attestation; each must be accepted):

* old: the cache rows read twice through the ORM (prefetch, then the decision), no in-process collateral cache;
  joserfc (JWK import, ``jwe.encrypt_compact``, ``jws.serialize_compact``);
* old collateral, new JOSE: ``cryptography`` directly (:mod:`verifier.keywrap.jose`);
* new collateral, old JOSE: one prebuilt Core statement for the prefetch and the decision, and the
  :class:`~verifier.collateral.documents.CollateralCache`; joserfc;
* new: both.

"old" runs today's code with the old pieces put back where they were: the ORM read (``cached_documents``, still in
the repository) for both reads, and the joserfc calls of the previous ``parse_enclave_jwk``, ``wrap_for_enclave``
and ``issue_ear`` (copied below, verbatim but for names) patched in for the JOSE rows.

Measured: CPU ms per decision of this process (``time.process_time``) and of its PostgreSQL backend
(``/proc/<pid>/stat`` utime + stime of ``pg_backend_pid()``; one pooled connection, 10 ms ticks: hence the hundreds
of decisions per row and round), per round; the table shows the median of the rounds (and the min-max). Within a
round the rows take turns every 10 decisions, in an order rotated each turn, so the drift of a shared VM hits each
alike. Also the JOSE alone per op (JWK parse + JWE
+ EAR, no database), old and new, for P-256 and P-384 enclave keys.

Every row decides through the repositories' prebuilt Core statements (issue 16: the decision's database work
left the ORM unit of work). That change is not a row here: the ORM decision cannot run beside it in one process, so
bench/README.md compares it by running ``--rows new`` against the tree of the commit before it (``PYTHONPATH``),
alternating with the new code.

Needs the local PostgreSQL (``KEYWARD_TEST_ADMIN_URL``; a database ``keyward_bench_*`` is created and dropped).
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwe, jwk, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench._harness import machine
from bench.nvidia_decision import SECRET, seed
from verifier import limits
from verifier.attestation import flows
from verifier.attestation.challenges import issue_challenge
from verifier.attestation.context import DecisionContext
from verifier.attestation.flows import decide_locked, lock_attestation
from verifier.clock import Clock
from verifier.collateral.documents import Document, RowKey, Wanted
from verifier.collateral.freshness import Freshness, is_due
from verifier.collateral.repository import INTEL, cached_documents, put_document
from verifier.db.engine import upgrade_database
from verifier.db.models import Attestation, AttestationStatus
from verifier.errors import Code, EvidenceMalformed
from verifier.keywrap import ear
from verifier.keywrap.ear import ProviderKeyring, ProviderSigningKey, issue_ear
from verifier.keywrap.enclave import (
    EC_CURVES,
    MIN_RSA_BITS,
    EnclaveKey,
    expected_report_data,
    parse_enclave_jwk,
    wrap_for_enclave,
)
from verifier.keywrap.kek import LocalAesKek
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.registry import Parsed, ParsedItem, parse_evidence
from verifier.simulation.intel_pki import SIM_NOW, QuoteOptions, default_pki
from verifier.testing.databases import scratch_database
from verifier.trust.intel_collateral import signed_member
from verifier.worker import vendor_documents
from verifier.worker.refresh import prefetch_check

ROWS = ("old", "old-collateral", "old-jose", "new")
LABELS = {
    "old": "old (ORM reads x2, no collateral cache, joserfc)",
    "old-collateral": "old collateral, new JOSE",
    "old-jose": "new collateral, old JOSE",
    "new": "new (1 Core read, collateral cache, cryptography)",
}
FRESHNESS = Freshness()
CHUNK = 10  # decisions per row before the next row's turn
_JWE_REGISTRY = jwe.JWERegistry(algorithms=["RSA-OAEP-256", "ECDH-ES+A256KW", "A256GCM"])
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


# ----------------------------------------------------------------------------------------------------------
# The previous JOSE (joserfc), as verifier/keywrap/enclave.py and ear.py had it


def joserfc_parse_enclave_jwk(doc: Any) -> EnclaveKey:
    """The previous ``parse_enclave_jwk``: joserfc's import and thumbprint (``key`` holds the joserfc key)."""
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, "enclave key must be a JWK object of string members")
    if len(doc) > limits.MAX_JWK_MEMBERS or any(
        len(k) > limits.MAX_JWK_MEMBER_CHARS or len(v) > limits.MAX_JWK_MEMBER_CHARS for k, v in doc.items()
    ):
        raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, "enclave key has too many or too long members")
    if _PRIVATE_MEMBERS & doc.keys():
        raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, "private members")
    kty = doc.get("kty")
    try:
        if kty == "RSA":
            public = {k: doc[k] for k in ("kty", "n", "e")}
            key: RSAKey | ECKey = RSAKey.import_key(public)
            raw = key.public_key
            if not isinstance(raw, rsa.RSAPublicKey):
                raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, "RSA JWK did not load as an RSA key")
            numbers = raw.public_numbers()
            if numbers.n.bit_length() < MIN_RSA_BITS or numbers.e != 65537:
                raise EvidenceMalformed(Code.KEYWRAP_JWK_WEAK, "weak RSA key")
        elif kty == "EC":
            if doc.get("crv") not in EC_CURVES:
                raise EvidenceMalformed(Code.KEYWRAP_JWK_WEAK, "EC enclave keys must be P-256 or P-384")
            public = {k: doc[k] for k in ("kty", "crv", "x", "y")}
            key = ECKey.import_key(public)
        else:
            raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, f"unsupported key type {kty!r}")
    except KeyError as e:
        raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, f"JWK lacks member {e.args[0]!r}") from e
    except (JoseError, ValueError, TypeError) as e:
        raise EvidenceMalformed(Code.KEYWRAP_JWK_INVALID, f"JWK does not load: {e}") from e
    digest = base64.urlsafe_b64decode(key.thumbprint() + "==")
    return EnclaveKey(public, key, digest)  # type: ignore[arg-type]


def joserfc_wrap_for_enclave(dek: bytes, key: EnclaveKey, *, kid: str | None = None) -> str:
    """The previous ``wrap_for_enclave``: ``jwe.encrypt_compact`` with the joserfc key."""
    header = {"alg": key.alg, "enc": "A256GCM", "cty": "application/octet-stream"}
    if kid:
        header["kid"] = kid
    return jwe.encrypt_compact(header, dek, key.key, registry=_JWE_REGISTRY)  # type: ignore[arg-type]


class JoserfcSigner:
    """The previous EAR signature: what ``jwt.encode`` does after ``json.dumps`` of the claims
    (``jws.serialize_compact`` with the joserfc key), in place of :func:`verifier.keywrap.jose.jws_es256`."""

    def __init__(self, signer: ProviderSigningKey) -> None:
        self.key = signer.key

    def __call__(self, header: dict[str, Any], payload: bytes, _key: object) -> str:
        return jws.serialize_compact(header, payload, self.key, algorithms=["ES256"])


@contextmanager
def old_jose(signer: ProviderSigningKey) -> Iterator[None]:
    """The decision's JOSE as it was, for the duration."""
    patches = (
        (flows, "parse_enclave_jwk", joserfc_parse_enclave_jwk),
        (flows, "wrap_for_enclave", joserfc_wrap_for_enclave),
        (ear, "jws_es256", JoserfcSigner(signer)),
    )
    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    for module, name, value in patches:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


# ----------------------------------------------------------------------------------------------------------
# The previous collateral path: the prefetch's ORM read, then the decision's ORM read of the same rows


def old_prefetch_and_read(session: Session, items: tuple[Parsed, ...]) -> tuple[list[Wanted], dict[RowKey, Document]]:
    """``collateral_needs`` and ``read_needs`` as they were: two ORM reads of the same rows (entities, bodies)."""
    wants: dict[str, Wanted] = {}
    for item in items:
        if isinstance(item, ParsedItem):
            for w in (w for w in item.needs if w.fetchable):
                seen = wants.get(str(w))
                if seen is None or (seen.optional and not w.optional):
                    wants[str(w)] = w
    rows = cached_documents(session, [(w.vendor, w.kind, w.key) for w in wants.values()])
    needs = [
        w
        for w in wants.values()
        if (row := rows.get(w.row)) is None
        or is_due(
            row.kind,
            row.fetched_at,
            row.next_update or vendor_documents.document_next_update(row.kind, row.body),
            SIM_NOW,
            FRESHNESS,
        )
    ]
    read = cached_documents(
        session, list(dict.fromkeys(w.row for p in items if isinstance(p, ParsedItem) for w in p.needs))
    )
    return vendor_documents.fetchable(needs), {k: Document(r.body, r.issuer_chain) for k, r in read.items()}


# ----------------------------------------------------------------------------------------------------------
# The run


class Enclaves:
    """Pending attestations: the simulated TDX quote re-signed for each nonce and enclave key, its collateral sent."""

    def __init__(self, curve: str) -> None:
        self.pki = default_pki()
        self.quote = self.pki.build(QuoteOptions())
        self.curve = curve
        self.keys = [jwk.ECKey.generate_key(curve).as_dict(private=False) for _ in range(16)]
        self.n = 0

    def pending(self, entitlement: uuid.UUID, version: uuid.UUID) -> Attestation:
        self.n += 1
        nonce = issue_challenge(SECRET, SIM_NOW).nonce
        key = dict(self.keys[self.n % len(self.keys)])
        quote = self.pki.rebind(self.quote, expected_report_data(nonce, parse_enclave_jwk(key)))
        item = {
            "type": "intel-tdx",
            "evidence": base64.b64encode(quote).decode(),
            "collateral": self.quote.collateral_json,
        }
        return Attestation(
            entitlement_id=entitlement,
            model_version_id=version,
            deployment_name=f"bench-{uuid.uuid4().hex[:12]}",
            kind="attest",
            platforms=["intel-tdx"],
            status=AttestationStatus.PENDING,
            nonce=nonce,
            enclave_jwk=key,
            created_at=SIM_NOW,
            evidence=[item],
        )


def cache_rows(session: Session, enclaves: Enclaves) -> None:
    pcs = enclaves.quote.pcs
    fmspc = json.loads(signed_member(pcs.tcb_info_body, "tcbInfo")[0])["fmspc"].lower()
    for kind, key, body, chain in (
        ("tcb_info", f"tdx:{fmspc}", pcs.tcb_info_body, pcs.tcb_info_issuer_chain),
        ("qe_identity", "tdx", pcs.qe_identity_body, pcs.qe_identity_issuer_chain),
        ("pck_crl", pcs.ca, pcs.pck_crl, pcs.pck_crl_issuer_chain),
        ("root_ca_crl", "root", pcs.root_ca_crl, None),
    ):
        put_document(session, INTEL, kind, key, body, issuer_chain=chain, fetched_at=SIM_NOW, next_update=None)
    session.commit()


def backoff_optional(items: tuple[Parsed, ...]) -> None:
    """The e2e worker's state without PCS: every optional fetch failed a moment ago, so none is asked for again."""
    for item in items:
        if isinstance(item, ParsedItem):
            for w in item.needs:
                vendor_documents._optional_backoff[str(w)] = float("inf")


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class RowResult:
    key: str
    label: str
    decisions: int
    client_ms: list[float]  # per round
    backend_ms: list[float]
    wall_p50_ms: float

    def summary(self) -> dict[str, Any]:
        c, b = statistics.median(self.client_ms), statistics.median(self.backend_ms)
        return {
            "row": self.key,
            "label": self.label,
            "decisions": self.decisions,
            "worker_cpu_ms": round(c, 3),
            "worker_cpu_ms_rounds": [round(x, 3) for x in self.client_ms],
            "pg_backend_cpu_ms": round(b, 3),
            "pg_backend_cpu_ms_rounds": [round(x, 3) for x in self.backend_ms],
            "sum_ms": round(c + b, 3),
            "wall_p50_ms": round(self.wall_p50_ms, 3),
        }


def run(rounds: int, per_round: int, curve: str, scenario: str, rows: tuple[str, ...] = ROWS) -> list[RowResult]:
    enclaves = Enclaves(curve)
    kek = LocalAesKek(os.urandom(32))
    signer = ProviderSigningKey.generate()
    trust = enclaves.quote.trust_store
    base = DecisionContext(trust=trust, kek=kek, keyring=ProviderKeyring(signer), challenge_secret=SECRET)
    contexts = {"old": replace(base, collateral_cache=None), "new": base}
    clock = Clock.fixed(SIM_NOW)
    client: dict[str, list[float]] = {k: [] for k in rows}
    backend: dict[str, list[float]] = {k: [] for k in rows}
    walls: dict[str, list[float]] = {k: [] for k in rows}
    with scratch_database("keyward_bench") as url:
        upgrade_database(url)
        engine = create_engine(url, pool_size=1, max_overflow=0)
        try:
            with Session(engine, expire_on_commit=False) as s:
                entitlement, version = seed(s, kek, "550.90.07")
                if scenario == "cached":
                    cache_rows(s, enclaves)
                pid = int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())

            def prepare(n: int) -> list[uuid.UUID]:
                with Session(engine, expire_on_commit=False) as s:
                    rows = [enclaves.pending(entitlement, version) for _ in range(n)]
                    s.add_all(rows)
                    s.commit()
                    return [r.id for r in rows]

            def decide_one(att_id: uuid.UUID, key: str) -> None:
                new_collateral = key in ("new", "old-jose")
                ctx = contexts["new" if new_collateral else "old"]
                with Session(engine, expire_on_commit=False) as s:
                    att = lock_attestation(s, att_id)
                    items = parse_evidence(att.evidence, ctx.collateral_cache)
                    if scenario == "supplied":
                        backoff_optional(items)
                    if new_collateral:
                        needs, documents = prefetch_check(s, att, SIM_NOW, FRESHNESS, items)
                    else:
                        needs, documents = old_prefetch_and_read(s, items)
                    if needs:
                        sys.exit(f"bench: the prefetch wants {needs}; the collateral cache is not warm")
                    decided = decide_locked(s, att, ctx, clock, evidence=items, documents=documents)
                    s.commit()
                    if decided.status != AttestationStatus.ACCEPTED:
                        codes = [r["code"] for r in (decided.verdict or {}).get("reasons", [])]
                        sys.exit(f"bench: {key}: decision {decided.status}: {codes}; refusing to time a failing path")

            def decide(ids: list[uuid.UUID], key: str) -> tuple[float, float, list[float]]:
                """CPU seconds of this process and of the backend, and each decision's wall time."""
                jose = old_jose(signer) if key in ("old", "old-jose") else _nothing()
                lat: list[float] = []
                with jose:
                    c0, b0 = time.process_time(), _proc_cpu(pid)
                    for att_id in ids:
                        start = time.perf_counter()
                        decide_one(att_id, key)
                        lat.append(time.perf_counter() - start)
                    c1, b1 = time.process_time(), _proc_cpu(pid)
                return c1 - c0, b1 - b0, lat

            for k in rows:  # warm-up: imports, the connection, the verification and collateral caches
                decide(prepare(10), k)
            for r in range(rounds):
                # Each round: chunks of CHUNK decisions per row, the rows' order rotated chunk by chunk, so drift
                # hits every row alike; the backend's 10 ms ticks sum exactly over a round's chunks.
                pending = {k: prepare(per_round) for k in rows}
                spent = {k: [0.0, 0.0] for k in rows}
                gc.collect()
                gc.disable()
                try:
                    for i, at in enumerate(range(0, per_round, CHUNK)):
                        order = rows[(i + r) % len(rows) :] + rows[: (i + r) % len(rows)]
                        for k in order:
                            c, b, lat = decide(pending[k][at : at + CHUNK], k)
                            spent[k][0] += c
                            spent[k][1] += b
                            walls[k].extend(lat)
                finally:
                    gc.enable()
                for k in rows:
                    client[k].append(spent[k][0] / per_round * 1e3)
                    backend[k].append(spent[k][1] / per_round * 1e3)
        finally:
            engine.dispose()
    return [
        RowResult(k, LABELS[k], rounds * per_round, client[k], backend[k], statistics.median(walls[k]) * 1e3)
        for k in rows
    ]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def jose_rows(seconds: float) -> list[dict[str, Any]]:
    """JWK parse + JWE of a 32-byte DEK + EAR per op, old (joserfc) and new (cryptography), per curve."""
    signer = ProviderSigningKey.generate()
    keyring = ProviderKeyring(signer)
    evaluation = Evaluation("intel-tdx", True, True, "UpToDate", (), {}, ())
    nonce, dek = os.urandom(32), os.urandom(32)

    def ear_token() -> str:
        return issue_ear(
            keyring,
            now=SIM_NOW,
            attestation_id=str(uuid.uuid4()),
            lease_id=str(uuid.uuid4()),
            expires_at=SIM_NOW.replace(year=SIM_NOW.year + 1),
            evaluations=[evaluation],
            nonce=nonce,
            enclave_key_thumbprint="t" * 43,
            model="model",
            model_version="1.0",
            deployment="prod-eu-1",
            customer_id=str(uuid.uuid4()),
        )

    out: list[dict[str, Any]] = []
    for curve in ("P-256", "P-384"):
        doc = dict(jwk.ECKey.generate_key(curve).as_dict(private=False))

        def new_op(doc: dict[str, Any] = doc) -> None:
            key = parse_enclave_jwk(doc)
            wrap_for_enclave(dek, key, kid="lease")
            ear_token()

        def old_op(doc: dict[str, Any] = doc) -> None:
            key = joserfc_parse_enclave_jwk(doc)
            joserfc_wrap_for_enclave(dek, key, kid="lease")
            with old_jose(signer):
                ear_token()

        times: dict[str, list[float]] = {"old": [], "new": []}
        for _ in range(5):
            for name, op in (("old", old_op), ("new", new_op)):
                n, c0 = 0, time.process_time()
                while time.process_time() - c0 < seconds / 5:
                    op()
                    n += 1
                times[name].append((time.process_time() - c0) / n * 1e3)
        out.append(
            {
                "curve": curve,
                "old_ms": round(statistics.median(times["old"]), 4),
                "new_ms": round(statistics.median(times["new"]), 4),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.worker_decision", description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds x 100 decisions per row")
    ap.add_argument("--curve", choices=("P-256", "P-384"), default="P-384", help="enclave keys (default P-384)")
    ap.add_argument("--scenario", choices=("cached", "supplied"), default="cached")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"rows to run, comma-separated (default {','.join(ROWS)})")
    ap.add_argument("--no-jose", action="store_true", help="skip the JOSE-alone table")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rounds, per_round = (3, 100) if args.quick else (5, 300)
    info = machine(("cryptography", "joserfc", "sqlalchemy", "psycopg"))
    load = os.getloadavg()
    chosen = tuple(k for k in args.rows.split(",") if k)
    if not chosen or set(chosen) - set(ROWS):
        ap.error(f"--rows: choose among {', '.join(ROWS)}")
    rows = [r.summary() for r in run(rounds, per_round, args.curve, args.scenario, chosen)]
    jose_ops = [] if args.no_jose else jose_rows(1.0 if args.quick else 3.0)
    load_after = os.getloadavg()
    if args.json:
        print(json.dumps({"machine": info, "load": [load, load_after], "rows": rows, "jose": jose_ops}, indent=2))
        return 0
    print(
        f"warm decision, task-shaped, on PostgreSQL: simulated TDX quote with its collateral, "
        f"{'the 4 documents cached' if args.scenario == 'cached' else 'nothing cached'}, {args.curve} enclave keys"
    )
    print(
        f"machine: {info['cpu']} | Python {info['python']} | cryptography {info['cryptography']} | "
        f"joserfc {info['joserfc']} | load {load[0]:.1f} -> {load_after[0]:.1f} | {rounds} rounds x {per_round} "
        "decisions per row, interleaved | GC off in timed loops | CPU ms per decision, median of rounds (min-max)\n"
    )
    old = rows[0]["sum_ms"]
    print("| row | worker CPU ms | PG backend CPU ms | sum ms | vs old | wall p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        c, b = r["worker_cpu_ms_rounds"], r["pg_backend_cpu_ms_rounds"]
        print(
            f"| {r['label']} | {r['worker_cpu_ms']:.2f} ({min(c):.2f}-{max(c):.2f}) | "
            f"{r['pg_backend_cpu_ms']:.2f} ({min(b):.2f}-{max(b):.2f}) | {r['sum_ms']:.2f} | "
            f"{r['sum_ms'] - old:+.2f} | {r['wall_p50_ms']:.2f} |"
        )
    if not jose_ops:
        return 0
    print("\nJOSE alone per op (JWK parse + JWE of the DEK + EAR), CPU ms, median of 5:\n")
    print("| enclave key | joserfc | cryptography | saved |")
    print("|---|---:|---:|---:|")
    for j in jose_ops:
        print(f"| {j['curve']} | {j['old_ms']:.3f} | {j['new_ms']:.3f} | {j['old_ms'] - j['new_ms']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
