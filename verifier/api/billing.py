"""The billing API (billing-read credentials only): entitlements and usage. Filled in by issue 5."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["billing"])
