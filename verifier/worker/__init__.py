"""Celery worker: the attestation decision runs here, outside the request path."""
