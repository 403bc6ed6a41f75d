"""Start-up: ``solutions --help`` and every ``solutions VERB … --help`` import no heavy library.

The check is on imports, not on time (timings are in ``bench/bench_startup.py``): each top-level
verb runs in a fresh interpreter, which then asks for the help of every command under it and
reports the modules it has loaded.  A heavy module in that list means a command declaration pulls
in the engine, an HTTP stack or a parser it only needs when it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from metalk8s_solutions.cli.main import COMMANDS, LazyGroup, cli

#: Libraries that cost tens to hundreds of milliseconds to import (measured with
#: ``python -X importtime``), none of which a command needs to describe itself.
HEAVY = (
    "aiohttp",
    "anyio",
    "asyncio",
    "cryptography",
    "fastapi",
    "httpcore",
    "httpcore2",
    "httpx",
    "httpx2",
    "jinja2",
    "jsonschema",
    "lightkube",
    "msgspec",
    "pycdlib",
    "pydantic",
    "starlette",
    "uvicorn",
    "yaml",
)

#: Run in a fresh interpreter: the help of each command path given, then the loaded modules.
CHILD = """
import contextlib, io, json, sys
from metalk8s_solutions.cli.main import main
failures = []
for path in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*path, "--help"])
    if code != 0 or "Usage:" not in out.getvalue():
        failures.append([path, code, out.getvalue()])
print(json.dumps({"failures": failures, "modules": sorted(sys.modules)}))
"""


def _paths(command: click.Command, path: tuple[str, ...], parent: click.Context | None) -> list:
    """Every command path under ``command`` (itself included), as lists of words."""
    ctx = click.Context(command, info_name=path[-1] if path else "solutions", parent=parent)
    found = [list(path)]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, name
            found += _paths(sub, (*path, name), ctx)
    return found


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


def test_every_help_imports_no_heavy_module() -> None:
    root_ctx = click.Context(cli, info_name="solutions")
    groups: dict[str, list[list[str]]] = {"": [[]]}
    for verb in sorted(COMMANDS):
        sub = cli.get_command(root_ctx, verb)
        assert sub is not None
        groups[verb] = _paths(sub, (verb,), root_ctx)
    children = {
        verb: subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(paths)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for verb, paths in groups.items()
    }
    problems = {}
    for verb, child in children.items():
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        report = json.loads(stdout)
        assert report["failures"] == [], report["failures"]
        heavy = _heavy(report["modules"])
        if heavy:
            problems[f"solutions {verb} --help".replace("  ", " ")] = heavy
    assert problems == {}, problems
    assert sum(len(p) for p in groups.values()) > 40  # the walk did reach the sub-verbs


def test_root_help_lists_every_verb_as_click_would() -> None:
    """The verbs' short help in ``solutions --help`` comes from a table; it is the commands' own."""
    ctx = click.Context(cli, info_name="solutions")
    lazy = click.HelpFormatter(width=100)
    cli.format_commands(ctx, lazy)
    eager = click.HelpFormatter(width=100)
    click.Group.format_commands(cli, ctx, eager)
    assert isinstance(cli, LazyGroup)
    assert lazy.getvalue() == eager.getvalue()
    assert all(f"  {verb} " in lazy.getvalue() for verb in COMMANDS)


def test_option_defaults_are_the_owners_values() -> None:
    """The values that option declarations show are those of the modules that own them."""
    from metalk8s_solutions.api.config import Policy  # noqa: PLC0415
    from metalk8s_solutions.archive.signing import Algorithm  # noqa: PLC0415
    from metalk8s_solutions.cli import defaults  # noqa: PLC0415
    from metalk8s_solutions.engine.config_store import DEFAULT_CONFIG  # noqa: PLC0415
    from metalk8s_solutions.images import push  # noqa: PLC0415
    from metalk8s_solutions.web import server  # noqa: PLC0415
    from metalk8s_solutions.web.uploads import DEFAULT_UPLOAD_LIMIT, show_size  # noqa: PLC0415

    assert tuple(p.value for p in Policy) == defaults.POLICIES
    assert tuple(a.value for a in Algorithm) == defaults.ALGORITHMS
    assert defaults.DEFAULT_CONCURRENCY == push.DEFAULT_CONCURRENCY
    assert defaults.DEFAULT_LISTEN == server.DEFAULT_LISTEN
    assert defaults.DEFAULT_CONFIG == DEFAULT_CONFIG
    assert show_size(DEFAULT_UPLOAD_LIMIT).replace(" ", "") == defaults.DEFAULT_UPLOAD_LIMIT


@pytest.mark.parametrize("args", [["env", "list"], ["status"], ["instance", "list", "e", "s"]])
def test_a_verb_that_runs_still_reports_errors_cleanly(args: list[str], tmp_path: Path) -> None:
    """The engine, imported inside the command, still turns a user's mistake into one line."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metalk8s_solutions.cli",
            "--config",
            str(tmp_path / "solutions.yaml"),
            "--kubeconfig",
            str(tmp_path / "missing"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: kubeconfig "), result.stderr
    assert "Traceback" not in result.stderr


#: Run in a fresh interpreter: one command (its exit status ignored), then the loaded modules.
RUN_ONE = """
import contextlib, io, json, sys
from metalk8s_solutions.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    main(json.loads(sys.argv[1]))
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "args",
    [
        ["env", "list"],
        ["list"],
        ["status"],
        ["push", "--dry-run", "missing.iso"],
        ["dev", "cluster", "status", "--state-dir", "absent"],
        ["dev", "registry", "status", "--state-dir", "absent"],
    ],
)
def test_a_command_imports_one_http_stack_and_nothing_it_does_not_use(
    args: list[str], tmp_path: Path
) -> None:
    """lightkube's httpx2 only, for the cluster and for registries; listings load no validation,
    signing, push or web code."""
    argv = ["--config", str(tmp_path / "s.yaml"), "--kubeconfig", str(tmp_path / "kc"), *args]
    child = subprocess.run(
        [sys.executable, "-c", RUN_ONE, json.dumps(argv)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=tmp_path,
    )
    loaded = {m.split(".")[0] for m in json.loads(child.stdout)}
    assert "httpx2" in loaded  # the command did reach its HTTP client
    assert loaded & {"httpx", "httpcore", "rich", "pygments"} == set()
    if args[0] not in ("push", "dev"):
        assert loaded & {"cryptography", "jsonschema", "pycdlib", "fastapi", "aiohttp"} == set()
