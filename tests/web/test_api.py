"""The JSON API against the local control plane: sessions, CSRF, errors, RBAC, a whole journey."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from web.support import RunningUi, unique

pytestmark = pytest.mark.cluster


def _error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["kind"] == kind, body
    assert "Traceback" not in response.text
    return dict(body["error"])


def test_unauthenticated_calls_get_a_structured_401(ui_server: RunningUi) -> None:
    with ui_server.client() as http:
        _error(http.get("/api/solutions"), 401, "unauthenticated")
        _error(http.post("/api/session", json={"token": "not-a-token"}), 401, "unauthenticated")
        page = http.get("/solutions")
        assert page.status_code == 303 and page.headers["location"] == "/login"
        assert "openapi" in http.get("/api/openapi.json").json()


def test_session_cookie_and_csrf(ui_server: RunningUi, admin_token: str) -> None:
    with ui_server.client() as http:
        login = http.post("/api/session", json={"token": admin_token})
        assert login.status_code == 200, login.text
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert admin_token not in cookie
        session = http.get("/api/session").json()
        assert session["user"] == "system:serviceaccount:solutions-ui-tests:ui-admin"
        assert session["can"] == {
            "import": True,
            "activate": True,
            "createEnvironment": True,
            "deleteEnvironment": True,
        }
        body = {"name": unique("csrf"), "dryRun": True}
        _error(http.post("/api/environments", json=body), 403, "csrf")
        planned = http.post(
            "/api/environments", json=body, headers={"X-CSRF-Token": login.json()["csrf"]}
        )
        assert planned.status_code == 200, planned.text
        assert planned.json()["dryRun"] is True
        http.delete("/api/session", headers={"X-CSRF-Token": login.json()["csrf"]})
        _error(http.get("/api/solutions"), 401, "unauthenticated")


def test_engine_refusals_are_structured(ui_server: RunningUi, admin_token: str) -> None:
    with ui_server.client(admin_token) as http:
        err = _error(
            http.post("/api/solutions/import", json={"archives": ["/nonexistent/x.iso"]}),
            400,
            "invalid-input",
        )
        assert "does not exist" in err["message"]
        _error(
            http.post("/api/environments", json={"name": "Not_A_Label", "dryRun": True}),
            400,
            "invalid-input",
        )
        err = _error(http.get("/api/environments/nope-nope"), 404, "not-found")
        assert "does not exist" in err["message"]
        _error(http.post("/api/solutions/import", json={"archives": []}), 422, "invalid-request")


def test_viewer_is_refused_server_side(ui_server: RunningUi, viewer_token: str) -> None:
    with ui_server.client(viewer_token) as http:
        assert http.get("/api/solutions").status_code == 200
        assert http.get("/api/environments").status_code == 200
        err = _error(
            http.post("/api/solutions/import", json={"archives": ["/tmp/x.iso"]}),
            403,
            "forbidden",
        )
        assert "metalk8s-solutions" in err["message"]
        # Not pre-checked by the UI: the API server itself refuses.
        err = _error(http.post("/api/environments", json={"name": unique("ro")}), 403, "forbidden")
        assert "permission denied" in err["message"]


def test_api_journey(ui_server: RunningUi, admin_token: str, example_archives: Any) -> None:
    isos = example_archives.isos
    env = unique("api")
    sol = "example-solution"
    with ui_server.client(admin_token) as http:

        def ok(method: str, url: str, **kwargs: Any) -> Any:
            response = http.request(method, url, **kwargs)
            assert response.status_code in (200, 202), f"{method} {url}: {response.text}"
            return response.json()

        archives = [str(isos[v]) for v in ("1.0.0", "1.1.0", "2.0.0")]
        plan = ok("POST", "/api/solutions/import", json={"archives": archives, "dryRun": True})
        assert plan["dryRun"] and plan["steps"]
        ok("POST", "/api/solutions/import", json={"archives": archives})
        listed = ok("GET", "/api/solutions")["solutions"][sol]
        assert [e["version"] for e in listed] == ["1.0.0", "1.1.0", "2.0.0"]
        assert listed[0]["details"]["crds"]
        ok("POST", f"/api/solutions/{sol}/activate", json={"version": "1.1.0"})

        ok("POST", "/api/environments", json={"name": env, "description": "API journey"})
        # webhook: the plan mounts Secret <sol>-cert (made by the tool) at /cert, as MetalK8s.
        add = {"solution": sol, "version": "1.0.0"}
        planned = ok(
            "POST",
            f"/api/environments/{env}/solutions",
            json={**add, "webhook": True, "dryRun": True},
        )
        targets = [s["target"] for s in planned["steps"]]
        assert f"Secret {env}/{sol}-cert" in targets and f"Namespace {env}" in targets
        ok("POST", f"/api/environments/{env}/solutions", json=add)
        shown = ok("GET", f"/api/environments/{env}")
        assert shown["solutions"][sol]["versions"] == {env: "1.0.0"}
        choices = ok("GET", f"/api/environments/{env}/solutions/{sol}/versions")
        assert [c["version"] for c in choices] == ["2.0.0", "1.1.0", "1.0.0"]

        kinds = ok("GET", f"/api/environments/{env}/solutions/{sol}/kinds")
        assert kinds[0]["kind"] == "VersionServer"
        body = {"namespace": env, "name": "web", "spec": {"version": "1.0.0", "replicas": 1}}
        ok("POST", f"/api/environments/{env}/solutions/{sol}/instances/VersionServer", json=body)
        bad = http.post(
            f"/api/environments/{env}/solutions/{sol}/instances/VersionServer",
            json={**body, "name": "bad", "spec": {"version": "1.0.0", "replicas": 1000}},
        )
        assert bad.status_code == 400, bad.text  # the API server validates against the CRD
        assert "less than or equal to 100" in bad.json()["error"]["message"]
        path = f"/api/environments/{env}/solutions/{sol}/instances/VersionServer/{env}/web"
        ok("PUT", path, json={**body, "spec": {"version": "1.0.0", "replicas": 3}})
        assert ok("GET", path)["spec"]["replicas"] == 3

        up = ok("PUT", f"/api/environments/{env}/solutions/{sol}", json={"version": "1.1.0"})
        assert any(s["action"] == "upgrade" for s in up["steps"])
        down = ok("PUT", f"/api/environments/{env}/solutions/{sol}", json={"version": "1.0.0"})
        assert any(s["action"] == "downgrade" for s in down["steps"])
        history = ok("GET", f"/api/environments/{env}")["namespaces"][env]["solutions"][sol]
        assert len(history["history"]) >= 3

        refused = http.post("/api/solutions/unimport", json={"refs": [f"{sol}-1.0.0"]})
        assert refused.status_code == 409 and "deployed in" in refused.json()["error"]["message"]
        ok("DELETE", path)
        ok("POST", f"/api/environments/{env}/solutions/{sol}/remove", json={})
        ok("POST", f"/api/environments/{env}/delete", json={"confirm": env})
        ok("POST", f"/api/solutions/{sol}/deactivate", json={})
        ok("POST", "/api/solutions/unimport", json={"refs": [f"{sol}-{v}" for v in isos]})
        assert ok("GET", "/api/solutions")["solutions"] == {}
