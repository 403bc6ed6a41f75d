"""Issue 19 item 5: a read view the HTML pages and the JSON API both show comes from one function.

For each shared view, the JSON API's body is exactly what the engine function answers for the same
cluster state, and the page shows the same fields (it renders that dict, plus presentation).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.engine import instances, views
from metalk8s_solutions.engine.state import Context
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.support import RunningUi, unique

pytestmark = pytest.mark.cluster

SOL = "example-solution"


def text(response: httpx.Response) -> str:
    """The page's text, tags dropped, spaces collapsed."""
    assert response.status_code == 200, response.text
    return flat(html.unescape(re.sub(r"<[^>]+>", " ", response.text)))


def flat(value: str) -> str:
    return re.sub(r"\s+", " ", value)


@pytest.fixture(scope="module")
def http(ui_server: RunningUi, admin_token: str) -> Iterator[httpx.Client]:
    with ui_server.client(admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def env(http: httpx.Client, example_archives: Any) -> Iterator[str]:
    """An environment running example-solution 1.0.0 (1.1.0 imported too), one instance."""
    name = unique("views")
    isos = [str(example_archives.isos[v]) for v in ("1.0.0", "1.1.0")]

    def ok(method: str, url: str, **kwargs: Any) -> Any:
        response = http.request(method, url, **kwargs)
        assert response.status_code in (200, 202), f"{method} {url}: {response.text}"
        return response.json()

    ok("POST", "/api/solutions/import", json={"archives": isos})
    try:
        ok("POST", f"/api/solutions/{SOL}/activate", json={"version": "1.1.0"})
        ok("POST", "/api/environments", json={"name": name, "description": "shared views"})
        ok(
            "POST",
            f"/api/environments/{name}/solutions",
            json={"solution": SOL, "version": "1.0.0"},
        )
        body = {"namespace": name, "name": "web", "spec": {"version": "1.0.0", "replicas": 2}}
        ok("POST", f"/api/environments/{name}/solutions/{SOL}/instances/VersionServer", json=body)
        yield name
    finally:
        http.post(f"/api/environments/{name}/solutions/{SOL}/remove", json={"deleteData": True})
        http.post(f"/api/environments/{name}/delete", json={"confirm": name})
        http.post(f"/api/solutions/{SOL}/deactivate", json={"force": True})
        http.post("/api/solutions/unimport", json={"refs": [f"{SOL}-1.0.0", f"{SOL}-1.1.0"]})


@pytest.fixture(scope="module")
def ctx(ui_server: RunningUi, local_cluster: LocalCluster, admin_token: str) -> Context:
    """What the server's handlers build for the admin: the same configuration, the same user."""
    target = ClusterTarget(kubeconfig=local_cluster.kubeconfig).as_user(admin_token)
    return Context(ui_server.config, target)


def _shared(env: str) -> dict[str, Callable[[Context], Awaitable[Any]]]:
    base = f"/api/environments/{env}/solutions/{SOL}"
    return {
        "/api/solutions": views.solutions_view,
        "/api/environments": views.environments_view,
        f"/api/environments/{env}": lambda c: views.environment_view(c, env),
        f"{base}/versions": lambda c: views.solution_versions(c, env, SOL),
        f"{base}/kinds": lambda c: instances.kinds_view(c, env, SOL),
        f"{base}/instances": lambda c: instances.instances_view(c, env, SOL),
    }


def _ours(env: str, value: Any) -> Any:
    """Of the list of every environment, ours (others, of other test modules, may be going)."""
    if isinstance(value, list) and value and "health" in value[0]:
        return [e for e in value if e["name"] == env]
    return value


def test_the_api_answers_each_view_function(http: httpx.Client, env: str, ctx: Context) -> None:
    for path, view in _shared(env).items():
        answered = http.get(path)
        assert answered.status_code == 200, f"{path}: {answered.text}"
        expected = _ours(env, json.loads(json.dumps(asyncio.run(view(ctx)))))
        assert expected, path
        assert _ours(env, answered.json()) == expected, path


def test_the_pages_show_the_fields_of_the_same_views(
    http: httpx.Client, env: str, ctx: Context
) -> None:
    shown = asyncio.run(views.environment_view(ctx, env))
    assert shown["solutions"][SOL]["versions"] == {env: "1.0.0"}
    page = text(http.get(f"/environments/{env}"))
    assert shown["health"] in page and shown["description"] in page
    assert shown["problem"] and flat(shown["problem"]) in page
    for choice in asyncio.run(views.solution_versions(ctx, env, SOL)):
        assert choice["version"] in page

    listed = text(http.get("/environments"))
    entry = next(e for e in asyncio.run(views.environments_view(ctx)) if e["name"] == env)
    assert env in listed and entry["health"] in listed and flat(entry["problem"]) in listed

    data = asyncio.run(instances.instances_view(ctx, env, SOL))
    page = text(http.get(f"/environments/{env}/solutions/{SOL}/instances"))
    assert data["version"] in page
    for kind in data["kinds"]:  # the page shows the creation time and readiness its own way
        assert all(c in page for c in kind["columns"] if c not in ("Age", "Ready"))
    (row,) = data["instances"]
    assert row["name"] == "web" and row["kind"] in page and row["status"]["message"] in page
    values = [row["columns"][c] for c in ("Version", "Replicas")]
    assert values == ["1.0.0", 2] and all(str(v) in page for v in values)

    solutions = asyncio.run(views.solutions_view(ctx))
    page = text(http.get("/solutions"))
    for entry in solutions["solutions"][SOL]:
        assert entry["version"] in page
