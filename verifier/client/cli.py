"""``keyward-enclave``: the enclave SDK as a command line."""

from __future__ import annotations


def main() -> None:
    raise SystemExit("keyward-enclave: not implemented yet")
