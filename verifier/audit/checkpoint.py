"""The audit chain verified incrementally by one process: a checkpoint (the last event verified and its hash) kept
in memory, so each check reads only the events appended since.

The dashboard's audit page shows whether the chain verifies on every view; walking 200,000 events each time costs
seconds. :class:`ChainWatch` walks the whole chain once (its first check, or after :meth:`ChainWatch.reset`), then
only what follows its checkpoint: a break anywhere after it (an event edited, removed or inserted) is found as the
full walk finds it, and the checkpoint never moves past the last event that held.

What a checkpoint cannot see: an edit of the checkpoint's event or of any event before it, made after this process
verified them. Those rows are not read again until the process restarts or a full walk is asked for
(:meth:`ChainWatch.reset`; the audit page's "verify the whole chain" link). Each process keeps its own checkpoint.

Not here: the chain's rule and the walk (:func:`verifier.audit.log.verify_chain`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from verifier.audit.log import ChainCheck, ChainCheckpoint, verify_chain

__all__ = ["ChainWatch"]


class ChainWatch:
    """One process's checkpoint of the audit chain; thread-safe (checks run one at a time)."""

    def __init__(self, *, verify: Callable[..., ChainCheck] = verify_chain) -> None:
        self._verify = verify
        self._lock = threading.Lock()
        self._checkpoint: ChainCheckpoint | None = None
        self._full_at: datetime | None = None

    @property
    def checkpoint(self) -> ChainCheckpoint | None:
        return self._checkpoint

    @property
    def full_walk_at(self) -> datetime | None:
        """When the last walk from the first event ran (None: not yet)."""
        return self._full_at

    def check(self, session: Session, now: datetime) -> ChainCheck:
        """Verify the events after the checkpoint (all of them the first time), then move the checkpoint to the
        last event that held."""
        with self._lock:
            if self._checkpoint is None:
                self._full_at = now
            result = self._verify(session, after=self._checkpoint)
            self._checkpoint = result.checkpoint() or self._checkpoint
            return result

    def reset(self) -> None:
        """Forget the checkpoint: the next :meth:`check` walks the whole chain."""
        with self._lock:
            self._checkpoint = None
