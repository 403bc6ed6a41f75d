"""One options type per environment verb: the CLI's flags are generated from it, and the web's
form, JSON handler and parser take exactly its web fields, so an option is written once."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from metalk8s_solutions.cli.env import env_group
from metalk8s_solutions.cli.flags import OptionsCommand
from metalk8s_solutions.engine.environments import options as verbs
from metalk8s_solutions.engine.environments.options import (
    from_params,
    kind_of,
    option,
    option_of,
)
from metalk8s_solutions.errors import InvalidInput

WEB = Path(__file__).resolve().parents[2] / "src" / "metalk8s_solutions" / "web"

#: Each ``solutions env`` verb that changes something, and its options type.
CLI_VERBS: dict[str, type] = {
    "create": verbs.CreateEnvOptions,
    "delete": verbs.DeleteEnvOptions,
    "add-solution": verbs.AddSolutionOptions,
    "upgrade": verbs.UpgradeOptions,
    "delete-solution": verbs.DeleteSolutionOptions,
    "converge": verbs.ConvergeOptions,
}
#: The verbs that take no options type (reads: an environment name at most).
READS = {"list", "show"}
#: Each web operation (web/service.py OPERATIONS) of an environment verb, and its options type.
WEB_VERBS: dict[str, type] = {
    "env-create": verbs.CreateEnvOptions,
    "env-delete": verbs.DeleteEnvOptions,
    "env-add": verbs.AddSolutionOptions,
    "env-upgrade": verbs.UpgradeOptions,
    "env-remove": verbs.DeleteSolutionOptions,
}
#: The command's own parameters that are not options of the engine (output, diff rendering).
CLI_ONLY = {"output", "show_diff"}
#: Fields that no user sets (the engine's callers do), each said so here.
ENGINE_ONLY = {
    ("UpgradeOptions", "webhook"),  # solutions.sh's add-solution, when it changes a version
    ("ConvergeOptions", "concurrency"),  # the benchmark
}


def _web_fields(options_type: type) -> set[str]:
    return {
        how.web for f in dataclasses.fields(options_type) if (how := option_of(f)).web is not None
    }


@pytest.mark.parametrize("options_type", sorted(set(CLI_VERBS.values()), key=str))
def test_every_field_is_offered_or_said_to_be_the_engines(options_type: type) -> None:
    for f in dataclasses.fields(options_type):
        kind_of(f)  # a type the CLI and the web can parse
        how = option_of(f)
        offered = how.flags or how.argument or how.web
        if (options_type.__name__, f.name) in ENGINE_ONLY:
            assert not offered, f"{f.name} is offered: remove it from ENGINE_ONLY"
        else:
            assert offered, f"{options_type.__name__}.{f.name}: no CLI flag nor web parameter"
            assert how.help, f"{options_type.__name__}.{f.name}: no help"


def test_every_env_verb_has_its_options_type() -> None:
    ctx = click.Context(env_group)
    assert set(env_group.list_commands(ctx)) == set(CLI_VERBS) | READS


@pytest.mark.parametrize("verb", sorted(CLI_VERBS))
def test_the_cli_parameters_are_the_fields(verb: str) -> None:
    """Names, order, defaults and help of the command's parameters are the options type's."""
    command = env_group.commands[verb]
    options_type = CLI_VERBS[verb]
    params = [p for p in command.params if p.name not in CLI_ONLY]
    offered = [
        f for f in dataclasses.fields(options_type) if option_of(f).flags or option_of(f).argument
    ]
    assert len(params) == len(offered)
    for param, f in zip(params, offered, strict=True):
        how = option_of(f)
        if how.argument is not None:
            assert isinstance(param, click.Argument) and param.name == how.argument
            continue
        assert isinstance(param, click.Option)
        assert param.name == f.name
        assert param.help == how.help
        assert [*param.opts, *param.secondary_opts] == [
            s for flag in how.flags for s in flag.split("/")
        ]
        assert param.show_default == (how.show_default or None)
    # what the command gets when no flag is given: the fields' defaults
    required = [p for p in params if isinstance(p, click.Argument) and p.nargs == 1]
    parsed = command.make_context(verb, ["x"] * len(required)).params
    for f in offered:
        if f.default is not dataclasses.MISSING:
            assert parsed[option_of(f).argument or f.name] == f.default, f.name


def test_a_field_added_to_an_options_type_is_a_cli_flag_and_a_web_field() -> None:
    """The whole wiring of a new option is its field."""

    @dataclasses.dataclass(frozen=True)
    class Frob:
        env: str = dataclasses.field(metadata=option(argument="env", web="env", what="an env"))
        level: str | None = dataclasses.field(
            default=None, metadata=option(flags=("--level",), choices=("a", "b"), help="Level.")
        )
        tries: int = dataclasses.field(
            default=3, metadata=option(flags=("--tries",), minimum=1, help="Tries.")
        )
        loud: bool = dataclasses.field(
            default=False, metadata=option(flags=("--loud",), web="loud", help="Loudly.")
        )
        tags: tuple[str, ...] = dataclasses.field(
            default=(), metadata=option(flags=("-t", "--tag"), web="tags", help="Tags.")
        )

    seen: list[Any] = []

    @click.command(cls=OptionsCommand, options=Frob)
    @click.option("--other", is_flag=True)
    def frob(opts: Frob, other: bool) -> None:
        seen.append((opts, other))

    result = CliRunner().invoke(
        frob, ["e1", "--level", "b", "--loud", "-t", "x", "-t", "y", "--other"]
    )
    assert result.exit_code == 0, result.output
    assert seen == [(Frob("e1", "b", 3, loud=True, tags=("x", "y")), True)]
    help_text = CliRunner().invoke(frob, ["--help"]).output
    assert help_text.index("--level") < help_text.index("--tries") < help_text.index("--other")
    assert help_text.index("--tries") < help_text.index("--loud")
    assert "Usage: frob [OPTIONS] ENV" in help_text
    bad = CliRunner().invoke(frob, ["e1", "--tries", "0"])
    assert bad.exit_code == 2 and "--tries" in bad.output
    assert from_params(Frob, {"env": " e2 ", "loud": "on", "tags": "x, y\nz"}, tries=5) == Frob(
        "e2", None, 5, loud=True, tags=("x", "y", "z")
    )


def test_the_web_builds_the_options_it_built_by_hand() -> None:
    """web/service.py's parsing before the options carried their web fields, case by case."""
    p = {"name": " prod ", "namespaces": "a, b\nc", "description": " Team A "}
    assert from_params(verbs.CreateEnvOptions, p, dry_run=True) == verbs.CreateEnvOptions(
        "prod", ("a", "b", "c"), "Team A", dry_run=True
    )
    assert from_params(
        verbs.DeleteEnvOptions, {"name": "prod", "confirm": "prod"}, dry_run=False, wait=False
    ) == verbs.DeleteEnvOptions("prod", dry_run=False, wait=False)
    add = {"env": "prod", "solution": "sol", "version": "1.0.0", "webhook": "True"}
    assert from_params(
        verbs.AddSolutionOptions, add, dry_run=True, timeout=180.0
    ) == verbs.AddSolutionOptions("prod", "sol", "1.0.0", webhook=True, dry_run=True, timeout=180)
    up = {"env": "prod", "solution": "sol", "version": "2.0.0", "webhook": "true"}
    assert from_params(verbs.UpgradeOptions, up, timeout=180.0) == verbs.UpgradeOptions(
        "prod", "sol", "2.0.0", timeout=180.0
    )  # upgrade takes no webhook from the web
    rm = {"env": "prod", "solution": "sol", "deleteData": "false"}
    assert from_params(verbs.DeleteSolutionOptions, rm) == verbs.DeleteSolutionOptions(
        "prod", "sol", delete_data=False
    )


@pytest.mark.parametrize(
    ("options_type", "params", "message"),
    [
        (verbs.CreateEnvOptions, {"name": "  "}, "an environment name is required"),
        (verbs.AddSolutionOptions, {"env": "e", "version": "1"}, "a solution is required"),
        (verbs.UpgradeOptions, {"env": "e", "solution": "s"}, "a version is required"),
        (verbs.DeleteSolutionOptions, {"solution": "s"}, "an environment is required"),
    ],
)
def test_a_missing_web_field_is_named(
    options_type: type, params: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        from_params(options_type, params)
    assert err.value.message == message


def test_a_fixed_value_must_be_a_field() -> None:
    with pytest.raises(ValueError, match="no field dryrun"):
        from_params(verbs.DeleteEnvOptions, {"name": "e"}, dryrun=True)


def _form_fields(template: str, key: str) -> set[str]:
    """The input names of the form that plans operation ``key`` in ``template``."""
    text = (WEB / "templates" / template).read_text()
    form = re.search(rf'<form[^>]*action="/ops/{key}/plan".*?</form>', text, re.S)
    assert form is not None, f"{template} has no form for {key}"
    return set(re.findall(r'name="([^"]+)"', form.group(0))) - {"csrf"}


@pytest.mark.parametrize(
    ("key", "template"),
    [
        ("env-create", "environments.html"),
        ("env-delete", "environment.html"),
        ("env-add", "environment.html"),
        ("env-upgrade", "environment.html"),
        ("env-remove", "environment.html"),
    ],
)
def test_each_form_posts_exactly_the_web_fields(key: str, template: str) -> None:
    assert _form_fields(template, key) == _web_fields(WEB_VERBS[key])


def _json_params() -> dict[str, set[str]]:
    """Per operation, the keys of the parameters web/api.py's handler passes to it."""
    tree = ast.parse((WEB / "api.py").read_text())
    found: dict[str, set[str]] = {}
    for func in ast.walk(tree):
        if not isinstance(func, ast.AsyncFunctionDef):
            continue
        keys: set[str] = set()
        op: str | None = None
        for node in ast.walk(func):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == "params" for t in node.targets)
            ):
                keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_answer"
            ):
                op = next((a.value for a in node.args if isinstance(a, ast.Constant)), None)
        if op is not None:
            found[op] = keys
    return found


def test_each_json_handler_passes_exactly_the_web_fields() -> None:
    handlers = _json_params()
    for key, options_type in WEB_VERBS.items():
        confirm = {"confirm"} if key == "env-delete" else set()
        assert handlers[key] - confirm == _web_fields(options_type), key


def test_the_package_names_are_the_verbs_not_their_modules() -> None:
    """``environments.add_solution`` is the verb even once every module is imported (a module
    named like a name of the package would hide it)."""
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    from metalk8s_solutions.engine import environments  # noqa: PLC0415

    for info in pkgutil.iter_modules(environments.__path__):
        importlib.import_module(f"{environments.__name__}.{info.name}")
    for name, owner in environments.OWNERS.items():
        module = importlib.import_module(f"{environments.__name__}.{owner}")
        assert getattr(environments, name) is getattr(module, name), name
    assert set(environments.OWNERS) == set(environments.__all__)


def test_the_pod_security_levels_are_the_clusters() -> None:
    from metalk8s_solutions.cluster.envstate import POD_SECURITY_LEVELS  # noqa: PLC0415

    assert verbs.POD_SECURITY == POD_SECURITY_LEVELS


def test_env_list_does_not_load_the_options_types() -> None:
    """The options types are made when a verb's parameters are first asked for, not when
    ``cli/env.py`` is imported: ``solutions env list`` runs as often as ``kubectl get``."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    child = (
        "import contextlib, io, sys\n"
        "from metalk8s_solutions.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['env', 'list', '--help'])\n"
        "loaded = 'metalk8s_solutions.engine.environments.options' in sys.modules\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['env', 'upgrade', '--help'])\n"
        "print(loaded, 'metalk8s_solutions.engine.environments.options' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "True"], out.stderr
