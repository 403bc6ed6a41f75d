"""Who the user is and what they may do, asked of the API server with the user's own token.

Login checks the token with a SelfSubjectReview (the API server says whose it is); the pages
hide or disable what a SelfSubjectAccessReview denies.  Neither is the enforcement: every
operation is sent with the user's token, so the API server refuses what RBAC does not allow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.cluster.kube import ClusterTarget, Kube
from metalk8s_solutions.cluster.state import RECORD_NAME, RECORD_NAMESPACE
from metalk8s_solutions.errors import ClusterError
from metalk8s_solutions.web.errors import unauthenticated
from metalk8s_solutions.web.limits import BoundedCache
from metalk8s_solutions.web.sessions import Identity

SSR_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
MAX_TOKEN = 16 * 1024
#: cached permission answers, all callers together (a page asks a handful per caller)
MAX_CACHED_ANSWERS = 4096


@dataclass(frozen=True)
class Check:
    """One question for a SelfSubjectAccessReview: may I ``verb`` this resource?"""

    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    name: str | None = None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"verb": self.verb, "resource": self.resource, "group": self.group}
        if self.namespace:
            attrs["namespace"] = self.namespace
        if self.name:
            attrs["name"] = self.name
        return attrs


#: Imports, unimports and (de)activations write files on the admin node: they also need the
#: right to update the cluster record, checked before the engine runs.
RECORD_UPDATE = Check("update", "configmaps", "", RECORD_NAMESPACE, RECORD_NAME)
CRD_CREATE = Check("create", "customresourcedefinitions", "apiextensions.k8s.io")
NAMESPACE_CREATE = Check("create", "namespaces")
NAMESPACE_DELETE = Check("delete", "namespaces")


def env_change(namespace: str) -> Check:
    """Deploying, upgrading or removing a solution rewrites the namespace's environment map."""
    return Check("update", "configmaps", "", namespace, "metalk8s-environment")


class TokenAuthenticator:
    """Bearer-token login: the API server must accept the token and say whose it is."""

    def __init__(self, target: ClusterTarget) -> None:
        self.target = target

    async def authenticate(self, credential: str) -> tuple[Identity, str]:
        token = credential.strip()
        if (
            not token
            or len(token) > MAX_TOKEN
            or not token.isascii()
            or not token.isprintable()
            or any(c.isspace() for c in token)
        ):
            raise unauthenticated("the token is empty or malformed")
        return await whoami(self.target.as_user(token)), token


async def whoami(target: ClusterTarget) -> Identity:
    """The identity behind ``target``'s credentials (401 if the API server rejects them)."""
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    async with Kube(target) as kube:
        with kube.errors("checking the token"):
            response = await kube.http.post(SSR_PATH, json=body)
    if response.status_code in (400, 401, 403):
        raise unauthenticated("the API server did not accept this token")
    if response.status_code >= 400:
        raise ClusterError(
            f"checking the token: the API server answered {response.status_code}",
            hint="check that the API server is reachable",
        )
    info = (response.json().get("status") or {}).get("userInfo") or {}
    return Identity(str(info.get("username", "?")), tuple(info.get("groups") or ()))


async def allowed(target: ClusterTarget, checks: Iterable[Check]) -> dict[Check, bool]:
    """Ask the API server about each check, concurrently; a failed review counts as denied.

    A token the API server rejects (401) is not "denied everything" but not logged in: that
    raises, so that nothing is cached for a forged or expired token.
    """
    unique = list(dict.fromkeys(checks))
    if not unique:
        return {}
    async with Kube(target) as kube:

        async def one(check: Check) -> bool:
            body = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": check.attributes()},
            }
            try:
                response = await kube.http.post(SSAR_PATH, json=body)
            except Exception:
                return False
            if response.status_code == 401:
                raise unauthenticated("the API server did not accept this token")
            if response.status_code >= 400:
                return False
            return bool((response.json().get("status") or {}).get("allowed"))

        results = await asyncio.gather(*(one(c) for c in unique))
    return dict(zip(unique, results, strict=True))


class PermissionCache:
    """Answers per caller for a short while, so that a page does not review twice a second.

    Only answers about tokens the API server accepted are kept (see :func:`allowed`), at most
    ``max_entries`` of them, for ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 20.0, max_entries: int = MAX_CACHED_ANSWERS) -> None:
        self.entries: BoundedCache[tuple[str, Check], bool] = BoundedCache(max_entries, ttl)
        #: callers whose token the API server accepted lately (no reviews needed to know it)
        self.verified: BoundedCache[str, bool] = BoundedCache(max_entries, ttl)

    def knows(self, key: str) -> bool:
        """Was ``key``'s token accepted by the API server lately?"""
        return self.verified.get(key) is not None

    async def check(
        self, key: str, target: ClusterTarget, checks: Iterable[Check]
    ) -> Mapping[Check, bool]:
        wanted = list(dict.fromkeys(checks))
        known: dict[Check, bool] = {}
        missing: list[Check] = []
        for check in wanted:
            hit = self.entries.get((key, check))
            if hit is not None:
                known[check] = hit
            else:
                missing.append(check)
        if missing:
            for check, ok in (await allowed(target, missing)).items():
                self.entries.put((key, check), ok)
                known[check] = ok
            self.verified.put(key, True)
        return known

    def forget(self, key: str) -> None:
        for entry in [k for k in self.entries if k[0] == key]:
            self.entries.pop(entry)
        self.verified.pop(key)

    def __len__(self) -> int:
        return len(self.entries)
