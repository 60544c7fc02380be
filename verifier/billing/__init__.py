"""Billing reads: entitlement summaries (:mod:`.entitlements`) and exact usage per period (:mod:`.usage`).

Read-only services over the caller's session with ``now`` passed in; the HTTP layer is ``verifier/api/billing.py``
and the reference with examples ``docs/billing.md``.
"""
