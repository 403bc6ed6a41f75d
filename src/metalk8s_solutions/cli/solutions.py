"""``solutions import|unimport|list|apply``: Solution archives, on the admin node and cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from metalk8s_solutions.cli.activation import human_convergence
from metalk8s_solutions.cli.common import LazyModule, dry_run_option, engine_context, run
from metalk8s_solutions.cli.defaults import POLICIES
from metalk8s_solutions.cli.output import emit, output_option, table

if TYPE_CHECKING:
    from metalk8s_solutions.api import config
    from metalk8s_solutions.engine import solutions as engine
else:  # imported when a command runs, not when it is declared (fast --help)
    config = LazyModule("metalk8s_solutions.api.config")
    engine = LazyModule("metalk8s_solutions.engine.solutions")

#: Options of the verbs that check archives (import, apply).
trusted_keys_option = click.option(
    "--key",
    "keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust this public key too (repeatable; adds to the configured trust.keys).",
)
policy_option = click.option(
    "--policy",
    type=click.Choice(POLICIES),
    default=None,
    help="A stricter signature policy for archives not imported yet (never lower than "
    "trust.policy) [default: trust.policy, else required with keys, if-signed without].",
)


@click.command("import")
@click.argument("archives", nargs=-1, type=click.Path(path_type=Path))
@trusted_keys_option
@policy_option
@dry_run_option
@output_option
@click.pass_context
def import_command(
    ctx: click.Context,
    archives: tuple[Path, ...],
    keys: tuple[Path, ...],
    policy: str | None,
    dry_run: bool,
    output: str,
) -> None:
    """Check ARCHIVES, then make them available to the cluster."""
    outcome = run(
        engine.import_archives(
            engine_context(ctx),
            engine.ImportOptions(
                archives, keys, config.Policy(policy) if policy else None, dry_run
            ),
        )
    )
    emit(outcome.to_json(), output, lambda _: human_convergence(outcome, "imported"))


@click.command("unimport")
@click.argument("refs", nargs=-1, metavar="ARCHIVE|ID...")
@dry_run_option
@output_option
@click.pass_context
def unimport_command(ctx: click.Context, refs: tuple[str, ...], dry_run: bool, output: str) -> None:
    """Remove imported archives (by path or by id <name>-<version>); refused while in use."""
    outcome = run(
        engine.unimport_archives(engine_context(ctx), engine.UnimportOptions(refs, dry_run))
    )
    emit(outcome.to_json(), output, lambda _: human_convergence(outcome, "unimported"))


def _human_list(data: dict[str, Any]) -> str:
    rows = []
    for name, entries in sorted(data["solutions"].items()):
        for e in entries:
            state = "active" if e["active"] else ""
            if e["recorded"] is False:
                state = (state + ", not recorded in cluster").lstrip(", ")
            if e["problem"]:
                state = (state + f", {e['problem']}").lstrip(", ")
            signer = e.get("signer") or "-"
            rows.append(
                (name, e["version"] or "?", e["id"] or "?", state or "-", signer, e["archive"])
            )
    lines = []
    if data["clusterError"]:
        lines.append(f"warning: cluster record not read: {data['clusterError']}")
    if not rows:
        lines.append(f"No Solution imported (configuration: {data['config']}).")
    else:
        headers = ("solution", "version", "id", "state", "verified signer", "archive")
        lines.append(table(headers, rows))
    return "\n".join(lines)


@click.command("list")
@output_option
@click.pass_context
def list_command(ctx: click.Context, output: str) -> None:
    """List imported Solution versions and which one is active."""
    from metalk8s_solutions.engine import listings  # noqa: PLC0415

    options = ctx.find_root().obj
    data = listings.list_solutions(options.config, options.kubeconfig, options.context)
    if data is None:  # what the lean client does not serve (or a failure): the full path
        data = run(engine.list_solutions(engine_context(ctx, verbose=False)))
    emit(data, output, _human_list)


@click.command("apply")
@trusted_keys_option
@policy_option
@click.option(
    "--force",
    is_flag=True,
    help="Apply CRD changes and deactivations that the safety checks refuse.",
)
@dry_run_option
@output_option
@click.pass_context
def apply_command(
    ctx: click.Context,
    keys: tuple[Path, ...],
    policy: str | None,
    force: bool,
    dry_run: bool,
    output: str,
) -> None:
    """Converge the cluster to SolutionsConfiguration (the file is never written).

    Imports every listed archive that is not imported, removes imported versions no longer
    listed, and sets the active versions — with the same checks and refusals as import,
    unimport, activate and deactivate.
    """
    outcome = run(
        engine.apply_configuration(
            engine_context(ctx),
            engine.ApplyOptions(dry_run, force, keys, config.Policy(policy) if policy else None),
        )
    )
    emit(outcome.to_json(), output, lambda _: human_convergence(outcome, "converged"))
