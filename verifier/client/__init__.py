"""The enclave SDK: what a customer's model runtime imports to attest to Keyward and receive its model key.

::

    from verifier.client import ConfigfsTsmProvider, EnclaveSession, KeywardClient

    with KeywardClient("https://keyward.example", licence) as client:
        with EnclaveSession(client, ConfigfsTsmProvider(), model="llm", deployment="eu-1") as session:
            dek = session.dek            # the model key, inside the TEE only
            ...                          # session.keep_alive() in a thread renews before each renew_after

Layers: :mod:`~verifier.client.keys` (the enclave key pair and the binding), :mod:`~verifier.client.providers`
(evidence: configfs-tsm, the confidential ACI SKR sidecar, simulated), :mod:`~verifier.client.api` (the HTTP
flow) with :mod:`~verifier.client.models` (its documents, the Lease), :mod:`~verifier.client.session` (lease
lifetime), :mod:`~verifier.client.errors`; ``keyward-enclave`` (:mod:`~verifier.client.cli`) is the same as a
command.
"""

from verifier.client.api import KeywardClient
from verifier.client.errors import (
    AttestationRejected,
    ClientError,
    DecisionTimeout,
    ProviderError,
    ProviderUnavailable,
    ReasonInfo,
    Rejected,
    RequestRefused,
    TransportError,
    UnwrapFailed,
)
from verifier.client.keys import KEY_KINDS, EnclaveKeyPair, KeyFileError, KeyKind
from verifier.client.models import Challenge, Decision, Lease
from verifier.client.providers import (
    AciSkrProvider,
    Binding,
    ConfigfsTsmProvider,
    EvidenceItem,
    EvidenceProvider,
    SimulatedProvider,
)
from verifier.client.session import EnclaveSession

__all__ = [
    "KEY_KINDS",
    "AciSkrProvider",
    "AttestationRejected",
    "Binding",
    "Challenge",
    "ClientError",
    "ConfigfsTsmProvider",
    "Decision",
    "DecisionTimeout",
    "EnclaveKeyPair",
    "EnclaveSession",
    "EvidenceItem",
    "EvidenceProvider",
    "KeyFileError",
    "KeyKind",
    "KeywardClient",
    "Lease",
    "ProviderError",
    "ProviderUnavailable",
    "ReasonInfo",
    "Rejected",
    "RequestRefused",
    "SimulatedProvider",
    "TransportError",
    "UnwrapFailed",
]
