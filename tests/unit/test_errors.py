"""The error tree: each code has one class, so one fault and one HTTP status; every raise site agrees (AST scan)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from verifier.collateral.fetchers import FetchError
from verifier.errors import (
    CODE_CLASS,
    AuthError,
    Code,
    CollateralError,
    CollateralUnavailable,
    Conflict,
    EarInvalid,
    EvidenceMalformed,
    Fault,
    Forbidden,
    InternalError,
    KeywardError,
    NotEntitled,
    NotFound,
    PolicyRejected,
    Reason,
    RequestTooLarge,
    TrustStoreError,
    Unavailable,
    UsageError,
    VerificationFailed,
    error_class,
    error_for,
    fault_of,
    with_fault,
)

VERIFIER = Path(__file__).resolve().parents[2] / "verifier"


def _subclasses(cls: type[KeywardError]) -> Iterator[type[KeywardError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


_ALL: list[type[KeywardError]] = [KeywardError, *_subclasses(KeywardError)]
ERROR_CLASSES: dict[str, type[KeywardError]] = {c.__name__: c for c in _ALL}


def _code(node: ast.expr) -> Code | None:
    """``Code.X`` (or ``_C.X``, the alias the defect catalogues use) as a Code."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("Code", "_C"):
        return Code[node.attr]
    return None


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _calls() -> Iterator[tuple[str, int, ast.Call]]:
    for path in sorted(VERIFIER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                yield str(path.relative_to(VERIFIER)), node.lineno, node


def test_every_code_has_exactly_one_class() -> None:
    assert set(CODE_CLASS) == set(Code)
    for code, cls in CODE_CLASS.items():
        assert code.fault is cls.fault
        assert issubclass(cls, KeywardError)
        assert cls is not KeywardError


def test_every_raise_site_uses_its_codes_class() -> None:
    """``Cls(Code.X, ...)``, and helpers handed a code and a class (``load_der_certificate(d, Code.X, what, Cls)``):
    the class is the code's (or a subclass of it). A code passed as a variable is checked when the error is made."""
    wrong: list[str] = []
    for where, line, call in _calls():
        args = [*call.args, *(k.value for k in call.keywords)]
        codes = [c for c in map(_code, args) if c is not None]
        callee = _name(call.func)
        classes = [ERROR_CLASSES[n] for n in map(_name, args) if n in ERROR_CLASSES]
        if callee in ERROR_CLASSES and call.args and (first := _code(call.args[0])) is not None:
            classes, codes = [ERROR_CLASSES[callee]], [first]
        for cls in classes:
            if cls is KeywardError:
                continue  # the base class: test_no_bare_keyward_error_is_raised
            wrong.extend(
                f"{where}:{line} {code.value} under {cls.__name__}, not {CODE_CLASS[code].__name__}"
                for code in codes
                if not issubclass(cls, CODE_CLASS[code])
            )
    assert wrong == []


def test_no_bare_keyward_error_is_raised() -> None:
    bare: dict[str, int] = {}
    for where, _line, call in _calls():
        if _name(call.func) == "KeywardError":
            bare[where] = bare.get(where, 0) + 1
    assert bare == {}


@pytest.mark.parametrize(
    ("code", "cls", "fault", "status"),
    [
        (Code.INTEL_QUOTE_TRUNCATED, EvidenceMalformed, Fault.MALFORMED, 400),
        (Code.INTEL_PCK_CHAIN_MALFORMED, EvidenceMalformed, Fault.MALFORMED, 400),
        (Code.INTEL_QUOTE_SIGNATURE_INVALID, VerificationFailed, Fault.FAILED, 403),
        (Code.SNP_LEAF_MISSING, VerificationFailed, Fault.FAILED, 403),
        (Code.INTEL_COLLATERAL_MISSING, CollateralError, Fault.COLLATERAL, 403),
        (Code.SNP_CRL_MISSING, PolicyRejected, Fault.POLICY, 403),
        (Code.ATTESTATION_REFERENCE_VALUES_MISSING, PolicyRejected, Fault.POLICY, 403),
        (Code.ENTITLEMENT_NOT_FOUND, NotEntitled, Fault.ENTITLEMENT, 403),
        (Code.SNP_CRL_UNAVAILABLE, CollateralUnavailable, Fault.UNAVAILABLE, 503),
        (Code.SERVICE_UNAVAILABLE, Unavailable, Fault.UNAVAILABLE, 503),
        (Code.ATTESTATION_MODEL_KEY_MISSING, InternalError, Fault.INTERNAL, 500),
        (Code.TRUST_ROOT_MISMATCH, TrustStoreError, Fault.INTERNAL, 500),
        (Code.POLICY_INVALID, UsageError, Fault.REQUEST, 400),
        (Code.REQUEST_TOO_LARGE, RequestTooLarge, Fault.REQUEST, 413),
        (Code.LEASE_NOT_FOUND, NotFound, Fault.REQUEST, 404),
        (Code.MODEL_VERSION_NOT_FOUND, NotFound, Fault.REQUEST, 404),
        (Code.LEASE_NOT_RENEWABLE, Conflict, Fault.REQUEST, 409),
        (Code.ATTESTATION_SUPERSEDED_BY_NEWER, Conflict, Fault.REQUEST, 409),
        (Code.ATTESTATION_REQUEST_STALE, VerificationFailed, Fault.FAILED, 403),
        (Code.AUTH_INVALID, AuthError, Fault.AUTH, 401),
        (Code.AUTH_FORBIDDEN, Forbidden, Fault.AUTH, 403),
        (Code.EAR_INVALID, EarInvalid, Fault.FAILED, 401),
    ],
    ids=lambda v: v.value if isinstance(v, Code) else None,
)
def test_code_class_fault_and_status(code: Code, cls: type[KeywardError], fault: Fault, status: int) -> None:
    assert error_class(code) is cls
    error = error_for(code, "x")
    assert (type(error), error.code, error.fault, error.http_status) == (cls, code, fault, status)
    assert error.retryable is (fault is Fault.UNAVAILABLE)
    assert error.to_reason().fault is fault


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (VerificationFailed, Code.INTEL_QUOTE_TRUNCATED),
        (EvidenceMalformed, Code.INTEL_QUOTE_SIGNATURE_INVALID),
        (CollateralError, Code.INTEL_COLLATERAL_UNAVAILABLE),
        (NotFound, Code.ENTITLEMENT_NOT_FOUND),
        (UsageError, Code.REQUEST_TOO_LARGE),  # a subclass's code is not its base's
    ],
    ids=["failed-as-malformed", "malformed-as-failed", "unavailable-as-collateral", "entitlement-as-404", "413-as-400"],
)
def test_code_under_another_class_refused(cls: type[KeywardError], code: Code) -> None:
    with pytest.raises(TypeError, match=code.value):
        cls(code, "x")


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(None, True), (429, True), (503, True), (404, False), (200, False)],
    ids=["transport", "429", "503", "404", "unusable-body"],
)
def test_fetch_error_is_unavailable_not_bad_collateral(status: int | None, retryable: bool) -> None:
    error = FetchError(Code.SNP_CRL_UNAVAILABLE, "x", url="https://kds.example", status=status)
    assert not isinstance(error, CollateralError)
    assert isinstance(error, CollateralUnavailable)
    assert (error.code, error.fault, error.http_status, error.retryable) == (
        Code.SNP_CRL_UNAVAILABLE,
        Fault.UNAVAILABLE,
        503,
        retryable,
    )


@pytest.mark.parametrize(
    "missing",
    [Code.INTEL_COLLATERAL_MISSING, Code.SNP_LEAF_MISSING, Code.SNP_CRL_MISSING],
    ids=["intel", "vcek", "amd-crl"],
)
def test_fetch_error_refuses_the_missing_document_code(missing: Code) -> None:
    """A fetch that fails is ``unavailable``; "missing" is the decision's judgement, of another class."""
    with pytest.raises(TypeError):
        FetchError(missing, "x", url="https://pcs.example", status=404)


def test_reason_json_carries_fault_and_old_reasons_load() -> None:
    reason = Reason(Code.SNP_SIGNATURE_MALFORMED, "bad", expected="r,s", actual="zeros")
    doc = reason.to_json()
    assert doc["fault"] == "malformed"
    assert Reason.from_json(doc) == reason
    old = {"code": "snp.signature.invalid", "message": "bad", "expected": None, "actual": None}  # stored pre-fault
    assert Reason.from_json(old).fault is Fault.FAILED
    assert with_fault(old) == {**old, "fault": "failed"}
    assert with_fault({**old, "fault": "failed"})["fault"] == "failed"
    assert fault_of("no.such.code") is Fault.INTERNAL
