"""The options type of each environment verb, each field with the CLI flag and web parameter it has.

One frozen dataclass per verb.  Each field's ``metadata`` holds an :class:`Option`: its help,
its CLI spelling (a flag, or a positional argument) and its web parameter.  ``cli/flags.py``
generates a verb's click parameters from it (in field order: the order ``--help`` shows), and
:func:`from_params` builds the options from a web form or a JSON request, so an option is
written once, here.  Light by design (dataclasses only): every ``solutions env … --help``
imports this module, never the engine behind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from metalk8s_solutions.errors import InvalidInput

#: How long ``--wait`` waits by default (seconds).
DEFAULT_TIMEOUT = 300.0
#: The Pod Security levels an environment may enforce, the default first: those of
#: :data:`metalk8s_solutions.cluster.envstate.POD_SECURITY_LEVELS` (a copy, checked by the
#: tests, so that ``--help`` imports no cluster module).
POD_SECURITY: tuple[str, ...] = ("restricted", "baseline", "privileged")

#: The key of a field's :class:`Option` in its ``metadata``.
OPTION = "option"


@dataclass(frozen=True)
class Option:
    """How one field of a verb's options is offered to users (see :func:`option`)."""

    help: str = ""
    #: the CLI spelling, e.g. ("-N", "--namespace") or ("--wait/--no-wait",); none: a
    #: positional argument (``argument``) or not offered by the CLI
    flags: tuple[str, ...] = ()
    #: a positional CLI argument, named as the usage line shows it (in lower case)
    argument: str | None = None
    metavar: str | None = None
    show_default: bool = False
    choices: tuple[str, ...] = ()
    #: the smallest value a number may take
    minimum: float | None = None
    #: the parameter of the web form and of the JSON API's request; None: not offered there
    web: str | None = None
    #: the value in words, for the web's "<what> is required"
    what: str = ""


def option(**how: Any) -> dict[str, Option]:
    """A field's ``metadata``: ``field(default=..., metadata=option(help=..., flags=...))``."""
    return {OPTION: Option(**how)}


def option_of(f: dataclasses.Field[Any]) -> Option:
    """The :class:`Option` of a field (a field without one is offered nowhere)."""
    found = f.metadata.get(OPTION)
    return found if isinstance(found, Option) else Option()


#: What each field's annotation takes from a user: the kinds a CLI flag and a web field parse.
KINDS: dict[str, str] = {
    "str": "text",
    "str | None": "text",
    "bool": "flag",
    "float": "number",
    "int": "integer",
    "tuple[str, ...]": "list",
}


def kind_of(f: dataclasses.Field[Any]) -> str:
    """``text``, ``flag``, ``number``, ``integer`` or ``list`` (ValueError: not one of them)."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if annotation not in KINDS:
        raise ValueError(f"option {f.name}: type {annotation} is not one of {', '.join(KINDS)}")
    return KINDS[annotation]


# -- what several verbs share --------------------------------------------------------------

NAMESPACES = option(
    flags=("-N", "--namespace"),
    metavar="NS",
    help="Namespace of the environment (repeatable; default: all of them).",
)
DRY_RUN = option(flags=("--dry-run",), help="Print the plan and change nothing.")
WAIT = option(
    flags=("--wait/--no-wait",),
    show_default=True,
    help="Wait for the operator Deployment to be Available, with progress lines.",
)
TIMEOUT = option(
    flags=("--timeout",),
    minimum=0,
    show_default=True,
    metavar="SECONDS",
    help="How long --wait waits.",
)
ENV = option(argument="env", web="env", what="an environment", help="The environment.")
#: ENV, named ``name`` by the web (the environment created or deleted)
ENV_NAME = option(argument="env", web="name", what="an environment name", help="The environment.")
SOLUTION = option(argument="solution", web="solution", what="a solution", help="The solution.")
ALLOW_CLUSTER_SCOPE = option(
    flags=("--allow-cluster-scope",),
    help="Grant role.yaml rules on cluster-scoped resources and nonResourceURLs with a "
    "ClusterRoleBinding (without it, as MetalK8s, they are not granted: a warning says so; "
    "remembered for this solution).",
)
ALLOW_PRIVILEGED_ROLE = option(
    flags=("--allow-privileged-role",),
    help="Approve role.yaml rules that reach beyond the environment's namespaces: "
    "escalate/bind/impersonate, pods/exec, pods/attach, serviceaccounts/token, writing "
    "namespaces (remembered for this solution; the plan lists each approved rule).",
)
WEBHOOK = option(
    flags=("--webhook",),
    web="webhook",
    help="Mount Secret <solution>-cert (a certificate made and kept by this tool) at /cert in "
    "the operator, for its admission webhooks, as MetalK8s 124 does (kept until the solution "
    "is removed).",
)


# -- one options type per verb -------------------------------------------------------------


@dataclass(frozen=True)
class CreateEnvOptions:
    """``env create``: :func:`~.create.create_environment`."""

    name: str = field(metadata=ENV_NAME)
    #: default: one namespace named like the environment
    namespaces: tuple[str, ...] = field(
        default=(), metadata={OPTION: dataclasses.replace(NAMESPACES[OPTION], web="namespaces")}
    )
    description: str = field(
        default="",
        metadata=option(
            flags=("-d", "--description"), web="description", help="What the environment is for."
        ),
    )
    #: None: the environment's current level, else restricted
    pod_security: str | None = field(
        default=None,
        metadata=option(
            flags=("--pod-security",),
            choices=POD_SECURITY,
            help="Pod Security level every namespace enforces (default: the environment's "
            "current one, else restricted).",
        ),
    )
    dry_run: bool = field(default=False, metadata=DRY_RUN)


@dataclass(frozen=True)
class DeleteEnvOptions:
    """``env delete``: :func:`~.delete.delete_environment`."""

    name: str = field(metadata=ENV_NAME)
    #: default: every namespace (the whole environment)
    namespaces: tuple[str, ...] = field(default=(), metadata=NAMESPACES)
    dry_run: bool = field(default=False, metadata=DRY_RUN)
    wait: bool = field(default=True, metadata=WAIT)
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=TIMEOUT)


@dataclass(frozen=True)
class VersionChange:
    """What add-solution and upgrade share: a solution's version, where, and the approvals."""

    env: str = field(metadata=ENV)
    solution: str = field(metadata=SOLUTION)
    #: for upgrade, higher (upgrade) or lower (downgrade) than the deployed one
    version: str = field(
        metadata=option(
            argument="version", web="version", what="a version", help="The version to run."
        )
    )
    #: default: every namespace of the environment
    namespaces: tuple[str, ...] = field(default=(), metadata=NAMESPACES)
    allow_cluster_scope: bool = field(default=False, metadata=ALLOW_CLUSTER_SCOPE)
    #: approve escalate/bind/impersonate, exec, tokens
    allow_privileged_role: bool = field(default=False, metadata=ALLOW_PRIVILEGED_ROLE)


@dataclass(frozen=True)
class AddSolutionOptions(VersionChange):
    """``env add-solution``: :func:`~.add.add_solution`."""

    #: mount Secret <sol>-cert at /cert, as MetalK8s 124 (kept until removed)
    webhook: bool = field(default=False, metadata=WEBHOOK)
    #: image references pods may use besides the imported ones (engine/admission.py), kept
    #: on the Namespace until the solution is deleted from it
    allow_images: tuple[str, ...] = field(
        default=(),
        metadata=option(
            flags=("--allow-image",),
            metavar="IMAGE",
            help="Let pods of ENV also run IMAGE (as written in the pod spec, e.g. "
            "registry.example:5000/tools/debug@sha256:<hex>), besides the images of the "
            "Solutions deployed there; repeatable; kept until the solution is removed.",
        ),
    )
    dry_run: bool = field(default=False, metadata=DRY_RUN)
    wait: bool = field(default=True, metadata=WAIT)
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=TIMEOUT)


@dataclass(frozen=True)
class UpgradeOptions(VersionChange):
    """``env upgrade``: :func:`~.upgrade.upgrade_solution`."""

    dry_run: bool = field(default=False, metadata=DRY_RUN)
    wait: bool = field(default=True, metadata=WAIT)
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=TIMEOUT)
    #: back to the previous version when not Available within timeout
    rollback: bool = field(
        default=True,
        metadata=option(
            flags=("--rollback/--no-rollback",),
            show_default=True,
            help="Go back to the previous version if the operator is not Available within "
            "--timeout.",
        ),
    )
    #: as :attr:`AddSolutionOptions.webhook` (solutions.sh's add-solution also changes
    #: versions); not offered by ``env upgrade``
    webhook: bool = False


@dataclass(frozen=True)
class DeleteSolutionOptions:
    """``env delete-solution``: :func:`~.remove.delete_solution`."""

    env: str = field(metadata=ENV)
    solution: str = field(metadata=SOLUTION)
    namespaces: tuple[str, ...] = field(default=(), metadata=NAMESPACES)
    #: also delete the solution's custom resources
    delete_data: bool = field(
        default=False,
        metadata=option(
            flags=("--delete-data",),
            web="deleteData",
            help="Also delete the solution's custom resources in ENV (the application's data).",
        ),
    )
    dry_run: bool = field(default=False, metadata=DRY_RUN)
    wait: bool = field(default=True, metadata=WAIT)
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=TIMEOUT)


@dataclass(frozen=True)
class ConvergeOptions:
    """``env converge``: :func:`~.converge.converge_environments`."""

    #: default: every environment
    envs: tuple[str, ...] = field(
        default=(), metadata=option(argument="envs", help="The environments (default: all).")
    )
    dry_run: bool = field(default=False, metadata=DRY_RUN)
    wait: bool = field(
        default=False,
        metadata=option(flags=("--wait/--no-wait",), show_default=True, help="Wait for operators."),
    )
    timeout: float = field(default=DEFAULT_TIMEOUT, metadata=TIMEOUT)
    #: environments converged at once (not offered: the engine's and the benchmark's)
    concurrency: int = 8


# -- the web's one parser ------------------------------------------------------------------

T = TypeVar("T")


def _flag(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "on", "yes")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.replace(",", "\n").splitlines() if p.strip())


def from_params(cls: type[T], params: Mapping[str, str], **fixed: Any) -> T:
    """The options ``cls`` from a web form or JSON request's parameters (strings).

    Each field with a web parameter takes it (a flag: ``true``, ``on``, ``1`` or ``yes``; a
    list: comma- or line-separated; text: stripped, and one without a default is required);
    ``fixed`` sets what the web layer decides itself (``dry_run``, a timeout); every other
    field keeps its default.
    """
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        how = option_of(f)
        if f.name in fixed or how.web is None:
            continue
        raw = params.get(how.web, "")
        kind = kind_of(f)
        if kind == "flag":
            values[f.name] = _flag(raw)
        elif kind == "list":
            values[f.name] = _list(raw)
        elif kind == "text":
            text = raw.strip()
            if not text and f.default is dataclasses.MISSING:
                raise InvalidInput(f"{how.what or f.name} is required")
            values[f.name] = text
        else:
            raise ValueError(f"option {f.name}: the web does not parse a {kind}")
    unknown = set(fixed) - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {', '.join(sorted(unknown))}")
    return cls(**values, **fixed)
