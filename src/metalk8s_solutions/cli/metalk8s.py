"""``solutions metalk8s VERB``: MetalK8s's ``scripts/solutions.sh``, its verbs and flags unchanged.

Each verb calls the engine function its native verb calls (``import``, ``activate``,
``env create`` …); only the argument conventions are solutions.sh's: every option is a flag
(``--name``, ``--solution``, ``--version``), any option is accepted by any verb (as its
``getopt`` does; one a verb does not use is ignored, with a warning), the namespace defaults to
the environment's name, ``add-solution`` of another version of a deployed solution changes its
version, and ``unimport`` of an archive that is not imported does nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shlex
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import click

from metalk8s_solutions.cli.common import dry_run_option, engine_context, run
from metalk8s_solutions.errors import SolutionsError

if TYPE_CHECKING:
    from metalk8s_solutions.engine.converge import ConvergeOutcome
    from metalk8s_solutions.engine.environments.core import EnvOutcome
    from metalk8s_solutions.engine.environments.options import AddSolutionOptions, UpgradeOptions
    from metalk8s_solutions.engine.state import Context

F = TypeVar("F", bound=Callable[..., Any])

#: What ``activate`` activates without --version (solutions.sh: ``${VERSION:-latest}``).
LATEST = "latest"

#: The kubeconfig solutions.sh uses when KUBECONFIG is not set (a MetalK8s node's admin one).
METALK8S_KUBECONFIG = Path("/etc/kubernetes/admin.conf")

#: solutions.sh's options, in its ``getopt`` spelling: key -> (short, long, takes a value).
OPTIONS: dict[str, tuple[str, str, bool]] = {
    "archive": ("-a", "--archive", True),
    "description": ("-d", "--description", True),
    "log_file": ("-l", "--log-file", True),
    "name": ("-n", "--name", True),
    "namespace": ("-N", "--namespace", True),
    "solution": ("-s", "--solution", True),
    "verbose": ("-v", "--verbose", False),
    "version": ("-V", "--version", True),
    "webhook": ("-w", "--webhook", False),
}

#: Per verb, the options it uses: key -> (required, help). Every other option is accepted,
#: hidden from its help, and ignored with a warning.
VERBS: dict[str, dict[str, tuple[bool, str]]] = {
    "import": {
        "archive": (True, "Path to the Solution archive to import (repeatable)."),
    },
    "unimport": {
        "archive": (True, "Path to the Solution archive to unimport (repeatable)."),
    },
    "activate": {
        "name": (True, "Name of the Solution to activate."),
        "version": (False, "Version of the Solution to activate (default: latest)."),
    },
    "deactivate": {
        "name": (True, "Name of the Solution to deactivate."),
    },
    "create-env": {
        "name": (True, "Name of the Environment to create."),
        "namespace": (False, "Namespace to create in the Environment (default: its name)."),
        "description": (False, "Description of the Environment."),
    },
    "delete-env": {
        "name": (True, "Name of the Environment to delete."),
        "namespace": (
            False,
            "Namespace to delete from the Environment (default: all its namespaces).",
        ),
    },
    "add-solution": {
        "name": (True, "Name of the Environment to add the Solution in."),
        "solution": (True, "Name of the Solution to add."),
        "version": (
            True,
            "Version of the Solution to add (another version of a deployed "
            "Solution: its version is changed).",
        ),
        "namespace": (False, "Namespace to add the Solution in (default: the Environment's name)."),
        "webhook": (False, "Enable webhook validation (mounts Secret <solution>-cert)."),
    },
    "delete-solution": {
        "name": (True, "Name of the Environment to delete the Solution from."),
        "solution": (True, "Name of the Solution to delete."),
        "namespace": (
            False,
            "Namespace to delete the Solution from (default: the Environment's name).",
        ),
    },
}

#: The flags solutions.sh also reads from its environment (``VERBOSE=1``, ``WEBHOOK_ENABLED=true``).
ENVVARS = {"verbose": "VERBOSE", "webhook": "WEBHOOK_ENABLED"}

GENERAL: dict[str, str] = {
    "log_file": "Also append everything this command prints to FILE (solutions.sh's log; "
    "default: none).",
    "verbose": "Show each step as it runs (the engine's progress lines).",
}


def _sh_options(verb: str) -> Callable[[F], F]:
    """Every solutions.sh option on ``verb``: those it uses shown, the others hidden."""
    used = VERBS[verb]

    def decorate(func: F) -> F:
        for key in reversed(OPTIONS):
            short, long, takes_value = OPTIONS[key]
            required, help_text = used.get(key, (False, GENERAL.get(key, "")))
            hidden = key not in used and key not in GENERAL
            if key == "archive":
                option = click.option(
                    short,
                    long,
                    key,
                    multiple=True,
                    type=click.Path(path_type=Path),
                    metavar="ARCHIVE",
                    required=required,
                    hidden=hidden,
                    help=help_text,
                )
            elif takes_value:
                option = click.option(
                    short,
                    long,
                    key,
                    metavar="FILE" if key == "log_file" else long.lstrip("-").upper(),
                    required=required,
                    hidden=hidden,
                    help=help_text,
                )
            else:
                option = click.option(
                    short,
                    long,
                    key,
                    is_flag=True,
                    hidden=hidden,
                    envvar=None if hidden else ENVVARS.get(key),
                    show_envvar=not hidden and key in ENVVARS,
                    help=help_text,
                )
            func = option(func)
        # not a solutions.sh flag: every mutating command of ours takes it
        return dry_run_option(func)

    return decorate


class Session:
    """One solutions.sh command: its log file, its verbosity, its warnings."""

    def __init__(self, ctx: click.Context, verb: str, opts: dict[str, Any]) -> None:
        group = ctx.parent.params if ctx.parent is not None else {}
        self.verb = verb
        self.opts = opts
        self.verbose = bool(opts.get("verbose") or group.get("verbose"))
        log_file = opts.get("log_file") or group.get("log_file")
        self.log_path = Path(log_file) if log_file else None
        self.log: IO[str] | None = None
        self.ctx = ctx

    def echo(self, text: str, *, err: bool = False) -> None:
        click.echo(text, err=err)
        if self.log is not None:
            self.log.write(text + "\n")
            self.log.flush()

    def engine(self) -> Context:
        """The engine context: progress lines only with -v (and then in the log too)."""
        base = engine_context(self.ctx, verbose=False)
        if not self.verbose:
            return base
        return dataclasses.replace(base, say=lambda message: self.echo(f"  {message}", err=True))

    def ignored(self) -> list[str]:
        """Options given that this verb does not use (solutions.sh ignores them too)."""
        used = VERBS[self.verb]
        return [
            OPTIONS[key][1]
            for key, value in self.opts.items()
            if key in OPTIONS and key not in used and key not in GENERAL and value
        ]

    def command_line(self) -> str:
        """The verb and the flags given (for the log)."""
        words = [self.verb]
        for key, value in self.opts.items():
            long = OPTIONS[key][1] if key in OPTIONS else "--" + key.replace("_", "-")
            if value is True:
                words.append(long)
            elif isinstance(value, tuple):
                words += [w for item in value for w in (long, str(item))]
            elif value:
                words += [long, str(value)]
        return " ".join(shlex.quote(w) for w in words)

    @contextmanager
    def running(self) -> Iterator[Session]:
        """Open the log (appending, as ``tee -a``), write the command line, log any error."""
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log = self.log_path.open("a", encoding="utf-8")
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.log.write(f"--- {now} solutions metalk8s {self.command_line()}\n")
        try:
            for option in self.ignored():
                self.echo(f"warning: {option} is not used by {self.verb}; ignored", err=True)
            yield self
        except SolutionsError as err:
            if self.log is not None:
                self.log.write(f"error: {err}\n")
            raise
        finally:
            if self.log is not None:
                self.log.close()


def _metalk8s_kubeconfig(ctx: click.Context) -> None:
    """As solutions.sh: without --kubeconfig or KUBECONFIG, use a MetalK8s node's admin.conf."""
    root = ctx.find_root()
    options = root.obj
    if options is None or options.kubeconfig is not None or os.environ.get("KUBECONFIG"):
        return
    if METALK8S_KUBECONFIG.is_file():
        root.obj = dataclasses.replace(options, kubeconfig=METALK8S_KUBECONFIG)


def verb_first(args: list[str], verbs: Collection[str]) -> list[str]:
    """``args`` with the verb moved first: solutions.sh's ``getopt`` takes options before the
    verb too (``solutions.sh --name sol activate``), click only after it."""
    takes_value = {short for short, _, value in OPTIONS.values() if value}
    takes_value |= {long for _, long, value in OPTIONS.values() if value}
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            return args
        if word in verbs:
            return [word, *args[:i], *args[i + 1 :]]
        if word.startswith("--"):
            i += 2 if word in takes_value else 1  # --name=x holds its value
            continue
        if word.startswith("-") and len(word) > 1:
            # bundled short flags (-vn sol): a value-taking one ends the bundle
            for j, char in enumerate(word[1:], start=1):
                if f"-{char}" in takes_value:
                    i += 1 if j < len(word) - 1 else 2
                    break
            else:
                i += 1
            continue
        return args  # not a verb: click reports it
    return args


class ScriptGroup(click.Group):
    """The ``metalk8s`` group: options may come before the verb, as with solutions.sh."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, verb_first(args, self.commands))


@click.group("metalk8s", cls=ScriptGroup)
@click.option(
    "-l", "--log-file", "log_file", metavar="FILE", default=None, help=GENERAL["log_file"]
)
@click.option("-v", "--verbose", "verbose", is_flag=True, help=GENERAL["verbose"])
@click.pass_context
def metalk8s_group(ctx: click.Context, log_file: str | None, verbose: bool) -> None:
    """MetalK8s's solutions.sh verbs and flags, unchanged, on the same engine as the native
    verbs."""
    _metalk8s_kubeconfig(ctx)


def _converge_text(outcome: ConvergeOutcome, done: str) -> str:
    from metalk8s_solutions.cli.activation import human_convergence  # noqa: PLC0415

    return human_convergence(outcome, done)


def _env_text(outcome: EnvOutcome, done: str) -> str:
    from metalk8s_solutions.cli.env import render  # noqa: PLC0415

    return render(outcome, done)


def engine_options(verb: str, opts: Mapping[str, Any]) -> Any:
    """The engine options of ``verb`` from solutions.sh's flags, with MetalK8s's defaults."""
    return dataclasses.replace(_engine_options(verb, opts), dry_run=bool(opts.get("dry_run")))


def _engine_options(verb: str, opts: Mapping[str, Any]) -> Any:
    from metalk8s_solutions.engine import activation, solutions  # noqa: PLC0415
    from metalk8s_solutions.engine.environments import options as environments  # noqa: PLC0415

    name: str = opts.get("name") or ""
    namespace: str = opts.get("namespace") or ""
    if verb == "import":
        return solutions.ImportOptions(tuple(opts["archive"]))
    if verb == "unimport":
        return solutions.UnimportOptions(tuple(str(a) for a in opts["archive"]))
    if verb == "activate":
        return activation.ActivateOptions(name, opts.get("version") or LATEST)
    if verb == "deactivate":
        return activation.DeactivateOptions(name)
    if verb == "create-env":
        ns = (namespace,) if namespace else ()
        return environments.CreateEnvOptions(name, ns, opts.get("description") or "")
    if verb == "delete-env":
        return environments.DeleteEnvOptions(name, (namespace,) if namespace else ())
    if verb == "add-solution":
        return environments.AddSolutionOptions(
            name,
            opts["solution"],
            opts["version"],
            (namespace or name,),
            webhook=bool(opts.get("webhook")),
        )
    if verb == "delete-solution":
        return environments.DeleteSolutionOptions(name, opts["solution"], (namespace or name,))
    raise ValueError(verb)


def upgrade_options(add: AddSolutionOptions) -> UpgradeOptions:
    """``add-solution`` of another version of a deployed solution: MetalK8s changes it."""
    from metalk8s_solutions.engine.environments.options import UpgradeOptions  # noqa: PLC0415

    return UpgradeOptions(
        add.env,
        add.solution,
        add.version,
        add.namespaces,
        dry_run=add.dry_run,
        webhook=add.webhook,
    )


def deployed_version(
    envs: list[dict[str, Any]], env: str, namespace: str, solution: str
) -> str | None:
    """The version of ``solution`` configured in ``env``/``namespace`` (None: not there)."""
    for entry in envs:
        if entry["name"] == env:
            config = (entry["namespaces"].get(namespace) or {}).get("config") or {}
            version = config.get(solution)
            return str(version) if version is not None else None
    return None


@metalk8s_group.command("import")
@_sh_options("import")
@click.pass_context
def import_command(ctx: click.Context, /, **opts: Any) -> None:
    """Import Solution archives (as 'solutions import ARCHIVE...'); an archive already imported
    is left as it is."""
    from metalk8s_solutions.engine import solutions as engine  # noqa: PLC0415

    with Session(ctx, "import", opts).running() as s:
        options = engine_options("import", opts)
        outcome = run(engine.import_archives(s.engine(), options))
        s.echo(_converge_text(outcome, "imported"))


@metalk8s_group.command("unimport")
@_sh_options("unimport")
@click.pass_context
def unimport_command(ctx: click.Context, /, **opts: Any) -> None:
    """Unimport Solution archives (as 'solutions unimport ARCHIVE...'); an archive that is not
    imported is skipped, as solutions.sh does."""
    from metalk8s_solutions.engine import solutions as engine  # noqa: PLC0415

    with Session(ctx, "unimport", opts).running() as s:
        options = engine_options("unimport", opts)
        listed = run(engine.list_solutions(s.engine()))
        imported = {e["archive"] for entries in listed["solutions"].values() for e in entries}
        refs = []
        for ref in options.refs:
            if ref in imported or str(Path(ref).absolute()) in imported:
                refs.append(ref)
            else:
                s.echo(f"warning: {ref} is not imported; skipped", err=True)
        if not refs:
            s.echo("nothing to do: already in the desired state")
            return
        options = dataclasses.replace(options, refs=tuple(refs))
        outcome = run(engine.unimport_archives(s.engine(), options))
        s.echo(_converge_text(outcome, "unimported"))


@metalk8s_group.command("activate")
@_sh_options("activate")
@click.pass_context
def activate_command(ctx: click.Context, /, **opts: Any) -> None:
    """Activate a version (default: the latest) of a Solution (as 'solutions activate')."""
    from metalk8s_solutions.engine.activation import activate  # noqa: PLC0415

    with Session(ctx, "activate", opts).running() as s:
        options = engine_options("activate", opts)
        outcome = run(activate(s.engine(), options))
        active = outcome.active.get(options.name, options.version)
        s.echo(_converge_text(outcome, f"{options.name} {active} is active"))


@metalk8s_group.command("deactivate")
@_sh_options("deactivate")
@click.pass_context
def deactivate_command(ctx: click.Context, /, **opts: Any) -> None:
    """Deactivate a Solution (as 'solutions deactivate')."""
    from metalk8s_solutions.cli.common import human_outcome  # noqa: PLC0415
    from metalk8s_solutions.engine.activation import deactivate  # noqa: PLC0415

    with Session(ctx, "deactivate", opts).running() as s:
        options = engine_options("deactivate", opts)
        outcome = run(deactivate(s.engine(), options))
        s.echo(human_outcome(outcome, f"{options.name} is deactivated"))


@metalk8s_group.command("create-env")
@_sh_options("create-env")
@click.pass_context
def create_env_command(ctx: click.Context, /, **opts: Any) -> None:
    """Create an Environment, its namespace named after it unless --namespace is given (as
    'solutions env create')."""
    from metalk8s_solutions.engine.environments.create import create_environment  # noqa: PLC0415

    with Session(ctx, "create-env", opts).running() as s:
        options = engine_options("create-env", opts)
        outcome = run(create_environment(s.engine(), options))
        s.echo(_env_text(outcome, f"environment {options.name} is ready"))


@metalk8s_group.command("delete-env")
@_sh_options("delete-env")
@click.pass_context
def delete_env_command(ctx: click.Context, /, **opts: Any) -> None:
    """Delete an Environment, or only its --namespace (as 'solutions env delete')."""
    from metalk8s_solutions.engine.environments.delete import delete_environment  # noqa: PLC0415

    with Session(ctx, "delete-env", opts).running() as s:
        options = engine_options("delete-env", opts)
        outcome = run(delete_environment(s.engine(), options))
        done = (
            f"namespace {options.namespaces[0]} deleted"
            if options.namespaces
            else f"environment {options.name} deleted"
        )
        s.echo(_env_text(outcome, done))


@metalk8s_group.command("add-solution")
@_sh_options("add-solution")
@click.pass_context
def add_solution_command(ctx: click.Context, /, **opts: Any) -> None:
    """Deploy a Solution version in a namespace of an Environment (default: the namespace named
    after it), or change the version deployed there (as 'solutions env add-solution', or
    'solutions env upgrade')."""
    from metalk8s_solutions.engine.environments.add import add_solution  # noqa: PLC0415
    from metalk8s_solutions.engine.environments.show import list_environments  # noqa: PLC0415
    from metalk8s_solutions.engine.environments.upgrade import upgrade_solution  # noqa: PLC0415

    with Session(ctx, "add-solution", opts).running() as s:
        add = engine_options("add-solution", opts)
        context = s.engine()
        envs = run(list_environments(context))
        current = deployed_version(envs, add.env, add.namespaces[0], add.solution)
        if current is not None and current != add.version:
            outcome = run(upgrade_solution(context, upgrade_options(add)))
            s.echo(_env_text(outcome, f"{add.solution} runs {add.version} in {add.env}"))
            return
        outcome = run(add_solution(context, add))
        s.echo(_env_text(outcome, f"{add.solution} {add.version} is deployed in {add.env}"))


@metalk8s_group.command("delete-solution")
@_sh_options("delete-solution")
@click.pass_context
def delete_solution_command(ctx: click.Context, /, **opts: Any) -> None:
    """Remove a Solution from a namespace of an Environment (default: the namespace named after
    it) (as 'solutions env delete-solution')."""
    from metalk8s_solutions.engine.environments.remove import delete_solution  # noqa: PLC0415

    with Session(ctx, "delete-solution", opts).running() as s:
        options = engine_options("delete-solution", opts)
        outcome = run(delete_solution(s.engine(), options))
        s.echo(_env_text(outcome, f"{options.solution} removed from {options.env}"))
