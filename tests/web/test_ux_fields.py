"""Issue #20 item 2 through the web API: a typo'd field of an instance is refused, not dropped."""

from __future__ import annotations

from typing import Any

import pytest

from web.support import RunningUi, unique

pytestmark = pytest.mark.cluster


def test_unknown_instance_field_is_refused(
    ui_server: RunningUi, admin_token: str, example_archives: Any
) -> None:
    env = unique("uxf")
    sol = "example-solution"
    archive = str(example_archives.isos["1.0.0"])
    with ui_server.client(admin_token) as http:

        def ok(method: str, url: str, **kwargs: Any) -> Any:
            response = http.request(method, url, **kwargs)
            assert response.status_code in (200, 202), f"{method} {url}: {response.text}"
            return response.json()

        ok("POST", "/api/solutions/import", json={"archives": [archive]})
        try:
            ok("POST", f"/api/solutions/{sol}/activate", json={"version": "1.0.0"})
            ok("POST", "/api/environments", json={"name": env})
            ok(
                "POST",
                f"/api/environments/{env}/solutions",
                json={"solution": sol, "version": "1.0.0"},
            )
            instances = f"/api/environments/{env}/solutions/{sol}/instances/VersionServer"
            body = {"namespace": env, "name": "web", "spec": {"version": "1.0.0", "replica": 3}}
            typo = http.post(instances, json=body)
            assert typo.status_code == 400, typo.text
            message = typo.json()["error"]["message"]
            assert "spec.replica: unknown field (did you mean spec.replicas?)" in message
            assert http.get(f"{instances}/{env}/web").status_code == 404
            ok("POST", instances, json={**body, "spec": {"version": "1.0.0", "replicas": 1}})
            path = f"{instances}/{env}/web"
            edit = http.put(path, json={**body, "spec": {"version": "1.0.0", "replicaz": 2}})
            assert edit.status_code == 400 and "did you mean spec.replicas" in edit.text
            assert ok("GET", path)["spec"]["replicas"] == 1
            ok("DELETE", path)
            ok("POST", f"/api/environments/{env}/solutions/{sol}/remove", json={})
        finally:
            http.post(f"/api/environments/{env}/delete", json={"confirm": env})
            http.post(f"/api/solutions/{sol}/deactivate", json={"force": True})
            http.post("/api/solutions/unimport", json={"refs": [f"{sol}-1.0.0"]})
