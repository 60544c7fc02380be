"""Import rules between Keyward's packages, read from the source: every ``import`` and ``from ... import`` in every
module under verifier/, function-local and ``TYPE_CHECKING`` ones included, relative ones resolved.

* ``api`` and ``worker`` stand side by side on the top layer: neither imports the other.
* ``api`` holds no SQL: it never imports SQLAlchemy; its queries are in the domain repositories (conventions §7).
* SQL is written only where it lives: SQLAlchemy's statement builders (``select``, ``insert``, ``func``, ``text``, a
  dialect's ``insert``, ...) are imported only by the repositories (``*/repository.py``), ``db``, the broker's SQL
  transport and the test harness. Naming ``Session`` or an exception elsewhere is fine.
* What both use (``observability``, ``db``, ``wiring``, ``broker``) imports neither, nor does the domain package
  of the staff dashboard's reads (``dashboard``).
* Nothing but the test harness itself imports ``verifier.testing`` (the simulated platform is ``verifier.simulation``).
* The pure core (``evidence``, ``trust``, ``platforms``, ``appraisal``, ``keywrap`` and the collateral modules that
  only model and choose documents) imports no service package, no module doing I/O and no I/O library.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache

import pytest

from tests.support.tools import ROOT

IO_LIBRARIES = ("sqlalchemy", "httpx", "redis", "celery", "kombu", "fastapi")
SERVICES = ("verifier.api", "verifier.worker")
#: Every top-level module and package of verifier/ but the test harness (verifier.testing): the server, the SDK and
#: the simulated platform (verifier.simulation) alike.
PRODUCTION = tuple(
    sorted(
        f"verifier.{path.stem}"
        for path in (ROOT / "verifier").iterdir()
        if path.stem not in ("__init__", "testing")
        and (path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()))
    )
)
#: collateral/ holds the database cache and the vendor clients, and beside them pure modules: the cache keys and
#: documents a decision reads, the choice between supplied and cached copies, the file formats, freshness rules.
PURE_COLLATERAL = tuple(
    f"verifier.collateral.{name}" for name in ("documents", "selection", "files", "amd_files", "freshness")
)


#: SQLAlchemy's statement builders: a module that imports one writes SQL.
SQL_BUILDERS = frozenset(
    {
        "select", "insert", "update", "delete", "text", "func", "exists", "and_", "or_", "not_", "tuple_",
        "bindparam", "case", "cast", "distinct", "literal", "literal_column", "union", "union_all", "*",
    }
)  # fmt: skip
#: Where SQL may be written, beside every ``repository`` module: the database package, the broker's SQL transport
#: (Kombu's tables) and the test harness.
SQL_HOMES = ("verifier.db", "verifier.broker.sqla_transport", "verifier.observability.repository", "verifier.testing")


@dataclass(frozen=True)
class Import:
    line: int
    target: str  # the imported module, or module.name for ``from module import name`` (name may be a module)


@dataclass(frozen=True)
class Contract:
    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()  # inside ``forbidden``, yet allowed


CONTRACTS = (
    Contract("api-never-imports-worker", ("verifier.api",), ("verifier.worker",)),
    Contract("worker-never-imports-api", ("verifier.worker",), ("verifier.api",)),
    Contract("api-never-imports-sqlalchemy", ("verifier.api",), ("sqlalchemy",)),
    Contract("observability-below-services", ("verifier.observability",), SERVICES),
    Contract("db-below-services", ("verifier.db",), SERVICES),
    Contract("wiring-below-services", ("verifier.wiring",), SERVICES),
    Contract("broker-below-services", ("verifier.broker",), SERVICES),
    # The staff dashboard's reads are a domain: the API's views call them, they never call the API or the worker.
    Contract("dashboard-below-services", ("verifier.dashboard",), SERVICES),
    Contract("production-never-imports-the-test-harness", PRODUCTION, ("verifier.testing",)),
    Contract(
        "pure-core-no-services-no-io",
        (
            "verifier.evidence",
            "verifier.trust",
            "verifier.platforms",
            "verifier.appraisal",
            "verifier.keywrap",
            *PURE_COLLATERAL,
        ),
        (
            *SERVICES,
            "verifier.db",
            "verifier.attestation",
            "verifier.collateral",
            "verifier.observability",
            "verifier.wiring",
            "verifier.broker",
            *IO_LIBRARIES,
        ),
        allowed=PURE_COLLATERAL,
    ),
)


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imports_in(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    """Every import in ``source`` (the text of ``module``), relative ones resolved against ``module``."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
            found.append(Import(node.lineno, base))
            found += [Import(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def sql_builders_in(source: str) -> list[Import]:
    """The SQL statement builders ``source`` imports: ``from sqlalchemy[...] import select`` and the like (a
    dialect's ``insert`` too), and every ``import sqlalchemy...``, whose name reaches them all
    (``sqlalchemy.select``)."""
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and not node.level and _within(node.module or "", ["sqlalchemy"]):
            found += [Import(node.lineno, f"{node.module}.{a.name}") for a in node.names if a.name in SQL_BUILDERS]
        elif isinstance(node, ast.Import):
            found += [Import(node.lineno, a.name) for a in node.names if _within(a.name, ["sqlalchemy"])]
    return found


def _module_sources() -> Iterator[tuple[str, bool, str]]:
    """(module, is_package, source) for every module under verifier/."""
    for path in sorted((ROOT / "verifier").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        yield ".".join(parts[:-1] if is_package else parts), is_package, path.read_text(encoding="utf-8")


@cache
def verifier_modules() -> Mapping[str, list[Import]]:
    return {module: imports_in(module, source, is_package=pkg) for module, pkg, source in _module_sources()}


@cache
def sql_builder_imports() -> Mapping[str, list[Import]]:
    return {module: sql_builders_in(source) for module, _, source in _module_sources()}


def sql_outside_repositories(modules: Mapping[str, list[Import]]) -> list[str]:
    """``module:line -> builder`` for each builder imported outside a repository and :data:`SQL_HOMES`."""
    found = {
        (module, imp.line, imp.target)
        for module, imports in modules.items()
        if not (module.endswith(".repository") or _within(module, SQL_HOMES))
        for imp in imports
    }
    return [f"{module}:{line} -> {target}" for module, line, target in sorted(found)]


def violations(contract: Contract, modules: Mapping[str, list[Import]]) -> list[str]:
    """``module:line -> import`` for each import statement of a source module that reaches a forbidden one."""
    found: dict[tuple[str, int], str] = {}
    for module, imports in modules.items():
        if not _within(module, contract.sources):
            continue
        for imp in imports:
            if _within(imp.target, contract.forbidden) and not _within(imp.target, contract.allowed):
                found.setdefault((module, imp.line), imp.target)
    return [f"{module}:{line} -> {target}" for (module, line), target in sorted(found.items())]


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])
def test_architecture_import_contract_holds(contract: Contract) -> None:
    bad = violations(contract, verifier_modules())
    forbidden = ", ".join(contract.forbidden)
    assert not bad, f"{contract.name}: {', '.join(contract.sources)} must not import {forbidden}:\n" + "\n".join(bad)


def test_architecture_walk_sees_the_whole_package() -> None:
    modules = verifier_modules()
    assert {"verifier", "verifier.api.enclave", "verifier.worker.tasks", "verifier.wiring"} <= modules.keys()
    for contract in CONTRACTS:  # a contract naming a package that is not there would pass for nothing
        for source in contract.sources:
            assert any(_within(m, [source]) for m in modules), f"{contract.name}: no module {source}"


_SYNTHETIC = """\
import verifier.worker.tasks
from verifier import worker
from ..worker.notify import publish_decided
from .deps import SessionDep


def send() -> None:
    from verifier.worker.tasks import decide_task  # function-local
"""


def test_architecture_violations_found_in_a_synthetic_module() -> None:
    modules = {"verifier.api.fake": imports_in("verifier.api.fake", _SYNTHETIC)}
    api_never_imports_worker = CONTRACTS[0]

    assert violations(api_never_imports_worker, modules) == [
        "verifier.api.fake:1 -> verifier.worker.tasks",
        "verifier.api.fake:2 -> verifier.worker",
        "verifier.api.fake:3 -> verifier.worker.notify",
        "verifier.api.fake:8 -> verifier.worker.tasks",
    ]
    assert Import(4, "verifier.api.deps") in modules["verifier.api.fake"]


def test_architecture_relative_import_in_a_package_resolves_against_itself() -> None:
    assert Import(1, "verifier.api.deps") in imports_in("verifier.api", "from .deps import x\n", is_package=True)
    assert Import(1, "sqlalchemy") in imports_in("verifier.trust.x", "from sqlalchemy import select\n")


def test_architecture_sqlalchemy_in_an_api_module_is_found() -> None:
    source = "from sqlalchemy import select\nimport sqlalchemy.orm\nfrom verifier.db.session import Session\n"
    modules = {"verifier.api.fake": imports_in("verifier.api.fake", source)}
    [contract] = [c for c in CONTRACTS if c.name == "api-never-imports-sqlalchemy"]

    assert violations(contract, modules) == [
        "verifier.api.fake:1 -> sqlalchemy",
        "verifier.api.fake:2 -> sqlalchemy.orm",
    ]


def test_architecture_sql_builders_only_in_repositories() -> None:
    bad = sql_outside_repositories(sql_builder_imports())
    assert not bad, "SQL outside a repository (move the statement into the domain's repository.py):\n" + "\n".join(bad)


def test_architecture_sql_walk_sees_the_repositories() -> None:
    modules = sql_builder_imports()
    for module, builder in [
        ("verifier.attestation.repository", "sqlalchemy.dialects.postgresql.insert"),
        ("verifier.collateral.repository", "sqlalchemy.select"),
        ("verifier.observability.repository", "sqlalchemy.text"),
    ]:
        assert builder in {imp.target for imp in modules[module]}, module
    for home in SQL_HOMES:  # a home that is not there would excuse nothing, and hide a typo
        assert any(_within(m, [home]) for m in modules), home


_SYNTHETIC_SQL = """\
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.exc import IntegrityError
from sqlalchemy.dialects.postgresql import insert as pg_insert
import sqlalchemy as sa


def count() -> None:
    from sqlalchemy.sql.expression import text  # function-local
"""


_SYNTHETIC_SQL_FOUND = [
    "1 -> sqlalchemy.func",
    "1 -> sqlalchemy.select",
    "4 -> sqlalchemy.dialects.postgresql.insert",
    "5 -> sqlalchemy",
    "9 -> sqlalchemy.sql.expression.text",
]


@pytest.mark.parametrize(
    ("module", "flagged"),
    [
        ("verifier.worker.fake", True),
        ("verifier.repository_helpers", True),
        ("verifier.billing.repository", False),
        ("verifier.db.fake", False),
        ("verifier.testing.fake", False),
    ],
    ids=["service", "named-like-a-repository", "repository", "db", "test-harness"],
)
def test_architecture_sql_builders_found_in_a_synthetic_module(module: str, flagged: bool) -> None:
    found = sql_outside_repositories({module: sql_builders_in(_SYNTHETIC_SQL)})
    assert found == ([f"{module}:{line}" for line in _SYNTHETIC_SQL_FOUND] if flagged else [])
