"""Property tests (Hypothesis) over the untrusted-input boundary: quote bytes and collateral documents.

(a) ``parse_quote`` on arbitrary bytes / hex-like text raises nothing but ``EvidenceMalformed``.
(b) ``evaluate_intel_quote`` on random mutations of real quotes (P1 SGX v3, P2 TDX v4, P4 TDX v5 body 4, each
    with its own collateral at its pinned time) never raises, always returns an ``Evaluation``, and accepts a
    mutated quote only if everything authenticated is unchanged: the signed region, the quote signature, the
    attestation key, the QE report + its signature, the QE auth data and the DER of each PCK certificate.
    (The PEM *text* around the certificates is covered by no signature, so e.g. a newline turned into a
    carriage return may still verify; ignored trailing padding may change freely too.)
(c) the collateral parsers raise nothing but ``CollateralError`` on arbitrary or mutated JSON.

Profiles: ``keyward-default`` (150 examples per test, the whole file in well under a minute) and ``slow``
(5000 examples), chosen with ``KEYWARD_SLOW=1``. Verifier bugs found here (exceptions
escaping on corrupted PCK certificates, lone-surrogate JSON strings, deeply nested JSON, a ReDoS in PEM parsing)
are fixed; their exact inputs stay below as regression tests.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from verifier import limits
from verifier.appraisal.intel import IntelPolicy
from verifier.errors import Code, CollateralError, EvidenceMalformed, KeywardError
from verifier.evidence.dcap import parse_quote
from verifier.platforms.evaluation import Evaluation, evaluate_intel_quote
from verifier.trust.intel_collateral import Collateral, parse_collateral_json, pem_certificates
from verifier.trust.intel_tcb_info import parse_qe_identity, parse_tcb_info
from verifier.trust.store import load_trust_store

INTEL: Final = Path(__file__).resolve().parents[1] / "vectors" / "intel"

# os.environ is read here only to pick a Hypothesis profile (tests are outside the Settings rule).
SLOW: Final = os.environ.get("KEYWARD_SLOW") == "1"
_SUPPRESS: Final = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("keyward-default", max_examples=150, deadline=None, suppress_health_check=_SUPPRESS)
settings.register_profile("slow", max_examples=5000, deadline=None, suppress_health_check=_SUPPRESS)
PROFILE: Final = settings.get_profile("slow" if SLOW else "keyward-default")

TRUST: Final = load_trust_store()


# ------------------------------------------------------------------------------------------------------------
# Layout helpers (intel-dcap.md §1.2-§1.3), independent of the parser


def _u16(buf: bytes, off: int) -> int:
    return int(struct.unpack_from("<H", buf, off)[0])


def _u32(buf: bytes, off: int) -> int:
    return int(struct.unpack_from("<I", buf, off)[0])


@dataclass(frozen=True, slots=True)
class Fields:
    """Offsets of one real quote's length fields and of its PCK chain text."""

    length_fields: tuple[tuple[int, int], ...]  # (offset, width in bytes)
    pem_start: int
    pem_end: int


def _fields(buf: bytes) -> Fields:
    version = _u16(buf, 0)
    body_end = 54 + _u32(buf, 50) if version == 5 else (432 if version == 3 else 632)
    sd = body_end + 4
    sd_end = sd + _u32(buf, body_end)
    lengths: list[tuple[int, int]] = [(body_end, 4)]
    if version == 5:
        lengths.append((50, 4))
    if version == 3:
        qe_report = sd + 128
    else:
        lengths.append((sd + 130, 4))
        qe_report = sd + 134
    auth_size = qe_report + 384 + 64
    cert_hdr = auth_size + 2 + _u16(buf, auth_size)
    lengths += [(auth_size, 2), (cert_hdr + 2, 4)]
    return Fields(tuple(lengths), cert_hdr + 6, sd_end)


def _authenticated_parts(buf: bytes) -> tuple[object, ...]:
    """Everything in a quote that a signature or a hash covers, with the PCK chain reduced to its DER."""
    q = parse_quote(buf)
    sig = q.signature_data
    cert = sig.certification
    return (
        q.signed,
        sig.signature,
        sig.attestation_key,
        cert.qe_report.raw,
        cert.qe_report_signature,
        cert.qe_auth_data,
        cert.pck_cert_type,
        pem_certificates(cert.pck_chain_pem, what="PCK chain"),
    )


def _with_pck_cert_data(buf: bytes, data: bytes) -> bytes:
    """``buf`` (v4) with its PCK certification data replaced by ``data``, every length made consistent."""
    f = _fields(buf)
    body_end = 632
    sd = body_end + 4
    cert_hdr = f.pem_start - 6
    sig_data = buf[sd:cert_hdr] + struct.pack("<HI", 5, len(data)) + data
    sig_data = sig_data[:130] + struct.pack("<I", len(sig_data) - 134) + sig_data[134:]
    return buf[:body_end] + struct.pack("<I", len(sig_data)) + sig_data


# ------------------------------------------------------------------------------------------------------------
# (a) parse_quote raises only EvidenceMalformed


def _keyward_error_of(fn: Callable[[Any], object], arg: object) -> KeywardError | None:
    """``fn(arg)``'s KeywardError, or None if it returned. Any other exception propagates (the property)."""
    try:
        fn(arg)
    except KeywardError as e:
        return e
    return None


def _parse_raises_only_evidence_malformed(data: bytes) -> None:
    err = _keyward_error_of(parse_quote, data)
    if err is not None:
        assert isinstance(err, EvidenceMalformed), err
        assert err.code.value.startswith("intel.quote."), err.code


REAL_QUOTES: Final = [
    (INTEL / p).read_bytes()
    for p in (
        "phala-dcap-qvl/sgx_v3_quote.bin",
        "phala-dcap-qvl/tdx_v4_quote.bin",
        "phala-dcap-qvl/tdx_v5_body3_quote_outdated.bin",
        "phala-dcap-qvl/tdx_v5_body4_td15ex_quote.bin",
    )
]


@PROFILE
@given(st.binary(max_size=6000))
def test_parse_quote_arbitrary_bytes_raise_only_evidence_malformed(data: bytes) -> None:
    _parse_raises_only_evidence_malformed(data)


@PROFILE
@given(st.sampled_from(REAL_QUOTES), st.integers(min_value=0, max_value=6000), st.binary(max_size=6000))
def test_parse_quote_real_prefix_random_tail_raises_only_evidence_malformed(
    quote: bytes, keep: int, tail: bytes
) -> None:
    # Random bytes after a genuine prefix reach every later length check, not just the version check.
    _parse_raises_only_evidence_malformed(quote[:keep] + tail)


@PROFILE
@given(
    st.sampled_from(["", "0x", "0X", " ", "\n"]),
    st.text(alphabet="0123456789abcdefABCDEF \t\r\n", max_size=6000),
    st.sampled_from(["", "\n", " ", "g", "\x00"]),
)
def test_parse_quote_hex_like_text_raises_only_evidence_malformed(prefix: str, body: str, suffix: str) -> None:
    _parse_raises_only_evidence_malformed((prefix + body + suffix).encode())


@PROFILE
@given(
    st.sampled_from(REAL_QUOTES),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(["", "0x"]),
    st.sampled_from(["", "\n", "\r\n"]),
)
def test_parse_quote_truncated_hex_raises_only_evidence_malformed(
    quote: bytes, keep: int, prefix: str, suffix: str
) -> None:
    _parse_raises_only_evidence_malformed((prefix + quote.hex()[:keep] + suffix).encode())


# ------------------------------------------------------------------------------------------------------------
# (b) evaluate_intel_quote on mutated real quotes


@dataclass(frozen=True, slots=True)
class Subject:
    """A real quote with its own collateral, pinned time and a policy under which it is accepted."""

    name: str
    quote: bytes
    collateral: Collateral
    now: datetime
    policy: IntelPolicy
    fields: Fields


def _subject(case_id: str, policy: IntelPolicy) -> Subject:
    case = next(c for c in json.loads((INTEL / "expected.json").read_text())["cases"] if c["id"] == case_id)
    quote = (INTEL / case["quote"]).read_bytes()
    return Subject(
        name=case_id,
        quote=quote,
        collateral=parse_collateral_json((INTEL / case["collateral"]).read_bytes()),
        now=datetime.fromtimestamp(case["pinned_now_unix"], UTC),
        policy=policy,
        fields=_fields(quote),
    )


SUBJECTS: Final = {
    "P1": _subject("P1", IntelPolicy(accepted_tcb_statuses=frozenset({"ConfigurationAndSWHardeningNeeded"}))),
    "P2": _subject("P2", IntelPolicy()),
    "P4": _subject("P4", IntelPolicy()),
}


def _evaluate(subject: Subject, data: bytes) -> Evaluation:
    return evaluate_intel_quote(data, subject.collateral, TRUST, subject.now, subject.policy)


@pytest.mark.parametrize("name", sorted(SUBJECTS))
def test_evaluate_intel_quote_unmutated_subject_accepted(name: str) -> None:
    # Without this the property below could pass vacuously (nothing ever accepted).
    ev = _evaluate(SUBJECTS[name], SUBJECTS[name].quote)
    assert ev.verified
    assert ev.accepted, ev.reasons


# One mutation: ("flip", pos, mask) | ("len", field_index, value) | ("insert", pos, data) | ("delete", pos, n)
# | ("truncate", size, b""). Positions are taken modulo the current length.
Mutation = tuple[str, int, Any]


def _flip(positions: st.SearchStrategy[int]) -> st.SearchStrategy[Mutation]:
    return st.tuples(st.just("flip"), positions, st.integers(min_value=1, max_value=255))


def _structural(subject: Subject) -> st.SearchStrategy[Mutation]:
    n = len(subject.quote)
    fields = subject.fields.length_fields

    def length_value(i: int) -> st.SearchStrategy[Mutation]:
        off, width = fields[i]
        top = (1 << (8 * width)) - 1
        current = int.from_bytes(subject.quote[off : off + width], "little")
        near = st.integers(min_value=max(0, current - 8), max_value=min(top, current + 8))
        return st.tuples(st.just("len"), st.just(i), st.one_of(st.integers(0, top), near))

    return st.one_of(
        st.integers(min_value=0, max_value=len(fields) - 1).flatmap(length_value),
        st.tuples(st.just("insert"), st.integers(0, n), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), st.integers(0, n), st.integers(min_value=1, max_value=16)),
        st.tuples(st.just("truncate"), st.integers(0, n), st.just(b"")),
    )


def _apply(subject: Subject, data: bytes, mutations: list[Mutation]) -> bytes:
    buf = bytearray(data)
    # Flips and length overwrites first, while the real offsets still mean what they say.
    for kind, a, b in sorted(mutations, key=lambda m: m[0] not in ("flip", "len")):
        if kind == "flip" and buf:
            buf[a % len(buf)] ^= b
        elif kind == "len":
            off, width = subject.fields.length_fields[a]
            if off + width <= len(buf):
                buf[off : off + width] = int(b).to_bytes(width, "little")
        elif kind == "insert":
            pos = a % (len(buf) + 1)
            buf[pos:pos] = b
        elif kind == "delete" and buf:
            pos = a % len(buf)
            del buf[pos : pos + b]
        elif kind == "truncate":
            del buf[a % (len(buf) + 1) :]
    return bytes(buf)


def _check_evaluation(subject: Subject, mutated: bytes) -> None:
    ev = _evaluate(subject, mutated)
    assert isinstance(ev, Evaluation)
    if ev.accepted:
        assert ev.verified
        assert _authenticated_parts(mutated) == _authenticated_parts(subject.quote)
    else:
        assert ev.reasons, "a rejection must say why"


def _outside_pem(subject: Subject) -> st.SearchStrategy[int]:
    f = subject.fields
    ranges = [st.integers(0, f.pem_start - 1)]
    if f.pem_end < len(subject.quote):
        ranges.append(st.integers(f.pem_end, len(subject.quote) - 1))
    return st.one_of(ranges)


def _mutations(subject: Subject) -> st.SearchStrategy[list[Mutation]]:
    return st.lists(st.one_of(_flip(_outside_pem(subject)), _structural(subject)), min_size=1, max_size=4)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SUBJECTS))
@PROFILE
@given(data=st.data())
def test_evaluate_intel_quote_mutated_quote_never_raises_and_never_accepts_forgery(
    name: str, data: st.DataObject
) -> None:
    subject = SUBJECTS[name]
    mutations = data.draw(_mutations(subject), label="mutations")
    _check_evaluation(subject, _apply(subject, subject.quote, mutations))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SUBJECTS))
@PROFILE
@given(data=st.data())
def test_evaluate_intel_quote_single_flip_in_signed_region_rejected(name: str, data: st.DataObject) -> None:
    # The sharp form of the property for the region the quote signature covers: one changed bit or byte
    # in [0, end of body) is never accepted.
    subject = SUBJECTS[name]
    signed_end = len(parse_quote(subject.quote).signed)
    pos = data.draw(st.integers(0, signed_end - 1), label="pos")
    mask = data.draw(st.integers(1, 255), label="mask")
    mutated = _apply(subject, subject.quote, [("flip", pos, mask)])
    ev = _evaluate(subject, mutated)
    assert not ev.accepted
    assert ev.reasons


@pytest.mark.slow
@PROFILE
@example(name="P2", flips=[(1302, 0x02)])  # leaf TBSCertificate version -> InvalidVersion
@example(name="P2", flips=[(1364, 0x01)])  # leaf subject/issuer Name -> ValueError on .subject
@example(name="P2", flips=[(3262, 0x04)])  # intermediate issuer Name -> TypeError on .issuer
@given(
    name=st.sampled_from(sorted(SUBJECTS)),
    flips=st.lists(st.tuples(st.integers(0, 2**16), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_evaluate_intel_quote_flips_in_pck_chain_text_never_raise(name: str, flips: list[tuple[int, int]]) -> None:
    subject = SUBJECTS[name]
    f = subject.fields
    span = f.pem_end - f.pem_start
    muts: list[Mutation] = [("flip", f.pem_start + (pos - f.pem_start) % span, mask) for pos, mask in flips]
    _check_evaluation(subject, _apply(subject, subject.quote, muts))


# The three exact single-byte inputs that once escaped as library exceptions, one per exception type.
# Offsets are absolute in phala-dcap-qvl/tdx_v4_quote.bin (case P2); each changes one base64 character
# of the PEM PCK chain.
PCK_FLIP_BUGS: Final = [
    pytest.param(1302, 0x02, id="leaf-version-A-to-C-InvalidVersion"),
    pytest.param(1364, 0x01, id="leaf-name-w-to-v-ValueError"),
    pytest.param(3262, 0x04, id="intermediate-issuer-E-to-A-TypeError"),
]


@pytest.mark.parametrize(("offset", "mask"), PCK_FLIP_BUGS)
def test_evaluate_intel_quote_corrupt_pck_certificate_rejected(offset: int, mask: int) -> None:
    subject = SUBJECTS["P2"]
    mutated = bytearray(subject.quote)
    mutated[offset] ^= mask
    ev = _evaluate(subject, bytes(mutated))
    assert not ev.accepted
    assert ev.reasons[0].code.value.startswith("intel.pck."), ev.reasons


def test_evaluate_intel_quote_pem_whitespace_run_is_fast() -> None:
    # Regression: a BEGIN marker followed by a whitespace run and no END marker once made the PEM regex
    # backtrack cubically (4000 spaces took ~40 s; the quote may carry 32 KiB). It must stay linear.
    subject = SUBJECTS["P2"]
    mutated = _with_pck_cert_data(subject.quote, b"-----BEGIN CERTIFICATE-----" + b" " * 1500 + b"x")
    assert parse_quote(mutated).signature_data.certification.pck_chain_pem.endswith(b" x")
    start = time.perf_counter()
    ev = _evaluate(subject, mutated)
    elapsed = time.perf_counter() - start
    assert not ev.accepted
    assert ev.reasons[0].code == Code.INTEL_PCK_CHAIN_MALFORMED
    assert elapsed < 0.25, f"{elapsed:.2f} s for 1.5 KB of PEM text"


def test_evaluate_intel_quote_max_size_pem_whitespace_run_is_fast() -> None:
    subject = SUBJECTS["P2"]
    run = b" " * (limits.MAX_CERT_DATA_BYTES - 64)
    mutated = _with_pck_cert_data(subject.quote, b"-----BEGIN CERTIFICATE-----" + run + b"x")
    start = time.perf_counter()
    ev = _evaluate(subject, mutated)
    assert time.perf_counter() - start < 1.0
    assert not ev.accepted


# ------------------------------------------------------------------------------------------------------------
# (c) collateral parsers raise only CollateralError

P2_COLLATERAL: Final = json.loads((INTEL / "phala-dcap-qvl/tdx_v4_quote.collateral.json").read_text())
P1_COLLATERAL: Final = json.loads((INTEL / "phala-dcap-qvl/sgx_v3_quote.collateral.json").read_text())
TCB_INFOS: Final = [
    json.loads(P2_COLLATERAL["tcb_info"]),
    json.loads(P1_COLLATERAL["tcb_info"]),
    json.loads(
        (INTEL / "automata-dcap-attestation/collateral/sgx_tcbinfo_v2-format_00606a000000_2025-06-04.json").read_text()
    )["tcbInfo"],
]
QE_IDENTITIES: Final = [json.loads(P2_COLLATERAL["qe_identity"]), json.loads(P1_COLLATERAL["qe_identity"])]

_INTERESTING_STRINGS: Final = st.sampled_from(
    [
        "",
        "0",
        "00",
        "0" * 12,
        "B0C06F000000",
        "0000",
        "00" * 48,
        "FF" * 16,
        "zz" * 6,
        "2025-06-19T10:16:03Z",
        "2025-06-19",
        "2025-06-19T10:16:03",
        "9999-12-31T23:59:59+14:00",
        "UpToDate",
        "Revoked",
        "OutOfDate",
        "SGX",
        "TDX",
        "QE",
        "TD_QE",
        "TDX_03",
        "-----BEGIN CERTIFICATE-----",
        "-----BEGIN X509 CRL-----",
        "30",
    ]
)
_KEYS: Final = sorted(
    {k for d in (*TCB_INFOS, *QE_IDENTITIES, P2_COLLATERAL) for k in d}
    | {
        "tcb",
        "svn",
        "isvsvn",
        "pcesvn",
        "sgxtcbcomponents",
        "tdxtcbcomponents",
        "tcbStatus",
        "tcbDate",
        "advisoryIDs",
        "mrsigner",
        "attributes",
        "attributesMask",
    }
)
JSON_VALUES: Final = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, 255, 256, 65535, 2**32])
    | st.floats()
    | st.text(max_size=24)
    | _INTERESTING_STRINGS,
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(st.text(max_size=12) | st.sampled_from(_KEYS), children, max_size=6)
    ),
    max_leaves=24,
)


def _collateral_raises_only_collateral_error(fn: Callable[[bytes], object], data: bytes | str) -> None:
    err = _keyward_error_of(fn, data)
    if err is not None:
        assert isinstance(err, CollateralError), err
        assert err.code.value.startswith("intel.collateral."), err.code


PARSERS: Final = {
    "collateral-json": parse_collateral_json,
    "tcb-info": parse_tcb_info,
    "qe-identity": parse_qe_identity,
}

_TEXTISH: Final = st.one_of(
    st.binary(max_size=2000),
    st.text(max_size=2000).map(str.encode),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v)[: len(json.dumps(v)) // 2].encode()),  # cut mid-document
)


@pytest.mark.parametrize("parser", sorted(PARSERS))
@PROFILE
@given(data=_TEXTISH)
def test_collateral_parsers_arbitrary_text_raise_only_collateral_error(parser: str, data: bytes) -> None:
    _collateral_raises_only_collateral_error(PARSERS[parser], data)


@PROFILE
@given(st.text(max_size=2000))
def test_parse_collateral_json_arbitrary_str_raises_only_collateral_error(text: str) -> None:
    # parse_collateral_json also takes str (the CLI reads text).
    _collateral_raises_only_collateral_error(parse_collateral_json, text)


def _paths(doc: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _mutate_doc(doc: Any, path: tuple[str | int, ...], delete: bool, value: object) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def _doc_mutations(seeds: list[Any]) -> st.SearchStrategy[Any]:
    def mutate(seed: Any) -> st.SearchStrategy[Any]:
        paths = _paths(seed)

        def step(doc: Any) -> st.SearchStrategy[Any]:
            return st.tuples(st.sampled_from(paths), st.booleans(), JSON_VALUES).map(lambda t: _apply_doc(doc, *t))

        return step(seed).flatmap(lambda d: st.one_of(st.just(d), step(d)))

    return st.sampled_from(seeds).flatmap(mutate)


def _apply_doc(doc: Any, path: tuple[str | int, ...], delete: bool, value: object) -> Any:
    # A path from the seed may no longer exist after an earlier mutation: then mutate the root.
    try:
        return _mutate_doc(doc, path, delete and bool(path), value)
    except (KeyError, IndexError, TypeError):
        return value


@PROFILE
@given(_doc_mutations(TCB_INFOS))
def test_parse_tcb_info_mutated_real_document_raises_only_collateral_error(doc: Any) -> None:
    _collateral_raises_only_collateral_error(parse_tcb_info, json.dumps(doc).encode())


@PROFILE
@given(_doc_mutations(QE_IDENTITIES))
def test_parse_qe_identity_mutated_real_document_raises_only_collateral_error(doc: Any) -> None:
    _collateral_raises_only_collateral_error(parse_qe_identity, json.dumps(doc).encode())


@PROFILE
@given(_doc_mutations([P2_COLLATERAL, P1_COLLATERAL]))
def test_parse_collateral_json_mutated_real_document_raises_only_collateral_error(doc: Any) -> None:
    _collateral_raises_only_collateral_error(parse_collateral_json, json.dumps(doc).encode())


@pytest.mark.parametrize("doc", [*TCB_INFOS, *QE_IDENTITIES], ids=["tdx-tcb", "sgx-tcb", "sgx-tcb-v2", "td-qe", "qe"])
def test_collateral_parsers_unmutated_seed_parses(doc: dict[str, Any]) -> None:
    # The mutation seeds are valid: a mutation, not the seed, is what the properties above exercise.
    raw = json.dumps(doc, separators=(",", ":")).encode()
    parsed = parse_tcb_info(raw) if "tcbLevels" in doc and "mrsigner" not in doc else parse_qe_identity(raw)
    assert parsed.levels


def _collateral_doc(**overrides: str) -> bytes:
    doc = {k: v for k, v in P2_COLLATERAL.items() if isinstance(v, str)}
    return json.dumps(doc | overrides).encode()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_collateral_doc().replace(b'"tcb_info": "{', b'"tcb_info": "\\ud800{', 1), id="tcb_info"),
        pytest.param(_collateral_doc().replace(b'"pck_crl": "', b'"pck_crl": "\\udfff', 1), id="pck_crl"),
        pytest.param('{"tcb_info": "\ud800"}', id="str-input-lone-surrogate"),
    ],
)
def test_parse_collateral_json_lone_surrogate_rejected(data: bytes | str) -> None:
    with pytest.raises(CollateralError) as exc:
        parse_collateral_json(data)
    assert exc.value.code == Code.INTEL_COLLATERAL_MALFORMED


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("opener", [b"[", b'{"a":'], ids=["arrays", "objects"])
def test_collateral_parsers_deeply_nested_json_rejected(parser: str, opener: bytes) -> None:
    with pytest.raises(CollateralError) as exc:
        PARSERS[parser](opener * 100_000)
    assert exc.value.code == Code.INTEL_COLLATERAL_MALFORMED
