"""Every command the tool or the docs print is one that parses as written (issue 20 item 3).

- in the source, every printed command is built by :func:`metalk8s_solutions.errors.command`:
  each call is found in the syntax tree, its values filled in (a literal stays, an expression
  becomes a sample word, a ``<placeholder>`` a sample value) and parsed with the real click
  command tree (:func:`cli_parsing.parse`: unknown verbs and options, missing arguments and
  option values fail);
- a string literal that spells ``solutions VERB`` outside that helper fails, so a new hint
  cannot escape the check;
- in the docs, every command of a ``console``/``sh`` block and every inline command of the
  troubleshooting page parses the same way (an inline mention of a bare verb, such as
  ``solutions import``, may leave its arguments out).

The integration test ``tests/integration/test_hints_pasted.py`` runs the hints of the main
refusals as pasted, on the local cluster.
"""

from __future__ import annotations

import ast
import functools
import importlib
import re
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from cli_parsing import parse
from metalk8s_solutions.cli.main import cli
from metalk8s_solutions.errors import PLACEHOLDER, command

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "metalk8s_solutions"
DOCS = [*sorted((REPO / "docs").rglob("*.md")), REPO / "README.md", REPO / "CONTRIBUTING.md"]
TROUBLESHOOTING = REPO / "docs" / "operations" / "troubleshooting.md"

#: the placeholders a printed command may hold, and the value the test puts in their place
#: (documented in docs/reference/index.md, "Placeholders")
SAMPLES = {
    "env": "prod",
    "solution": "example-solution",
    "name": "example-solution",
    "version": "1.0.0",
    "kind": "VersionServer",
    "namespace": "prod-ns",
    "image": "registry.example:5000/tools/debug:1.2",
    "field": "spec.replicas",
    "value": "2",
    "archive": "example-solution-1.0.0.iso",
    "id": "example-solution-1.0.0",
    "sample": "basic",
    "size": "40GiB",
    "dir": "uploads",
    "domain": "ui.example.com",
    "source": "src",
    "url": "https://dex.example.com",
    "n": "2",
    "port": "6443",
    "host": "127.0.0.1",
    "path": "kubeconfig",
}
#: what an expression (a name known only at run time) becomes
WORD = "word"
#: string literals that spell a verb but are not commands
NOT_COMMANDS = {
    ("images/registry_server.py", "solutions registry"),  # the registry's auth realm
    ("cli/metalk8s.py", " solutions metalk8s "),  # the log's header of each run
}


@dataclass(frozen=True)
class Found:
    where: str
    text: str


def fill(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(0)[1:-1]
        assert name in SAMPLES, f"placeholder {match.group(0)} is not one of {sorted(SAMPLES)}"
        return SAMPLES[name]

    return PLACEHOLDER.sub(one, text)


def _verbs(group: click.Group = cli) -> set[str]:
    return set(group.list_commands(click.Context(group)))


VERB = re.compile(r"(?<![\w./-])solutions (" + "|".join(sorted(_verbs())) + r")(?![\w-])")


@functools.cache
def _sources() -> tuple[tuple[Path, ast.Module], ...]:
    """The syntax tree of every module of the package (the test harness aside), parsed once."""
    return tuple(
        (path, ast.parse(path.read_text(), str(path)))
        for path in sorted(SRC.rglob("*.py"))
        if "testing" not in path.relative_to(SRC).parts
    )


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"


def src_commands() -> list[Found]:
    """Each ``command(...)`` call of the source, as the words it prints with samples filled in."""
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "command"
            ):
                continue
            words = []
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    words.append(fill(arg.value))
                elif isinstance(arg, ast.Starred):
                    continue  # optional words (e.g. '--state-dir DIR' when one was given)
                else:
                    words.append(WORD)
            found.append(Found(_where(path, node), command(*words)))
    return found


def _docstrings(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def raw_commands() -> list[Found]:
    """String literals that spell ``solutions VERB`` outside :func:`command` (docstrings and
    comments aside)."""
    found = []
    for path, tree in _sources():
        skip = _docstrings(tree)
        rel = str(path.relative_to(SRC))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in skip or (rel, node.value) in NOT_COMMANDS:
                continue
            if VERB.search(node.value):
                found.append(Found(_where(path, node), node.value))
    return found


def _command_lines(path: Path) -> Iterator[Found]:
    """The commands of the ``console``/``sh`` blocks of a Markdown page."""
    lang = None
    pending: list[str] = []
    start = 0
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fence = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", line)
        if fence:
            lang = None if lang is not None else fence.group(2) or "text"
            continue
        if lang not in ("console", "sh", "bash", "shell"):
            continue
        text = line.strip()
        if lang == "console":
            if not pending:
                if not text.startswith("$ "):
                    continue
                text = text[2:]
        elif not pending and text.startswith("#"):
            continue
        if not pending:
            start = number
        pending.append(text.removesuffix("\\").strip())
        if text.endswith("\\"):
            continue
        joined = " ".join(pending)
        pending = []
        for part in re.split(r"\s*(?:&&|\|\||;|\s\|\s)\s*", joined):
            words = part.split(" #", 1)[0].strip().removesuffix("&").strip()
            if words.startswith("solutions "):
                yield Found(f"{path.relative_to(REPO)}:{start}", words)


#: a command inside a printed message: up to the quote, semicolon, comma or parenthesis ending it
PRINTED = re.compile(r"(?<![\w./-])solutions [^';),`]*")


def _printed_messages(path: Path) -> Iterator[Found]:
    """The commands inside the messages a page shows (``error:``, ``aborted:``, ``warning:``
    lines of its blocks, as the tool prints them)."""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"^\s*(error|aborted|warning): ", line):
            for match in PRINTED.finditer(line):
                yield Found(f"{path.relative_to(REPO)}:{number}", match.group(0).strip())


def doc_commands() -> list[Found]:
    found = [c for page in DOCS for c in _command_lines(page)]
    found += [c for page in DOCS for c in _printed_messages(page)]
    for number, line in enumerate(TROUBLESHOOTING.read_text().splitlines(), 1):
        for text in re.findall(r"`(solutions [^`]*)`", line):
            found.append(Found(f"{TROUBLESHOOTING.relative_to(REPO)}:{number}", text))
    return found


def synopsis(text: str) -> str:
    """A usage line as a command: ``[--opt X]`` kept as ``--opt X``, ``json|yaml`` as ``json``."""
    text = re.sub(r"\[([^\]]*)\]", r"\1", text)
    return re.sub(r"(?<=\S)\|\S+", "", text)


def _check(found: Found, *, mention_ok: bool = False) -> None:
    try:
        words = shlex.split(synopsis(fill(found.text)))[1:]
    except (AssertionError, ValueError) as err:
        raise AssertionError(f"{found.where}: {found.text!r}: {err}") from err
    try:
        parse(words)
    except click.exceptions.Exit:
        pass  # --help, --version
    except click.MissingParameter as err:
        path = [p.info_name for p in _chain(err.ctx)] if err.ctx else []
        if not (mention_ok and len(words) == len(path) - 1):
            raise AssertionError(f"{found.where}: {found.text!r}: {err.format_message()}") from err
    except click.UsageError as err:
        raise AssertionError(f"{found.where}: {found.text!r}: {err.format_message()}") from err


def _chain(ctx: click.Context) -> list[click.Context]:
    out = []
    current: click.Context | None = ctx
    while current is not None:
        out.append(current)
        current = current.parent
    return out[::-1]


def _params(group: click.Group) -> Iterator[click.Parameter]:
    yield from group.params
    for name in group.list_commands(click.Context(group)):
        sub = group.get_command(click.Context(group), name)
        if isinstance(sub, click.Group):
            yield from _params(sub)
        elif sub is not None:
            yield from sub.params


@pytest.fixture
def samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths are taken as written: whether a file exists is the run's business, not the
    parse's (the commands name files of the reader's machine); the parse runs in an empty
    directory."""
    monkeypatch.chdir(tmp_path)
    for param in _params(cli):
        if isinstance(param.type, click.Path):
            monkeypatch.setattr(param.type, "exists", False)


def test_command_quotes_values_and_keeps_placeholders() -> None:
    assert command("env", "upgrade", "prod", "s", "<version>") == (
        "solutions env upgrade prod s <version>"
    )
    assert command("instance", "edit", "p", "s", "K/n", "--set", "<field>=<value>") == (
        "solutions instance edit p s K/n --set <field>=<value>"
    )
    assert command("validate", "/srv/my archive.iso") == "solutions validate '/srv/my archive.iso'"
    assert command("validate", "<x> y") == "solutions validate '<x> y'"


def test_every_command_of_the_source_parses(samples: None) -> None:
    found = src_commands()
    assert len(found) > 30, found  # the scan sees the hints
    problems = []
    for item in found:
        try:
            _check(item)
        except AssertionError as err:
            problems.append(str(err))
    assert not problems, "\n".join(problems)


def test_no_command_is_printed_without_the_helper() -> None:
    raw = [f"{f.where}: {f.text!r}" for f in raw_commands()]
    assert not raw, "build these with metalk8s_solutions.errors.command:\n" + "\n".join(raw)


def test_every_command_of_the_docs_parses(samples: None) -> None:
    found = doc_commands()
    assert len(found) > 50, found
    problems = []
    for item in found:
        try:
            _check(item, mention_ok=item.where.startswith("docs/operations/troubleshooting"))
        except AssertionError as err:
            problems.append(str(err))
    assert not problems, "\n".join(problems)


def catalogue_commands() -> list[Found]:
    """The commands in the messages and hints of the error catalogue (docs/reference/errors),
    as ``docs/hooks/docgen.py`` renders them: values as ``<name>``, optional words as ``[…]``."""
    sys.path.insert(0, str(REPO / "docs" / "hooks"))
    try:
        docgen = importlib.import_module("docgen")
    finally:
        sys.path.pop(0)
    found = []
    for entry in docgen.error_index():
        for text in (entry.message, entry.hint or ""):
            for match in PRINTED.finditer(text):
                line = re.sub(r"\s*\[…\]", "", match.group(0)).strip()
                line = PLACEHOLDER.sub(lambda m: SAMPLES.get(m.group(0)[1:-1], WORD), line)
                line = re.sub(r"<[^>]*>", WORD, line)
                found.append(Found(f"{entry.module}:{entry.line}", line))
    return found


def test_every_command_of_the_error_catalogue_parses(samples: None) -> None:
    found = catalogue_commands()
    assert len(found) > 30, found
    problems = []
    for item in found:
        try:
            _check(item)
        except AssertionError as err:
            problems.append(str(err))
    assert not problems, "\n".join(problems)


def help_commands() -> list[Found]:
    """The commands quoted in the ``--help`` texts (commands and options)."""
    found = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            for match in PRINTED.finditer(" ".join(text.split())):
                if not VERB.match(match.group(0)):
                    continue  # prose: "solutions are deployed side by side"
                found.append(Found(f"solutions {' '.join(path)} --help", match.group(0).strip()))
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                sub = command.get_command(click.Context(command), name)
                if sub is not None:
                    walk(sub, (*path, name))

    walk(cli, ())
    return found


def test_every_command_of_the_help_texts_parses(samples: None) -> None:
    """``--help`` writes a value as its METAVAR (click's convention, e.g. ENV): a word, so
    the command still parses; a bare verb (as 'solutions activate') names the verb."""
    found = help_commands()
    assert found, "no command quoted in any --help"
    problems = []
    for item in found:
        try:
            _check(item, mention_ok=True)
        except AssertionError as err:
            problems.append(str(err))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "text",
    [
        "solutions activate example-solution VERSION --force --bogus",
        "solutions env upgrade prod example-solution",
        "solutions env upgrde prod example-solution 1.0.0",
        "solutions env show <nope>",
    ],
)
def test_a_broken_command_is_reported_with_its_place(text: str, samples: None) -> None:
    with pytest.raises(AssertionError, match="here:1"):
        _check(Found("here:1", text))
