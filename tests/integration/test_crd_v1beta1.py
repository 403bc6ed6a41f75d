"""A MetalK8s 1.0.x-era archive (operator-sdk 0.x): its apiextensions.k8s.io/v1beta1 CRD is
converted to v1 at activation and accepted by the real API server, and its ``*_cr.yaml`` sample
is offered as an instance template (issue #17 item 1)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from crd_v1beta1 import metalk8s_v1beta1_archive, v1beta1_shapes
from env_support import Api, cli, write_config
from metalk8s_solutions.api.crd import check_crd
from metalk8s_solutions.engine.crds import convert_v1beta1
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "oldsdk"
GROUP = "oldsdk.test.solutions"
CLOCKS = f"clocks.{GROUP}"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("v1beta1-archives")
    archive = metalk8s_v1beta1_archive(out, SOL, GROUP, "oldsdk")
    return write_config(out / "solutions.yaml", [archive])


def run(config: Path, cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(config, cluster.kubeconfig, *args)


def ok(config: Path, cluster: LocalCluster, *args: str) -> str:
    """Run, assert success, return stdout."""
    result = run(config, cluster, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def env(config: Path, local_cluster: LocalCluster) -> Iterator[tuple[str, Api]]:
    name = f"old-{secrets.token_hex(3)}"
    with local_cluster.admin_http() as http:
        try:
            yield name, Api(http)
        finally:
            run(config, local_cluster, "env", "delete", name, "--timeout", "120")
            run(config, local_cluster, "deactivate", SOL, "--force")
            run(config, local_cluster, "unimport", f"{SOL}-1.0.1")


def test_v1beta1_crd_activates_as_v1_and_its_sample_makes_an_instance(
    config: Path, local_cluster: LocalCluster, env: tuple[str, Api]
) -> None:
    name, api = env
    archive = str(yaml.safe_load(config.read_text())["archives"][0])
    report = json.loads(ok(config, local_cluster, "validate", archive, "-o", "json"))
    assert report["valid"]
    assert [f["rule"] for f in report["findings"] if f["rule"] == "SOL044"] == ["SOL044"]

    ok(config, local_cluster, "activate", SOL, "--version", "1.0.1")
    crd = api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CLOCKS}")
    assert crd is not None
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    root = version["schema"]["openAPIV3Schema"]
    assert root["properties"]["spec"]["properties"]["colour"]["type"] == "string"
    assert root["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] is True
    assert crd["spec"].get("preserveUnknownFields") in (None, False)

    ok(config, local_cluster, "env", "create", name)
    ok(config, local_cluster, "env", "add-solution", name, SOL, "1.0.1", "--no-wait")

    listed = ok(config, local_cluster, "instance", "samples", name, SOL)
    assert "Clock" in listed and "example-clock" in listed
    samples = json.loads(ok(config, local_cluster, "instance", "samples", name, SOL, "-o", "json"))
    assert [(s["kind"], s["name"], s["spec"]) for s in samples] == [
        ("Clock", "example-clock", {"colour": "blue", "count": 3})
    ]

    # The sample, renamed and changed; a field the v1beta1 schema did not declare is kept, as
    # the v1beta1 API server kept it (preserveUnknownFields defaulted to true).
    ok(
        config,
        local_cluster,
        "instance",
        "create",
        name,
        SOL,
        "--from-sample",
        "example-clock",
        "--name",
        "big-ben",
        "--set",
        "spec.count=12",
        "--set",
        "spec.chime=westminster",
    )
    clock = api.get(f"/apis/{GROUP}/v1alpha1/namespaces/{name}/clocks/big-ben")
    assert clock is not None
    assert clock["spec"] == {"colour": "blue", "count": 12, "chime": "westminster"}

    wrong = run(config, local_cluster, "instance", "create", name, SOL, "--from-sample", "exampl")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    said = " ".join(wrong.stderr.split())
    assert "has no sample 'exampl'" in said and "Clock/example-clock" in said
    assert "solutions instance samples" in said


def test_every_converted_shape_is_accepted_by_the_api_server(local_cluster: LocalCluster) -> None:
    """Each v1beta1 shape, converted, passes SOL040-SOL042 and the real API server's own
    validation of a v1 CRD (a dry-run create: nothing is left behind)."""
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    with local_cluster.admin_http() as http:
        for kind, doc in v1beta1_shapes("shapes.test.solutions").items():
            converted = convert_v1beta1(doc)
            assert check_crd(converted, kind) == []
            answer = http.post(crds, params={"dryRun": "All"}, json=converted)
            assert answer.status_code == 201, (kind, answer.text)
            sent = answer.json()["spec"]["versions"]
            assert [v["name"] for v in sent] == [v["name"] for v in converted["spec"]["versions"]]
