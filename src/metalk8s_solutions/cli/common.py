"""Helpers every command shares: the engine context from global options, async entry, plans,
shared options."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:  # imported when a command runs, not when it is declared (fast --help)
    from metalk8s_solutions.engine.state import Context, Outcome

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class LazyModule:
    """A module imported on first attribute access: ``engine = LazyModule("…engine.x")``.

    For a cli module whose commands all call one engine module: the command declarations stay
    cheap (``--help`` imports no engine), and the body reads ``engine.f(...)`` as before. Give
    mypy the real module under ``TYPE_CHECKING``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")


def key_option(text: str = "Trusted public key (PEM); repeatable.") -> Callable[[F], F]:
    """``--key`` (repeatable, into ``keys``): the public keys an archive's signatures are
    checked with, besides the configured ones."""
    return click.option(
        "--key",
        "keys",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=text,
    )


def engine_context(ctx: click.Context, *, verbose: bool = True) -> Context:
    """The engine context from the global options (--config, --kubeconfig, --context)."""
    from metalk8s_solutions.cluster.kube import ClusterTarget  # noqa: PLC0415
    from metalk8s_solutions.engine.state import Context  # noqa: PLC0415

    options = ctx.find_root().obj
    return Context(
        config_path=options.config,
        target=ClusterTarget(kubeconfig=options.kubeconfig, context=options.context),
        say=(lambda message: click.echo(f"  {message}", err=True)) if verbose else (lambda _: None),
    )


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run an engine coroutine from a command."""
    import asyncio  # noqa: PLC0415

    return asyncio.run(coro)


def human_outcome(outcome: Outcome, done: str) -> str:
    """Plan lines (``would …`` on a dry run), warnings, then ``done`` or 'nothing to do'."""
    lines = [f"warning: {w}" for w in outcome.warnings]
    prefix = "would " if outcome.dry_run else ""
    lines += [f"{prefix}{step}" for step in outcome.steps]
    lines.append(conclusion(outcome, done))
    return "\n".join(lines)


def conclusion(outcome: Outcome, done: str) -> str:
    """The last line of an outcome: 'nothing to do', 'dry run…', or ``done``."""
    if not outcome.steps:
        return "nothing to do: already in the desired state"
    return "dry run: nothing was changed" if outcome.dry_run else done
