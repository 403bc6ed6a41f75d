"""Reference pages generated from the code at build time, so that they cannot drift from it.

- :func:`cli_reference`: every command and option, walked from the click group of ``solutions``
  (a lazy group: ``list_commands`` + ``get_command``), rendered as Markdown;
- :func:`schemas`: JSON Schemas of SolutionsConfiguration, the Solution manifest and
  OperatorConfig, built from the constants, enums and dataclasses of ``metalk8s_solutions.api``
  (``tests/docs/test_schemas.py`` checks that they accept and reject what the parsers do);
- :func:`error_index`: every error message the package raises on purpose, found in the source
  with :mod:`ast`, with its exception class and exit status;
- :func:`http_api`: the HTTP API page from the OpenAPI document of ``metalk8s_solutions.web``,
  when that module provides one.

Used by the MkDocs hook ``docs/hooks/site.py`` and by the docs tests; no file is written into
``docs/``.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src" / "metalk8s_solutions"
SCHEMA_BASE = "https://metalk8s-solutions.invalid/schemas/"


# -- the command line -------------------------------------------------------------------------


class CommandLoadError(Exception):
    """A command listed by the CLI could not be imported."""


def walk_commands(
    command: click.Command, path: tuple[str, ...], parent: click.Context | None = None
) -> Iterator[tuple[tuple[str, ...], click.Command, click.Context]]:
    """Every command under ``command`` (itself first), depth first, in listing order."""
    ctx = click.Context(command, info_name=path[-1], parent=parent)
    yield path, command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            try:
                sub = command.get_command(ctx, name)
            except ImportError as err:
                raise CommandLoadError(f"{' '.join((*path, name))}: {err}") from err
            if sub is None or sub.hidden:
                continue
            yield from walk_commands(sub, (*path, name), ctx)


def _text(value: str) -> str:
    """Click help text as Markdown: ``\\b`` markers dropped, HTML-sensitive characters escaped."""
    lines = [line for line in inspect.cleandoc(value).splitlines() if line.strip() != "\b"]
    return html.escape("\n".join(lines), quote=False).replace("*", "\\*").replace("_", "\\_")


def anchor(path: tuple[str, ...]) -> str:
    return "-".join(path)


def cli_reference() -> str:
    """The Markdown page of every command, option and argument of ``solutions``."""
    from metalk8s_solutions.cli.main import cli  # noqa: PLC0415 - imported at build time

    out = [
        "# Command line reference",
        "",
        "Generated at build time from the `solutions` command itself "
        "(`docs/hooks/docgen.py`): it lists exactly what `solutions … --help` says. "
        "Exit status of every command: **0** success, **1** refused or invalid input "
        "(the message says why), **2** usage error or the tool could not run. A version is "
        "given positionally after the solution's name; `<version>` in a printed command is a "
        "value to fill in ([conventions](index.md#conventions-of-the-command-line)).",
        "",
    ]
    commands = list(walk_commands(cli, ("solutions",)))
    out.append("| command | what it does |")
    out.append("| --- | --- |")
    for path, command, _ in commands[1:]:
        summary = _text(command.get_short_help_str(limit=200)).replace("|", "\\|")
        out.append(f"| [`{' '.join(path)}`](#{anchor(path)}) | {summary} |")
    out.append("")
    for path, command, ctx in commands:
        out += _command_section(path, command, ctx, [p for p, _, _ in commands if p[:-1] == path])
    return "\n".join(out)


def _params(command: click.Command, ctx: click.Context) -> list[str]:
    out: list[str] = []
    arguments = [p for p in command.params if isinstance(p, click.Argument)]
    options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
    if arguments:
        out += ["Arguments:", ""]
        for arg in arguments:
            extra = [] if arg.required else ["optional"]
            if arg.nargs == -1:
                extra.append("repeatable")
            suffix = f" ({', '.join(extra)})" if extra else ""
            out.append(f"- `{arg.make_metavar(ctx)}`{suffix}")
        out.append("")
    records = [(o, o.get_help_record(ctx)) for o in options]
    if options:
        out += ["Options:", ""]
        for option, record in records:
            if record is None:
                continue
            names, help_text = record
            help_text = help_text.removesuffix("[required]").rstrip()  # said below, once
            line = f"- `{names}`" + (f": {_text(help_text)}" if help_text else "")
            out.append(line + (" **(required)**" if option.required else ""))
        out.append("")
    return out


def _command_section(
    path: tuple[str, ...],
    command: click.Command,
    ctx: click.Context,
    subs: list[tuple[str, ...]],
) -> list[str]:
    level = "#" * min(len(path) + 1, 4)
    usage = " ".join([*path, *command.collect_usage_pieces(ctx)])
    out = [f"{level} {' '.join(path)} {{#{anchor(path)}}}", "", "```text", f"Usage: {usage}"]
    out += ["```", ""]
    if command.help:
        out += [_text(command.help), ""]
    if command.deprecated:
        out += ["!!! warning", "    This command is deprecated.", ""]
    out += _params(command, ctx)
    if subs:
        links = ", ".join(f"[`{' '.join(p)}`](#{anchor(p)})" for p in subs)
        out += [f"Subcommands: {links}.", ""]
    return out


# -- JSON Schemas -----------------------------------------------------------------------------


def _pattern(regex: re.Pattern[str] | str) -> str:
    """A Python regex as a JSON Schema (ECMA-262) pattern: named groups become plain groups."""
    text = regex.pattern if isinstance(regex, re.Pattern) else regex
    return re.sub(r"\(\?P<[A-Za-z_]+>", "(", text)


def _inner(regex: re.Pattern[str]) -> str:
    return _pattern(regex).removeprefix("^").removesuffix("$")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def version_pattern() -> str:
    """A Solution version: safe in repository names and label values (semantic or not)."""
    from metalk8s_solutions.api import versions  # noqa: PLC0415

    return _pattern(versions.SAFE_VERSION)


def configuration_schema() -> dict[str, Any]:
    """SolutionsConfiguration, from ``metalk8s_solutions.api.config``."""
    from metalk8s_solutions.api import config  # noqa: PLC0415

    descriptions = {
        "mode": "How images reach the cluster: builtin (served from the ISO files by "
        "'solutions registry serve') or push (copied into an existing registry).",
        "endpoint": "What nodes pull from, host[:port][/path]; images of solution version <id> "
        "are at <endpoint>/<id>/<image>.",
        "listen": "Address the built-in registry binds to, host:port.",
        "tls_cert": "PEM certificate of the built-in registry (HTTPS when set with tlsKey).",
        "tls_key": "PEM private key of the built-in registry.",
        "push_url": "Push mode: the registry to push to, https://host[:port]. Required in push "
        "mode.",
        "push_prefix": "Push mode: repository prefix; images go to <prefix>/<id>/<image>.",
        "ca_file": "Push mode: PEM file of the CA that signed the registry's certificate.",
        "insecure": "Push mode: plain HTTP, or TLS without certificate verification.",
        "username": "Push mode: registry user.",
        "password_file": "Push mode: file holding the registry password.",
        "auth_htpasswd": "Built-in registry: htpasswd file of bcrypt hashes ('htpasswd -B'); "
        "readers must log in (HTTP Basic) as one of its users.",
        "insecure_public": "Built-in registry: serve without a login on a non-loopback listen "
        "address (anyone who reaches it can pull every imported image).",
    }
    registry_props: dict[str, Any] = {}
    for f in dataclasses.fields(config.RegistrySettings):
        prop: dict[str, Any]
        if f.name == "mode":
            prop = {"enum": [m.value for m in config.RegistryMode]}
        elif f.name in ("insecure", "insecure_public"):
            prop = {"type": "boolean"}
        else:
            prop = {"type": "string"}
        default = f.default
        if default is not None and default is not dataclasses.MISSING:
            prop["default"] = getattr(default, "value", default)
        prop["description"] = descriptions.get(f.name, "")
        registry_props[_camel(f.name)] = prop
    version = {"type": "string", "pattern": version_pattern(), "maxLength": 63}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + "solutions-configuration.schema.json",
        "title": config.KIND,
        "description": "The desired state of the admin node (default "
        "/etc/metalk8s/solutions.yaml). Unknown keys are allowed and preserved on rewrite. "
        "An empty file is an empty configuration.",
        "type": ["object", "null"],
        "properties": {
            "apiVersion": {"const": config.API_VERSION},
            "kind": {"const": config.KIND},
            "archives": {
                "description": "Absolute paths of the imported ISO archives.",
                "type": ["array", "null"],
                "items": {"type": "string", "minLength": 1, "pattern": "^/"},
            },
            "active": {
                "description": "Active version per solution: a semantic version, or 'latest'.",
                "type": ["object", "null"],
                "additionalProperties": {
                    "anyOf": [{"const": config.LATEST}, version],
                },
            },
            "registry": {
                "description": "How imported images reach the cluster (not a MetalK8s key).",
                "type": ["object", "null"],
                "properties": registry_props,
                "if": {"properties": {"mode": {"const": config.RegistryMode.PUSH.value}}},
                "then": {"required": ["pushUrl"], "properties": {"pushUrl": {"type": "string"}}},
            },
            "trust": {
                "description": "Trusted signers and the verification policy (not a MetalK8s "
                "key). Without a policy: required when keys are set, else if-signed.",
                "type": ["object", "null"],
                "properties": {
                    "keys": {
                        "description": "Paths of PEM public keys of trusted signers.",
                        "type": ["array", "null"],
                        "items": {"type": "string", "minLength": 1},
                    },
                    "policy": {"enum": [p.value for p in config.Policy]},
                },
            },
            "pins": {
                "description": "What each imported archive held when it was verified (written "
                "by import; not a MetalK8s key): every later reader refuses a file that changed.",
                "type": ["object", "null"],
                "additionalProperties": {
                    "type": "object",
                    "required": ["id", "signer"],
                    "oneOf": [{"required": ["sha256sums"]}, {"required": ["file"]}],
                    "properties": {
                        "id": {"type": "string", "minLength": 1},
                        "sha256sums": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                        "file": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
                        "signer": {"type": "string", "minLength": 1},
                    },
                },
            },
            "ingress": {
                "description": "How the UIs of Solutions get an Ingress in each environment "
                "(not a MetalK8s key). Without it: an Ingress of the cluster's default "
                "IngressClass, for every host, when there is one.",
                "type": ["object", "null"],
                "properties": {
                    "enabled": {"type": "boolean", "default": True},
                    "className": {"type": "string", "minLength": 1},
                    "host": {"type": "string", "pattern": _pattern(config._HOST)},
                    "tlsSecret": {"type": "string", "minLength": 1},
                },
            },
        },
    }


def manifest_schema() -> dict[str, Any]:
    """The Solution manifest, from ``metalk8s_solutions.api.manifest``."""
    from metalk8s_solutions.api import manifest as m  # noqa: PLC0415

    image_ref = f"^{_inner(m.IMAGE_NAME)}:{_inner(m.IMAGE_TAG)}$"
    strings = {"type": "object", "additionalProperties": {"type": "string"}}
    image = {
        "type": "object",
        "required": ["name", "tag"],
        "properties": {
            "name": {"type": "string", "pattern": _pattern(m.IMAGE_NAME)},
            "tag": {"type": "string", "pattern": _pattern(m.IMAGE_TAG)},
        },
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + "solution-manifest.schema.json",
        "title": m.KIND,
        "description": "manifest.yaml at the root of a Solution archive. Unknown fields are a "
        "warning (SOL017), not an error. Not expressible here: image names of at most 128 "
        "characters and spec.operator.image listed in spec.images (SOL016). This is the "
        "manifest of an archive of ours; in a MetalK8s-format archive spec.images and "
        "spec.operator.image may be left out (derived as MetalK8s does, SOL005) and an entry "
        "without a name (':tag') is ignored (SOL036).",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": m.API_VERSION},
            "kind": {"const": m.KIND},
            "metadata": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": _pattern(m.DNS_LABEL)},
                    "annotations": {
                        **strings,
                        "properties": {
                            m.DISPLAY_NAME: {
                                "type": "string",
                                "description": "Name shown to users (missing: SOL014 warning).",
                            },
                            m.BUILD_TIMESTAMP: {"type": "string"},
                            m.BUILD_HOST: {"type": "string"},
                            m.GIT_REVISION: {"type": "string"},
                        },
                    },
                    "labels": strings,
                },
            },
            "spec": {
                "type": "object",
                "required": ["version", "images", "operator"],
                "properties": {
                    "version": {"type": "string", "pattern": version_pattern(), "maxLength": 63},
                    "images": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": m.MAX_IMAGES,
                        "uniqueItems": True,
                        "items": {"type": "string", "pattern": image_ref},
                    },
                    "operator": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": image,
                            "metrics": {
                                "type": "object",
                                "description": "Where the operator serves Prometheus metrics: a "
                                "metrics port, Service and ServiceMonitor per environment "
                                "(SOL018).",
                                "properties": {
                                    "enabled": {"type": "boolean", "default": True},
                                    "scheme": {"enum": ["http", "https"], "default": "http"},
                                    "port": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 65535,
                                        "default": 8080,
                                    },
                                    "path": {
                                        "type": "string",
                                        "pattern": "^/",
                                        "default": "/metrics",
                                    },
                                },
                            },
                        },
                    },
                    "ui": {
                        "type": "object",
                        "description": "The Solution's own web UI, deployed beside the operator "
                        "in each environment namespace (SOL019). Its image must be listed in "
                        "spec.images.",
                        "properties": {
                            "image": {
                                "description": "Default: {name: <metadata.name>-ui, tag: "
                                "<spec.version>}.",
                                **image,
                            },
                            "port": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 65535,
                                "default": m.DEFAULT_UI_PORT,
                            },
                        },
                    },
                },
            },
        },
    }


def operator_config_schema() -> dict[str, Any]:
    """OperatorConfig, as the brief defines it and operators must check it."""
    from metalk8s_solutions.api.config import API_VERSION  # noqa: PLC0415

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_BASE + "operator-config.schema.json",
        "title": "OperatorConfig",
        "description": "operator.yaml of ConfigMap <solution>-operator-config, mounted at "
        "/etc/config/operator.yaml: every imported version of the solution and where its "
        "images are.",
        "type": "object",
        "required": ["apiVersion", "kind", "repositories"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": "OperatorConfig"},
            "repositories": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": version_pattern(), "maxLength": 63},
                "additionalProperties": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["endpoint", "images"],
                        "properties": {
                            "endpoint": {"type": "string", "minLength": 1},
                            "images": {
                                "type": "array",
                                "items": {"type": "string", "minLength": 1},
                            },
                        },
                    },
                },
            },
        },
    }


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document, as published under ``reference/schemas/``."""
    return {
        "solutions-configuration.schema.json": configuration_schema(),
        "solution-manifest.schema.json": manifest_schema(),
        "operator-config.schema.json": operator_config_schema(),
    }


def schema_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


# -- error messages ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RaisedError:
    module: str
    line: int
    cls: str
    exit_code: int | None
    message: str
    hint: str | None


def _render(node: ast.expr) -> str:
    """A message expression as text: literals kept, interpolations shown as ``<expr>``, the
    commands built by ``errors.command`` as the command line with its values as ``<expr>``."""
    if isinstance(node, ast.Constant):
        return str(node.value)
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append(
                    _render(value.value)
                    if _is_command(value.value)
                    else f"<{_placeholder(value.value)}>"
                )
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _render(node.left) + _render(node.right)
    if isinstance(node, ast.Call) and _is_command(node):
        words = ["solutions"]
        for arg in node.args:
            if isinstance(arg, ast.Constant):
                words.append(str(arg.value))
            elif isinstance(arg, ast.Starred):
                words.append("[…]")
            elif isinstance(arg, ast.JoinedStr):
                words.append(_render(arg))
            else:
                words.append(f"<{_placeholder(arg)}>")
        return " ".join(words)
    return f"<{_placeholder(node)}>"


def _is_command(node: ast.expr) -> bool:
    """A call of ``errors.command``, which builds every command a message prints."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and (node.func.id == "command")
    )


def _placeholder(node: ast.expr) -> str:
    """A short name for an interpolated value: ``<path>``, ``<problems>``, ``<version>``."""
    if isinstance(node, ast.Name):
        return node.id.lstrip("_").lower()
    if isinstance(node, ast.Attribute):
        return node.attr.lstrip("_").lower()
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            return key.value
        return _placeholder(node.value)
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Name) and node.func.id == "str" and node.args:
            return _placeholder(node.args[0])
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("join", "get") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant):
                return str(first.value)
            return _placeholder(first)
        if node.args and isinstance(node.func, ast.Name) and node.func.id in ("map", "sorted"):
            return _placeholder(node.args[-1])
        return _placeholder(node.func)
    if isinstance(node, ast.IfExp | ast.BoolOp | ast.BinOp):
        return "…"
    return "…"


def _error_classes() -> dict[str, type[BaseException]]:
    errors = importlib.import_module("metalk8s_solutions.errors")
    root = errors.SolutionsError
    return {
        name: obj
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, root)
    }


def _module_names(tree: ast.Module) -> tuple[dict[str, str], dict[str, str]]:
    """Helpers (function -> annotated return class) and local classes (class -> first base)."""
    helpers: dict[str, str] = {}
    local: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and isinstance(node.returns, ast.Name):
            helpers[node.name] = node.returns.id
        if isinstance(node, ast.ClassDef):
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            if bases:
                local[node.name] = bases[0]
    return helpers, local


def error_index() -> list[RaisedError]:
    """Every ``raise <SolutionsError subclass>(message, hint=...)`` in the package source.

    A raise of a helper call (``raise _fail(source, "...")``) is resolved through the helper's
    return annotation in the same module.  The test harness (``testing/``) is left out.
    """
    classes = _error_classes()
    found: list[RaisedError] = []
    for path in sorted(SRC.rglob("*.py")):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        if ".testing" in module:
            continue
        tree = ast.parse(path.read_text(), str(path))
        helpers, local = _module_names(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
                continue
            call = node.exc
            if not isinstance(call.func, ast.Name):
                continue
            name = call.func.id
            cls_name = name if name in classes or name in local else helpers.get(name)
            resolved = cls_name
            while resolved in local and resolved not in classes:
                resolved = local[resolved]
            if cls_name is None or resolved not in classes:
                continue
            if name == cls_name:
                strings = [a for a in call.args if not isinstance(a, ast.Name)] or call.args
            else:  # a helper: its message is its string argument
                strings = [
                    a for a in call.args if isinstance(a, ast.Constant | ast.JoinedStr | ast.BinOp)
                ]
            message = ": ".join(_render(a) for a in strings) if strings else "(see the source)"
            hint = next((_render(k.value) for k in call.keywords if k.arg == "hint"), None)
            exit_code = getattr(classes[resolved], "exit_code", None)
            found.append(
                RaisedError(module, node.lineno, cls_name, exit_code, message.strip(), hint)
            )
    return sorted(found, key=lambda e: (e.module, e.line))


def error_reference() -> str:
    """The Markdown page listing every error message, grouped by module."""
    entries = error_index()
    out = [
        "# Error messages",
        "",
        "Every error the package raises on purpose, extracted from the source at build time "
        "(`docs/hooks/docgen.py`). `<…>` stands for a value filled in at run time (a path, a "
        "name, a version). The CLI prints `error: MESSAGE; HINT` on one line and exits with "
        "the status shown. What each common error means and what to do about it: "
        "[Troubleshooting](../operations/troubleshooting.md).",
        "",
        "Messages of the validation rules (`SOL0xx`) are in the "
        "[validation rules reference](../developer/validation-rules.md).",
        "",
    ]
    by_module: dict[str, list[RaisedError]] = {}
    for entry in entries:
        by_module.setdefault(entry.module, []).append(entry)
    for module, items in by_module.items():
        out += [
            f"## `{module}`",
            "",
            "| exit | class | message | hint |",
            "| --- | --- | --- | --- |",
        ]
        for e in items:
            cells = [
                str(e.exit_code) if e.exit_code is not None else "",
                f"`{e.cls}`",
                _cell(e.message),
                _cell(e.hint) if e.hint else "",
            ]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ").replace("*", "\\*")


# -- the HTTP API -----------------------------------------------------------------------------


def openapi_document() -> dict[str, Any] | None:
    """The OpenAPI document of ``metalk8s_solutions.web``, or None when there is none yet.

    The application of ``metalk8s_solutions.web.app.create_app`` (FastAPI) is built with inert
    settings (nothing is started, no cluster is contacted) and asked for its ``openapi()``, the
    document it serves at ``/api/openapi.json``.  Failing that, a module-level ``openapi()`` /
    ``openapi_spec()`` function or ``OPENAPI`` mapping of the web package is used.
    """
    try:
        app_module = importlib.import_module("metalk8s_solutions.web.app")
        deps = importlib.import_module("metalk8s_solutions.web.deps")
        kube = importlib.import_module("metalk8s_solutions.cluster.kube")
    except ImportError:
        app_module = None
    if app_module is not None and hasattr(app_module, "create_app"):
        settings = deps.UiSettings(
            config_path=Path("/etc/metalk8s/solutions.yaml"),
            target=kube.ClusterTarget(kubeconfig=None, context=None),
        )
        document = app_module.create_app(settings).openapi()
        if isinstance(document, dict) and "paths" in document:
            return document
    for module_name in ("metalk8s_solutions.web.openapi", "metalk8s_solutions.web"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in ("openapi", "openapi_spec", "openapi_document", "OPENAPI"):
            value = getattr(module, attr, None)
            document = value() if callable(value) else value
            if isinstance(document, dict) and "paths" in document:
                return document
    return None


def http_api_reference() -> tuple[str, str | None]:
    """The HTTP API page, and the OpenAPI JSON to publish beside it (None when absent)."""
    document = openapi_document()
    head = ["# HTTP API", ""]
    if document is None:
        return (
            "\n".join(
                [
                    *head,
                    '!!! note "Not generated in this build"',
                    "    This page is generated from the OpenAPI document of the web layer "
                    "(`metalk8s_solutions.web`, served at `/api/openapi.json` by "
                    "`solutions ui`). The package this site was built from does not provide "
                    "one yet, so there is no HTTP API to document.",
                    "",
                ]
            ),
            None,
        )
    info = document.get("info", {})
    out = [
        *head,
        f"{_cell(str(info.get('description', '')))}",
        "",
        f"Version {info.get('version', '?')}, generated at build time from the OpenAPI document "
        "of `metalk8s_solutions.web` (the server publishes the same document at "
        "`/api/openapi.json`; a copy is [here](openapi.json)).",
        "",
        "| method | path | summary |",
        "| --- | --- | --- |",
    ]
    methods = ("get", "put", "post", "delete", "patch")
    for path, item in sorted(document.get("paths", {}).items()):
        for method in methods:
            op = item.get(method)
            if isinstance(op, dict):
                summary = _cell(str(op.get("summary") or op.get("description") or ""))
                out.append(f"| `{method.upper()}` | `{path}` | {summary} |")
    out.append("")
    return "\n".join(out), json.dumps(document, indent=2) + "\n"


# -- benchmarks -------------------------------------------------------------------------------

BENCH_RESULTS = REPO / "bench" / "results.json"
BENCH_MARKER = "<!-- bench-results -->"
TIMES = "\u00d7"  # the multiplication sign, as in "1.30 times"


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:.3g} {unit}"


def benchmark_table(path: Path = BENCH_RESULTS) -> str:
    """The table of ``bench/results.json`` (written by ``make bench``), as Markdown."""
    if not path.exists():
        return "*No results yet: run `make bench`, which writes `bench/results.json`.*"
    data = json.loads(path.read_text())
    machine = data.get("machine", {})
    lines = [
        f"Machine: {machine.get('cores')} cores ({machine.get('cpu') or 'unknown CPU'}), "
        f"{machine.get('memory_gib')} GiB, Linux {machine.get('kernel')}, "
        f"Python {machine.get('python')}. Ratios are medians of several runs measured in the same "
        "run as their reference; *load* is the 1-minute load average before and after the "
        "benchmark (other work on the machine makes figures noisier).",
        "",
        "| benchmark | measure | ours | reference | ratio | target | met | commit, date, load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data.get("results", []):
        when = f"`{r.get('commit')}`, {r.get('date')}, {r.get('load_before')}→{r.get('load_after')}"
        if "error" in r:
            lines.append(
                f"| {r['benchmark']} | {_cell(r['measure'])} | failed: {_cell(r['error'])} "
                f"| | | | | {when} |"
            )
            continue
        op = "≤" if r["better"] == "lower" else "≥"
        ratio = "" if r["ratio"] is None else f"**{r['ratio']:.2f}{TIMES}**"
        target = f"{op} {r['target']}" + (TIMES if r["ratio"] is not None else f" {r['unit']}")
        reference = _figure(r["reference"], r["unit"])
        if reference and r.get("reference_name"):
            reference += f" ({_cell(r['reference_name'])})"
        measure = _cell(r["measure"]) + (f" — {_cell(r['note'])}" if r.get("note") else "")
        lines.append(
            f"| {r['benchmark']} | {measure} | {_figure(r['ours'], r['unit'])} | {reference} "
            f"| {ratio} | {target} | {'yes' if r['met'] else '**no**'} | {when} |"
        )
    return "\n".join(lines)


MODULE_MARKER = "<!-- module-map -->"


def _layers() -> list[list[str]]:
    """The layer contract of ``pyproject.toml``, top first: each layer's packages."""
    import tomllib  # noqa: PLC0415

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers":
            return [[p.strip() for p in layer.split("|")] for layer in contract["layers"]]
    return []


def _first_sentence(text: str) -> str:
    """The first sentence of a docstring's first paragraph (the whole paragraph when it
    introduces a list with a colon)."""
    paragraph = " ".join(text.strip().split("\n\n", 1)[0].split())
    end = re.search(r"(?<=\.)\s", paragraph)
    return _cell(paragraph[: end.start()] if end else paragraph)


def _forbidden() -> dict[str, set[str]]:
    """Package -> the packages a ``forbidden`` contract keeps it from importing."""
    import tomllib  # noqa: PLC0415

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    found: dict[str, set[str]] = {}
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "forbidden":
            for source in contract["source_modules"]:
                found.setdefault(source, set()).update(contract["forbidden_modules"])
    return found


def module_map() -> str:
    """Each package of the layer contract, top layer first, with what it may import, and each
    of its modules with the first sentence of its docstring: the map stays what the code is."""
    layers = _layers()
    forbidden = _forbidden()
    lines: list[str] = []
    for index, layer in enumerate(layers):
        for package in layer:
            below = [
                p.rsplit(".", 1)[-1]
                for lower in layers[index + 1 :]
                for p in lower
                if p not in forbidden.get(package, set())
            ]
            name = package.rsplit(".", 1)[-1]
            folder = SRC / name
            doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
            lines += [
                f"### `{name}`",
                "",
                f"{_first_sentence(doc)} May import: "
                + (", ".join(f"`{b}`" for b in below) or "nothing of the package")
                + ", and `errors`.",
                "",
                "| module | owns |",
                "|---|---|",
            ]
            # A subpackage (engine/instances/) is a row, then a row per module of it.
            for module in sorted(folder.rglob("*.py")):
                if module.parent == folder and module.name == "__init__.py":
                    continue
                where = module.relative_to(folder.parent).as_posix()
                if module.name == "__init__.py":
                    where = where.removesuffix("__init__.py")
                text = ast.get_docstring(ast.parse(module.read_text())) or ""
                lines.append(f"| `{where}` | {_first_sentence(text)} |")
            lines.append("")
    return "\n".join(lines)


# -- containerd's hosts.toml ------------------------------------------------------------------

HOSTS_TOML_MARKER = "<!-- containerd-hosts-toml"
HOSTS_TOML_EXAMPLE_ENDPOINT = "registry.example.net:5000"
_HOSTS_TOML_RE = re.compile(
    r"^(?P<indent>[ ]*)<!-- containerd-hosts-toml (?P<mode>[a-z-]+) -->$", re.M
)


def containerd_hosts_examples(markdown: str) -> str:
    """Replace each ``<!-- containerd-hosts-toml MODE -->`` by what the product writes.

    MODE is ``http``, ``tls-ca`` or ``tls-skip-verify``; the fenced block keeps the marker's
    indentation (the examples sit in a numbered list).
    """
    from metalk8s_solutions.images.containerd import (  # noqa: PLC0415
        containerd_hosts_dir,
        containerd_hosts_toml,
    )

    endpoint = HOSTS_TOML_EXAMPLE_ENDPOINT
    folder = containerd_hosts_dir(endpoint)

    def block(match: re.Match[str]) -> str:
        mode = match["mode"]
        if mode == "http":
            text = containerd_hosts_toml(endpoint, tls=False)
        elif mode == "tls-ca":
            text = containerd_hosts_toml(endpoint, ca=f"{folder}/ca.crt")
        elif mode == "tls-skip-verify":
            text = containerd_hosts_toml(endpoint, skip_verify=True)
        else:
            raise ValueError(f"unknown containerd-hosts-toml mode {mode!r}")
        lines = ["```toml", f"# {folder}/hosts.toml", *text.splitlines(), "```"]
        indent = match["indent"]
        return "\n".join(f"{indent}{line}" if line else "" for line in lines)

    return _HOSTS_TOML_RE.sub(block, markdown)
