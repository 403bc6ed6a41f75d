"""``solutions status``: the whole-state view (available, config, environments)."""

from __future__ import annotations

from typing import Any

import click

from metalk8s_solutions.cli.common import engine_context, run
from metalk8s_solutions.cli.output import emit, output_option, table


def _human(data: dict[str, Any]) -> str:
    active = data["config"]["active"]
    rows = [
        [
            sol,
            record["version"],
            "yes" if record["active"] else "",
            ", ".join(
                f"{env['name']}/{ns}"
                for env in data["environments"].values()
                for ns, entry in env["namespaces"].items()
                if entry["config"].get(sol) == record["version"]
            )
            or "-",
        ]
        for sol, records in data["available"].items()
        for record in records
    ]
    parts = [
        "solutions:",
        table(["solution", "version", "active", "deployed in"], rows)
        if rows
        else "  none imported",
        "",
        "environments:",
    ]
    envs = [
        [env["name"], ns, ", ".join(f"{s} {v}" for s, v in entry["config"].items()) or "-"]
        for env in data["environments"].values()
        for ns, entry in env["namespaces"].items()
    ]
    parts.append(table(["environment", "namespace", "solutions"], envs) if envs else "  none")
    if active:
        parts += ["", "configured active: " + ", ".join(f"{k}={v}" for k, v in active.items())]
    return "\n".join(parts)


@click.command("status")
@output_option
@click.pass_context
def status_command(ctx: click.Context, output: str) -> None:
    """Show the whole state: imported solutions, configuration and environments."""
    from metalk8s_solutions.engine.environments.show import status  # noqa: PLC0415

    emit(run(status(engine_context(ctx, verbose=False))), output, _human)
