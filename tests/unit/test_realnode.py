"""Pure parts of the real nodes: the names and ranges a node plans, and its images."""

from __future__ import annotations

import ipaddress
import json
import os
import tarfile
from pathlib import Path

import pytest

from metalk8s_solutions.testing import podtool, realnode


def test_a_node_plans_short_names_and_a_private_range(tmp_path: Path) -> None:
    one = realnode.NodeLayout.plan(tmp_path / "a", 0)
    two = realnode.NodeLayout.plan(tmp_path / "a", 1)
    other = realnode.NodeLayout.plan(tmp_path / "b", 0)
    assert one.name == "real-node-0"
    assert two.name == "real-node-1"
    assert one.bridge == two.bridge != other.bridge  # one bridge per cluster
    assert all(len(n.bridge) <= 15 for n in (one, two, other))  # IFNAMSIZ
    assert len({one.key, two.key, other.key}) == 3
    assert one.subnet != two.subnet
    assert one.cluster_range == two.cluster_range
    for node in (one, two, other):
        cluster = ipaddress.ip_network(node.cluster_range)
        assert cluster.subnet_of(ipaddress.ip_network("10.245.0.0/16"))
        net = ipaddress.ip_network(node.subnet)
        assert net.subnet_of(cluster)
        assert ipaddress.ip_address(node.node_ip) in net
        assert len(node.socket) < 100  # unix socket paths are limited to 108 bytes
    assert one.dir == str(tmp_path / "a" / "nodes" / "real-node-0")
    assert realnode.NodeLayout.from_json(json.loads(json.dumps(one.to_json()))) == one


def test_the_pause_image_is_importable_by_name(tmp_path: Path) -> None:
    target = tmp_path / "pause.tar"
    digest = podtool.write_image_tar(target, podtool.PAUSE_IMAGE, ["/pause"])
    with tarfile.open(target) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        (entry,) = index["manifests"]
        assert entry["digest"] == digest
        assert entry["annotations"]["io.containerd.image.name"] == "solutions.local/pause:1"
        manifest = json.load(tar.extractfile("blobs/sha256/" + digest.split(":")[1]))  # type: ignore[arg-type]
        config_blob = "blobs/sha256/" + manifest["config"]["digest"].split(":")[1]
        config = json.load(tar.extractfile(config_blob))  # type: ignore[arg-type]
        assert config["config"]["Entrypoint"] == ["/pause"]
        layer_blob = "blobs/sha256/" + manifest["layers"][0]["digest"].split(":")[1]
        layer = tar.extractfile(layer_blob)
        assert layer is not None
        with tarfile.open(fileobj=layer, mode="r:gz") as files:
            members = {m.name: m for m in files.getmembers()}
    assert members["pause"].issym() and members["pause"].linkname == "podtool"
    assert members["podtool"].mode == 0o755


def test_the_same_image_twice_has_the_same_digest(tmp_path: Path) -> None:
    first = podtool.write_image(tmp_path / "a", "podtool:1", ["/podtool", "serve"])
    second = podtool.write_image(tmp_path / "b", "podtool:1", ["/podtool", "serve"])
    assert first == second


def test_a_host_without_containerd_is_told_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no program at all
    reason = realnode.host_can_run_real_nodes()
    if os.geteuid() != 0:
        assert reason == "real nodes need root (network bridges, mounts, cgroups)"
    else:
        assert reason == (
            "containerd is not installed; install containerd, runc, "
            "containernetworking-plugins and nftables ('apt-get install containerd runc "
            "containernetworking-plugins nftables', or 'make setup' as root)"
        )
