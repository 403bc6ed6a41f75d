"""``solutions env ...``: environments and the solutions deployed in them (parsing and output)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from metalk8s_solutions.cli.common import LazyModule, dry_run_option, engine_context, run
from metalk8s_solutions.cli.defaults import DEFAULT_TIMEOUT, POD_SECURITY
from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.errors import command

if TYPE_CHECKING:
    from metalk8s_solutions.engine import environments as engine
    from metalk8s_solutions.engine.environments import EnvOutcome
else:  # imported when a command runs, not when it is declared (fast --help)
    engine = LazyModule("metalk8s_solutions.engine.environments")

namespace_option = click.option(
    "-N",
    "--namespace",
    "namespaces",
    multiple=True,
    metavar="NS",
    help="Namespace of the environment (repeatable; default: all of them).",
)
wait_option = click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the operator Deployment to be Available, with progress lines.",
)
timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="How long --wait waits.",
)
cluster_scope_option = click.option(
    "--allow-cluster-scope",
    is_flag=True,
    help="Grant role.yaml rules on cluster-scoped resources and nonResourceURLs with a "
    "ClusterRoleBinding (without it, as MetalK8s, they are not granted: a warning says so; "
    "remembered for this solution).",
)
privileged_option = click.option(
    "--allow-privileged-role",
    is_flag=True,
    help="Approve role.yaml rules that reach beyond the environment's namespaces: "
    "escalate/bind/impersonate, pods/exec, pods/attach, serviceaccounts/token, writing "
    "namespaces (remembered for this solution; the plan lists each approved rule).",
)


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
    if not outcome.steps:
        lines.append("nothing to do: already in the desired state")
    elif outcome.dry_run:
        lines.append("dry run: nothing was changed")
    else:
        lines.append(done)
    return "\n".join(lines)


def _show(outcome: EnvOutcome, fmt: str, done: str, *, show_diff: bool = False) -> None:
    emit(outcome.to_json(), fmt, lambda _: render(outcome, done, show_diff=show_diff))


@click.group("env")
def env_group() -> None:
    """Environments: groups of namespaces where solutions are deployed side by side."""


@env_group.command("create")
@click.argument("env")
@namespace_option
@click.option("-d", "--description", default="", help="What the environment is for.")
@click.option(
    "--pod-security",
    type=click.Choice(POD_SECURITY),
    default=None,
    help="Pod Security level every namespace enforces (default: the environment's current "
    "one, else restricted).",
)
@dry_run_option
@output_option
@click.pass_context
def create_command(
    ctx: click.Context,
    env: str,
    namespaces: tuple[str, ...],
    description: str,
    pod_security: str | None,
    dry_run: bool,
    output: str,
) -> None:
    """Create environment ENV (namespace ENV, or the -N ones); add namespaces to it."""
    opts = engine.CreateEnvOptions(env, namespaces, description, dry_run, pod_security)
    outcome = run(engine.create_environment(engine_context(ctx), opts))
    _show(outcome, output, f"environment {env} is ready")


@env_group.command("delete")
@click.argument("env")
@namespace_option
@dry_run_option
@wait_option
@timeout_option
@output_option
@click.pass_context
def delete_command(
    ctx: click.Context,
    env: str,
    namespaces: tuple[str, ...],
    dry_run: bool,
    wait: bool,
    timeout: float,
    output: str,
) -> None:
    """Delete environment ENV (or only its -N namespaces) and everything deployed in it."""
    opts = engine.DeleteEnvOptions(env, namespaces, dry_run, wait, timeout)
    outcome = run(engine.delete_environment(engine_context(ctx), opts))
    _show(outcome, output, f"environment {env} deleted" if not namespaces else "namespaces deleted")


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


@env_group.command("add-solution")
@click.argument("env")
@click.argument("solution")
@click.argument("version")
@namespace_option
@cluster_scope_option
@privileged_option
@click.option(
    "--webhook",
    is_flag=True,
    help="Mount Secret <solution>-cert (a certificate made and kept by this tool) at /cert in "
    "the operator, for its admission webhooks, as MetalK8s 124 does (kept until the solution "
    "is removed).",
)
@click.option(
    "--allow-image",
    "allow_images",
    multiple=True,
    metavar="IMAGE",
    help="Let pods of ENV also run IMAGE (as written in the pod spec, e.g. "
    "registry.example:5000/tools/debug@sha256:<hex>), besides the images of the Solutions "
    "deployed there; repeatable; kept until the solution is removed.",
)
@dry_run_option
@diff_option
@wait_option
@timeout_option
@output_option
@click.pass_context
def add_command(
    ctx: click.Context,
    env: str,
    solution: str,
    version: str,
    namespaces: tuple[str, ...],
    allow_cluster_scope: bool,
    allow_privileged_role: bool,
    webhook: bool,
    allow_images: tuple[str, ...],
    dry_run: bool,
    show_diff: bool,
    wait: bool,
    timeout: float,
    output: str,
) -> None:
    """Deploy SOLUTION VERSION (its operator) in ENV."""
    opts = engine.AddSolutionOptions(
        env,
        solution,
        version,
        namespaces,
        allow_cluster_scope,
        dry_run,
        wait,
        timeout,
        allow_privileged_role=allow_privileged_role,
        webhook=webhook,
        allow_images=allow_images,
    )
    outcome = run(engine.add_solution(engine_context(ctx), opts))
    _show(outcome, output, f"{solution} {version} is deployed in {env}", show_diff=show_diff)


@env_group.command("upgrade")
@click.argument("env")
@click.argument("solution")
@click.argument("version")
@namespace_option
@cluster_scope_option
@privileged_option
@dry_run_option
@diff_option
@wait_option
@timeout_option
@click.option(
    "--rollback/--no-rollback",
    default=True,
    show_default=True,
    help="Go back to the previous version if the operator is not Available within --timeout.",
)
@output_option
@click.pass_context
def upgrade_command(
    ctx: click.Context,
    env: str,
    solution: str,
    version: str,
    namespaces: tuple[str, ...],
    allow_cluster_scope: bool,
    allow_privileged_role: bool,
    dry_run: bool,
    show_diff: bool,
    wait: bool,
    timeout: float,
    rollback: bool,
    output: str,
) -> None:
    """Move SOLUTION in ENV to VERSION (higher: upgrade; lower: downgrade)."""
    opts = engine.UpgradeOptions(
        env,
        solution,
        version,
        namespaces,
        allow_cluster_scope,
        dry_run,
        wait,
        timeout,
        rollback,
        allow_privileged_role=allow_privileged_role,
    )
    outcome = run(engine.upgrade_solution(engine_context(ctx), opts))
    done = f"{solution} runs {version} in {env}"
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


@env_group.command("delete-solution")
@click.argument("env")
@click.argument("solution")
@namespace_option
@click.option(
    "--delete-data",
    is_flag=True,
    help="Also delete the solution's custom resources in ENV (the application's data).",
)
@dry_run_option
@wait_option
@timeout_option
@output_option
@click.pass_context
def delete_solution_command(
    ctx: click.Context,
    env: str,
    solution: str,
    namespaces: tuple[str, ...],
    delete_data: bool,
    dry_run: bool,
    wait: bool,
    timeout: float,
    output: str,
) -> None:
    """Remove SOLUTION from ENV: its operator and everything deployed for it."""
    opts = engine.DeleteSolutionOptions(
        env, solution, namespaces, delete_data, dry_run, wait, timeout
    )
    outcome = run(engine.delete_solution(engine_context(ctx), opts))
    _show(outcome, output, f"{solution} removed from {env}")


@env_group.command("converge")
@click.argument("envs", nargs=-1)
@dry_run_option
@diff_option
@click.option("--wait/--no-wait", default=False, show_default=True, help="Wait for operators.")
@timeout_option
@output_option
@click.pass_context
def converge_command(
    ctx: click.Context,
    envs: tuple[str, ...],
    dry_run: bool,
    show_diff: bool,
    wait: bool,
    timeout: float,
    output: str,
) -> None:
    """Bring ENVS (default: all) back to their desired state; reports and repairs drift."""
    opts = engine.ConvergeOptions(envs, dry_run, wait, timeout)
    outcome = run(engine.converge_environments(engine_context(ctx), opts))
    _show(outcome, output, "converged", show_diff=show_diff)
