"""Parse a command line with the real click commands, without running anything."""

from __future__ import annotations

import shlex

import click

from metalk8s_solutions.cli.main import cli


def parse(words: list[str] | str, group: click.Group = cli) -> click.Context:
    """The context of the leaf command ``words`` names, its options parsed and checked
    (a missing or unknown option raises :class:`click.UsageError`); nothing is invoked."""
    if isinstance(words, str):
        words = shlex.split(words)
    ctx = group.make_context(group.name or "solutions", list(words))
    while isinstance(ctx.command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]  # what Group.invoke reads
        if not rest:
            raise click.UsageError("no command given", ctx)
        name, command, args = ctx.command.resolve_command(ctx, rest)
        assert name is not None and command is not None
        ctx = command.make_context(name, args, parent=ctx)
    return ctx
