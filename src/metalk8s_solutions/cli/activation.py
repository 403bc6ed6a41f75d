"""``solutions activate|deactivate``: which version of a Solution supplies the cluster's CRDs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from metalk8s_solutions.cli.common import dry_run_option, engine_context, human_outcome, run
from metalk8s_solutions.cli.output import emit, output_option

if TYPE_CHECKING:
    from metalk8s_solutions.engine.converge import ConvergeOutcome


def human_convergence(outcome: ConvergeOutcome, done: str) -> str:
    """Plan lines, with the CRD diffs on a dry run and the migrations after a real one."""
    parts = []
    if outcome.dry_run:
        for name, diff in sorted(outcome.diffs.items()):
            parts.append(f"CRD {name}:\n{diff.rstrip()}")
    if outcome.migrated:
        done += (
            " (migrated: "
            + ", ".join(f"{n} {c} object(s)" for n, c in sorted(outcome.migrated.items()))
            + ")"
        )
    parts.append(human_outcome(outcome, done))
    return "\n".join(parts)


@click.command("activate")
@click.argument("name")
@click.argument("positional_version", metavar="[VERSION]", required=False)
@click.option(
    "--version",
    "version",
    default=None,
    help="Version to activate, as VERSION: a version, or 'latest' (the default).",
)
@click.option(
    "--force", is_flag=True, help="Apply even when the safety checks refuse (says what will break)."
)
@click.option(
    "--take-over-crd",
    "take_over",
    multiple=True,
    metavar="CRD",
    help="Let the Solution own this CRD of its archive although another solution or tool "
    "installed it (repeatable). Its objects become the Solution's: deactivate --force would "
    "delete them.",
)
@dry_run_option
@output_option
@click.pass_context
def activate_command(
    ctx: click.Context,
    name: str,
    positional_version: str | None,
    version: str | None,
    force: bool,
    take_over: tuple[str, ...],
    dry_run: bool,
    output: str,
) -> None:
    """Activate VERSION (default: latest) of Solution NAME: apply its CRDs safely, for every
    environment. VERSION may also be given as --version, as MetalK8s's solutions.sh does."""
    from metalk8s_solutions.engine.activation import ActivateOptions, activate  # noqa: PLC0415

    if positional_version and version and positional_version != version:
        raise click.UsageError(
            f"two versions given ({positional_version} and --version {version}); give one"
        )
    version = positional_version or version or "latest"
    options = ActivateOptions(name, version, force, dry_run, take_over)
    outcome = run(activate(engine_context(ctx), options))
    version = outcome.active.get(name, version)
    emit(
        outcome.to_json(),
        output,
        lambda _: human_convergence(outcome, f"{name} {version} is active"),
    )


@click.command("deactivate")
@click.argument("name")
@click.option(
    "--force",
    is_flag=True,
    help="Deactivate even while custom resources or environments use it (deletes them).",
)
@dry_run_option
@output_option
@click.pass_context
def deactivate_command(
    ctx: click.Context, name: str, force: bool, dry_run: bool, output: str
) -> None:
    """Deactivate Solution NAME: remove its CRDs (refused while they hold data)."""
    from metalk8s_solutions.engine.activation import DeactivateOptions, deactivate  # noqa: PLC0415

    outcome = run(deactivate(engine_context(ctx), DeactivateOptions(name, force, dry_run)))
    emit(outcome.to_json(), output, lambda _: human_outcome(outcome, f"{name} is deactivated"))
