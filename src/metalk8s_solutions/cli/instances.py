"""``solutions instance ...``: the custom resources of a solution in an environment."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from metalk8s_solutions.cli.common import LazyModule, dry_run_option, engine_context, run
from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.errors import InvalidInput

if TYPE_CHECKING:
    from metalk8s_solutions.engine import instances as engine
else:  # imported when a command runs, not when it is declared (fast --help)
    engine = LazyModule("metalk8s_solutions.engine.instances")

namespace_option = click.option(
    "-N",
    "--namespace",
    default=None,
    metavar="NS",
    help="Namespace, when the solution runs in several.",
)
set_option = click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=VALUE",
    help="Set a field, e.g. --set spec.replicas=3 (value read as YAML; repeatable).",
)


def _rows(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no instance"
    columns: list[str] = []
    for item in items:
        columns += [c for c in item["columns"] if c not in columns]
    rows = [
        [item["kind"], item["name"], item["namespace"]]
        + ["" if item["columns"].get(c) is None else item["columns"][c] for c in columns]
        for item in items
    ]
    return table(["kind", "name", "namespace", *columns], rows)


@click.group("instance")
def instance_group() -> None:
    """Application instances: create, scale and configure through the solution's operator."""


@instance_group.command("list")
@click.argument("env")
@click.argument("solution")
@namespace_option
@output_option
@click.pass_context
def list_command(
    ctx: click.Context, env: str, solution: str, namespace: str | None, output: str
) -> None:
    """List the custom resources of SOLUTION in ENV, with their status."""
    items = run(
        engine.list_instances(engine_context(ctx), engine.InstanceQuery(env, solution, namespace))
    )
    emit(items, output, _rows)


@instance_group.command("kinds")
@click.argument("env")
@click.argument("solution")
@namespace_option
@output_option
@click.pass_context
def kinds_command(
    ctx: click.Context, env: str, solution: str, namespace: str | None, output: str
) -> None:
    """The kinds SOLUTION defines and the fields of their spec."""
    kinds = run(
        engine.list_kinds(engine_context(ctx), engine.InstanceQuery(env, solution, namespace))
    )

    def human(data: list[dict[str, Any]]) -> str:
        lines = []
        for k in data:
            spec = (k["schema"].get("properties") or {}).get("spec") or {}
            lines.append(f"{k['kind']} ({k['apiVersion']}) in namespace {k['namespace']}")
            required = set(spec.get("required") or [])
            for field, schema in (spec.get("properties") or {}).items():
                mark = " (required)" if field in required else ""
                about = str(schema.get("description", "")).strip()
                lines.append(f"  spec.{field}: {schema.get('type', 'any')}{mark}  {about}".rstrip())
        return "\n".join(lines) or "no kind"

    emit(kinds, output, human)


@instance_group.command("samples")
@click.argument("env")
@click.argument("solution")
@namespace_option
@output_option
@click.pass_context
def samples_command(
    ctx: click.Context, env: str, solution: str, namespace: str | None, output: str
) -> None:
    """The sample instances SOLUTION's archive ships (*_cr.yaml), to start from.

    Create one with 'solutions instance create ENV SOLUTION --from-sample NAME'.
    """
    samples = run(
        engine.list_samples(engine_context(ctx), engine.InstanceQuery(env, solution, namespace))
    )

    def human(data: list[dict[str, Any]]) -> str:
        if not data:
            return "no sample"
        rows = [[s["kind"], s["name"], s["apiVersion"], s["file"]] for s in data]
        return table(["kind", "name", "apiVersion", "file"], rows)

    emit(samples, output, human)


def _done(item: dict[str, Any], verb: str, dry_run: bool) -> str:
    what = f"{item['kind']} {item['namespace']}/{item['name']}"
    return f"would be {verb} (checked by the API server): {what}" if dry_run else f"{verb} {what}"


@instance_group.command("create")
@click.argument("env")
@click.argument("solution")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--kind", default=None, help="Kind of the instance (without -f).")
@click.option("--name", default=None, help="Name of the instance.")
@click.option(
    "--from-sample",
    "sample",
    default=None,
    metavar="NAME",
    help="Start from this sample of the archive (see 'instance samples'; --name, --set apply).",
)
@set_option
@namespace_option
@dry_run_option
@output_option
@click.pass_context
def create_command(
    ctx: click.Context,
    env: str,
    solution: str,
    file: Path | None,
    kind: str | None,
    name: str | None,
    sample: str | None,
    sets: tuple[str, ...],
    namespace: str | None,
    dry_run: bool,
    output: str,
) -> None:
    """Create an instance of SOLUTION in ENV, from -f FILE, --from-sample NAME or
    --kind/--name/--set."""
    from metalk8s_solutions.api.yamldoc import load_yaml_document  # noqa: PLC0415

    document = None
    if file is not None:
        document = load_yaml_document(file.read_bytes(), str(file))
        if not isinstance(document, dict):
            raise InvalidInput(f"{file}: expected one YAML mapping (a custom resource)")
    opts = engine.CreateInstanceOptions(
        env, solution, document, kind, name, sets, namespace, dry_run, sample
    )
    item = run(engine.create_instance(engine_context(ctx), opts))
    emit(item, output, lambda i: _done(i, "created", dry_run))


@instance_group.command("edit")
@click.argument("env")
@click.argument("solution")
@click.argument("ref", metavar="KIND/NAME")
@set_option
@namespace_option
@dry_run_option
@output_option
@click.pass_context
def edit_command(
    ctx: click.Context,
    env: str,
    solution: str,
    ref: str,
    sets: tuple[str, ...],
    namespace: str | None,
    dry_run: bool,
    output: str,
) -> None:
    """Change fields of instance KIND/NAME, e.g. --set spec.replicas=3 to scale."""
    opts = engine.EditInstanceOptions(env, solution, ref, sets, namespace, dry_run)
    item = run(engine.edit_instance(engine_context(ctx), opts))
    emit(item, output, lambda i: _done(i, "updated", dry_run))


@instance_group.command("delete")
@click.argument("env")
@click.argument("solution")
@click.argument("ref", metavar="KIND/NAME")
@namespace_option
@dry_run_option
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it is gone.")
@output_option
@click.pass_context
def delete_command(
    ctx: click.Context,
    env: str,
    solution: str,
    ref: str,
    namespace: str | None,
    dry_run: bool,
    wait: bool,
    output: str,
) -> None:
    """Delete instance KIND/NAME of SOLUTION in ENV."""
    opts = engine.DeleteInstanceOptions(env, solution, ref, namespace, dry_run, wait)
    item = run(engine.delete_instance(engine_context(ctx), opts))
    emit(item, output, lambda i: _done(i, "deleted", dry_run))
