"""The enclave SDK: what a customer's model runtime imports to attest to Keyward and receive its model key.

::

    from verifier.client import ConfigfsTsmProvider, EnclaveSession, KeywardClient

    with KeywardClient("https://keyward.example", licence) as client:
        with EnclaveSession(client, ConfigfsTsmProvider(), model="llm", deployment="eu-1") as session:
            dek = session.dek            # the model key, inside the TEE only
            ...                          # session.keep_alive() in a thread renews before each renew_after

Layers: :mod:`~verifier.client.keys` (the enclave key pair and the binding), :mod:`~verifier.client.providers`
(evidence: configfs-tsm, the confidential ACI SKR sidecar, Azure CVMs through the vTPM, simulated, NVIDIA
GPUs), :mod:`~verifier.client.api` (the HTTP flow) with :mod:`~verifier.client.models` (its documents, the
Lease), :mod:`~verifier.client.session` (lease lifetime), :mod:`~verifier.client.errors`; ``keyward-enclave``
(:mod:`~verifier.client.cli`) is the same as a command.

NVIDIA GPUs (Hopper, Blackwell in CC mode; ``pip install 'keyward[gpu]'`` for nvidia-ml-py) are attested with the
CPU TEE they are attached to, never alone: wrap the CPU provider,
``CpuWithGpus(ConfigfsTsmProvider(), NvmlGpuProvider())`` (all GPUs; ``NvmlGpuProvider(gpus=[0, 1])`` for some),
or ``keyward-enclave ... --gpus all|0,1``. Each GPU's report carries its own nonce, derived from the challenge,
the enclave key and its position in the request (:mod:`verifier.client.providers.nvml`).
"""

from verifier.client.api import KeywardClient
from verifier.client.errors import (
    AttestationRejected,
    ClientError,
    DecisionTimeout,
    ProviderError,
    ProviderOptionRefused,
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
    AzureCvmProvider,
    Binding,
    ConfigfsTsmProvider,
    CpuWithGpus,
    EvidenceItem,
    EvidenceProvider,
    NvmlGpuProvider,
    SimulatedProvider,
)
from verifier.client.session import EnclaveSession

__all__ = [
    "KEY_KINDS",
    "AciSkrProvider",
    "AttestationRejected",
    "AzureCvmProvider",
    "Binding",
    "Challenge",
    "ClientError",
    "ConfigfsTsmProvider",
    "CpuWithGpus",
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
    "NvmlGpuProvider",
    "ProviderError",
    "ProviderOptionRefused",
    "ProviderUnavailable",
    "ReasonInfo",
    "Rejected",
    "RequestRefused",
    "SimulatedProvider",
    "TransportError",
    "UnwrapFailed",
]
