"""The command walkthroughs of the documentation, run as tests so that the docs stay true.

A fenced ``console`` or ``sh`` block directly below a ``<!-- test -->`` marker is run (the
convention is in CONTRIBUTING.md, "Tested code blocks"):

- every tested block of a page runs in order, in one shell session (``cd`` and ``export``
  carry over), in a fresh directory holding the example Solution's signed archives
  (``example-solution-{1.0.0,1.1.0,2.0.0}.iso``) and its ``vendor.pub``;
- ``SOLUTIONS_CONFIG`` points to a fresh file, ``PATH`` starts with ``.venv/bin``; a page with a
  ``cluster`` marker gets its own local control plane (``KUBECONFIG``);
- in ``console`` blocks, ``$ `` lines are commands (``\\`` continues them) and the lines below a
  command are expected output: each must appear in the command's output (stdout and stderr), in
  order, spaces collapsed, ``...`` matching any text;
- the work directory is written ``/srv/solutions`` and the configuration file
  ``/etc/metalk8s/solutions.yaml``, in commands and in output (the runner substitutes them);
- every command must exit 0, except the last of a block marked ``exit=N``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from metalk8s_solutions.testing.controlplane import LocalControlPlane

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
VENV_BIN = REPO / ".venv" / "bin"
MARKER = re.compile(r"^<!--\s*test(?::\s*(?P<options>[^>]*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+|~~~+)\s*(?P<lang>[\w-]*)")
OPTION = re.compile(r"^(cluster|exit=\d+)$")
SHOWN_WORKDIR = "/srv/solutions"
SHOWN_CONFIG = "/etc/metalk8s/solutions.yaml"


@dataclass
class Command:
    text: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class Block:
    page: str
    line: int
    lang: str
    options: set[str]
    commands: list[Command]


def parse_console(lines: list[str]) -> list[Command]:
    commands: list[Command] = []
    continuing = False
    for line in lines:
        if continuing:
            commands[-1].text += "\n" + line
            continuing = line.endswith("\\")
        elif line.startswith("$ "):
            commands.append(Command(line[2:]))
            continuing = line.endswith("\\")
        elif commands:
            if line.strip():
                commands[-1].expected.append(line)
        elif line.strip():
            raise ValueError(f"output before any command: {line!r}")
    return commands


def parse_page(path: Path) -> list[Block]:
    """The tested blocks of one Markdown page."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    page = str(path.relative_to(DOCS))
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i].strip())
        if not marker:
            i += 1
            continue
        options = {o.strip() for o in (marker["options"] or "").split(",") if o.strip()}
        bad = {o for o in options if not OPTION.match(o)}
        if bad:
            raise ValueError(f"{page}:{i + 1}: unknown test option(s) {sorted(bad)}")
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None or fence["lang"] not in ("console", "sh"):
            raise ValueError(f"{page}:{i + 1}: a test marker must precede a console or sh block")
        end = i + 2
        while end < len(lines) and not lines[end].startswith(fence["fence"]):
            end += 1
        body = lines[i + 2 : end]
        sh = fence["lang"] == "sh"
        commands = [Command("\n".join(body))] if sh else parse_console(body)
        if not commands:
            raise ValueError(f"{page}:{i + 1}: tested block without a command")
        exit_code = next((int(o[5:]) for o in options if o.startswith("exit=")), 0)
        commands[-1].exit_code = exit_code
        blocks.append(Block(page, i + 2, fence["lang"], options, commands))
        i = end + 1
    return blocks


def find_tested_pages() -> dict[str, list[Block]]:
    pages = {}
    for path in sorted(DOCS.rglob("*.md")):
        blocks = parse_page(path)
        if blocks:
            pages[str(path.relative_to(DOCS))] = blocks
    return pages


def line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(" ".join(p.split())) for p in expected.split("...")]
    return re.compile("^" + ".*".join(parts) + "$")


def check_output(expected: list[str], actual: str) -> str | None:
    """None when every expected line appears in ``actual``, in order; else what is missing."""
    lines = [" ".join(line.split()) for line in actual.splitlines()]
    position = 0
    for want in expected:
        pattern = line_pattern(want)
        while position < len(lines) and not pattern.match(lines[position]):
            position += 1
        if position == len(lines):
            return want
        position += 1
    return None


class Session:
    """One shell session for a page: environment and directory carry from command to command."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.state = work.parent / "session"
        self.state.mkdir()
        (self.state / "env").write_text(
            "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
        )
        (self.state / "cwd").write_text(str(work))
        self.substitutions = {
            env["SOLUTIONS_CONFIG"]: SHOWN_CONFIG,
            str(work): SHOWN_WORKDIR,
        }

    def run(self, command: str, timeout: float = 300) -> tuple[int, str]:
        for real, shown in self.substitutions.items():
            command = command.replace(shown, real)
        state = shlex.quote(str(self.state))
        script = (
            f'source {state}/env; cd "$(cat {state}/cwd)"\n'
            f"{command}\n"
            f"rc=$?; export -p > {state}/env; pwd > {state}/cwd; exit $rc\n"
        )
        result = subprocess.run(
            ["bash", "-c", script],
            env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        for real, shown in self.substitutions.items():
            output = output.replace(real, shown)
        return result.returncode, output


PAGES = find_tested_pages()


def test_marker_convention_is_used() -> None:
    """The walkthroughs stay tested: these pages must keep tested blocks."""
    for page in ("operations/walkthrough.md",):
        assert page in PAGES, f"{page} has no tested block any more"


@pytest.fixture
def page_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path | None]:
    blocks: list[Block] = request.node.callspec.params["page"]
    if not any("cluster" in b.options for b in blocks):
        yield None
        return
    plane = LocalControlPlane(tmp_path / "plane", nodes=1, bind_to_parent=True)
    try:
        yield plane.up().kubeconfig
    finally:
        plane.down()


@pytest.mark.parametrize("page", list(PAGES.values()), ids=list(PAGES))
def test_page(
    page: list[Block],
    example_archives: Any,
    page_cluster: Path | None,
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for iso in example_archives.isos.values():
        (work / Path(iso).name).symlink_to(iso)
    shutil.copy(example_archives.public_key, work / "vendor.pub")
    (tmp_path / "etc").mkdir()
    env = {
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "SOLUTIONS_CONFIG": str(tmp_path / "etc" / "solutions.yaml"),
        "LC_ALL": "C.UTF-8",
        "COLUMNS": "100",
    }
    if page_cluster is not None:
        env["KUBECONFIG"] = str(page_cluster)
    session = Session(work, env)
    for block in page:
        for command in block.commands:
            where = f"{block.page}:{block.line}: $ {command.text}"
            code, output = session.run(command.text)
            assert code == command.exit_code, (
                f"{where}\nexit status {code}, expected {command.exit_code}\n{output}"
                f"\n{(session.state / 'env').read_text()}"
            )
            missing = check_output(command.expected, output)
            assert missing is None, f"{where}\nexpected line not found: {missing!r}\n{output}"


def test_output_matching() -> None:
    assert check_output(["a  b", "c...e"], "x\na b\ny\ncde\n") is None
    assert check_output(["c", "a"], "a\nc\n") == "a"
    assert parse_console(["$ one \\", "  two", "out", "$ three"])[0].text == "one \\\n  two"
