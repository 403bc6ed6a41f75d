"""Access to the Kubernetes API: one async client, and errors a user can act on.

Everything that crosses the API goes through :class:`Kube`.  Library exceptions never leave this
module: :func:`api_errors` turns them into :class:`ClusterError` (could not reach, not allowed)
or lets the caller see a typed 404/409 through :class:`NotFound` / :class:`Conflict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import User

from metalk8s_solutions.errors import ClusterError, Refused

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
        single = self._load()
        if self.token is None:
            return single
        return single._replace(user=User(token=self.token))

    def _load(self) -> SingleConfig:
        try:
            if self.kubeconfig is not None:
                if not self.kubeconfig.is_file():
                    raise ClusterError(
                        f"kubeconfig {self.kubeconfig} does not exist",
                        hint="pass --kubeconfig PATH or set KUBECONFIG",
                    )
                config = KubeConfig.from_file(self.kubeconfig)
            else:
                config = KubeConfig.from_env()
            single = config.get(context_name=self.context)
        except ConfigError as err:
            where = self.kubeconfig or "the environment (KUBECONFIG, ~/.kube/config)"
            raise ClusterError(
                f"no usable kubeconfig in {where}: {err}",
                hint="pass --kubeconfig PATH (and --context NAME) or set KUBECONFIG",
            ) from err
        if single is None:
            raise ClusterError(f"kubeconfig context {self.context!r} not found")
        return single


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
        self.target = target
        self.counter = counter or RequestCounter()
        self._config = target.load()
        self.server = self._config.cluster.server
        self.client = AsyncClient(config=self._config, field_manager=FIELD_MANAGER)
        self._wrap_transport()

    def _wrap_transport(self) -> None:
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
