"""Operating the service: structured logs with request ids, worker heartbeats, readiness checks and metrics.

``logging`` (JSON lines, the request-id context), ``heartbeat`` (each Celery process's row in
``worker_heartbeats``), ``health`` (what /readyz checks; the containers' healthcheck command), ``metrics``
(what /metrics exposes, and why it is read from the database), ``worker`` (the Celery signal wiring) and
``repository`` (their SQL). The HTTP side is :mod:`verifier.api.health` and the middleware in :mod:`verifier.app`.
"""
