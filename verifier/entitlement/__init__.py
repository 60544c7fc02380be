"""Licences: whether an entitlement covers a request, and seat accounting (see :mod:`.service`)."""

from verifier.entitlement.service import acquire_seat, check_entitlement

__all__ = ["acquire_seat", "check_entitlement"]
