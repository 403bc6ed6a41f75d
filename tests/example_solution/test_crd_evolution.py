"""The CRDs of 1.0.0, 1.1.0 and 2.0.0 on a real API server: objects round-trip between the served
versions (no conversion webhook), 2.0.0 -> 1.1.0 keeps every object and field, and
2.0.0 -> 1.0.0 is the unsafe downgrade the activation checks have to catch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from metalk8s_solutions.testing.pytest_plugin import LocalCluster

from .support import (
    Api,
    ApiFailure,
    crd_document,
    crd_path,
    ensure_crd,
    install_crd,
    vs_path,
    wait_until,
)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("example_crd_removed_afterwards")]


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Api]:
    with local_cluster.admin_http() as http:
        yield Api(http)


def body(name: str, api_version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"example-solution.metalk8s.scality.com/{api_version}",
        "kind": "VersionServer",
        "metadata": {"name": name},
        "spec": spec,
    }


def spec_of(api: Api, ns: str, api_version: str, name: str) -> dict[str, Any]:
    vs = api.get(vs_path(ns, api_version, name))
    assert vs is not None
    assert vs["apiVersion"].endswith(f"/{api_version}")
    spec: dict[str, Any] = vs["spec"]
    return spec


def test_upgrade_round_trip_and_downgrades(api: Api, kube_namespace: str) -> None:
    ns = kube_namespace
    # Start from 1.0.0 (recreated if an earlier test left v1beta1 objects stored).
    ensure_crd(api, "1.0.0")
    api.create(vs_path(ns), body("old", "v1alpha1", version="1.0.0", replicas=2))
    with pytest.raises(ApiFailure) as not_served:
        api.create(vs_path(ns, "v1beta1"), body("x", "v1beta1", version="1.0.0"))
    assert not_served.value.status == 404, "1.0.0 does not serve v1beta1"

    # 1.1.0: v1beta1 served, with logLevel, and the field survives storage as v1alpha1.
    install_crd(api, "1.1.0")
    api.create(vs_path(ns, "v1beta1"), body("new", "v1beta1", version="1.1.0", logLevel="warning"))
    assert spec_of(api, ns, "v1alpha1", "new")["logLevel"] == "warning"
    assert spec_of(api, ns, "v1beta1", "new")["logLevel"] == "warning"
    assert spec_of(api, ns, "v1beta1", "old") == {"version": "1.0.0", "replicas": 2}
    with pytest.raises(ApiFailure) as invalid:
        api.create(vs_path(ns, "v1beta1"), body("bad", "v1beta1", version="latest"))
    assert invalid.value.status == 422, "v1beta1 requires a semantic version"
    with pytest.raises(ApiFailure) as bad_level:
        api.create(vs_path(ns, "v1beta1"), body("bad", "v1beta1", version="1.0.0", logLevel="x"))
    assert bad_level.value.status == 422

    # 2.0.0: v1beta1 is stored; v1alpha1 still answers, with a deprecation warning.
    crd = install_crd(api, "2.0.0")
    # Established and in discovery already (from 1.1.0): wait until the API server's handler
    # has dropped its copy of the 1.1.0 definition, which had no warning.
    wait_until(
        lambda: (
            "deprecated" in api.http.get(vs_path(ns, "v1alpha1", "old")).headers.get("warning", "")
        ),
        "the API server to serve the 2.0.0 definition",
        timeout=30,
    )
    api.merge(vs_path(ns, "v1beta1", "old"), {"spec": {"logLevel": "debug"}})
    assert set(crd["status"]["storedVersions"]) == {"v1alpha1", "v1beta1"}
    response = api.http.get(vs_path(ns, "v1alpha1", "old"))
    assert response.status_code == 200
    assert "v1alpha1 VersionServer is deprecated" in response.headers.get("warning", "")
    assert response.json()["spec"] == {"version": "1.0.0", "replicas": 2, "logLevel": "debug"}
    assert "warning" not in api.http.get(vs_path(ns, "v1beta1", "old")).headers

    # 2.0.0 -> 1.1.0: safe, every object and field is still there.
    install_crd(api, "1.1.0")
    assert spec_of(api, ns, "v1alpha1", "old")["logLevel"] == "debug"
    assert spec_of(api, ns, "v1beta1", "new")["logLevel"] == "warning"

    # 2.0.0 -> 1.0.0: the API server refuses to drop v1beta1 while it may hold stored objects.
    install_crd(api, "2.0.0")
    with pytest.raises(ApiFailure) as refused:
        api.apply(crd_path(), crd_document("1.0.0"))
    assert refused.value.status == 422
    assert "storedVersions" in refused.value.body
    assert spec_of(api, ns, "v1beta1", "new")["logLevel"] == "warning"
