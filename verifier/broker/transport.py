"""Broker transports: Keyward's kombu transport aliases and the transport options for a broker URL.

``sqla+sqlite:///...`` brokers (the embedded development profile) use Keyward's fixed copy of kombu's SQLAlchemy
transport (:mod:`verifier.broker.sqla_transport`), and ``redis://`` / ``rediss://`` brokers kombu's Redis transport
with one fix (:mod:`verifier.broker.redis_transport`: a worker survives losing Redis while it holds messages). The
aliases are registered by :func:`register_transports`, which
whatever makes a broker connection calls first (the shared Celery app when it reads its configuration, the
readiness probe); importing this module changes nothing. No Celery here, so a probe stays light.
"""

from __future__ import annotations

from typing import Any, Final

from kombu.transport import TRANSPORT_ALIASES

SQLA_TRANSPORT: Final = "verifier.broker.sqla_transport:Transport"
REDIS_TRANSPORT: Final = "verifier.broker.redis_transport:Transport"


def register_transports() -> None:
    """Point kombu's ``sqla+`` and ``sqlalchemy+`` URL prefixes at :data:`SQLA_TRANSPORT`, and ``redis://`` and
    ``rediss://`` at :data:`REDIS_TRANSPORT` (idempotent)."""
    TRANSPORT_ALIASES["sqla"] = TRANSPORT_ALIASES["sqlalchemy"] = SQLA_TRANSPORT
    TRANSPORT_ALIASES["redis"] = TRANSPORT_ALIASES["rediss"] = REDIS_TRANSPORT


def transport_options(broker_url: str, visibility_timeout: int, key_prefix: str = "") -> dict[str, Any]:
    """Celery's ``broker_transport_options``: the SQLAlchemy transport polls every 50 ms; Redis gets the visibility
    timeout and the key prefix before every key (``broker_key_prefix``)."""
    if broker_url.startswith("sqla+"):
        return {"polling_interval": 0.05}
    return {"visibility_timeout": visibility_timeout, "global_keyprefix": key_prefix}
