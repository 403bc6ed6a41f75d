"""The Solution UI declaration (``spec.ui``), its objects and the Ingress choice: pure logic."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from metalk8s_solutions.api.config import IngressSettings, parse_config
from metalk8s_solutions.api.manifest import DEFAULT_UI_PORT, ImageRef, check_manifest
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import Settings, VersionContent
from metalk8s_solutions.engine.solution_ui import (
    IngressTarget,
    api_paths,
    choose_ingress,
    ingress_url,
    is_allowed_api_path,
    ui_objects,
)
from metalk8s_solutions.errors import InvalidInput

BASE = """\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: Solution
metadata:
  name: shop
  annotations: {solutions.metalk8s.scality.com/display-name: Shop}
spec:
  version: 2.0.0
  images: [shop-operator:2.0.0, shop-ui:2.0.0]
  operator:
    image: {name: shop-operator, tag: 2.0.0}
"""


def manifest(extra: str = "", images: str | None = None) -> tuple[Any, list[str]]:
    doc = yaml.safe_load(BASE + extra)
    if images is not None:
        doc["spec"]["images"] = yaml.safe_load(images)
    model, findings = check_manifest(doc)
    return model, [f"{f.rule} {f.level} {f.message}" for f in findings]


def test_declared_ui_with_defaults_from_the_name_and_version() -> None:
    model, findings = manifest("  ui: {port: 8080}\n")
    assert findings == []
    assert model.ui.image == ImageRef("shop-ui", "2.0.0")
    assert model.ui.port == 8080
    assert model.to_dict()["spec"]["ui"] == {
        "image": {"name": "shop-ui", "tag": "2.0.0"},
        "port": 8080,
    }
    empty, _ = manifest("  ui: {}\n")
    assert empty.ui.port == DEFAULT_UI_PORT == 80


def test_a_metalk8s_ui_image_alone_deploys_nothing_and_says_how_to_opt_in() -> None:
    model, findings = manifest()
    assert model.ui is None
    assert len(findings) == 1 and findings[0].startswith("SOL019 warning")
    assert "declare spec.ui" in findings[0]


def test_no_ui_image_means_no_ui() -> None:
    model, findings = manifest(images="[shop-operator:2.0.0]")
    assert model.ui is None and findings == []


@pytest.mark.parametrize(
    ("extra", "images", "expected"),
    [
        ("  ui: {port: 8080}\n", "[shop-operator:2.0.0]", "not in spec.images"),
        ("  ui: {image: {name: other-ui, tag: '1'}}\n", None, "other-ui:1 is not in spec.images"),
        ("  ui: {port: 0}\n", None, "spec.ui.port must be a number from 1 to 65535"),
        ("  ui: {port: true}\n", None, "spec.ui.port"),
        ("  ui: {image: {name: Bad}}\n", None, "spec.ui.image"),
        ("  ui: [x]\n", None, "spec.ui must be a mapping"),
        ("  ui: {image: shop-ui}\n", None, "spec.ui.image must be {name, tag}"),
    ],
)
def test_bad_ui_declarations_are_sol019_errors(
    extra: str, images: str | None, expected: str
) -> None:
    model, findings = manifest(extra, images)
    assert model is None
    assert any(f.startswith("SOL019 error") and expected in f for f in findings), findings


def test_unknown_ui_field_is_reported() -> None:
    _, findings = manifest("  ui: {port: 8080, path: /x}\n")
    assert any("SOL017" in f and "spec.ui.path" in f for f in findings)


def content(ui: str = "  ui: {port: 8080}\n") -> VersionContent:
    model, _ = check_manifest(yaml.safe_load(BASE + ui))
    crd = {
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "shop.example.com",
            "scope": "Namespaced",
            "names": {"plural": "carts"},
            "versions": [
                {"name": "v1alpha1", "served": True},
                {"name": "v1beta1", "served": True},
                {"name": "v0", "served": False},
            ],
        },
    }
    cluster_crd = {
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "shop.example.com",
            "scope": "Cluster",
            "names": {"plural": "tills"},
            "versions": [{"name": "v1", "served": True}],
        },
    }
    return VersionContent(
        model,
        crds=(crd, cluster_crd),
        digests={
            "shop-ui:2.0.0": "sha256:" + "a" * 64,
            "shop-operator:2.0.0": "sha256:" + "b" * 64,
        },
    )


def test_api_paths_are_the_namespaced_collections_newest_first() -> None:
    assert api_paths(content(), "prod") == [
        "/apis/shop.example.com/v1beta1/namespaces/prod/carts",
        "/apis/shop.example.com/v1alpha1/namespaces/prod/carts",
    ]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/apis/g/v1/namespaces/prod/carts", True),
        ("/apis/g/v1/namespaces/prod/carts/one", True),
        ("/apis/g/v1/namespaces/prod/carts/one/status", True),
        ("/apis/g/v1/namespaces/prod/cartsx", False),
        ("/apis/g/v1/namespaces/other/carts", False),
        ("/apis/g/v1/namespaces/prod/carts/../../other/carts", False),
        ("/apis/g/v1/namespaces/prod/carts//x", False),
        ("/api/v1/namespaces/prod/secrets", False),
    ],
)
def test_only_listed_api_paths_are_allowed(path: str, allowed: bool) -> None:
    assert is_allowed_api_path(path, ["/apis/g/v1/namespaces/prod/carts"]) is allowed


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def test_ui_objects_carry_the_environment_and_pull_by_digest() -> None:
    objects = by_kind(ui_objects("prod", "prod-a", content(), "reg:5000", None))
    assert set(objects) == {"ConfigMap", "Deployment", "Service"}
    for obj in objects.values():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "ui"
        assert labels["solutions.metalk8s.scality.com/environment"] == "prod"
        assert obj["metadata"]["namespace"] == "prod-a"
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "reg:5000/shop-2.0.0/shop-ui@sha256:" + "a" * 64
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["SOLUTION_UI_BASE_PATH"] == "/env/prod/prod-a/shop/"
    assert env["SOLUTION_UI_CONFIG"] == "/etc/solution-ui/config.json"
    config = json.loads(objects["ConfigMap"]["data"]["config.json"])
    assert config["api"]["kubernetes"] == "/env/prod/prod-a/shop/api/kubernetes"
    assert config["displayName"] == "Shop"


def test_a_new_configuration_rolls_the_ui_pods() -> None:
    one = by_kind(ui_objects("prod", "a", content(), "reg", None))["Deployment"]
    two = by_kind(ui_objects("prod", "b", content(), "reg", None))["Deployment"]
    key = "solutions.metalk8s.scality.com/ui-config-hash"
    one_hash = one["spec"]["template"]["metadata"]["annotations"][key]
    assert one_hash != two["spec"]["template"]["metadata"]["annotations"][key]


def test_ingress_with_host_class_and_tls() -> None:
    target = IngressTarget("nginx", "apps.example.com", "apps-tls")
    ingress = by_kind(ui_objects("prod", "prod", content(), "reg", target))["Ingress"]
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["rules"][0]["host"] == "apps.example.com"
    assert spec["rules"][0]["http"]["paths"][0]["path"] == "/env/prod/prod/shop"
    assert spec["tls"] == [{"secretName": "apps-tls", "hosts": ["apps.example.com"]}]
    assert ingress_url(ingress) == "https://apps.example.com/env/prod/prod/shop/"


def test_ingress_url_from_the_controller_address_or_none() -> None:
    ingress = by_kind(ui_objects("e", "n", content(), "reg", IngressTarget("c")))["Ingress"]
    assert ingress_url(ingress) is None
    ingress["status"] = {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}
    assert ingress_url(ingress) == "http://lb.example.com/env/e/n/shop/"


def test_no_ui_no_objects() -> None:
    assert ui_objects("e", "n", content(""), "reg", None) == []  # the image alone is no UI
    assert ui_objects("e", "n", content(), "reg", None) != []


def test_desired_environment_deploys_the_ui_beside_the_operator() -> None:
    found = desired_environment(
        "prod",
        {"prod": {"shop": "2.0.0"}},
        {("shop", "2.0.0"): content()},
        Settings(endpoint="reg", ingress=IngressTarget("nginx")),
    )
    names = {(o["kind"], o["metadata"]["name"]) for o in found}
    assert {("Deployment", "shop-operator"), ("Deployment", "shop-ui")} <= names
    assert {
        ("Service", "shop-ui"),
        ("Ingress", "shop-ui"),
        ("ConfigMap", "shop-ui-config"),
    } <= names


def cls(name: str, default: bool = False) -> dict[str, Any]:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "annotations": annotations}}


def test_choose_ingress() -> None:
    assert choose_ingress([cls("a"), cls("b", True)]).target == IngressTarget("b")
    assert choose_ingress([cls("only")], host="h").target == IngressTarget("only", "h")
    assert choose_ingress([cls("a")], enabled=False) == choose_ingress([], enabled=False)
    assert choose_ingress([cls("a")], enabled=False).message is None
    assert choose_ingress([cls("a"), cls("b")], class_name="a").target == IngressTarget("a")
    none = choose_ingress([])
    assert none.target is None and none.message is not None
    assert "no Ingress controller" in none.message and "solutions ui" in none.message
    many = choose_ingress([cls("a"), cls("b")])
    assert many.target is None and "set ingress.className" in (many.message or "")
    missing = choose_ingress([cls("a")], class_name="nginx")
    assert missing.target is None and "IngressClass nginx" in (missing.message or "")


def test_ingress_settings_in_the_configuration() -> None:
    text = b"ingress: {className: nginx, host: apps.example.com, tlsSecret: tls}\n"
    parsed = parse_config(text, "c.yaml")
    assert parsed.ingress == IngressSettings(True, "nginx", "apps.example.com", "tls")
    assert parse_config(b"ingress: {enabled: false}\n", "c.yaml").ingress.enabled is False
    assert parse_config(b"archives: []\n", "c.yaml").ingress == IngressSettings()
    for bad in (b"ingress: [x]\n", b"ingress: {enabled: 1}\n", b"ingress: {host: 'a b'}\n"):
        with pytest.raises(InvalidInput, match="ingress"):
            parse_config(bad, "c.yaml")
    # Rewriting the file keeps the key (the document is preserved).
    edited = parsed.with_archive("/a.iso")
    assert edited.ingress == parsed.ingress
    assert "className: nginx" in edited.to_yaml()
