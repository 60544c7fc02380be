"""The message broker, below both services: the Celery app they share and sending tasks by name (``app``), the
"decided" notification (``notify``), transport aliases and options (``transport``), and the embedded profile's
SQLAlchemy transport (``sqla_transport``).

The API sends and waits through this package and never imports :mod:`verifier.worker`; the worker registers its
tasks on :data:`verifier.broker.app.celery_app`.
"""
