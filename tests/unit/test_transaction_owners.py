"""One owner per transaction, read from the source: no module under verifier/ calls ``.commit()`` or ``.rollback()``
except the owners below. Services, repositories and helpers take a session and never end its transaction; a helper
that stores in transactions of its own is handed :data:`verifier.db.session.Transaction` by its owner.

``PENDING`` lists the commits still to move to their owner, with how many each module has now: a module may lose
calls (remove its entry when it has none left) but never gain one.
"""

from __future__ import annotations

import ast
from collections import Counter
from functools import cache

from tests.support.tools import ROOT

ENDING = frozenset({"commit", "rollback"})

#: Modules that own transactions, and why.
OWNERS = {
    # session_scope(): the one unit of work outside the API, which the Celery task base (worker/base.py), the
    # heartbeat and the CLI open.
    "verifier/db/session.py": "session_scope",
    # The request's session (the endpoint commits before answering; see PENDING).
    "verifier/api/deps.py": "the API request dependency",
}

#: Endpoint commits to move to the request dependency (the admin/enclave API's owner), and the development stack's
#: bootstrap (as ``keyward admin bootstrap``, which opens session_scope): calls per module today.
PENDING = {
    "verifier/api/admin/catalog.py": 7,
    "verifier/api/admin/licensing.py": 6,
    "verifier/api/admin/records.py": 1,
    "verifier/api/enclave.py": 2,
    "verifier/testing/devstack.py": 1,
}


@cache
def _ending_calls() -> dict[str, Counter[str]]:
    """Per module (path from the repository root): the ``.commit()`` / ``.rollback()`` calls, by line."""
    found: dict[str, Counter[str]] = {}
    for path in sorted((ROOT / "verifier").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        calls = Counter(
            f"{node.lineno}:{node.func.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ENDING
        )
        if calls:
            found[path.relative_to(ROOT).as_posix()] = calls
    return found


def test_only_owners_commit_or_roll_back() -> None:
    outside = {
        module: sorted(calls)
        for module, calls in _ending_calls().items()
        if module not in OWNERS and module not in PENDING
    }
    assert outside == {}, "commit/rollback outside a transaction owner (take a session, or a Transaction)"


def test_pending_modules_never_gain_a_commit() -> None:
    grown = {
        module: (sum(_ending_calls().get(module, Counter()).values()), allowed)
        for module, allowed in PENDING.items()
        if sum(_ending_calls().get(module, Counter()).values()) > allowed
    }
    assert grown == {}, "(calls now, calls allowed): move the new commit to the transaction's owner"


def test_pending_list_is_current() -> None:
    done = [module for module in PENDING if module not in _ending_calls()]
    assert done == [], "these modules commit no more: remove them from PENDING"


def test_owners_exist() -> None:
    assert all((ROOT / module).is_file() for module in OWNERS)
