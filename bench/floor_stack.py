"""The floor row of ``bench.e2e_service``: the smallest honest attest+release on Keyward's own stack.

perf-floor.md section (1) F2, built and run as processes (``FloorStack``) and driven by the same load generator as
the service, measured the same way:

* **API**: an async FastAPI app on uvicorn (uvloop + httptools, no access log). ``POST /v1/challenges``: an HMAC
  nonce (expiry || 16 random bytes || HMAC-SHA256[:16]), no I/O. ``POST /v1/attestations``: the Bearer licence
  checked by HMAC-SHA256 against a credential cache loaded at start-up (the HMAC runs on every request), the same
  JSON body validated by a pydantic model with length limits, the model name resolved from an in-process catalog
  cache, the enclave JWK's shape checked, **one autocommit SQLAlchemy Core INSERT** of the request (the ~17 KB
  evidence as JSONB) on SQLAlchemy's async engine (psycopg), a Celery task published (ids only) to a ``--pool=solo``
  worker, and the answer awaited on an ``asyncio.Future`` woken by **one async Redis pub/sub subscriber** per API
  process; the answer is built from the message (no read back).
* **Worker**: Celery, solo pool, ``acks_late``, prefetch 1, one psycopg connection held for the process's life (taken
  from a SQLAlchemy engine's pool). The decision's SQL as prepared statements in **psycopg pipeline mode, 2 round
  trips**: (1) BEGIN + one read CTE: the attestation ``FOR UPDATE`` (returning the evidence and the JWK), the nonce
  ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` (single use), the entitlement ⋈ customer ``FOR UPDATE OF
  entitlement``, the catalog (model version ⋈ model, the newest wrapped model key, the TDX reference values) and the
  deployment if it exists; (2) ``pg_advisory_xact_lock`` (orders audit appends), one write CTE (seat: deployment
  upsert + seat counter, supersede the deployment's live lease, lease insert, attestation update with claims,
  verdict, EAR and JWE), one audit CTE (the chain's tail read after the lock, then two hash-chained events with
  ``hash = sha256(prev || canonical JSON)`` computed by PostgreSQL over the body Python serialised), COMMIT.
  Then ``PUBLISH`` of the decision (~2 KB) on the API's channel.
* **Crypto** with ``cryptography``: the nonce's HMAC and expiry (redeem), 2 ECDSA P-256 verifies of the quote (the
  quote signature by the quote's attestation key, the QE report signature by the PCK leaf key), the QE report's
  binding of the attestation key (SHA-256), REPORTDATA = SHA-512(nonce || RFC 7638 thumbprint), the MRTD against
  the reference values, the model key unwrapped with the KEK (AES-256-GCM), a JWE ``ECDH-ES+A256KW`` / ``A256GCM``
  to the enclave key (P-384 or P-256: ephemeral key, ECDH, Concat KDF, AES key wrap, AES-GCM) and an ES256 EAR JWT
  (~1 KB of claims).

Left out, on purpose (what a warm, correct verifier may cache or skip): the PCK chain, TCB info, QE identity and
CRLs are not verified; the PCK leaf's public key is cached by the SHA-256 of the chain bytes in the quote, and the
collateral by the SHA-256 of its JSON text (a content-hash cache, as the issue proposes). No per-request ids, logs,
metrics or middleware; no idempotent replay of an already decided attestation beyond answering its status; a failed
check stores a rejection and one audit event but its reasons are a bare code. GPUs are not supported
(``--gpus 0`` only). The schema is the floor's own (``SCHEMA`` below: the same shapes as Keyward's tables for what
the operation touches, not its migrations), in a throw-away database.

Configuration by environment: ``FLOOR_DATABASE_URL`` (``postgresql+psycopg://``), ``FLOOR_BROKER_URL`` (Redis),
``FLOOR_PREFIX`` (the run's Redis key prefix and channel), ``FLOOR_SECRET`` (hex; derives the nonce key, the KEK,
the credential pepper and the EAR signing key).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Annotated, Any, Final, Self

from celery import Celery
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from fastapi import FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, Field
from sqlalchemy import (
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    create_engine,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from verifier.simulation.intel_quote_builder import TdReport, quote_layout
from verifier.testing.devstack import free_port

ROOT = Path(__file__).resolve().parents[1]
GENESIS: Final = bytes(32)
NONCE_TTL: Final = 300
TD_MRTD_OFFSET, TD_REPORTDATA_OFFSET = 136, 520  # TD report body offsets (Intel TDX DCAP quote v4, A.3.2)
QE_REPORTDATA_OFFSET: Final = 320  # SGX report body
_AUDIT_LOCK: Final = 0x666C6F72  # "flor"
_EXPIRY = struct.Struct(">Q")

SCHEMA: Final = """
CREATE TABLE customer (id uuid PRIMARY KEY, name text NOT NULL, status text NOT NULL);
CREATE TABLE model (id uuid PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE model_version (id uuid PRIMARY KEY, model_id uuid NOT NULL REFERENCES model, version text NOT NULL,
    UNIQUE (model_id, version));
CREATE TABLE model_key (id uuid PRIMARY KEY, model_version_id uuid NOT NULL REFERENCES model_version,
    wrapped_dek bytea NOT NULL, created_at timestamptz NOT NULL);
CREATE INDEX ix_model_key_version ON model_key (model_version_id, created_at DESC);
CREATE TABLE reference_value (id uuid PRIMARY KEY, model_version_id uuid NOT NULL REFERENCES model_version,
    platform text NOT NULL, status text NOT NULL, "values" jsonb NOT NULL);
CREATE INDEX ix_reference_value_version ON reference_value (model_version_id, platform);
CREATE TABLE entitlement (id uuid PRIMARY KEY, customer_id uuid NOT NULL REFERENCES customer,
    model_id uuid NOT NULL REFERENCES model, status text NOT NULL, seats integer NOT NULL,
    seats_used integer NOT NULL DEFAULT 0, lease_ttl_seconds integer NOT NULL);
CREATE TABLE credential (id uuid PRIMARY KEY, key_id text NOT NULL UNIQUE, secret_hash bytea NOT NULL,
    entitlement_id uuid REFERENCES entitlement, status text NOT NULL);
CREATE TABLE deployment (id uuid PRIMARY KEY, entitlement_id uuid NOT NULL REFERENCES entitlement,
    name text NOT NULL, created_at timestamptz NOT NULL, last_seen_at timestamptz NOT NULL,
    UNIQUE (entitlement_id, name));
CREATE TABLE attestation (id uuid PRIMARY KEY, entitlement_id uuid NOT NULL REFERENCES entitlement,
    model_version_id uuid NOT NULL REFERENCES model_version, deployment_name text NOT NULL, kind text NOT NULL,
    platforms text[] NOT NULL, status text NOT NULL, nonce bytea NOT NULL, enclave_jwk jsonb NOT NULL,
    evidence jsonb NOT NULL, created_at timestamptz NOT NULL, decided_at timestamptz, lease_id uuid,
    claims jsonb, verdict jsonb, result_token text, wrapped_key text);
CREATE INDEX ix_attestation_status ON attestation (status);
CREATE TABLE lease (id uuid PRIMARY KEY, entitlement_id uuid NOT NULL REFERENCES entitlement,
    deployment_id uuid NOT NULL REFERENCES deployment, attestation_id uuid NOT NULL REFERENCES attestation,
    status text NOT NULL, issued_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, ended_at timestamptz);
CREATE INDEX ix_lease_deployment_live ON lease (deployment_id) WHERE status = 'active';
CREATE TABLE used_nonce (nonce bytea PRIMARY KEY, used_at timestamptz NOT NULL);
CREATE TABLE audit_event (id bigserial PRIMARY KEY, at timestamptz NOT NULL, tag text NOT NULL, actor text NOT NULL,
    subject_type text NOT NULL, subject_id text NOT NULL, data jsonb NOT NULL, prev_hash bytea NOT NULL,
    hash bytea NOT NULL UNIQUE);
"""

# The API's one INSERT, a SQLAlchemy Core statement built once.
_meta = MetaData()
attestation_table = Table(
    "attestation",
    _meta,
    Column("id", Uuid, primary_key=True),
    Column("entitlement_id", Uuid),
    Column("model_version_id", Uuid),
    Column("deployment_name", Text),
    Column("kind", Text),
    Column("platforms", ARRAY(Text)),
    Column("status", Text),
    Column("nonce", LargeBinary),
    Column("enclave_jwk", JSONB),
    Column("evidence", JSONB),
    Column("created_at", DateTime(timezone=True)),
)
_INSERT = attestation_table.insert()
_credential = Table(
    "credential", _meta, Column("key_id", String), Column("secret_hash", LargeBinary), Column("entitlement_id", Uuid)
)


# --- secrets --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    nonce: bytes
    kek: bytes
    pepper: bytes
    ear: ec.EllipticCurvePrivateKey

    @classmethod
    def derive(cls, secret: bytes) -> Keys:
        def sub(label: bytes) -> bytes:
            return hmac.new(secret, label, hashlib.sha256).digest()

        scalar = int.from_bytes(sub(b"ear") + sub(b"ear2"), "big") % (2**256 - 2**224 - 2**200)  # < n of P-256
        return cls(sub(b"nonce"), sub(b"kek"), sub(b"pepper"), ec.derive_private_key(scalar + 1, ec.SECP256R1()))


@cache
def keys() -> Keys:
    return Keys.derive(bytes.fromhex(os.environ["FLOOR_SECRET"]))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text_: str) -> bytes:
    return base64.urlsafe_b64decode(text_ + "=" * (-len(text_) % 4))


def issue_nonce(key: bytes, now: float) -> tuple[str, int]:
    expiry = int(now) + NONCE_TTL
    signed = _EXPIRY.pack(expiry) + secrets.token_bytes(16)
    return b64url(signed + hmac.new(key, signed, hashlib.sha256).digest()[:16]), expiry


def redeem_nonce(key: bytes, nonce: bytes, now: float) -> bool:
    """HMAC and expiry (single use is the ``used_nonce`` INSERT)."""
    if len(nonce) != 40:
        return False
    mac = hmac.new(key, nonce[:24], hashlib.sha256).digest()[:16]
    return hmac.compare_digest(mac, nonce[24:]) and _EXPIRY.unpack_from(nonce)[0] >= now


def credential_hash(pepper: bytes, secret: str) -> bytes:
    return hmac.new(pepper, secret.encode(), hashlib.sha256).digest()


# --- JOSE with cryptography -----------------------------------------------------------------------------------

_CURVES: Final = {"P-256": (ec.SECP256R1, 32), "P-384": (ec.SECP384R1, 48)}


def enclave_public_key(jwk: dict[str, str]) -> tuple[ec.EllipticCurvePublicKey, bytes]:
    """The key and its raw RFC 7638 thumbprint."""
    curve, _ = _CURVES[jwk["crv"]]
    x, y = int.from_bytes(unb64url(jwk["x"]), "big"), int.from_bytes(unb64url(jwk["y"]), "big")
    key = ec.EllipticCurvePublicNumbers(x, y, curve()).public_key()
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":")).encode()
    return key, hashlib.sha256(canonical).digest()


def _length_prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


_KDF_INFO: Final = _length_prefixed(b"ECDH-ES+A256KW") + _length_prefixed(b"") * 2 + struct.pack(">I", 256)


def jwe_ecdh_es_a256kw(plaintext: bytes, recipient: ec.EllipticCurvePublicKey, crv: str) -> str:
    """Compact JWE, ``ECDH-ES+A256KW`` + ``A256GCM`` (RFC 7518 §4.6, §4.4, §5.3)."""
    curve, size = _CURVES[crv]
    ephemeral = ec.generate_private_key(curve())
    shared = ephemeral.exchange(ec.ECDH(), recipient)
    kek = ConcatKDFHash(hashes.SHA256(), 32, _KDF_INFO).derive(shared)
    cek = secrets.token_bytes(32)
    pub = ephemeral.public_key().public_numbers()
    epk = {"crv": crv, "kty": "EC", "x": b64url(pub.x.to_bytes(size, "big")), "y": b64url(pub.y.to_bytes(size, "big"))}
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "application/octet-stream", "epk": epk}
    protected = b64url(json.dumps(header, separators=(",", ":")).encode())
    iv = secrets.token_bytes(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode())
    parts = (aes_key_wrap(kek, cek), iv, sealed[:-16], sealed[-16:])
    return protected + "." + ".".join(b64url(p) for p in parts)


_EAR_HEADER: Final = b64url(b'{"alg":"ES256","typ":"JWT","kid":"floor-ear"}')


def es256_jwt(claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    signing_input = _EAR_HEADER + "." + b64url(json.dumps(claims, separators=(",", ":")).encode())
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _verify_p256(raw_key: bytes, signature: bytes, data: bytes) -> None:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + raw_key)
    _verify_with(key, signature, data)


def _verify_with(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    key.verify(der, data, ec.ECDSA(hashes.SHA256()))  # raises InvalidSignature


# --- the API --------------------------------------------------------------------------------------------------


class EvidenceIn(BaseModel):
    type: str = Field(max_length=32)
    evidence: str = Field(max_length=256 * 1024)
    collateral: str | None = Field(None, max_length=1024 * 1024)


class AttestationIn(BaseModel):
    nonce: str = Field(max_length=128)
    model: str = Field(max_length=200)
    model_version: str | None = Field(None, max_length=64)
    deployment: str = Field(min_length=1, max_length=200)
    enclave_key: dict[str, str] = Field(max_length=16)
    evidence: list[EvidenceIn] = Field(min_length=1, max_length=17)


class ChallengeOut(BaseModel):
    nonce: str
    expires_at: datetime


class LeaseOut(BaseModel):
    id: uuid.UUID
    expires_at: datetime
    renew_after: datetime


class AttestationOut(BaseModel):
    id: uuid.UUID
    status: str
    status_url: str
    lease: LeaseOut | None = None
    wrapped_key: str | None = None
    result_token: str | None = None
    reasons: list[str] = []
    simulated: bool = True


class _ApiState:
    def __init__(self) -> None:
        from redis import asyncio as aioredis  # noqa: PLC0415
        from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

        self.keys = keys()
        self.prefix = os.environ["FLOOR_PREFIX"]
        self.channel = self.prefix + "decided"
        self.engine = create_async_engine(os.environ["FLOOR_DATABASE_URL"], isolation_level="AUTOCOMMIT", pool_size=16)
        self.redis = aioredis.Redis.from_url(os.environ["FLOOR_BROKER_URL"])
        self.waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.credentials: dict[str, tuple[bytes, uuid.UUID]] = {}
        self.catalog: dict[tuple[uuid.UUID, str, str | None], uuid.UUID] = {}
        self.subscriber: asyncio.Task[None] | None = None

    async def load(self) -> None:
        async with self.engine.connect() as conn:
            for key_id, secret_hash, entitlement_id in await conn.execute(
                text("SELECT key_id, secret_hash, entitlement_id FROM credential WHERE status = 'active'")
            ):
                self.credentials[key_id] = (secret_hash, entitlement_id)
            rows = await conn.execute(
                text(
                    "SELECT e.id, m.name, mv.version, mv.id FROM entitlement e JOIN model m ON m.id = e.model_id "
                    "JOIN model_version mv ON mv.model_id = m.id"
                )
            )
            for entitlement_id, model, version, version_id in rows:
                self.catalog[entitlement_id, model, version] = version_id
                self.catalog[entitlement_id, model, None] = version_id  # newest-version lookup, one version here
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.channel)
        self.subscriber = asyncio.create_task(self._listen(pubsub))

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            data = json.loads(message["data"])
            future = self.waiters.pop(data["id"], None)
            if future is not None and not future.done():
                future.set_result(data)

    async def close(self) -> None:
        if self.subscriber is not None:
            self.subscriber.cancel()
            with suppress(asyncio.CancelledError):
                await self.subscriber
        await self.redis.aclose()
        await self.engine.dispose()

    def authenticate(self, authorization: str | None) -> uuid.UUID:
        """``Bearer <key_id>.<secret>``: HMAC of the secret against the cached hash, every request."""
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "missing credential")
        key_id, _, secret = authorization[7:].partition(".")
        found = self.credentials.get(key_id)
        if found is None or not hmac.compare_digest(found[0], credential_hash(self.keys.pepper, secret)):
            raise HTTPException(401, "bad credential")
        return found[1]


def create_app() -> FastAPI:
    state = _ApiState()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await state.load()
        yield
        await state.close()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/challenges", response_model=ChallengeOut)
    async def challenge(authorization: Annotated[str | None, Header()] = None) -> ChallengeOut:
        state.authenticate(authorization)
        nonce, expiry = issue_nonce(state.keys.nonce, time.time())
        return ChallengeOut(nonce=nonce, expires_at=datetime.fromtimestamp(expiry, UTC))

    @app.post("/v1/attestations", response_model=AttestationOut, status_code=202)
    async def attest(
        body: AttestationIn,
        response: Response,
        authorization: Annotated[str | None, Header()] = None,
        prefer: Annotated[str | None, Header()] = None,
    ) -> AttestationOut:
        entitlement_id = state.authenticate(authorization)
        version_id = state.catalog.get((entitlement_id, body.model, body.model_version))
        if version_id is None:
            raise HTTPException(403, "model not licensed")
        jwk = body.enclave_key
        if jwk.get("kty") != "EC" or jwk.get("crv") not in _CURVES or not {"x", "y"} <= jwk.keys() or "d" in jwk:
            raise HTTPException(400, "enclave key must be a public EC P-256/P-384 JWK")
        try:
            nonce = unb64url(body.nonce)
        except ValueError as e:
            raise HTTPException(400, "nonce is not base64url") from e
        att_id = uuid.uuid4()
        row = {
            "id": att_id,
            "entitlement_id": entitlement_id,
            "model_version_id": version_id,
            "deployment_name": body.deployment,
            "kind": "attest",
            "platforms": sorted({e.type for e in body.evidence}),
            "status": "pending",
            "nonce": nonce,
            "enclave_jwk": jwk,
            "evidence": [e.model_dump(exclude_none=True) for e in body.evidence],
            "created_at": datetime.now(UTC),
        }
        async with state.engine.connect() as conn:
            await conn.execute(_INSERT, row)
        key = str(att_id)
        url = f"/v1/attestations/{key}"
        wait = _wait_seconds(prefer)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if wait > 0:
            state.waiters[key] = future
        decide.apply_async(args=[key])
        if wait <= 0:
            return AttestationOut(id=att_id, status="pending", status_url=url)
        try:
            decided = await asyncio.wait_for(future, wait)
        except TimeoutError:
            state.waiters.pop(key, None)
            return AttestationOut(id=att_id, status="pending", status_url=url)
        response.status_code = 200
        return AttestationOut(status_url=url, **decided)

    return app


def _wait_seconds(prefer: str | None) -> float:
    if not prefer:
        return 0.0
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name == "wait" and value.isdigit():
            return min(float(value), 30.0)
    return 0.0


# --- the worker -----------------------------------------------------------------------------------------------

celery_app = Celery("floor")


def _configure_celery() -> None:
    prefix = os.environ.get("FLOOR_PREFIX", "floor:")
    celery_app.conf.update(
        broker_url=os.environ.get("FLOOR_BROKER_URL", "redis://127.0.0.1:6379/9"),
        broker_transport_options={"global_keyprefix": prefix},
        task_default_queue="floor",
        task_acks_late=True,
        task_ignore_result=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )


_configure_celery()

_READ: Final = """
WITH a AS (
    SELECT id, entitlement_id, model_version_id, deployment_name, status, nonce, enclave_jwk, evidence
    FROM attestation WHERE id = %(id)s FOR UPDATE
), n AS (
    INSERT INTO used_nonce (nonce, used_at) SELECT nonce, %(now)s FROM a WHERE a.status = 'pending'
    ON CONFLICT DO NOTHING RETURNING nonce
), e AS (
    SELECT en.id, en.status, en.seats, en.seats_used, en.lease_ttl_seconds, c.status AS customer_status
    FROM entitlement en JOIN customer c ON c.id = en.customer_id
    WHERE en.id = (SELECT entitlement_id FROM a) FOR UPDATE OF en
)
SELECT a.status, a.nonce, a.enclave_jwk, a.evidence, a.deployment_name, a.entitlement_id, a.model_version_id,
    (SELECT count(*) FROM n) AS fresh, e.status, e.seats, e.seats_used, e.lease_ttl_seconds, e.customer_status,
    m.name, mv.version, mk.id, mk.wrapped_dek, rv."values", d.id
FROM a JOIN e ON true
JOIN model_version mv ON mv.id = a.model_version_id JOIN model m ON m.id = mv.model_id
LEFT JOIN LATERAL (SELECT id, wrapped_dek FROM model_key k WHERE k.model_version_id = mv.id
    ORDER BY created_at DESC LIMIT 1) mk ON true
LEFT JOIN reference_value rv ON rv.model_version_id = mv.id AND rv.platform = 'intel-tdx' AND rv.status = 'active'
LEFT JOIN deployment d ON d.entitlement_id = a.entitlement_id AND d.name = a.deployment_name
"""

_LOCK: Final = "SELECT pg_advisory_xact_lock(%(k)s)"

_WRITE: Final = """
WITH d AS (
    INSERT INTO deployment (id, entitlement_id, name, created_at, last_seen_at)
    VALUES (%(deployment_id)s, %(entitlement_id)s, %(deployment)s, %(now)s, %(now)s)
    ON CONFLICT (entitlement_id, name) DO UPDATE SET last_seen_at = excluded.last_seen_at
    RETURNING id, (xmax = 0) AS inserted
), seat AS (
    UPDATE entitlement SET seats_used = seats_used + 1
    WHERE id = %(entitlement_id)s AND EXISTS (SELECT 1 FROM d WHERE inserted) RETURNING seats_used
), superseded AS (
    UPDATE lease SET status = 'superseded', ended_at = %(now)s
    WHERE deployment_id = (SELECT id FROM d) AND status = 'active' RETURNING id
), l AS (
    INSERT INTO lease (id, entitlement_id, deployment_id, attestation_id, status, issued_at, expires_at)
    SELECT %(lease_id)s, %(entitlement_id)s, d.id, %(id)s, 'active', %(now)s, %(expires)s FROM d RETURNING id
)
UPDATE attestation SET status = 'accepted', decided_at = %(now)s, lease_id = (SELECT id FROM l),
    claims = %(claims)s, verdict = %(verdict)s, result_token = %(ear)s, wrapped_key = %(jwe)s
WHERE id = %(id)s
RETURNING (SELECT count(*) FROM superseded)
"""

_REJECT: Final = """
UPDATE attestation SET status = 'rejected', decided_at = %(now)s, verdict = %(verdict)s WHERE id = %(id)s
"""

_AUDIT2: Final = """
WITH tail AS (
    SELECT coalesce((SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1), %(genesis)s) AS h
), e1 AS (
    INSERT INTO audit_event (at, tag, actor, subject_type, subject_id, data, prev_hash, hash)
    SELECT %(at)s, %(tag1)s, %(actor)s, %(type1)s, %(subject1)s, %(data1)s, h, sha256(h || %(body1)s) FROM tail
    RETURNING hash
)
INSERT INTO audit_event (at, tag, actor, subject_type, subject_id, data, prev_hash, hash)
SELECT %(at)s, %(tag2)s, %(actor)s, %(type2)s, %(subject2)s, %(data2)s, hash, sha256(hash || %(body2)s) FROM e1
"""
_AUDIT1: Final = """
WITH tail AS (
    SELECT coalesce((SELECT hash FROM audit_event ORDER BY id DESC LIMIT 1), %(genesis)s) AS h
)
INSERT INTO audit_event (at, tag, actor, subject_type, subject_id, data, prev_hash, hash)
SELECT %(at)s, %(tag1)s, %(actor)s, %(type1)s, %(subject1)s, %(data1)s, h, sha256(h || %(body1)s) FROM tail
"""


def audit_body(at: datetime, tag: str, actor: str, subject_type: str, subject_id: str, data: dict[str, Any]) -> bytes:
    """What an event's hash covers after the previous hash (as ``verifier.audit.log``)."""
    doc = {"at": at.isoformat(), "tag": tag, "actor": actor, "subject_type": subject_type, "subject_id": subject_id}
    doc["data"] = data  # type: ignore[assignment]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


class Rejected(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class _Worker:
    def __init__(self) -> None:
        import redis  # noqa: PLC0415

        self.keys = keys()
        url = os.environ["FLOOR_DATABASE_URL"]
        self.engine = create_engine(url, pool_size=1)
        self.raw = self.engine.raw_connection()
        self.pg: Any = self.raw.driver_connection
        assert self.pg is not None
        with self.pg.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        self.pg.commit()
        self.redis = redis.Redis.from_url(os.environ["FLOOR_BROKER_URL"])
        self.channel = os.environ["FLOOR_PREFIX"] + "decided"
        self.pck_keys: dict[bytes, ec.EllipticCurvePublicKey] = {}
        self.collateral: set[bytes] = set()

    def pck_key(self, chain: bytes) -> ec.EllipticCurvePublicKey:
        digest = hashlib.sha256(chain).digest()
        key = self.pck_keys.get(digest)
        if key is None:
            leaf = x509.load_pem_x509_certificate(chain)  # the first PEM block is the PCK leaf
            public = leaf.public_key()
            if not isinstance(public, ec.EllipticCurvePublicKey):
                raise Rejected("pck.key")
            key = self.pck_keys[digest] = public
        return key

    def verify_quote(self, item: dict[str, Any], report_data: bytes, mrtds: list[str]) -> dict[str, Any]:
        if item.get("type") != "intel-tdx":
            raise Rejected("evidence.type")
        quote = base64.b64decode(item["evidence"])
        collateral = item.get("collateral", "").encode()
        digest = hashlib.sha256(collateral).digest()
        if digest not in self.collateral:
            json.loads(collateral)
            self.collateral.add(digest)
        lay = quote_layout(quote)
        att_key = quote[lay.attestation_key_offset : lay.attestation_key_offset + 64]
        sig = quote[lay.quote_signature_offset : lay.quote_signature_offset + 64]
        _verify_p256(att_key, sig, quote[: lay.signed_end])
        qe = quote[lay.qe_report_offset : lay.qe_report_offset + 384]
        qe_sig = quote[lay.qe_report_signature_offset : lay.qe_report_signature_offset + 64]
        _verify_with(self.pck_key(quote[lay.pck_chain_offset : lay.pck_chain_end]), qe_sig, qe)
        auth = quote[lay.qe_auth_data_offset : lay.pck_cert_type_offset]
        if hashlib.sha256(att_key + auth).digest() != qe[QE_REPORTDATA_OFFSET : QE_REPORTDATA_OFFSET + 32]:
            raise Rejected("tdx.qe_report.binding")
        body = lay.body_offset
        if quote[body + TD_REPORTDATA_OFFSET : body + TD_REPORTDATA_OFFSET + 64] != report_data:
            raise Rejected("binding.report_data")
        mrtd = quote[body + TD_MRTD_OFFSET : body + TD_MRTD_OFFSET + 48].hex()
        if mrtd not in mrtds:
            raise Rejected("appraisal.mrtd")
        return {"platform": "intel-tdx", "mrtd": mrtd, "tcb_status": "UpToDate", "collateral": digest.hex()[:16]}

    def decide(self, attestation_id: str) -> None:
        att_id = uuid.UUID(attestation_id)
        now = datetime.now(UTC)
        cur = self.pg.cursor()
        try:
            with self.pg.pipeline():
                cur.execute(_READ, {"id": att_id, "now": now}, prepare=True)
                row = cur.fetchone()
            if row is None:
                self.pg.rollback()
                return
            (status, nonce, jwk, evidence, deployment, ent_id, _, fresh, ent_status, seats, used, ttl) = row[:12]
            (cust_status, model, version, key_id, wrapped_dek, ref, deployment_id) = row[12:]
            if status != "pending":
                self.pg.rollback()
                self.redis.publish(self.channel, json.dumps({"id": attestation_id, "status": status}))
                return
            try:
                message = self._accept(
                    att_id, now, cur, nonce, jwk, evidence, deployment, ent_id, fresh, ent_status, seats, used, ttl,
                    cust_status, model, version, key_id, wrapped_dek, ref, deployment_id,
                )  # fmt: skip
            except Rejected as e:
                message = self._reject(att_id, now, cur, e.code)
        except BaseException:
            self.pg.rollback()
            raise
        finally:
            cur.close()
        self.redis.publish(self.channel, json.dumps(message))

    def _reject(self, att_id: uuid.UUID, now: datetime, cur: Any, code: str) -> dict[str, Any]:
        from psycopg.types.json import Jsonb  # noqa: PLC0415

        verdict = {"accepted": False, "reasons": [code]}
        subject, data = str(att_id), {"reason": code}
        tag = "worker:attestation:rejected"
        params = {"genesis": GENESIS, "at": now, "actor": "worker", "tag1": tag, "type1": "attestation"}
        params |= {"subject1": subject, "data1": Jsonb(data)}
        params["body1"] = audit_body(now, tag, "worker", "attestation", subject, data)
        with self.pg.pipeline():
            cur.execute(_LOCK, {"k": _AUDIT_LOCK}, prepare=True)
            cur.execute(_REJECT, {"id": att_id, "now": now, "verdict": Jsonb(verdict)}, prepare=True)
            cur.execute(_AUDIT1, params, prepare=True)
            self.pg.commit()
        return {"id": str(att_id), "status": "rejected", "reasons": [code]}

    def _accept(
        self,
        att_id: uuid.UUID,
        now: datetime,
        cur: Any,
        nonce: bytes,
        jwk: dict[str, str],
        evidence: list[dict[str, Any]],
        deployment: str,
        ent_id: uuid.UUID,
        fresh: int,
        ent_status: str,
        seats: int,
        used: int,
        ttl: int,
        cust_status: str,
        model: str,
        version: str,
        key_id: uuid.UUID | None,
        wrapped_dek: bytes | None,
        ref: dict[str, Any] | None,
        deployment_id: uuid.UUID | None,
    ) -> dict[str, Any]:
        from psycopg.types.json import Jsonb  # noqa: PLC0415

        if not fresh or not redeem_nonce(self.keys.nonce, bytes(nonce), now.timestamp()):
            raise Rejected("challenge.invalid")
        if ent_status != "active" or cust_status != "active":
            raise Rejected("entitlement.inactive")
        if deployment_id is None and used >= seats:
            raise Rejected("entitlement.seats_exhausted")
        if ref is None or wrapped_dek is None or key_id is None or len(evidence) != 1:
            raise Rejected("appraisal.no_reference_values")
        public, thumbprint = enclave_public_key(jwk)
        report_data = hashlib.sha512(bytes(nonce) + thumbprint).digest()
        claims = self.verify_quote(evidence[0], report_data, ref["allowed_measurements"]["mrtd"])
        wrapped = bytes(wrapped_dek)
        dek = AESGCM(self.keys.kek).decrypt(wrapped[:12], wrapped[12:], key_id.bytes)
        jwe = jwe_ecdh_es_a256kw(dek, public, jwk["crv"])
        lease_id = uuid.uuid4()
        expires = now + timedelta(seconds=ttl)
        verdict = {"accepted": True, "reasons": [], "policy": "floor", "reference_values": "intel-tdx"}
        ear = es256_jwt(
            {
                "eat_profile": "tag:github.com,2023:veraison/ear",
                "iat": int(now.timestamp()),
                "exp": int(expires.timestamp()),
                "ear.verifier-id": {"developer": "keyward-floor", "build": "bench"},
                "submods": {"intel-tdx": {"ear.status": "affirming", "ear.veraison.annotated-evidence": claims}},
                "keyward": {
                    "attestation": str(att_id),
                    "lease": str(lease_id),
                    "model": model,
                    "version": version,
                    "deployment": deployment,
                    "jkt": b64url(thumbprint),
                    "nonce": b64url(bytes(nonce)),
                },
            },
            self.keys.ear,
        )
        write = {"id": att_id, "now": now, "deployment_id": uuid.uuid4(), "entitlement_id": ent_id}
        write |= {"deployment": deployment, "lease_id": lease_id, "expires": expires, "claims": Jsonb(claims)}
        write |= {"verdict": Jsonb(verdict), "ear": ear, "jwe": jwe}
        data1 = {"deployment": deployment, "model": model, "version": version, "lease": str(lease_id)}
        data2 = {"attestation": str(att_id), "expires_at": expires.isoformat()}
        tag1, tag2 = "worker:attestation:accepted", "worker:lease:issued"
        audit = {"genesis": GENESIS, "at": now, "actor": "worker"}
        audit |= {"tag1": tag1, "type1": "attestation", "subject1": str(att_id)}
        audit |= {"tag2": tag2, "type2": "lease", "subject2": str(lease_id)}
        audit |= {"data1": Jsonb(data1), "data2": Jsonb(data2)}
        audit["body1"] = audit_body(now, tag1, "worker", "attestation", str(att_id), data1)
        audit["body2"] = audit_body(now, tag2, "worker", "lease", str(lease_id), data2)
        with self.pg.pipeline():
            cur.execute(_LOCK, {"k": _AUDIT_LOCK}, prepare=True)
            cur.execute(_WRITE, write, prepare=True)
            cur.execute(_AUDIT2, audit, prepare=True)
            self.pg.commit()
        renew = now + timedelta(seconds=ttl // 2)
        return {
            "id": str(att_id),
            "status": "accepted",
            "lease": {"id": str(lease_id), "expires_at": expires.isoformat(), "renew_after": renew.isoformat()},
            "wrapped_key": jwe,
            "result_token": ear,
        }


@cache
def _worker() -> _Worker:
    return _Worker()


@celery_app.task(name="floor.decide", acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
def decide(attestation_id: str) -> None:
    _worker().decide(attestation_id)


# --- set-up, processes, checks --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorSeed:
    licence: str
    model: str


def setup_database(url: str, secret: bytes, *, seats: int) -> FloorSeed:
    """Create the floor's tables in the (empty) database at ``url`` and seed one customer, model, version (with a
    wrapped model key and the simulated TDX MRTD as its reference value), entitlement and licence."""
    k = Keys.derive(secret)
    engine = create_engine(url)
    ids = {name: uuid.uuid4() for name in ("customer", "model", "version", "key", "ref", "entitlement", "cred")}
    dek = AESGCM.generate_key(bit_length=256)
    iv = secrets.token_bytes(12)
    wrapped = iv + AESGCM(k.kek).encrypt(iv, dek, ids["key"].bytes)
    key_id, secret_part = secrets.token_hex(8), secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    ref = json.dumps({"allowed_measurements": {"mrtd": [TdReport().mrtd.hex()]}})
    try:
        with engine.begin() as conn:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(text(statement))
            conn.execute(text("INSERT INTO customer VALUES (:customer, 'floor customer', 'active')"), ids)
            conn.execute(text("INSERT INTO model VALUES (:model, 'floor-llm')"), ids)
            conn.execute(text("INSERT INTO model_version VALUES (:version, :model, '1.0')"), ids)
            conn.execute(
                text("INSERT INTO model_key VALUES (:key, :version, :w, :now)"), {**ids, "w": wrapped, "now": now}
            )
            conn.execute(
                text("INSERT INTO reference_value VALUES (:ref, :version, 'intel-tdx', 'active', CAST(:v AS jsonb))"),
                {**ids, "v": ref},
            )
            conn.execute(
                text("INSERT INTO entitlement VALUES (:entitlement, :customer, :model, 'active', :seats, 0, 900)"),
                {**ids, "seats": seats},
            )
            conn.execute(
                text("INSERT INTO credential VALUES (:cred, :kid, :h, :entitlement, 'active')"),
                {**ids, "kid": key_id, "h": credential_hash(k.pepper, secret_part)},
            )
    finally:
        engine.dispose()
    return FloorSeed(licence=f"{key_id}.{secret_part}", model="floor-llm")


def verify_floor_chain(url: str) -> tuple[int, int | None]:
    """(events, first broken id or None): the floor's audit chain recomputed in Python, link by link."""
    engine = create_engine(url)
    prev, count = GENESIS, 0
    try:
        with engine.connect() as conn:
            conn.execute(text("SET TIME ZONE 'UTC'"))
            columns = "id, at, tag, actor, subject_type, subject_id, data, prev_hash, hash"
            rows = conn.execute(text(f"SELECT {columns} FROM audit_event ORDER BY id"))  # noqa: S608 - constant
            for event_id, at, tag, actor, subject_type, subject_id, data, prev_hash, digest in rows:
                count += 1
                want = hashlib.sha256(prev + audit_body(at, tag, actor, subject_type, subject_id, data)).digest()
                if bytes(prev_hash) != prev or bytes(digest) != want:
                    return count, event_id
                prev = bytes(digest)
    finally:
        engine.dispose()
    return count, None


def status_counts(url: str) -> tuple[dict[str, int], int]:
    """Attestations by status, and leases."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT status, count(*) FROM attestation GROUP BY status")
            counts: dict[str, int] = dict(conn.execute(query).all())
            leases = conn.execute(text("SELECT count(*) FROM lease")).scalar_one()
    finally:
        engine.dispose()
    return counts, int(leases)


class FloorStack:
    """The floor's API (uvicorn, ``api_workers`` processes) and ``workers`` Celery solo workers as child processes;
    output to ``<workdir>/<name>.log``. ``pids()`` has the shape of ``DevStack.pids()``."""

    def __init__(
        self, workdir: Path, database_url: str, broker_url: str, prefix: str, *, workers: int, api_workers: int
    ) -> None:
        self.workdir, self.workers, self.api_workers = workdir, workers, api_workers
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_bytes(32)
        self.env = {
            **os.environ,
            "FLOOR_DATABASE_URL": database_url,
            "FLOOR_BROKER_URL": broker_url,
            "FLOOR_PREFIX": prefix,
            "FLOOR_SECRET": self.secret.hex(),
        }
        self._children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []

    def start(self) -> None:
        celery = [sys.executable, "-m", "celery", "-A", "bench.floor_stack:celery_app", "worker", "--pool=solo"]
        celery += ["--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"]
        for i in range(self.workers):
            self._spawn(f"worker-{i}", [*celery, f"--hostname=floor-{i}@%h"])
        api = [sys.executable, "-m", "uvicorn", "--factory", "bench.floor_stack:create_app", "--host", "127.0.0.1"]
        api += ["--port", str(self.port), "--workers", str(self.api_workers), "--no-access-log"]
        self._spawn("api", [*api, "--log-level", "warning"])

    def wait_until_up(self, timeout: float = 60.0) -> None:
        import httpx  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc, _ in self._children:
                if proc.poll() is not None:
                    raise RuntimeError(f"floor {name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            ready = all(
                "ready." in self.log_tail(f"worker-{i}", 200) for i in range(self.workers)
            )  # celery logs "<host> ready." once it consumes
            try:
                up = httpx.get(self.base_url + "/healthz", timeout=2.0).status_code == 200
            except httpx.TransportError:
                up = False
            if up and ready:
                return
            time.sleep(0.1)
        raise TimeoutError(f"the floor stack did not come up within {timeout} s:\n{self.log_tail('api')}")

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc, _ in self._children}

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self) -> None:
        for _, proc, _ in self._children:
            if proc.poll() is None:
                proc.terminate()
        for _, proc, log in self._children:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            log.close()
        self._children.clear()

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        self._children.append((name, proc, log))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
