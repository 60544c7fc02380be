"""Roles on the admin API (``/v1/admin``): what an ``admin`` credential may do there, as the dashboard's staff roles.

viewer < operator < admin, each allowed what the roles before it are (:func:`verifier.staff.service.role_allows`):

* **viewer**: every read (``GET``);
* **operator**: and revoke leases, suspend or reinstate customers (a customer's ``status``);
* **admin**: and everything else: customers, models and their keys, reference values, policies, entitlements,
  licence keys and credentials.

An admin credential is never scoped to a customer: none of these routes limits what it reads or changes to one
customer, so such a credential is refused when it is issued (:func:`verifier.auth.credentials.issue_credential`),
and one stored before that rule (``customer_id`` set) is refused here on every admin route (403), rather than
acting as a global admin (issue 17, finding 4).

Builds on :func:`verifier.api.deps.require`, which authenticates the bearer credential and checks its kind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

from verifier.api.deps import require
from verifier.auth.records import Principal
from verifier.db.models import CredentialKind, StaffRole
from verifier.errors import Code, Forbidden
from verifier.staff.service import role_allows


def ensure_role(credential: Principal, need: StaffRole) -> None:
    """403 ``auth.forbidden`` unless the admin ``credential`` is unscoped and its role reaches ``need``."""
    if credential.customer_id is not None:
        raise Forbidden(
            Code.AUTH_FORBIDDEN,
            "an admin credential scoped to a customer is not accepted: the admin API acts on every customer",
            expected="an admin credential without a customer",
            actual=str(credential.customer_id),
        )
    if credential.role is None or not role_allows(credential.role, need):
        raise Forbidden(
            Code.AUTH_FORBIDDEN,
            f"this needs the {need.value} role",
            expected=need.value,
            actual=credential.role.value if credential.role else None,
        )


def admin_role(need: StaffRole) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: the request's ``admin`` credential, whose role must reach ``need``."""

    async def dependency(credential: Annotated[Principal, Depends(require(CredentialKind.ADMIN))]) -> Principal:
        ensure_role(credential, need)
        return credential

    return dependency


ViewerDep = Annotated[Principal, Depends(admin_role(StaffRole.VIEWER))]
OperatorDep = Annotated[Principal, Depends(admin_role(StaffRole.OPERATOR))]
AdminRoleDep = Annotated[Principal, Depends(admin_role(StaffRole.ADMIN))]
