"""Worker-side collateral refresh: fetch missing or ageing vendor collateral into the cache. Filled in by issue 4."""

from __future__ import annotations
