"""Access to the Kubernetes API: one async client, and errors a user can act on.

Everything that crosses the API goes through :class:`Kube`.  Library exceptions never leave this
module: :func:`api_errors` turns them into :class:`ClusterError` (could not reach, not allowed)
or lets the caller see a typed 404/409 through :class:`NotFound` / :class:`Conflict`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metalk8s_solutions.errors import ClusterError, Refused

if TYPE_CHECKING:  # lightkube, httpx2 and yaml are imported where used: see cluster.lean
    import httpx2
    from lightkube import ApiError, KubeConfig
    from lightkube.config.kubeconfig import SingleConfig

FIELD_MANAGER = "metalk8s-solutions"
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NotFound(ClusterError):
    """The object does not exist (HTTP 404)."""


class Conflict(ClusterError):
    """The object changed or already exists (HTTP 409)."""


class Forbidden(ClusterError):
    """RBAC denied the request (HTTP 403)."""


@dataclass(frozen=True)
class ClusterTarget:
    """Which cluster to talk to: a kubeconfig file (or the environment) and a context.

    ``token`` replaces the kubeconfig's credentials with a bearer token (the web UI acts as the
    logged-in user: same server and CA, the user's own token, so RBAC decides).
    """

    kubeconfig: Path | None = None
    context: str | None = None
    token: str | None = field(default=None, repr=False)

    def as_user(self, token: str) -> ClusterTarget:
        return ClusterTarget(self.kubeconfig, self.context, token)

    def load(self) -> SingleConfig:
        from lightkube.config.models import User  # noqa: PLC0415

        single = self._load()
        if self.token is None:
            return single
        return single._replace(user=User(token=self.token))

    def _load(self) -> SingleConfig:
        from lightkube import ConfigError, KubeConfig  # noqa: PLC0415
        from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG  # noqa: PLC0415

        if self.kubeconfig is None:
            with contextlib.suppress(ConfigError, KeyError):
                in_cluster = KubeConfig.from_service_account()
                return select_context(in_cluster, self.context, "the in-cluster service account")
            path = Path(os.environ.get("KUBECONFIG") or DEFAULT_KUBECONFIG).expanduser()
        else:
            path = self.kubeconfig
        return select_context(read_kubeconfig(path), self.context, f"kubeconfig {path}")


FIX = "fix it, or pass --kubeconfig PATH (or set KUBECONFIG) to a working kubeconfig"


def _bad(path: Path, what: str, hint: str = FIX) -> ClusterError:
    return ClusterError(f"kubeconfig {path} {what}", hint=hint)


def read_kubeconfig(path: Path) -> KubeConfig:
    """Read a kubeconfig file strictly: every fault is one ClusterError naming the file."""
    from lightkube import KubeConfig  # noqa: PLC0415
    from lightkube.config.models import Cluster, Context, User  # noqa: PLC0415

    data = _parse(path)
    sections = {
        section: _section(path, data, section, key, factory)
        for section, key, factory in (
            ("clusters", "cluster", Cluster),
            ("contexts", "context", Context),
            ("users", "user", User),
        )
    }
    current = data.get("current-context")
    return KubeConfig(
        clusters=sections["clusters"],
        contexts=sections["contexts"],
        users=sections["users"],
        current_context=str(current) if current else None,
        fname=path,
    )


def _parse(path: Path) -> dict[str, Any]:
    import yaml  # noqa: PLC0415

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise _bad(path, "does not exist", "pass --kubeconfig PATH or set KUBECONFIG") from err
    except IsADirectoryError as err:
        raise _bad(path, "is a directory, not a file") from err
    except UnicodeDecodeError as err:
        raise _bad(path, f"is not UTF-8 text (byte {err.start})") from err
    except OSError as err:
        raise ClusterError(
            f"cannot read kubeconfig {path}: {err.strerror or err}",
            hint="check its permissions, or pass --kubeconfig PATH (or set KUBECONFIG)",
        ) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise _bad(path, f"is not valid YAML ({problem}{where})") from err
    if data is None:
        raise _bad(path, "is empty")
    if not isinstance(data, dict):
        raise _bad(path, "is not a kubeconfig (a YAML mapping with clusters, contexts and users)")
    return data


def _section(
    path: Path, data: dict[str, Any], section: str, key: str, factory: type[Any]
) -> dict[str, Any]:
    """``clusters``, ``contexts`` or ``users`` by name, each entry checked."""
    from lightkube.config.kubeconfig import to_mapping  # noqa: PLC0415

    if section not in data and section != "users":
        raise _bad(path, f"has no {section} (is it a kubeconfig?)")
    entries = data.get(section) or []
    if not isinstance(entries, list):
        raise _bad(path, f"has {section} that is not a list")
    found: dict[str, Any] = {}
    for number, entry in enumerate(entries, 1):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise _bad(path, f"has {section} entry {number} without a name")
        if not isinstance(entry.get(key), dict):
            raise _bad(path, f"has {section} entry {name!r} without a {key} mapping")
        try:
            found.update(to_mapping([entry], key, factory))
        except (ValueError, TypeError) as err:
            raise _bad(path, f"has an invalid {section} entry {name!r}: {err}") from err
    return found


def select_context(config: KubeConfig, name: str | None, where: str) -> SingleConfig:
    """The context ``name`` (default: the current one) of ``where``, with its cluster and user."""
    from lightkube.config.kubeconfig import SingleConfig  # noqa: PLC0415

    name = name or config.current_context
    if name is None:
        raise ClusterError(
            f"{where} sets no current-context",
            hint="pass --context NAME or set one with 'kubectl config use-context NAME'",
        )
    context = config.contexts.get(name)
    if context is None:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise ClusterError(
            f"{where} has no context {name!r} (contexts: {known})",
            hint="pass --context NAME with one of them, or --kubeconfig PATH to another file",
        )
    if context.cluster not in config.clusters:
        raise ClusterError(
            f"{where}: context {name!r} names cluster {context.cluster!r}, which it lacks",
            hint=FIX,
        )
    if context.user and context.user not in config.users:
        raise ClusterError(
            f"{where}: context {name!r} names user {context.user!r}, which it lacks", hint=FIX
        )
    return SingleConfig(
        context_name=name,
        context=context,
        cluster=config.clusters[context.cluster],
        user=config.users[context.user] if context.user else None,
        fname=config.fname,
    )


@dataclass
class RequestCounter:
    """Counts requests by method; tests and benchmarks assert on mutating ones."""

    total: int = 0
    mutating: int = 0

    def record(self, method: str) -> None:
        self.total += 1
        if method.upper() in MUTATING_METHODS:
            self.mutating += 1


def _describe_status(err: ApiError, action: str) -> ClusterError:
    code = err.status.code or 0
    message = err.status.message or str(err)
    kinds: dict[int, tuple[type[ClusterError], str, str | None]] = {
        404: (NotFound, f"{action}: {message}", None),
        409: (Conflict, f"{action}: {message}", None),
        403: (
            Forbidden,
            f"{action}: permission denied ({message})",
            "ask a cluster administrator for the rights, or use another --kubeconfig",
        ),
        401: (
            ClusterError,
            f"{action}: the API server did not accept your credentials",
            "check the user in your kubeconfig (expired token or certificate?)",
        ),
    }
    kind, text, hint = kinds.get(
        code, (ClusterError, f"{action}: the API server answered {code}: {message}", None)
    )
    return kind(text, hint=hint)


def describe(err: BaseException, action: str, server: str = "") -> ClusterError:
    """A user-facing error for a failed API call."""
    import httpx2  # noqa: PLC0415
    from lightkube import ApiError  # noqa: PLC0415

    if isinstance(err, ClusterError):
        return err
    if isinstance(err, ApiError):
        return _describe_status(err, action)
    if isinstance(err, httpx2.TransportError | OSError):
        where = f" at {server}" if server else ""
        return ClusterError(
            f"{action}: cannot reach the Kubernetes API{where} ({err.__class__.__name__}: {err})",
            hint="check that the cluster runs and that --kubeconfig/--context point at it",
        )
    return ClusterError(f"{action}: {err.__class__.__name__}: {err}")


class Kube:
    """An async API client with our field manager; use ``async with Kube(target) as kube``."""

    def __init__(self, target: ClusterTarget, *, counter: RequestCounter | None = None) -> None:
        from lightkube import AsyncClient  # noqa: PLC0415

        self.target = target
        self.counter = counter or RequestCounter()
        self._config = target.load()
        self.server = self._config.cluster.server
        self.client = AsyncClient(config=self._config, field_manager=FIELD_MANAGER)
        self._wrap_transport()

    def _wrap_transport(self) -> None:
        import httpx2  # noqa: PLC0415

        # lightkube's AsyncClient wraps an httpx2.AsyncClient: count every request it sends.
        http = getattr(getattr(self.client, "_client", None), "_client", None)
        if not isinstance(http, httpx2.AsyncClient):
            raise TypeError("this lightkube version no longer wraps an httpx2.AsyncClient")
        self.http = http
        hooks = dict(http.event_hooks)
        hooks["request"] = [*hooks.get("request", []), self._count]
        http.event_hooks = hooks

    async def _count(self, request: httpx2.Request) -> None:
        self.counter.record(request.method)

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Translate any API failure inside the block into a ClusterError for ``action``."""
        try:
            yield
        except (ClusterError, Refused):
            raise
        except Exception as err:
            raise describe(err, action, self.server) from err

    async def ping(self) -> str:
        """The server's version; fails clearly when the cluster cannot be reached."""
        with self.errors("connecting to the cluster"):
            response = await self.http.get("/version")
            if response.status_code in (401, 403):
                raise ClusterError(
                    f"connecting to the cluster at {self.server}: the API server did not accept "
                    "your credentials",
                    hint="check the user in your kubeconfig",
                )
            body: dict[str, Any] = response.json()
            return str(body.get("gitVersion", "unknown"))


@contextlib.asynccontextmanager
async def connect(target: ClusterTarget) -> AsyncIterator[Kube]:
    """``async with connect(target) as kube:`` — a checked connection (pinged once)."""
    kube = Kube(target)
    try:
        await kube.ping()
        yield kube
    finally:
        await kube.client.close()
