"""Keyward: provider-side remote-attestation verifier and model-key broker."""

__version__ = "0.1.0"
