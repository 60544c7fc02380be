"""The staff dashboard's reads: :mod:`verifier.dashboard.service` over :mod:`verifier.dashboard.repository`."""
