"""A verb's click parameters generated from the fields of its engine options type.

``@group.command("add-solution", cls=OptionsCommand, options="AddSolutionOptions")`` makes a
command with one click argument or option per field that has a CLI spelling
(:class:`~metalk8s_solutions.engine.environments.options.Option`), in field order, before the
command's own parameters (``-o``; ``after`` places one after a field's: ``--diff``); the
command's function gets the options built, as ``opts``.  So a new option of a verb is one field
of its options type.  The parameters are made when click first asks for them (the command's
help, or running it), so that ``solutions env list`` never imports the options types.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import click

#: Where the options types named by a string live.
OPTIONS_MODULE = "metalk8s_solutions.engine.environments.options"

Decorator = Callable[[Any], Any]


def parameter(f: dataclasses.Field[Any]) -> click.Parameter | None:
    """The click parameter of one options field (None: the CLI does not offer it)."""
    options = importlib.import_module(OPTIONS_MODULE)
    how = options.option_of(f)
    kind = options.kind_of(f)
    default = None if f.default is dataclasses.MISSING else f.default
    if how.argument is not None:
        if kind == "list":
            return click.Argument([how.argument], nargs=-1)
        return click.Argument([how.argument])
    if not how.flags:
        return None
    decls = [*how.flags, f.name]
    extra: dict[str, Any] = {"help": how.help}
    if how.metavar is not None:
        extra["metavar"] = how.metavar
    if how.show_default:
        extra["show_default"] = True
    if kind == "flag":
        if "/" in how.flags[-1]:  # --wait/--no-wait
            return click.Option(decls, default=default, **extra)
        return click.Option(decls, is_flag=True, **extra)
    if kind == "list":
        return click.Option(decls, multiple=True, **extra)
    if how.choices:
        return click.Option(decls, type=click.Choice(how.choices), default=default, **extra)
    if kind == "number":
        number = click.FloatRange(min=how.minimum) if how.minimum is not None else float
        return click.Option(decls, type=number, default=default, **extra)
    if kind == "integer":
        whole = click.IntRange(min=int(how.minimum)) if how.minimum is not None else int
        return click.Option(decls, type=whole, default=default, **extra)
    return click.Option(decls, default=default, **extra)


class OptionsCommand(click.Command):
    """A command whose parameters are its options type's fields (then its own)."""

    def __init__(
        self,
        *args: Any,
        options: type | str,
        after: Mapping[str, Sequence[Decorator]] | None = None,
        **kwargs: Any,
    ) -> None:
        self._options = options  # the type, or its name in OPTIONS_MODULE
        self._after = dict(after or {})
        self._own: list[click.Parameter] = []
        self._generated: list[click.Parameter] | None = None
        self._fields: dict[str, str] = {}  # click parameter name -> field name
        super().__init__(*args, **kwargs)

    def options_type(self) -> type:
        if isinstance(self._options, str):
            return getattr(importlib.import_module(OPTIONS_MODULE), self._options)  # type: ignore[no-any-return]
        return self._options

    @property
    def params(self) -> list[click.Parameter]:
        if self._generated is None:
            generated: list[click.Parameter] = []
            for f in dataclasses.fields(self.options_type()):
                param = parameter(f)
                if param is None:
                    continue
                assert param.name is not None  # noqa: S101 - declared with a name
                self._fields[param.name] = f.name
                generated.append(param)
                for extra in self._after.get(f.name, ()):
                    holder = extra(lambda: None)
                    generated += reversed(holder.__click_params__)
            self._generated = generated + self._own
        return self._generated

    @params.setter
    def params(self, value: list[click.Parameter]) -> None:
        self._own = list(value)
        self._generated = None

    def invoke(self, ctx: click.Context) -> Any:
        self.params  # noqa: B018 - makes the field names known
        values = {self._fields[k]: ctx.params.pop(k) for k in list(ctx.params) if k in self._fields}
        ctx.params["opts"] = self.options_type()(**values)
        return super().invoke(ctx)
