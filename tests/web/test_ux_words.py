"""Issue 20 item 9: the pages in the application administrator's words, page by page.

One environment runs example-solution 1.0.0 (2.0.0 active) with one instance, ``web``; KWOK
runs no container, so no operator ever reports on it.  Each test reads the HTML the server
renders (the browser journey, ``test_browser.py``, walks the same pages in Chromium).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from web.support import RunningUi, unique

pytestmark = pytest.mark.cluster

SOL = "example-solution"
GROUP = "example-solution.metalk8s.scality.com"


def text(response: httpx.Response) -> str:
    """The page's text, tags dropped, spaces collapsed (what a reader sees, roughly)."""
    plain = re.sub(r"<[^>]+>", " ", response.text)
    return re.sub(r"\s+", " ", html.unescape(plain))


@pytest.fixture(scope="module")
def env(ui_server: RunningUi, admin_token: str, example_archives: Any) -> Iterator[str]:
    name = unique("words")
    isos = [str(example_archives.isos[v]) for v in ("1.0.0", "2.0.0")]
    with ui_server.client(admin_token) as http:

        def ok(method: str, url: str, **kwargs: Any) -> httpx.Response:
            response = http.request(method, url, **kwargs)
            assert response.status_code in (200, 202, 303), f"{method} {url}: {response.text}"
            return response

        ok("POST", "/api/solutions/import", json={"archives": isos})
        try:
            ok("POST", f"/api/solutions/{SOL}/activate", json={"version": "2.0.0"})
            ok("POST", "/api/environments", json={"name": name})
            ok(
                "POST",
                f"/api/environments/{name}/solutions",
                json={"solution": SOL, "version": "1.0.0"},
            )
            yield name
        finally:
            # Leave nothing behind for the next module: not even a namespace still terminating.
            http.post(f"/api/environments/{name}/solutions/{SOL}/remove", json={"deleteData": True})
            http.post(f"/api/environments/{name}/delete", json={"confirm": name})
            deadline = time.monotonic() + 120
            while http.get(f"/api/environments/{name}").status_code != 404:
                assert time.monotonic() < deadline, f"environment {name} is still there"
                time.sleep(1)
            http.post(f"/api/solutions/{SOL}/deactivate", json={"force": True})
            http.post("/api/solutions/unimport", json={"refs": [f"{SOL}-1.0.0", f"{SOL}-2.0.0"]})


@pytest.fixture(scope="module")
def http(ui_server: RunningUi, admin_token: str) -> Iterator[httpx.Client]:
    with ui_server.client(admin_token) as client:
        yield client


@pytest.fixture(scope="module")
def instance(http: httpx.Client, env: str) -> str:
    """``web`` created through the form; returns where the form went after it."""
    created = http.post(
        f"/environments/{env}/solutions/{SOL}/new/VersionServer",
        data={"mode": "form", "name": "web", "namespace": env, "spec.version": "1.0.0"},
    )
    assert created.status_code == 303, text(created)
    return str(created.headers["location"])


def test_creating_an_instance_ends_with_a_message(http: httpx.Client, instance: str) -> None:
    page = http.get(instance)
    assert "Created VersionServer web; its operator now deploys it." in text(page)


def test_a_missing_environment_is_a_404_page_with_a_way_back(http: httpx.Client) -> None:
    for path in ("/environments/nope-words", f"/environments/nope-words/solutions/{SOL}/instances"):
        page = http.get(path)
        assert page.status_code == 404, path
        shown = text(page)
        assert "environment nope-words does not exist" in shown
        assert "Something went wrong" not in shown and "Not found" in shown
        assert "solutions env" not in shown
        assert 'href="/environments" id="back"' in page.text


def test_error_pages_carry_no_command_line(http: httpx.Client, env: str, instance: str) -> None:
    # Deactivating is refused while the solution is used; the CLI's hint names commands and
    # --force: the page keeps only the words.
    page = http.post("/ops/deactivate/plan", data={"name": SOL})
    assert page.status_code == 409
    shown = text(page)
    assert f"cannot deactivate {SOL}" in shown and "remove them first" in shown
    assert "--force" not in shown and "solutions env" not in shown


def test_plans_say_it_in_words_first(http: httpx.Client, env: str, instance: str) -> None:
    page = http.post(
        "/ops/env-upgrade/plan", data={"env": env, "solution": SOL, "version": "2.0.0"}
    )
    assert page.status_code == 200, text(page)
    shown = text(page)
    assert (
        f"Upgrade {SOL} 1.0.0 → 2.0.0 in {env}; 1 instance keeps running: VersionServer web"
    ) in shown
    # The Kubernetes objects are behind a disclosure, closed.
    assert re.search(r'<details class="objects" id="plan-objects"\s*>', page.text)
    assert shown.index("Upgrade") < shown.index("Deployment")


def test_the_upgrade_plan_shows_what_the_new_archive_changes(http: httpx.Client, env: str) -> None:
    # (before test_after_an_upgrade_an_instance_behind_is_pointed_out, which upgrades to 2.0.0)
    page = http.post(
        "/ops/env-upgrade/plan", data={"env": env, "solution": SOL, "version": "2.0.0"}
    )
    assert page.status_code == 200, text(page)
    assert 'id="archive-diff-1"' in page.text
    shown = text(page)
    section = shown[shown.index("What changes from 1.0.0 to 2.0.0") :]
    for words in (
        "version: 1.0.0 → 2.0.0",
        " to pull in ",
        "changed base-server:1.0.0 → base-server:2.0.0",
        f"added {SOL}-ui:2.0.0",
        f"versionservers.{GROUP} (VersionServer): changed",
        "version v1beta1 added (served, storage); fields against v1alpha1: spec.logLevel added",
        "v1alpha1 storage: true → false",
        "v1alpha1 spec.logLevel : added (string)",
        "RBAC (the operator's rights) No change.",
    ):
        assert words in section, section
    # the plan's own parts come first; other plans have no such section
    assert shown.index("Upgrade") < shown.index("What changes")
    remove = http.post("/ops/env-remove/plan", data={"env": env, "solution": SOL})
    assert "archive-diff" not in remove.text


def test_delete_plans_name_the_instances_lost(http: httpx.Client, env: str, instance: str) -> None:
    remove = http.post(
        "/ops/env-remove/plan", data={"env": env, "solution": SOL, "deleteData": "true"}
    )
    assert (
        f"Remove {SOL} 1.0.0 from {env}; its instance VersionServer web is deleted, and its data "
        "is lost"
    ) in text(remove)
    keep = text(http.post("/ops/env-remove/plan", data={"env": env, "solution": SOL}))
    assert "1 instance is kept but no longer managed by an operator: VersionServer web" in keep
    assert "--delete-data" not in keep
    delete = text(http.post("/ops/env-delete/plan", data={"name": env}))
    assert f"Delete environment {env}: namespace {env} and everything in them" in delete
    assert "1 instance deleted, its data is lost: VersionServer web" in delete
    one = http.get(f"/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web/delete")
    assert f"Delete the instance VersionServer web of {SOL} in {env}: its data is lost" in text(one)


def test_one_ready_column_and_health_from_instances(
    http: httpx.Client, env: str, instance: str, local_cluster: LocalCluster
) -> None:
    page = http.get(f"/environments/{env}/solutions/{SOL}/instances")
    assert page.text.count('<th scope="col">Ready</th>') == 1
    assert "no readiness reported" in text(page)

    shown = text(http.get(f"/environments/{env}"))
    assert "healthy" not in shown
    assert "no readiness reported by 1 of 1 instances (VersionServer web)" in shown
    assert "fake nodes" in shown

    # The operator reports it not ready: the badge says degraded, and why.
    path = f"/apis/{GROUP}/v1alpha1/namespaces/{env}/versionservers/web/status"
    condition = {
        "type": "Ready",
        "status": "False",
        "reason": "Scaling",
        "message": "0/1 pods ready",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    with local_cluster.admin_http() as admin:
        patched = admin.patch(
            path,
            json={"status": {"conditions": [condition]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patched.status_code == 200, patched.text
    shown = text(http.get(f"/environments/{env}"))
    assert "degraded" in shown
    assert "1 of 1 instances not ready: VersionServer web (0/1 pods ready)" in shown
    listed = text(http.get("/environments"))
    assert "1 of 1 instances not ready: VersionServer web (0/1 pods ready)" in listed


def test_an_instance_shows_pods_events_and_its_operators_log(
    http: httpx.Client, env: str, instance: str
) -> None:
    page = http.get(
        f"/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web/details"
    )
    assert page.status_code == 200, text(page)
    shown = text(page)
    assert "Pods" in shown and "Recent events" in shown and "Operator log" in shown
    assert "No pod runs this instance" in shown
    # KWOK's pods run nothing: no log, said plainly (not an error page).
    assert "no log available: the operator pod is not running" in shown


def test_an_instance_page_lists_the_pods_its_operator_made(
    http: httpx.Client, env: str, instance: str, local_cluster: LocalCluster
) -> None:
    """What an operator would do, done by hand: a Deployment owned by the instance; the
    controllers make its pod (KWOK marks it Running), the scheduler tells an event about it."""
    with local_cluster.admin_http() as admin:
        cr = admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{env}/versionservers/web").json()
        owner = {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "VersionServer",
            "name": "web",
            "uid": cr["metadata"]["uid"],
            "controller": True,
        }
        labels = {"app": "web-words"}
        # The image as the operator pulls it, from its OperatorConfig: the environment's
        # admission policy lets only imported images run (engine/admission.py).
        config = admin.get(f"/api/v1/namespaces/{env}/configmaps/{SOL}-operator-config").json()[
            "data"
        ]["operator.yaml"]
        endpoint = yaml.safe_load(config)["repositories"]["1.0.0"][0]["endpoint"]
        container = {  # what Pod Security "restricted" (the environment's level) asks
            "name": "server",
            "image": f"{endpoint}/base-server:1.0.0",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
        }
        deployment = {
            "metadata": {"name": "web-server", "ownerReferences": [owner]},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        }
        made = admin.post(f"/apis/apps/v1/namespaces/{env}/deployments", json=deployment)
        assert made.status_code == 201, made.text
    url = f"/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web/details"
    deadline = time.monotonic() + 60
    while True:
        page = http.get(url)
        pods = re.findall(r"<td>(web-server-[a-z0-9-]+)</td>", page.text)
        if pods or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(pods) == 1, text(page)
    assert "No pod runs this instance" not in text(page)
    with local_cluster.admin_http() as admin:
        admin.delete(f"/apis/apps/v1/namespaces/{env}/deployments/web-server")


def test_after_an_upgrade_an_instance_behind_is_pointed_out(
    http: httpx.Client, env: str, instance: str, ui_server: RunningUi, local_cluster: LocalCluster
) -> None:
    upgraded = http.put(f"/api/environments/{env}/solutions/{SOL}", json={"version": "2.0.0"})
    assert upgraded.status_code == 200, upgraded.text
    shown = text(http.get(f"/environments/{env}/solutions/{SOL}/instances"))
    assert "VersionServer web runs 1.0.0; the operator is 2.0.0 — edit to follow" in shown
    edited = http.post(
        f"/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web",
        data={"mode": "form", "spec.version": "2.0.0"},
    )
    assert edited.status_code == 303, text(edited)
    shown = text(http.get(edited.headers["location"]))
    assert "Saved VersionServer web; its operator applies the change." in shown
    assert "edit to follow" not in shown

    # The UI of 2.0.0 whose Service is gone: a page that says so, not the API server's JSON.
    with local_cluster.admin_http() as admin:
        admin.delete(f"/api/v1/namespaces/{env}/services/{SOL}-ui")
    key = (env, env, SOL)
    with ui_server.client(http.headers["Authorization"].split(" ", 1)[1], solution_ui=key) as ui:
        missing = ui.get(f"/env/{env}/{env}/{SOL}/")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/html")
    shown = text(missing)
    assert f"the UI of {SOL} in {env}/{env} was not found: its Service {SOL}-ui does not exist" in (
        shown
    )
    assert f'href="{ui_server.url}/environments/{env}"' in missing.text or (
        f'/environments/{env}" id="back"' in missing.text
    )
    assert '"kind":"Status"' not in missing.text


def test_the_yaml_editor_saves_as_the_api_does(http: httpx.Client, env: str, instance: str) -> None:
    """The page's YAML and the JSON API merge what is posted into the instance alike: a posted
    field replaces the current one, metadata merges key by key (a label not posted stays);
    YAML that does not parse, or a value the schema refuses, shows the form again."""
    api = f"/api/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web"
    page = f"/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web"
    spec = http.get(api).json()["spec"]
    labelled = http.put(
        api,
        json={"namespace": env, "name": "web", "metadata": {"labels": {"team": "a"}}, "spec": spec},
    )
    assert labelled.status_code == 200, labelled.text
    document = {"metadata": {"annotations": {"note": "from the page"}}, "spec": spec}
    saved = http.post(page, data={"mode": "yaml", "yaml": yaml.safe_dump(document)})
    assert saved.status_code == 303, text(saved)
    meta = http.get(api).json()["metadata"]
    assert meta["labels"] == {"team": "a"} and meta["annotations"]["note"] == "from the page"

    unreadable = http.post(page, data={"mode": "yaml", "yaml": "spec: [unclosed"})
    assert unreadable.status_code == 400 and "spec: [unclosed" in html.unescape(unreadable.text)
    wrong = {"spec": {**spec, "replicas": "many"}}
    refused = http.post(page, data={"mode": "yaml", "yaml": yaml.safe_dump(wrong)})
    assert refused.status_code == 422, text(refused)
    assert http.get(api).json()["spec"] == spec  # nothing was sent


def test_deleting_an_instance_ends_with_a_message(
    http: httpx.Client, env: str, instance: str
) -> None:
    url = f"/environments/{env}/solutions/{SOL}/instances/VersionServer/{env}/web/delete"
    deleted = http.post(url, data={"confirm": "web"})
    assert deleted.status_code == 303, text(deleted)
    shown = text(http.get(deleted.headers["location"]))
    assert "Deleted VersionServer web." in shown and "No instance yet." in shown
