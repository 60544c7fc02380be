"""SIMULATION ONLY: the simulated platform, fake Intel and AMD vendor PKIs that sign quotes, reports, certificates
and collateral under test roots, with one defect knob per check.

Nothing here is a root of trust. The worker trusts these roots only in the development profile with
``KEYWARD_ALLOW_SIMULATED_ROOTS=true`` (production refuses that setting), and every result they produce is marked
``simulated``. Its users: the development composition (:mod:`verifier.wiring`), the customer SDK's
``SimulatedProvider`` (development servers only), the test suite, the demo and the benchmarks. It imports nothing
from :mod:`verifier.testing` (the test harness: throw-away databases, the dev stack, fake vendor web services).
"""
