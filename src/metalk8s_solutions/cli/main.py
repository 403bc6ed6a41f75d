"""The ``solutions`` command: parse arguments, call the engine, print the result.

Errors the user can cause arrive as :class:`~metalk8s_solutions.errors.SolutionsError` and are
printed on one line with the exit status they carry (1 refused/invalid, 2 could not run).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from metalk8s_solutions import __version__
from metalk8s_solutions.cli.defaults import DEFAULT_CONFIG
from metalk8s_solutions.errors import Interrupted, SolutionsError

#: Subcommands, imported only when used so that every command starts fast (a verb's module
#: imports the engine inside its command functions: see CONTRIBUTING.md, "Start-up").
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("metalk8s_solutions.cli.archive", "build_command"),
    "inspect": ("metalk8s_solutions.cli.archive", "inspect_command"),
    "validate": ("metalk8s_solutions.cli.archive", "validate_command"),
    "keygen": ("metalk8s_solutions.cli.archive", "keygen_command"),
    "sign": ("metalk8s_solutions.cli.archive", "sign_command"),
    "dev": ("metalk8s_solutions.cli.dev", "dev"),
    "diff": ("metalk8s_solutions.cli.diff", "diff_command"),
    "push": ("metalk8s_solutions.cli.push", "push_command"),
    "registry": ("metalk8s_solutions.cli.registry", "registry"),
    "import": ("metalk8s_solutions.cli.solutions", "import_command"),
    "unimport": ("metalk8s_solutions.cli.solutions", "unimport_command"),
    "list": ("metalk8s_solutions.cli.solutions", "list_command"),
    "apply": ("metalk8s_solutions.cli.solutions", "apply_command"),
    "env": ("metalk8s_solutions.cli.env", "env_group"),
    "status": ("metalk8s_solutions.cli.status", "status_command"),
    "instance": ("metalk8s_solutions.cli.instances", "instance_group"),
    "activate": ("metalk8s_solutions.cli.activation", "activate_command"),
    "deactivate": ("metalk8s_solutions.cli.activation", "deactivate_command"),
    "ui": ("metalk8s_solutions.cli.ui", "ui_command"),
    "metalk8s": ("metalk8s_solutions.cli.metalk8s", "metalk8s_group"),
}


#: The first paragraph of each subcommand's help, so that ``solutions --help`` imports none of
#: them (``tests/unit/test_startup.py`` checks that it is the commands' own text).
SHORT_HELP: dict[str, str] = {
    "activate": "Activate VERSION (default: latest) of Solution NAME: apply its CRDs safely, "
    "for every environment. VERSION may also be given as --version, as MetalK8s's solutions.sh "
    "does.",
    "apply": "Converge the cluster to SolutionsConfiguration (the file is never written).",
    "build": "Build the Solution archive OUTPUT from the source tree SOURCE.",
    "deactivate": "Deactivate Solution NAME: remove its CRDs (refused while they hold data).",
    "dev": "Tools for Solution developers.",
    "diff": "Show what going from archive BEFORE to archive AFTER changes: images, packages, "
    "CRDs, RBAC.",
    "env": "Environments: groups of namespaces where solutions are deployed side by side.",
    "import": "Check ARCHIVES, then make them available to the cluster.",
    "inspect": "Show what ARCHIVE holds, read straight from the ISO (no mount, no extraction).",
    "instance": "Application instances: create, scale and configure through the solution's "
    "operator.",
    "keygen": "Create a signing key pair PREFIX.key (private, 0600) and PREFIX.pub.",
    "list": "List imported Solution versions and which one is active.",
    "metalk8s": "MetalK8s's solutions.sh verbs and flags, unchanged, on the same engine as the "
    "native verbs.",
    "push": "Push the images of ARCHIVES into a registry, under <prefix>/<name>-<version>/.",
    "registry": "The built-in OCI registry (read-only, served straight from the imported "
    "archives).",
    "sign": "Add a signature (e.g. the site's) to ARCHIVE, once verified, keeping the existing "
    "ones.",
    "status": "Show the whole state: imported solutions, configuration and environments.",
    "ui": "Serve the web UI and the JSON HTTP API; users log in with OpenID Connect (--oidc-*) "
    "or a Kubernetes bearer token.",
    "unimport": "Remove imported archives (by path or by id <name>-<version>); refused while in "
    "use.",
    "validate": "Check an archive (ISO or extracted) or a source tree against every rule.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; its help imports none of them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section, as :class:`click.Group` writes it, from :data:`SHORT_HELP`."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [
            (name, click.Command(name, help=SHORT_HELP[name]).get_short_help_str(limit))
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)  # noqa: S101
        return command


@dataclass(frozen=True)
class GlobalOptions:
    """Options every subcommand may need."""

    config: Path
    kubeconfig: Path | None
    context: str | None


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="solutions")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SOLUTIONS_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="SolutionsConfiguration file (env SOLUTIONS_CONFIG).",
)
@click.option(
    "--kubeconfig",
    # checked when a command needs the cluster ('solutions list' works without one)
    type=click.Path(path_type=Path),
    envvar="KUBECONFIG",
    default=None,
    help="Kubeconfig file (env KUBECONFIG).",
)
@click.option("--context", default=None, help="Kubeconfig context to use.")
@click.pass_context
def cli(ctx: click.Context, config: Path, kubeconfig: Path | None, context: str | None) -> None:
    """Ship and run Solutions on air-gapped Kubernetes clusters."""
    ctx.obj = GlobalOptions(config=config, kubeconfig=kubeconfig, context=context)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    try:
        cli.main(args=argv, prog_name="solutions", standalone_mode=False)
    except Interrupted as err:
        click.echo(f"aborted: {err}", err=True)
        return err.exit_code
    except SolutionsError as err:
        click.echo(f"error: {err}", err=True)
        return err.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return 2 if isinstance(err, click.UsageError) else err.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except OSError as err:
        click.echo(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), err=True)
        return 2
    return 0


def run() -> None:
    sys.exit(main())
