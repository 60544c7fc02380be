"""When a cached vendor document is due to be fetched again: one rule for the prefetch before a decision and for
the periodic refresh (:mod:`verifier.worker.refresh`).

A document is due when

1. it does not say when it expires (no readable nextUpdate / notAfter), or it is past that time;
2. it is revocation or TCB data (TCB Info, QE Identity, a CRL) last fetched ``max_age`` ago or longer: a vendor
   publishes a revocation or a TCB recovery in a new document long before the cached one's nextUpdate (up to
   30 days for TCB Info and PCK CRLs, a year for the Intel Root CA CRL), and the cache must learn of it within
   ``max_age``. VCEKs carry no revocation data; KDS rate-limits and re-issues the same certificate, so they are
   kept until their notAfter nears;
3. its nextUpdate is less than ``ahead`` away and it was fetched before that window opened. Once fetched inside
   the window it is not due again for that reason (a vendor that still serves the same document would otherwise
   be asked for it before every decision); rules 1-2 still apply.

Pure: ``now`` is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from verifier.collateral.selection import ORDERED_KINDS

if TYPE_CHECKING:
    from verifier.config import Settings

#: The kinds rule 2 applies to: revocation and TCB data.
AGEING_KINDS = ORDERED_KINDS


@dataclass(frozen=True, slots=True)
class Freshness:
    """How fresh cached documents are kept. Defaults are :class:`~verifier.config.Settings`' defaults."""

    ahead: timedelta = timedelta(hours=24)
    max_age: timedelta = timedelta(hours=24)

    @classmethod
    def from_settings(cls, settings: Settings) -> Freshness:
        return cls(
            ahead=timedelta(hours=settings.collateral_refresh_ahead_hours),
            max_age=timedelta(seconds=settings.collateral_max_age_seconds),
        )


def is_due(kind: str, fetched_at: datetime, next_update: datetime | None, now: datetime, rule: Freshness) -> bool:
    """Whether a cached document of ``kind``, fetched at ``fetched_at`` and due for replacement at ``next_update``
    (None: unknown), should be fetched again at ``now`` (rules numbered as in the module docstring)."""
    if next_update is None or next_update <= now:  # 1
        return True
    if kind in AGEING_KINDS and now - fetched_at >= rule.max_age:  # 2
        return True
    window_opens = next_update - rule.ahead  # 3
    return window_opens <= now and fetched_at < window_opens
