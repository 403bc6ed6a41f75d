"""Helpers every command shares: the engine context from global options, async entry, plans."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.engine.solutions import Context, Outcome

T = TypeVar("T")

dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")


def engine_context(ctx: click.Context, *, verbose: bool = True) -> Context:
    """The engine context from the global options (--config, --kubeconfig, --context)."""
    options = ctx.find_root().obj
    return Context(
        config_path=options.config,
        target=ClusterTarget(kubeconfig=options.kubeconfig, context=options.context),
        say=(lambda message: click.echo(f"  {message}", err=True)) if verbose else (lambda _: None),
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an engine coroutine from a command."""
    return asyncio.run(coro)


def human_outcome(outcome: Outcome, done: str) -> str:
    """Plan lines (``would …`` on a dry run), warnings, then ``done`` or 'nothing to do'."""
    lines = [f"warning: {w}" for w in outcome.warnings]
    prefix = "would " if outcome.dry_run else ""
    lines += [f"{prefix}{step}" for step in outcome.steps]
    if not outcome.steps:
        lines.append("nothing to do: already in the desired state")
    elif outcome.dry_run:
        lines.append("dry run: nothing was changed")
    else:
        lines.append(done)
    return "\n".join(lines)
