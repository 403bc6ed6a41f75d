"""A verb's click parameters generated from the fields of its engine options type.

``@options_of(AddSolutionOptions)`` adds one click argument or option per field that has a CLI
spelling (:class:`~metalk8s_solutions.engine.environments.options.Option`), in field order, and
calls the command with the options built (``opts``) and its own other parameters (``--diff``,
``-o``).  So a new option of a verb is one field of its options type.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import click

from metalk8s_solutions.engine.environments.options import Option, kind_of, option_of

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[Any], Any]


def parameter(f: dataclasses.Field[Any]) -> click.Parameter | None:
    """The click parameter of one options field (None: the CLI does not offer it)."""
    how: Option = option_of(f)
    kind = kind_of(f)
    default = None if f.default is dataclasses.MISSING else f.default
    if how.argument is not None:
        if kind == "list":
            return click.Argument([how.argument], nargs=-1)
        return click.Argument([how.argument])
    if not how.flags:
        return None
    decls = [*how.flags, f.name]
    extra: dict[str, Any] = {}
    if how.metavar is not None:
        extra["metavar"] = how.metavar
    if how.show_default:
        extra["show_default"] = True
    if kind == "flag":
        if "/" in how.flags[-1]:  # --wait/--no-wait
            return click.Option(decls, default=default, help=how.help, **extra)
        return click.Option(decls, is_flag=True, help=how.help, **extra)
    if kind == "list":
        return click.Option(decls, multiple=True, help=how.help, **extra)
    if how.choices:
        return click.Option(
            decls, type=click.Choice(how.choices), default=default, help=how.help, **extra
        )
    if kind == "number":
        number = click.FloatRange(min=how.minimum) if how.minimum is not None else float
        return click.Option(decls, type=number, default=default, help=how.help, **extra)
    if kind == "integer":
        whole = click.IntRange(min=int(how.minimum)) if how.minimum is not None else int
        return click.Option(decls, type=whole, default=default, help=how.help, **extra)
    return click.Option(decls, default=default, help=how.help, **extra)


def parameters(options_type: type) -> list[tuple[str, click.Parameter]]:
    """(field name, click parameter) of every field of ``options_type`` the CLI offers."""
    found = []
    for f in dataclasses.fields(options_type):
        param = parameter(f)
        if param is not None:
            found.append((f.name, param))
    return found


def options_of(
    options_type: type, *, after: Mapping[str, Sequence[Decorator]] | None = None
) -> Callable[[F], F]:
    """Add the click parameters of ``options_type``'s fields to a command; the command gets
    the options built as ``opts``.

    ``after`` places a command's own options (not fields: ``--diff``) after a field's.
    """
    after = after or {}

    def decorate(func: F) -> F:
        params = parameters(options_type)
        names = {param.name: name for name, param in params}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {names[key]: kwargs.pop(key) for key in list(kwargs) if key in names}
            return func(*args, options_type(**values), **kwargs)

        own = list(getattr(func, "__click_params__", []))
        # click shows the parameters in the reverse order of this list
        shown: list[click.Parameter] = []
        for name, param in params:
            shown.append(param)
            for extra in after.get(name, ()):
                holder = extra(lambda: None)
                shown += reversed(holder.__click_params__)
        wrapper.__click_params__ = own + list(reversed(shown))  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
