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
from metalk8s_solutions.engine.config_store import DEFAULT_CONFIG
from metalk8s_solutions.errors import SolutionsError

#: Subcommands, imported only when used so that every command starts fast.
COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("metalk8s_solutions.cli.archive", "build_command"),
    "inspect": ("metalk8s_solutions.cli.archive", "inspect_command"),
    "validate": ("metalk8s_solutions.cli.archive", "validate_command"),
    "keygen": ("metalk8s_solutions.cli.archive", "keygen_command"),
    "sign": ("metalk8s_solutions.cli.archive", "sign_command"),
    "dev": ("metalk8s_solutions.cli.dev", "dev"),
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
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

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
