"""The Verdict: the outcome of appraising verified claims, listing *every* failed check.

A Verdict is a result, not an exception: a rejection is stored and audited exactly like an acceptance.
"""

from __future__ import annotations

from dataclasses import dataclass

from verifier.errors import Reason


@dataclass(frozen=True, slots=True)
class Verdict:
    """``accepted`` is True iff there are no reasons. ``simulated`` marks results computed under test roots."""

    reasons: tuple[Reason, ...]
    simulated: bool = False

    @property
    def accepted(self) -> bool:
        return not self.reasons

    @classmethod
    def of(cls, reasons: list[Reason], *, simulated: bool) -> Verdict:
        return cls(tuple(reasons), simulated)
