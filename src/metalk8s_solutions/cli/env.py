"""``solutions env ...``: environments and the solutions deployed in them (parsing and output)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from metalk8s_solutions.cli.common import LazyModule, conclusion, engine_context, run
from metalk8s_solutions.cli.flags import OptionsCommand
from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.errors import command

if TYPE_CHECKING:
    from metalk8s_solutions.engine import environments as engine
    from metalk8s_solutions.engine.environments import EnvOutcome
    from metalk8s_solutions.engine.environments import options as verbs
else:  # imported when a command runs, not when it is declared (fast --help)
    engine = LazyModule("metalk8s_solutions.engine.environments")

diff_option = click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Show the YAML diff under each changed object (default: the fields it changes, on "
    "one line; -o json has both).",
)


def render(outcome: EnvOutcome, done: str, *, show_diff: bool = False) -> str:
    """The plan in words (what happens to solutions and instances), then one line per object
    (with ``show_diff`` a YAML diff under each change), warnings, and the conclusion."""
    lines: list[str] = outcome.summary() if outcome.steps else []
    prefix = "would " if outcome.dry_run else ""
    for step in outcome.steps:
        line = f"{prefix}{step}"
        summary = outcome.summaries.get(step.target) if step.action == "change" else None
        if summary and not show_diff:
            line += ("; " if step.detail else ": ") + summary
        lines.append(line)
        diff = outcome.diffs.get(step.target)
        if diff and step.action == "change" and show_diff:
            lines += [f"    {line}" for line in diff.splitlines()]
    lines += [f"warning: {w}" for w in outcome.warnings]
    lines.append(conclusion(outcome, done))
    return "\n".join(lines)


def _show(outcome: EnvOutcome, fmt: str, done: str, *, show_diff: bool = False) -> None:
    emit(outcome.to_json(), fmt, lambda _: render(outcome, done, show_diff=show_diff))


@click.group("env")
def env_group() -> None:
    """Environments: groups of namespaces where solutions are deployed side by side."""


@env_group.command("create", cls=OptionsCommand, options="CreateEnvOptions")
@output_option
@click.pass_context
def create_command(ctx: click.Context, opts: verbs.CreateEnvOptions, output: str) -> None:
    """Create environment ENV (namespace ENV, or the -N ones); add namespaces to it."""
    outcome = run(engine.create_environment(engine_context(ctx), opts))
    _show(outcome, output, f"environment {opts.name} is ready")


@env_group.command("delete", cls=OptionsCommand, options="DeleteEnvOptions")
@output_option
@click.pass_context
def delete_command(ctx: click.Context, opts: verbs.DeleteEnvOptions, output: str) -> None:
    """Delete environment ENV (or only its -N namespaces) and everything deployed in it."""
    outcome = run(engine.delete_environment(engine_context(ctx), opts))
    done = "namespaces deleted" if opts.namespaces else f"environment {opts.name} deleted"
    _show(outcome, output, done)


def _env_rows(envs: list[dict[str, Any]]) -> str:
    rows = []
    for env in envs:
        for ns, entry in env["namespaces"].items():
            solutions = ", ".join(f"{s} {v}" for s, v in entry["config"].items()) or "-"
            rows.append([env["name"], ns, solutions, env["description"]])
    if not rows:
        return f"no environment; create one with: {command('env', 'create', '<env>')}"
    return table(["environment", "namespace", "solutions", "description"], rows)


@env_group.command("list")
@output_option
@click.pass_context
def list_command(ctx: click.Context, output: str) -> None:
    """List environments, their namespaces and what runs there."""
    from metalk8s_solutions.engine import listings  # noqa: PLC0415

    options = ctx.find_root().obj
    envs = listings.list_environments(options.kubeconfig, options.context)
    if envs is None:  # what the lean client does not serve (or a failure): the full path
        envs = run(engine.list_environments(engine_context(ctx, verbose=False)))
    emit(envs, output, _env_rows)


def _human_show(env: dict[str, Any]) -> str:
    lines = [f"environment: {env['name']}"]
    if env["description"]:
        lines.append(f"description: {env['description']}")
    for ns, entry in env["namespaces"].items():
        state = " (terminating)" if entry.get("terminating") else ""
        lines.append(f"namespace {ns}{state}:")
        if not entry["solutions"]:
            lines.append("  no solution")
        for sol, info in entry["solutions"].items():
            version = info["version"] or "(removed)"
            by = (
                " (deployed by MetalK8s: the next change to the environment takes it over)"
                if info.get("deployedBy") == "MetalK8s"
                else ""
            )
            lines.append(f"  {sol} {version}: {info['operator'] or 'not deployed'}{by}")
            ui = info.get("ui")
            if ui:
                where = ui["url"] or f"'{command('ui')}' at {ui['path']}"
                lines.append(f"    UI: {ui['status']}; open {where}")
            for rev in info["history"][-5:]:
                lines.append(
                    f"    rev {rev['revision']}  {rev['time']}  {rev['from'] or '-'} -> "
                    f"{rev['to'] or '-'}  {rev['result']}"
                    + (f"  ({rev['message']})" if rev["message"] else "")
                )
    return "\n".join(lines)


@env_group.command("show")
@click.argument("env")
@output_option
@click.pass_context
def show_command(ctx: click.Context, env: str, output: str) -> None:
    """Show ENV: its namespaces, solutions, operator and UI status and revision history."""
    data = run(engine.show_environment(engine_context(ctx, verbose=False), env))
    emit(data, output, _human_show)


@env_group.command(
    "add-solution",
    cls=OptionsCommand,
    options="AddSolutionOptions",
    after={"dry_run": [diff_option]},
)
@output_option
@click.pass_context
def add_command(
    ctx: click.Context, opts: verbs.AddSolutionOptions, show_diff: bool, output: str
) -> None:
    """Deploy SOLUTION VERSION (its operator) in ENV."""
    outcome = run(engine.add_solution(engine_context(ctx), opts))
    done = f"{opts.solution} {opts.version} is deployed in {opts.env}"
    _show(outcome, output, done, show_diff=show_diff)


@env_group.command(
    "upgrade", cls=OptionsCommand, options="UpgradeOptions", after={"dry_run": [diff_option]}
)
@output_option
@click.pass_context
def upgrade_command(
    ctx: click.Context, opts: verbs.UpgradeOptions, show_diff: bool, output: str
) -> None:
    """Move SOLUTION in ENV to VERSION (higher: upgrade; lower: downgrade)."""
    outcome = run(engine.upgrade_solution(engine_context(ctx), opts))
    done = f"{opts.solution} runs {opts.version} in {opts.env}"
    emit(outcome.to_json(), output, lambda _: _upgrade_text(outcome, done, show_diff=show_diff))


def _upgrade_text(outcome: EnvOutcome, done: str, *, show_diff: bool) -> str:
    """The plan, then (a dry run) what the new archive changes, as ``solutions diff`` says it."""
    from metalk8s_solutions.cli.diff import diff_text  # noqa: PLC0415

    lines = [render(outcome, done, show_diff=show_diff)]
    for diff in outcome.archive_diffs:
        lines += [
            "",
            f"What changes from {diff['from']['version']} to {diff['to']['version']} "
            f"({command('diff', diff['from']['archive'], diff['to']['archive'])}):",
            diff_text(diff),
        ]
    return "\n".join(lines)


@env_group.command("delete-solution", cls=OptionsCommand, options="DeleteSolutionOptions")
@output_option
@click.pass_context
def delete_solution_command(
    ctx: click.Context, opts: verbs.DeleteSolutionOptions, output: str
) -> None:
    """Remove SOLUTION from ENV: its operator and everything deployed for it."""
    outcome = run(engine.delete_solution(engine_context(ctx), opts))
    _show(outcome, output, f"{opts.solution} removed from {opts.env}")


@env_group.command(
    "converge", cls=OptionsCommand, options="ConvergeOptions", after={"dry_run": [diff_option]}
)
@output_option
@click.pass_context
def converge_command(
    ctx: click.Context, opts: verbs.ConvergeOptions, show_diff: bool, output: str
) -> None:
    """Bring ENVS (default: all) back to their desired state; reports and repairs drift."""
    outcome = run(engine.converge_environments(engine_context(ctx), opts))
    _show(outcome, output, "converged", show_diff=show_diff)
