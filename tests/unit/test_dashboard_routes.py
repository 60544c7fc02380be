"""Every state-changing dashboard route is guarded: it depends on ``staff_user(...)`` (a session, its CSRF token,
a role), except the sign-in form, which checks its own pre-session token. Read from the dashboard's routers, so a
new page's POST cannot forget it."""

from __future__ import annotations

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from verifier.api.dashboard import ROUTERS
from verifier.api.dashboard.deps import SAFE_METHODS

UNGUARDED = {("/login", "POST")}  # the pre-session CSRF token of the sign-in form (verifier.staff.service)
GUARD = "staff_user.<locals>.dependency"


def _calls(dependant: Dependant) -> set[str]:
    found = {getattr(dependant.call, "__qualname__", "")}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def _unsafe_routes() -> list[tuple[str, str, APIRoute]]:
    return [
        (route.path, method, route)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
        if method not in SAFE_METHODS
    ]


def test_dashboard_every_unsafe_route_depends_on_staff_user() -> None:
    unsafe = _unsafe_routes()
    unguarded = [
        (path, method)
        for path, method, route in unsafe
        if (path, method) not in UNGUARDED and GUARD not in _calls(route.dependant)
    ]
    assert {(path, method) for path, method, _ in unsafe} >= {("/logout", "POST"), ("/login", "POST")}
    assert unguarded == []


def test_dashboard_route_audit_finds_an_unguarded_post() -> None:
    from fastapi import APIRouter

    router = APIRouter()

    @router.post("/unguarded")
    def unguarded() -> None: ...

    [route] = [r for r in router.routes if isinstance(r, APIRoute)]
    assert GUARD not in _calls(route.dependant)
