"""One owner per transaction, read from the source: no module under verifier/ calls ``.commit()`` or ``.rollback()``
except the owners below. Services, repositories and helpers take a session and never end its transaction; a helper
that stores in transactions of its own is handed :data:`verifier.db.session.Transaction` by its owner.

``PENDING`` lists commits still to move to their owner, with how many each module has now (none left): a module
may lose calls (remove its entry when it has none left) but never gain one.
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
    # The request's transaction (get_transaction): committed when the endpoint returns, rolled back when it raises,
    # before the answer; RequestTransaction.commit_now() is the one mid-request commit (before the decide task).
    "verifier/api/deps.py": "the API request dependency",
}

#: Commits still to move to their owner: calls per module today (empty: every transaction has its owner).
PENDING: dict[str, int] = {}


def calls_in(source: str, names: frozenset[str]) -> Counter[str]:
    """The ``.name()`` method calls in ``source`` with a name among ``names``, as ``line:name``."""
    return Counter(
        f"{node.lineno}:{node.func.attr}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
    )


@cache
def _calls(names: frozenset[str]) -> dict[str, Counter[str]]:
    """Per module (path from the repository root): its calls to methods named in ``names``, by line."""
    found: dict[str, Counter[str]] = {}
    for path in sorted((ROOT / "verifier").rglob("*.py")):
        calls = calls_in(path.read_text(), names)
        if calls:
            found[path.relative_to(ROOT).as_posix()] = calls
    return found


def _ending_calls() -> dict[str, Counter[str]]:
    return _calls(ENDING)


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


def test_owners_end_their_transactions() -> None:
    for module in OWNERS:  # an owner that neither commits nor rolls back owns nothing: the rule above would be empty
        assert {call.split(":")[1] for call in _ending_calls().get(module, Counter())} == ENDING, module


def test_ending_calls_found_in_a_synthetic_module() -> None:
    source = "session.commit()\n\ndef f(self):\n    self.session.rollback()\n    commit()\n"
    assert calls_in(source, ENDING) == Counter({"1:commit": 1, "4:rollback": 1})
