"""Licences: whether an entitlement covers a request, and seat accounting (:mod:`.service`); staff changes to
customers and entitlements, with their status rules (:mod:`.licensing`); their SQL (:mod:`.repository`)."""
