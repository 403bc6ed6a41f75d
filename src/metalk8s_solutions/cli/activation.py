"""``solutions activate|deactivate``: which version of a Solution supplies the cluster's CRDs."""

from __future__ import annotations

import click

from metalk8s_solutions.cli.common import dry_run_option, engine_context, human_outcome, run
from metalk8s_solutions.cli.output import emit, output_option
from metalk8s_solutions.engine.activation import (
    ActivateOptions,
    ActivationOutcome,
    DeactivateOptions,
    activate,
    deactivate,
)


def _human_activation(outcome: ActivationOutcome) -> str:
    parts = []
    if outcome.dry_run:
        for name, diff in sorted(outcome.diffs.items()):
            parts.append(f"CRD {name}:\n{diff.rstrip()}")
    migrated = {k: v for k, v in outcome.migrated.items() if v}
    done = f"{outcome.solution} {outcome.version} is active"
    if migrated:
        done += " (migrated: " + ", ".join(f"{n} {c} object(s)" for n, c in migrated.items()) + ")"
    parts.append(human_outcome(outcome, done))
    return "\n".join(parts)


@click.command("activate")
@click.argument("name")
@click.option(
    "--version",
    "version",
    default="latest",
    show_default=True,
    help="Version to activate: a semantic version, or 'latest'.",
)
@click.option(
    "--force", is_flag=True, help="Apply even when the safety checks refuse (says what will break)."
)
@dry_run_option
@output_option
@click.pass_context
def activate_command(
    ctx: click.Context, name: str, version: str, force: bool, dry_run: bool, output: str
) -> None:
    """Activate a version of Solution NAME: apply its CRDs safely, for every environment."""
    outcome = run(activate(engine_context(ctx), ActivateOptions(name, version, force, dry_run)))
    emit(outcome.to_json(), output, lambda _: _human_activation(outcome))


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
    outcome = run(deactivate(engine_context(ctx), DeactivateOptions(name, force, dry_run)))
    emit(outcome.to_json(), output, lambda _: human_outcome(outcome, f"{name} is deactivated"))
