"""What ``keyward verify`` does per platform family, as data the CLI reads: how the family's raw evidence is
recognised (``sniff``), which input files it takes (:class:`CliInput`, from which ``verifier.cli`` builds its click
options), how a policy document is read for it and how it verifies and appraises raw evidence with those inputs.

A registry entry (:class:`~verifier.platforms.registry.Platform`) points to its family's :class:`CliFamily`; the
platforms of a family share one (TDX and SGX are one Intel family on the command line). ``verifier.cli`` picks the
family with :func:`choose_family`, reads the files its inputs name and calls :attr:`CliFamily.evaluate` with the
bytes read; adding a platform adds its family here, not a branch in the CLI.

Pure: no I/O, no clock, no click. The files are read by the CLI; their bytes, the trust store and ``now`` are
arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from verifier.errors import Code
from verifier.platforms.evaluation import Evaluation
from verifier.platforms.item import Verifying

__all__ = [
    "CliFamily",
    "CliInput",
    "InputDir",
    "InputFile",
    "Inputs",
    "choose_family",
    "policy_section",
    "shared_inputs",
]

Q = TypeVar("Q")


@dataclass(frozen=True, slots=True)
class CliInput:
    """One command-line input of a family: the CLI builds a click option from it and reads what it names."""

    #: The option, e.g. ``--certs``.
    flag: str
    #: Its key in :class:`Inputs` (and the click parameter name; unique across families).
    dest: str
    #: The ``--help`` text.
    help: str
    #: ``file``: one file's bytes; ``file_or_dir``: a file, or a directory whose :attr:`dir_files` are read;
    #: ``choice``: one of :attr:`choices`, as text; ``text``: a string as given.
    kind: Literal["file", "file_or_dir", "choice", "text"] = "file"
    #: Repeatable (files only): every file given, in order.
    multiple: bool = False
    choices: tuple[str, ...] = ()
    #: ``file_or_dir``: the names read from a directory (those not there are left out of :class:`InputDir`).
    dir_files: tuple[str, ...] = ()
    #: The code the evidence is rejected with when a file cannot be read or is larger than :attr:`max_bytes`
    #: (None: the file is read whole, and one that cannot be read is an internal error).
    read_error: Code | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class InputFile:
    """A file the CLI read: its name (for claims and messages) and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class InputDir:
    """A directory the CLI read: its path as given (for messages) and the :attr:`CliInput.dir_files` in it."""

    path: str
    files: Mapping[str, bytes]


InputValue = InputFile | InputDir | tuple[InputFile, ...] | str | None


@dataclass(frozen=True, slots=True)
class Inputs:
    """The inputs given on the command line, read, by :attr:`CliInput.dest` (absent ones: None or ``()``)."""

    values: Mapping[str, InputValue] = field(default_factory=dict)

    def given(self) -> frozenset[str]:
        """The dests that were given a value."""
        return frozenset(k for k, v in self.values.items() if v is not None and v != ())

    def file(self, dest: str) -> InputFile | None:
        value = self.values.get(dest)
        return value if isinstance(value, InputFile) else None

    def files(self, dest: str) -> tuple[InputFile, ...]:
        value = self.values.get(dest)
        return value if isinstance(value, tuple) else ()

    def file_or_dir(self, dest: str) -> InputFile | InputDir | None:
        value = self.values.get(dest)
        return value if isinstance(value, InputFile | InputDir) else None

    def text(self, dest: str) -> str | None:
        value = self.values.get(dest)
        return value if isinstance(value, str) else None

    def choice(self, dest: str) -> str | None:
        value = self.values.get(dest)
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class CliFamily(Generic[Q]):
    """One platform family on the command line. ``Q``: its appraisal policy."""

    #: The registry entries' ``family``, and the policy document's section for it.
    family: str
    #: Its input options, in ``--help`` order. Giving one picks this family (unless it is the ``fallback``, or
    #: another family takes the same option: a shared option, such as ``--certs``, leaves the choice to the bytes).
    inputs: tuple[CliInput, ...]
    #: Whether raw evidence bytes (binary or hex, or a dump) look like this family's. May raise a
    #: :class:`~verifier.errors.KeywardError` for bytes that claim to be its evidence but do not decode.
    sniff: Callable[[bytes], bool]
    #: The family's policy from its section of the policy document (``{}`` when none): ``policy.invalid``.
    policy: Callable[[dict[str, Any]], Q]
    #: Verify and appraise raw evidence with the inputs read. Never raises for bad evidence or inputs.
    evaluate: Callable[[bytes, Inputs, Q, Verifying], Evaluation]
    #: Evidence no family recognises goes to the fallback (exactly one), whose parser says what is wrong with
    #: it; the fallback's own options do not pick it over evidence another family recognises.
    fallback: bool = False


def families_of(entries: Iterable[Any]) -> tuple[CliFamily[Any], ...]:
    """The distinct CLI families of registry entries (anything with a ``cli`` attribute), in entry order.

    Families may share an option (the same flag and dest, read the same way: one click option, whose meaning
    follows the evidence). Raises :class:`ValueError` when a flag or dest is used two different ways, or the
    fallback is not exactly one.
    """
    found: dict[str, CliFamily[Any]] = {}
    for entry in entries:
        cli: CliFamily[Any] = entry.cli
        if found.setdefault(cli.family, cli) is not cli:
            raise ValueError(f"two CLI descriptors for family {cli.family!r}")
    families = tuple(found.values())
    shapes: dict[str, tuple[str, str, bool]] = {}
    flags: dict[str, str] = {}
    for f in families:
        for i in f.inputs:
            if shapes.setdefault(i.dest, (i.flag, i.kind, i.multiple)) != (i.flag, i.kind, i.multiple):
                raise ValueError(f"CLI input {i.dest!r} is declared two different ways")
            if flags.setdefault(i.flag, i.dest) != i.dest:
                raise ValueError(f"CLI flag {i.flag!r} names two inputs")
    if sum(f.fallback for f in families) != 1:
        raise ValueError("exactly one CLI family must be the fallback")
    return families


def shared_inputs(families: Iterable[CliFamily[Any]]) -> frozenset[str]:
    """The dests more than one family takes (they do not pick a family)."""
    seen: dict[str, int] = {}
    for f in families:
        for i in f.inputs:
            seen[i.dest] = seen.get(i.dest, 0) + 1
    return frozenset(d for d, n in seen.items() if n > 1)


def choose_family(families: Iterable[CliFamily[Any]], given: Iterable[str], data: bytes) -> CliFamily[Any]:
    """The family that verifies ``data``:

    1. the first whose own options were given (the fallback's and shared ones do not count);
    2. else, when shared options were given, the first of the families taking them all that recognises the bytes,
       or the first of them (``--certs`` with a truncated SEV-SNP report is still SEV-SNP's to refuse); an option
       the fallback shares (``--collateral``: Intel's and Azure's) restricts nothing, as the fallback's own;
    3. else the first that recognises the bytes (the fallback last), else the fallback.

    A sniffer's error propagates."""
    ordered = sorted(families, key=lambda f: f.fallback)
    fallback_inputs = {i.dest for f in ordered if f.fallback for i in f.inputs}
    shared = shared_inputs(ordered)
    named = set(given) - (shared & fallback_inputs)
    for f in ordered:
        if not f.fallback and any(i.dest in named - shared for i in f.inputs):
            return f
    candidates = [f for f in ordered if named & shared <= {i.dest for i in f.inputs}] if named & shared else ordered
    for f in candidates:
        if f.sniff(data):
            return f
    if named & shared and candidates:
        return candidates[0]
    fallback = [f for f in ordered if f.fallback]
    if len(fallback) != 1:
        raise ValueError("exactly one CLI family must be the fallback")
    return fallback[0]


def policy_section(document: dict[str, Any] | None, family: str, families: Iterable[str]) -> dict[str, Any]:
    """A family's part of a policy document: the whole document when it is flat, or its section when the document
    is keyed by family (``{"intel": {...}, "snp": {...}}``; a family it leaves out gets ``{}``)."""
    if document is None:
        return {}
    if set(document) & set(families):
        section = document.get(family)
        return section if isinstance(section, dict) else {}
    return document
