"""``solutions push``: copy the images of archives into an OCI registry (push mode).

Argument parsing and rendering only; the work is in :mod:`metalk8s_solutions.engine.push`.
Registry settings come from SolutionsConfiguration's ``registry`` key; flags override them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from metalk8s_solutions.cli.defaults import DEFAULT_CONCURRENCY
from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.cli.progress import ProgressLine, human_size

if TYPE_CHECKING:  # imported when the command runs, not when it is declared (fast --help)
    from metalk8s_solutions.images.push import PushProgress, PushResult


def _progress(line: ProgressLine) -> Any:
    def show(solution_id: str, event: PushProgress) -> None:
        if event.phase == "check":
            return  # a few HEAD requests: over before a line is worth drawing
        extra = (
            f"blobs {event.blobs_done}/{event.blobs_total}, "
            f"{event.skipped} present, {event.mounted} mounted"
        )
        label = f"{solution_id} upload"
        if event.phase == "done":
            line.finish(label, event.bytes_done, event.bytes_total, extra)
        else:
            line.update(label, event.bytes_done, event.bytes_total, extra)

    return show


def _human(results: list[PushResult]) -> str:
    from metalk8s_solutions.images.push import Action  # noqa: PLC0415

    rows = []
    for result in results:
        for ref, location in sorted(result.images.items()):
            rows.append((result.solution_id, ref, location))
    lines = []
    for result in results:
        verb, mount = ("would upload", "mount") if result.dry_run else ("uploaded", "mounted")
        lines.append(
            f"{result.solution_id}: {verb} {result.uploaded_blobs} blobs "
            f"({human_size(result.uploaded_bytes)}), {mount} {result.mounted_blobs} "
            f"({human_size(result.mounted_bytes)}), {result.skipped_blobs} already present "
            f"({human_size(result.skipped_bytes)}); manifests: {result.manifests_pushed} "
            f"{'to push' if result.dry_run else 'pushed'}, {result.manifests_skipped} up to date"
            + ("" if result.dry_run else f"; {result.duration:.1f} s")
        )
        if result.dry_run:
            for step in result.steps:
                if step.action is Action.SKIP:
                    continue
                source = f" from {step.source}" if step.action is Action.MOUNT else ""
                lines.append(
                    f"  would {step.action.value} {step.digest[:19]} "
                    f"({human_size(step.size)}) to {step.repository}{source}"
                )
    lines.append(table(["solution", "image", "reference"], rows))
    if any(r.dry_run for r in results):
        lines.append("dry run: nothing was pushed")
    return "\n".join(lines)


@click.command("push")
@click.argument(
    "archives", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--registry", "push_url", help="Registry URL, https://host[:port] (pushUrl).")
@click.option("--prefix", "push_prefix", help="Repository prefix (pushPrefix).")
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of the CA that signed the registry's certificate (caFile).",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Plain HTTP, or TLS without certificate verification.",
)
@click.option("--username", help="Registry user (username).")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False),
    help="File holding the registry password (passwordFile).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 32),
    default=DEFAULT_CONCURRENCY,
    show_default=True,
    help="Blob uploads at once.",
)
@click.option("--dry-run", is_flag=True, help="Only check what is there; print the plan.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line.")
@output_option
@click.pass_context
def push_command(
    ctx: click.Context,
    archives: tuple[Path, ...],
    push_url: str | None,
    push_prefix: str | None,
    ca_file: str | None,
    insecure: bool | None,
    username: str | None,
    password_file: str | None,
    concurrency: int,
    dry_run: bool,
    quiet: bool,
    output: str,
) -> None:
    """Push the images of ARCHIVES into a registry, under <prefix>/<name>-<version>/.

    Blobs already in the registry are skipped (an interrupted push resumes), blobs of other
    versions of the same solution are mounted, the rest is uploaded.
    """
    from metalk8s_solutions.engine.config_store import load_config  # noqa: PLC0415
    from metalk8s_solutions.engine.push import PushOptions, push, settings_with  # noqa: PLC0415

    config = load_config(ctx.find_root().obj.config)
    settings = settings_with(
        config.registry,
        push_url=push_url,
        push_prefix=push_prefix,
        ca_file=ca_file,
        insecure=insecure,
        username=username,
        password_file=password_file,
    )
    line = ProgressLine(quiet=quiet or dry_run)
    try:
        results = push(
            PushOptions(
                archives=tuple(p.absolute() for p in archives),
                registry=settings,
                known_archives=tuple(Path(a) for a in config.archives),
                dry_run=dry_run,
                concurrency=concurrency,
                progress=_progress(line),
            )
        )
    finally:
        line.close()
    emit([r.to_dict() for r in results], output, lambda _: _human(results))
