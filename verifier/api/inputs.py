"""The base of every request body model: text the database can store.

PostgreSQL text and varchar columns cannot hold NUL characters, which JSON can carry (``"\\u0000"``); without this
check such a request reached the database and failed there (a 500, found by the API fuzz test). Every string in the
body, nested ones and object keys included, is checked before any endpoint runs; a hit is a 400 ``request.invalid``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

#: Bounds the walk over nested request JSON (bodies are already size-limited: limits.MAX_REQUEST_BODY_BYTES for
#: the whole body, enforced in verifier.app, and max_length on the models' fields).
MAX_DEPTH = 64


def _has_nul(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False  # deeper structures are refused by the fields that accept free-form JSON
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k, depth + 1) or _has_nul(v, depth + 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v, depth + 1) for v in value)
    return False


class ApiInput(BaseModel):
    @model_validator(mode="before")
    @classmethod
    def no_nul_characters(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text must not contain NUL characters")
        return data
