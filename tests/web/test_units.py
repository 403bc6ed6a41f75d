"""Pure parts of the web layer: forms from CRD schemas, error mapping, sessions, printer columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Response

from metalk8s_solutions.cluster.kube import ClusterTarget, Forbidden
from metalk8s_solutions.engine.instances import instance_status, json_path, owned_pods
from metalk8s_solutions.engine.views import direction
from metalk8s_solutions.errors import ArchiveError, ClusterError, InvalidInput, Missing, Refused
from metalk8s_solutions.web.deps import UiSettings, set_cookie
from metalk8s_solutions.web.errors import WebError, classify, without_cli
from metalk8s_solutions.web.forms import form_values, parse_form, spec_form
from metalk8s_solutions.web.pages import version_ranks
from metalk8s_solutions.web.sessions import MemorySessionStore
from metalk8s_solutions.web.solution_ui import _check_rest

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["version"],
            "properties": {
                "version": {"type": "string", "minLength": 1, "maxLength": 64},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 100, "default": 1},
                "logLevel": {"type": "string", "enum": ["debug", "info"]},
                "tls": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
                "ports": {"type": "array", "items": {"type": "integer"}},
                "extra": {"type": "array", "items": {"type": "object"}},
            },
        }
    },
}


def test_fields_follow_the_schema() -> None:
    form = spec_form(SCHEMA)
    by_name = {f.name: f for f in form.fields}
    assert by_name["spec.version"].required
    assert by_name["spec.replicas"].type == "integer"
    assert by_name["spec.replicas"].constraints() == "0 to 100, default 1"
    assert by_name["spec.logLevel"].enum == ("debug", "info")
    assert by_name["spec.tls.enabled"].type == "boolean"
    assert by_name["spec.ports"].type == "list"
    assert form.yaml_only == ("spec.extra",)
    assert form_values(form, None)["spec.replicas"] == "1"


def test_parse_and_validate() -> None:
    form = spec_form(SCHEMA)
    spec, errors = parse_form(form, {"spec.version": "1.0.0", "spec.replicas": "3"})
    assert errors == {}
    assert spec == {"version": "1.0.0", "replicas": 3, "tls": {"enabled": False}}
    _, errors = parse_form(form, {"spec.replicas": "1000", "spec.version": "1"})
    assert errors == {"spec.replicas": "Replicas: must be at most 100"}
    _, errors = parse_form(form, {"spec.replicas": "many"})
    assert errors["spec.replicas"] == "Replicas: 'many' is not a whole number"
    assert errors["spec.version"] == "Version is required"
    base = {"version": "1", "extra": [{"a": 1}]}
    spec, errors = parse_form(form, {"spec.version": "2", "spec.ports": "80, 443"}, base)
    assert errors == {}
    assert spec["extra"] == [{"a": 1}] and spec["ports"] == [80, 443]


def test_errors_map_to_statuses() -> None:
    assert classify(InvalidInput("x")).status == 400
    assert classify(Refused("x")).status == 409
    assert (classify(Missing("environment x does not exist")).status, Missing.exit_code) == (404, 1)
    assert classify(ArchiveError("x")).status == 422
    assert classify(Forbidden("x")).status == 403
    assert classify(ClusterError("cannot reach")).status == 503
    info = classify(Refused("cannot unimport", hint="nothing was changed"))
    assert info.to_json() == {
        "error": {"message": "cannot unimport", "kind": "refused", "hint": "nothing was changed"}
    }


def test_pages_show_no_command_line() -> None:
    """Issue 20 item 9: hints that name a CLI command or option are dropped, or cut before it."""
    assert without_cli("create it first: solutions env create prd; see 'solutions env list'") == (
        "create it first"
    )
    assert (
        without_cli(
            "nothing was changed; remove them first (solutions env delete-solution prod x "
            "--delete-data), or use --force to delete the CRDs and, with them, every object"
        )
        == "nothing was changed; remove them first"
    )
    assert without_cli("change its version with: solutions env upgrade prod x 2.0.0") == (
        "change its version"
    )
    assert without_cli("hint: e.g. --set spec.replicas=3") == "hint"
    assert without_cli("pass --force to overwrite it") == ""
    kept = "ask a cluster administrator for the rights; see example-solution-1.0.0 (v-2)"
    assert without_cli(kept) == kept
    assert without_cli(None) == ""


def test_sessions_keep_the_token_out_of_the_id() -> None:
    store = MemorySessionStore(ttl=60)
    session = store.create("alice", (), "secret-token")
    assert "secret-token" not in session.id and "secret-token" not in repr(session)
    assert store.get(session.id) is session
    store.delete(session.id)
    assert store.get(session.id) is None


def test_printer_columns_and_status() -> None:
    obj = {
        "spec": {"replicas": 2},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Deployed"}]},
    }
    assert json_path(obj, ".spec.replicas") == 2
    assert json_path(obj, '.status.conditions[?(@.type=="Ready")].reason') == "Deployed"
    assert json_path(obj, ".status.missing.deep") is None
    assert instance_status(obj)["ready"] is True
    assert instance_status({})["ready"] is None


def test_solution_ui_paths_that_could_climb_out_are_refused() -> None:
    for fine in ("", "index.html", "static/app.js", "api/kubernetes/apis/g/v1/namespaces/n/xs"):
        _check_rest(fine)
    for bad in ("..", "../x", "a/../../b", "a/./b", "x#y", "x?y", "a\\b", "a\x00"):
        try:
            _check_rest(bad)
        except WebError as err:
            assert err.status == 404
        else:
            raise AssertionError(f"{bad!r} was accepted")


def test_the_ui_ranks_and_wording_use_the_one_order() -> None:
    env = {
        "namespaces": {
            "a": {"solutions": {"x": {"version": "1.10"}, "y": {"version": "1.1.2-dev"}}},
            "b": {"solutions": {"x": {"version": "1.9"}, "y": {"version": "1.1.2.1"}}},
        }
    }
    assert version_ranks(env) == {"1.1.2-dev": 0, "1.1.2.1": 1, "1.9": 2, "1.10": 3}
    assert direction("1.1.2.1", "1.1.2") == "upgrade"
    assert direction("1.0.3", "1.1.2-dev") == "downgrade"
    assert direction("1.1.2-dev", "1.1.2-dev") == "current"
    assert direction("1.0", None) == "add"


def test_pods_of_an_instance_through_their_owners() -> None:
    def obj(uid: str, *owners: str) -> dict[str, Any]:
        refs = [{"uid": o} for o in owners]
        return {"metadata": {"uid": uid, "name": uid, "ownerReferences": refs}}

    owners = [obj("deploy", "cr"), obj("rs", "deploy"), obj("other-rs", "other")]
    pods = [obj("p1", "rs"), obj("p2", "other-rs"), obj("p3"), obj("p4", "cr")]
    assert [p["metadata"]["name"] for p in owned_pods("cr", owners, pods)] == ["p1", "p4"]


def test_every_cookie_of_the_ui_is_http_only_and_secure_over_https(tmp_path: Path) -> None:
    """The one function that sets the UI's cookies (session, login CSRF, OIDC state, a Solution
    UI's handoff): no script reads them, and over HTTPS they never travel in clear."""
    for secure in (False, True):
        settings = UiSettings(tmp_path / "c.yaml", ClusterTarget(), secure_cookies=secure)
        response = Response()
        set_cookie(response, settings, "solutions_x", "v1", path="/login", max_age=30.7)
        set_cookie(response, settings, "solutions_y", "v2", path="/", samesite="lax")
        first, second = response.headers.getlist("set-cookie")
        for header in (first, second):
            attributes = {a.strip().split("=")[0].lower() for a in header.split(";")}
            assert "httponly" in attributes
            assert ("secure" in attributes) is secure
        assert first.startswith("solutions_x=v1;")
        assert "Path=/login" in first and "Max-Age=30" in first and "SameSite=strict" in first
        assert "Max-Age" not in second and "SameSite=lax" in second and "Path=/;" in second + ";"
