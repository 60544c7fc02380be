"""The dashboard's navigation: one entry per page, in order, each with the least role that may open it. A page
adds its entry here when it exists; nothing is listed before it works."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from verifier.db.models import StaffRole


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str  # below the dashboard's mount, e.g. "/" or "/deployments"
    role: StaffRole = StaffRole.VIEWER


NAVIGATION: Final[tuple[NavItem, ...]] = (
    NavItem("Overview", "/"),
    NavItem("Deployments", "/deployments"),
    NavItem("Customers", "/customers"),
    NavItem("Models", "/models"),
    NavItem("Audit log", "/audit"),
)
