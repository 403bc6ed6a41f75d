"""What saving an instance sends: the posted document over the current one (pages and API alike)."""

from __future__ import annotations

from metalk8s_solutions.engine.instances import merge_posted

CURRENT = {
    "apiVersion": "example.com/v1",
    "kind": "VersionServer",
    "metadata": {"name": "web", "labels": {"a": "1"}, "resourceVersion": "7"},
    "spec": {"replicas": 1, "version": "1.0.0"},
    "status": {"ready": True},
}


def test_the_posted_fields_replace_the_current_ones_and_metadata_merges_by_key() -> None:
    merged = merge_posted(CURRENT, {"metadata": {"annotations": {"b": "2"}}, "spec": {"x": 1}})
    assert merged["spec"] == {"x": 1}  # a posted spec is the whole spec
    assert merged["metadata"] == {
        "name": "web",
        "labels": {"a": "1"},
        "resourceVersion": "7",  # kept: the update stays conditional
        "annotations": {"b": "2"},
    }
    assert merged["apiVersion"] == "example.com/v1" and merged["status"] == {"ready": True}
    assert CURRENT["metadata"] == {"name": "web", "labels": {"a": "1"}, "resourceVersion": "7"}


def test_the_form_the_yaml_and_the_api_send_the_same_for_the_same_change() -> None:
    spec = {"replicas": 3, "version": "1.0.0"}
    form = merge_posted(CURRENT, {"spec": spec})  # the page's form: only the spec is posted
    yaml_whole = merge_posted(CURRENT, {**CURRENT, "spec": spec})  # the page's YAML, as shown
    api = merge_posted(CURRENT, {"metadata": {}, "spec": spec})  # PUT with no metadata
    assert form == yaml_whole == api


def test_a_new_instance_is_the_posted_document() -> None:
    assert merge_posted({}, {"spec": {"x": 1}}) == {"spec": {"x": 1}, "metadata": {}}
