"""Free-form admin documents (policies, reference values) bounded before anything is stored:
verifier.catalog.service.check_document. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from verifier import limits
from verifier.catalog.service import check_document
from verifier.errors import Code, UsageError


def _nested(depth: int, leaf: Any = 1) -> Any:
    doc = leaf
    for _ in range(depth):
        doc = [doc]
    return doc


def test_check_document_accepts_the_limit() -> None:
    check_document("policy document", {"a": _nested(limits.MAX_ADMIN_DOCUMENT_DEPTH - 1)})
    check_document("policy document", {"a": "x" * (limits.MAX_ADMIN_DOCUMENT_BYTES - 20)})


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ({"a": _nested(limits.MAX_ADMIN_DOCUMENT_DEPTH)}, "nests too deep"),
        ({"a": {"b": _nested(100_000)}}, "nests too deep"),  # no RecursionError: the walk is iterative
        ({"a": "x" * limits.MAX_ADMIN_DOCUMENT_BYTES}, "too large"),
        ({"a": [float("nan")]}, "cannot carry"),
        ({"a": {"b": float("-inf")}}, "cannot carry"),
    ],
    ids=["one-past-depth", "very-deep", "too-large", "nan", "infinity"],
)
def test_check_document_refuses(document: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError) as exc:
        check_document("policy document", document)
    assert exc.value.code == Code.REQUEST_INVALID
    assert says in exc.value.message
    assert "policy document" in exc.value.message
