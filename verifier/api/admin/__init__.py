"""The provider staff API (``/v1/admin``): catalogue, reference values, policies, entitlements, credentials,
leases and the attestation record. Every endpoint needs an ``admin`` credential whose role reaches the
endpoint's (:mod:`verifier.api.roles`: reads viewer, lease revocation and customer status operator, the rest admin).

Model DEKs are generated (or imported) here and stored only wrapped under the provider KEK, bound to their model
version; no response ever carries a DEK. A new credential's token is returned once, in the issuing response.
Each endpoint reads the clock once (``datetime.now(UTC)``); the request's dependency commits its transaction before
the answer (:mod:`verifier.api.deps`).
"""

from __future__ import annotations

from fastapi import APIRouter

from verifier.api.admin import catalog, licensing, records

# Each module's router carries the /v1/admin prefix itself, so its routes' path templates are whole (the request
# metrics label a route by its template).
router = APIRouter(tags=["admin"])
for _module in (catalog, licensing, records):
    router.include_router(_module.router)
