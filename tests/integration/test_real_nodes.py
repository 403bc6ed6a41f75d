"""Real nodes (kubelet + containerd + runc + CNI) in the local cluster, and their clean-up.

A pod runs on a real node from an image containerd pulls out of the test registry, answers HTTP
from the host and logs through the API; ``down``, and the next start after a test process that
died, leave on the host no process, container, mount, network namespace, link, iptables rule,
cgroup, shim socket, CNI cache entry or nftables table behind.  Pods reach the API server through
the ``kubernetes`` Service (kube-proxy) and by name (CoreDNS); the example operator runs in a pod
from the image containerd pulls out of the ISO through the built-in registry.  Runs as root with
containerd, runc, the CNI plugins and nftables installed (``make setup``); skipped with the
reason otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from env_support import cli, serve_command, write_config
from metalk8s_solutions.images.containerd import containerd_hosts_toml
from metalk8s_solutions.testing import journey, podtool, realnode
from metalk8s_solutions.testing.controlplane import (
    API_SERVICE_IP,
    SERVICE_CIDR,
    LocalControlPlane,
)
from metalk8s_solutions.testing.processes import free_port
from metalk8s_solutions.testing.registry import LocalRegistry

_reason = realnode.host_can_run_real_nodes()
pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(_reason is not None, reason=f"no real nodes on this host: {_reason}"),
]

IMAGE_REPO = "podtool"


def _lines(argv: list[str]) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()


def footprint(state: Path) -> dict[str, Any]:
    """What real nodes can leave on the host, as comparable values."""
    procs = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        words = ("containerd", "kubelet", "kube-proxy", "coredns", "/podtool", "/pause", str(state))
        if any(w in cmd for w in words):
            procs.append(cmd.strip())
    cgroups = sorted(
        str(p)
        for h in Path("/sys/fs/cgroup").iterdir()
        if h.is_dir()
        for p in h.glob("solutions-*")
    )
    iptables = [
        line
        for prog in ("iptables-save", "ip6tables-save")
        for line in _lines([prog])
        if line.startswith(("-", ":", "*"))
    ]

    def listing(folder: str) -> list[str]:
        return sorted(p.name for p in Path(folder).glob("*")) if Path(folder).is_dir() else []

    return {
        "links": sorted(line.split(":")[1].strip() for line in _lines(["ip", "-o", "link"])),
        "netns": sorted(_lines(["ip", "netns", "list"])),
        "mounts": sorted(
            t
            for t in _lines(["findmnt", "-rn", "-o", "TARGET"])
            if t.startswith((str(state), "/run/netns", "/var/run/netns", str(realnode.RUN_ROOT)))
        ),
        "processes": sorted(procs),
        "iptables": sorted(line.split(" [")[0] for line in iptables),
        # kube-proxy's (nftables mode) and any other table, iptables' own included
        "nft tables": sorted(_lines(["nft", "list", "tables"])),
        "cgroups": cgroups,
        "shim sockets": listing("/run/containerd/s"),
        "cni cache": listing("/var/lib/cni/results"),
        "markers": listing(str(realnode.MARKERS)),
        "run dirs": listing(str(realnode.RUN_ROOT)),
        "kernel tunables": [
            (Path("/proc/sys") / name).read_text().strip() for name in realnode.KERNEL_TUNABLES
        ],
    }


@pytest.fixture(scope="module")
def podtool_image(
    local_registry: LocalRegistry, skopeo: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The podtool image in the test registry; returns its reference."""
    layout = tmp_path_factory.mktemp("podtool-image")
    podtool.write_image(layout, f"{IMAGE_REPO}:1", ["/podtool", "serve"])
    ref = f"{local_registry.address}/{IMAGE_REPO}:1"
    subprocess.run(
        [
            skopeo,
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{layout}:1",
            f"docker://{ref}",
        ],
        check=True,
    )
    return ref


def _client(plane: LocalControlPlane) -> httpx.Client:
    info = plane.info()
    assert info is not None
    return httpx.Client(base_url=info.server, verify=plane.admin_ssl_context(), timeout=10)


def _pod(name: str, image: str, *, real: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": image}]}
    if real:
        spec["nodeSelector"] = {realnode.REAL_NODE_LABEL: "true"}
        spec["tolerations"] = [
            {"key": realnode.REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}
        ]
    metadata = {"name": name, "labels": {"app": name}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def _wait_running(client: httpx.Client, name: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pod = client.get(f"/api/v1/namespaces/default/pods/{name}").json()
        if pod.get("status", {}).get("phase") == "Running" and pod["status"].get("podIP"):
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {name} not Running: {json.dumps(pod.get('status'))[:800]}")


def _wait_phase(client: httpx.Client, name: str, phase: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    pod: dict[str, Any] = {}
    while time.monotonic() < deadline:
        pod = client.get(f"/api/v1/namespaces/default/pods/{name}").json()
        if pod.get("status", {}).get("phase") == phase:
            return
        time.sleep(0.5)
    log = client.get(f"/api/v1/namespaces/default/pods/{name}/log").text
    raise AssertionError(f"pod {name} not {phase}: {json.dumps(pod.get('status'))[:800]} {log}")


def _allow_default_sa_to_read_namespaces(client: httpx.Client) -> None:
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "read-namespaces"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "read-namespaces"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "read-namespaces",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}],
    }
    assert client.post(f"{rbac}/clusterroles", json=role).status_code == 201
    assert client.post(f"{rbac}/clusterrolebindings", json=binding).status_code == 201


@pytest.fixture
def plane(tmp_path: Path, local_registry: LocalRegistry) -> Iterator[LocalControlPlane]:
    plane = LocalControlPlane(
        tmp_path / "c",
        nodes=1,
        real_nodes=1,
        bind_to_parent=True,
        insecure_registries=(local_registry.address,),
    )
    try:
        yield plane
    finally:
        plane.down()


def test_a_pod_runs_on_a_real_node_and_down_leaves_nothing(
    plane: LocalControlPlane, podtool_image: str, local_registry: LocalRegistry
) -> None:
    before = footprint(plane.state_dir)
    plane.up()
    status = plane.status()
    assert status["state"] == "running"
    assert status["realNodes"] == [
        {"name": "real-node-0", "ready": True, "address": status["realNodes"][0]["address"]}
    ]
    layout = realnode.NodeLayout.plan(plane.state_dir, 0)
    assert status["realNodes"][0]["address"] == layout.node_ip
    # The node pulls (below) through the hosts.toml docs/operations/registry.md prints.
    hosts = Path(layout.dir, "containerd", "certs.d", local_registry.address, "hosts.toml")
    assert hosts.read_text() == containerd_hosts_toml(local_registry.address, tls=False)
    assert not ipaddress.ip_address(layout.node_ip).is_loopback

    with _client(plane) as client:
        # Beside a fake node, the real one takes only the pods that ask for it.
        node = client.get("/api/v1/nodes/real-node-0").json()
        assert node["spec"]["taints"] == [
            {"key": realnode.REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
        ]
        assert (
            client.post(
                "/api/v1/namespaces/default/pods", json=_pod("web", podtool_image, real=True)
            ).status_code
            == 201
        )
        # A pod that does not ask for a real node still lands on the KWOK node.
        assert (
            client.post(
                "/api/v1/namespaces/default/pods", json=_pod("fake", podtool_image, real=False)
            ).status_code
            == 201
        )
        pod = _wait_running(client, "web")
        assert pod["spec"]["nodeName"] == "real-node-0"
        ip = pod["status"]["podIP"]
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(layout.subnet)
        fake = _wait_running(client, "fake")
        assert fake["spec"]["nodeName"] == "kwok-node-0"

        # Contained: the host reaches the pod range only over the node's bridge, and the pod
        # has no route off it (looked up in the pod's network namespace, no packet sent).
        assert f" dev {layout.bridge} " in _lines(["ip", "route", "get", ip])[0]
        (netns,) = [
            ns.split()[0]
            for ns in _lines(["ip", "netns", "list"])
            if f" {ip}/" in " ".join(_lines(["ip", "-n", ns.split()[0], "-o", "-4", "addr"]))
        ]
        routes = _lines(["ip", "-n", netns, "-4", "route", "show", "table", "all"])
        assert sorted(r.rstrip() for r in routes if not r.startswith(("local ", "broadcast "))) == [
            f"{layout.cluster_range} dev eth0 proto kernel scope link src {ip}",
            f"{SERVICE_CIDR} via {layout.node_ip} dev eth0",
        ]
        service = _lines(["ip", "-n", netns, "route", "get", API_SERVICE_IP])[0]
        assert f" via {layout.node_ip} dev eth0 " in service  # to the node, where kube-proxy is
        for outside in ("1.1.1.1", "10.0.0.1", "127.0.0.1"):
            lookup = subprocess.run(
                ["ip", "-n", netns, "route", "get", outside],
                capture_output=True,
                text=True,
                check=False,
            )
            if outside == "127.0.0.1":  # the pod's own loopback, not the host's
                assert " dev lo " in lookup.stdout
            else:
                assert lookup.returncode != 0
                assert "Network is unreachable" in lookup.stderr

        # The host forwards what comes in on the bridge (Service traffic between pods) only
        # back onto it: the cluster's own nftables table drops anything routed elsewhere.
        chain = _lines(["nft", "list", "chain", "inet", layout.bridge, "forward"])
        assert f'iifname "{layout.bridge}" oifname != "{layout.bridge}" drop' in [
            line.strip() for line in chain
        ], chain
        assert Path(f"/proc/sys/net/ipv4/conf/{layout.bridge}/forwarding").read_text() == "1\n"
        answer = httpx.get(f"http://{ip}:8080/", timeout=5)
        assert answer.text == "podtool web\n"
        log = client.get("/api/v1/namespaces/default/pods/web/log")
        assert log.status_code == 200, log.text
        assert log.text == "podtool serving on :8080 as web\n"

        # A pod reads the API with its own ServiceAccount token through the kubernetes
        # Service (the address kubelet gives it), kube-proxy and the API server's relay.
        _allow_default_sa_to_read_namespaces(client)
        reader = _pod("reader", podtool_image, real=True)
        reader["spec"]["restartPolicy"] = "Never"
        reader["spec"]["containers"][0]["command"] = [
            "/podtool",
            "get",
            "https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"
            "/api/v1/namespaces/default",
        ]
        assert client.post("/api/v1/namespaces/default/pods", json=reader).status_code == 201
        _wait_phase(client, "reader", "Succeeded")
        log = client.get("/api/v1/namespaces/default/pods/reader/log").text
        url = f"https://{API_SERVICE_IP}:443/api/v1/namespaces/default"
        assert log.splitlines()[0] == f"GET {url}: 200", log
        assert '"kind":"Namespace"' in log and '{"name":"default"' in log

        # The same by name: kubelet gives pods the cluster DNS (CoreDNS on node 0's IP).
        by_name = _pod("by-name", podtool_image, real=True)
        by_name["spec"]["restartPolicy"] = "Never"
        url = "https://kubernetes.default.svc/api/v1/namespaces/default"
        by_name["spec"]["containers"][0]["command"] = ["/podtool", "get", url]
        assert client.post("/api/v1/namespaces/default/pods", json=by_name).status_code == 201
        _wait_phase(client, "by-name", "Succeeded")
        log = client.get("/api/v1/namespaces/default/pods/by-name/log").text
        assert log.splitlines()[0] == f"GET {url}: 200", log

        # Pod to Service to pod: the web pod behind a Service, read from another pod by name.
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        }
        assert client.post("/api/v1/namespaces/default/services", json=service).status_code == 201
        client_pod = _pod("client", podtool_image, real=True)
        client_pod["spec"]["restartPolicy"] = "Never"
        url = "http://web.default.svc/"
        client_pod["spec"]["containers"][0]["command"] = ["/podtool", "get", url]
        assert client.post("/api/v1/namespaces/default/pods", json=client_pod).status_code == 201
        _wait_phase(client, "client", "Succeeded")
        log = client.get("/api/v1/namespaces/default/pods/client/log").text
        assert log.splitlines() == [f"GET {url}: 200", "podtool web"], log

    during = footprint(plane.state_dir)
    assert during["netns"] != before["netns"]  # the check sees what a pod makes
    assert during["mounts"] != before["mounts"]
    plane.down()
    assert footprint(plane.state_dir) == before


CHILD = """
import sys
from pathlib import Path
from metalk8s_solutions.testing.controlplane import LocalControlPlane
plane = LocalControlPlane(
    Path(sys.argv[1]), nodes=0, real_nodes=1, bind_to_parent=True,
    insecure_registries=(sys.argv[2],),
)
plane.up()
print("up", flush=True)
sys.stdin.read()
"""


def test_a_test_process_that_dies_is_cleaned_up_after_by_the_next_start(
    tmp_path: Path, local_registry: LocalRegistry, podtool_image: str
) -> None:
    state = tmp_path / "dead"
    before = footprint(state)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(state), local_registry.address],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "up\n"
        plane = LocalControlPlane(state)
        with _client(plane) as client:
            resp = client.post(
                "/api/v1/namespaces/default/pods", json=_pod("web", podtool_image, real=True)
            )
            assert resp.status_code == 201, resp.text
            _wait_running(client, "web")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    left = footprint(state)
    assert left["netns"] != before["netns"]  # the pod outlived its test process
    assert left["markers"] != before["markers"]

    key = realnode.NodeLayout.plan(state.resolve(), 0).key
    deadline = time.monotonic() + 20
    swept: list[str] = []
    while key not in swept and time.monotonic() < deadline:
        time.sleep(0.2)  # until kubelet and containerd have died of their parent's death
        swept += realnode.sweep_orphans()
    assert key in swept
    after = footprint(state)
    # Only files in the dead run's folder remain (no mount, no process holds them).
    assert after == before


SOLUTIONS = str(Path(sys.executable).parent / "solutions")


def solutions(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SOLUTIONS, *args], capture_output=True, text=True, check=False, timeout=300
    )


def test_dev_cluster_up_with_a_real_node_status_and_down(tmp_path: Path) -> None:
    state = tmp_path / "cli"
    before = footprint(state)
    where = ("--state-dir", str(state))
    try:
        up = solutions("dev", "cluster", "up", "--nodes", "0", "--real-nodes", "1", *where)
        assert up.returncode == 0, up.stderr
        assert "with 0 node(s) and 1 real node(s)." in up.stdout
        status = solutions("dev", "cluster", "status", *where)
        assert status.returncode == 0, status.stderr
        assert "1/1 node(s) Ready" in status.stdout
        ip = realnode.NodeLayout.plan(state.resolve(), 0).node_ip
        assert "real nodes:\nNODE          STATE   ADDRESS\n" in status.stdout
        assert f"real-node-0   Ready   {ip}" in status.stdout
        assert "real-node-0/kubelet" in status.stdout
        assert "real-node-0/containerd" in status.stdout
        for service in ("kube-proxy", "coredns", "api-relay"):
            assert f"real-node-0/{service}" in status.stdout
        # Real nodes only: no taint, the product's pods run there as it makes them.
        with _client(LocalControlPlane(state)) as client:
            node = client.get("/api/v1/nodes/real-node-0").json()
        assert "taints" not in node["spec"], node["spec"]
    finally:
        down = solutions("dev", "cluster", "down", *where)
    assert down.returncode == 0, down.stderr
    assert down.stdout == f"Local control plane stopped; {state.resolve()} removed.\n"
    assert footprint(state) == before


def test_up_on_a_host_without_containerd_fails_before_starting_anything(tmp_path: Path) -> None:
    state = tmp_path / "none"
    result = subprocess.run(
        [SOLUTIONS, "dev", "cluster", "up", "--real-nodes", "1", "--state-dir", str(state)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=dict(os.environ, PATH=str(tmp_path)),  # no containerd (nor anything else)
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cannot start real nodes: containerd is not installed; install containerd, runc, "
        "containernetworking-plugins and nftables ('apt-get install containerd runc "
        "containernetworking-plugins nftables', or 'make setup' as root)"
    ]
    assert not state.exists()


def test_down_stops_a_node_missing_from_the_recorded_state(plane: LocalControlPlane) -> None:
    """As after a crash between a node's start and the state's update."""
    before = footprint(plane.state_dir)
    plane.up()
    state_file = plane.state_dir / "state.json"
    state = json.loads(state_file.read_text())
    state["components"] = {
        n: r for n, r in state["components"].items() if not n.startswith("real-node-")
    }
    state_file.write_text(json.dumps(state))
    assert footprint(plane.state_dir)["processes"] != before["processes"]
    plane.down()
    assert footprint(plane.state_dir) == before


def test_pods_of_two_real_nodes_reach_each_other(
    tmp_path: Path, local_registry: LocalRegistry, podtool_image: str
) -> None:
    plane = LocalControlPlane(
        tmp_path / "two",
        nodes=0,
        real_nodes=2,
        bind_to_parent=True,
        insecure_registries=(local_registry.address,),
    )
    before = footprint(plane.state_dir)
    try:
        plane.up()
        with _client(plane) as client:
            ips = {}
            for index in (0, 1):
                pod = _pod(f"web-{index}", podtool_image, real=True)
                pod["spec"]["nodeName"] = f"real-node-{index}"
                assert client.post("/api/v1/namespaces/default/pods", json=pod).status_code == 201
            for index in (0, 1):
                ips[index] = _wait_running(client, f"web-{index}")["status"]["podIP"]
        layouts = [realnode.NodeLayout.plan(plane.state_dir, i) for i in (0, 1)]
        for index, layout in enumerate(layouts):
            assert ipaddress.ip_address(ips[index]) in ipaddress.ip_network(layout.subnet)
        # From web-0's network namespace to web-1, over the cluster's bridge.
        (netns,) = [
            ns.split()[0]
            for ns in _lines(["ip", "netns", "list"])
            if f" {ips[0]}/" in " ".join(_lines(["ip", "-n", ns.split()[0], "-o", "-4", "addr"]))
        ]
        fetch = "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1]).read())"
        answer = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", fetch, f"http://{ips[1]}:8080/"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert answer.stdout == "b'podtool web-1\\n'\n", answer.stderr
        plane.down()  # the first node goes first: the second keeps its address until its turn
    finally:
        plane.down()
    assert footprint(plane.state_dir) == before


# -- the example operator in a pod on a real node (issue 21, item 4, first part) --------------

SOL = "example-solution"
ENV = "real"


@pytest.fixture
def builtin_registry(example_archives: Any, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """``solutions registry serve`` on a loopback port; yields (config, endpoint)."""
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    config = write_config(tmp_path / "etc" / "solutions.yaml", [], endpoint=endpoint)
    text = config.read_text() + f"  listen: {endpoint}\n"
    config.write_text(text)
    with serve_command(config):
        yield config, endpoint


def test_the_operator_runs_in_a_pod_on_a_real_node_from_the_archive(
    example_archives: Any,
    builtin_registry: tuple[Path, str],
    local_registry: LocalRegistry,
    podtool_image: str,
    tmp_path: Path,
) -> None:
    config, endpoint = builtin_registry
    plane = LocalControlPlane(
        tmp_path / "c",
        nodes=0,
        real_nodes=1,
        bind_to_parent=True,
        insecure_registries=(endpoint, local_registry.address),
    )
    before = footprint(plane.state_dir)
    try:
        info = plane.up()

        def run(*args: str) -> str:
            done = cli(config, info.kubeconfig, *args, timeout=300)
            assert done.returncode == 0, f"solutions {' '.join(args)}: {done.stdout}{done.stderr}"
            return done.stdout

        run(
            "import", "--key", str(example_archives.public_key), str(example_archives.isos["1.0.0"])
        )
        run("activate", SOL, "--version", "1.0.0")
        run("env", "create", ENV)
        run("env", "add-solution", ENV, SOL, "1.0.0", "--timeout", "240")

        with httpx.Client(
            base_url=info.server, verify=plane.admin_ssl_context(), timeout=10
        ) as client:
            dep = client.get(f"/apis/apps/v1/namespaces/{ENV}/deployments/{SOL}-operator").json()
            image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image.startswith(f"{endpoint}/{SOL}-1.0.0/{SOL}-operator@sha256:"), image
            pods = client.get(
                f"/api/v1/namespaces/{ENV}/pods",
                params={"labelSelector": "app.kubernetes.io/component=operator"},
            ).json()["items"]
            (pod,) = pods
            assert pod["spec"]["nodeName"] == "real-node-0"
            assert pod["status"]["phase"] == "Running", json.dumps(pod["status"])[:800]
            (status,) = pod["status"]["containerStatuses"]
            assert status["ready"] is True
            # The running image is the archive's, by digest.
            digest = image.split("@", 1)[1]
            assert status["imageID"].endswith("@" + digest), status
            described = example_archives.info["versions"]["1.0.0"]["images"]
            assert digest in json.dumps(described)
            # Its own ServiceAccount, the one the engine made and bound.
            assert (
                pod["spec"]["serviceAccountName"]
                == dep["spec"]["template"]["spec"]["serviceAccountName"]
            )
            # It reads and writes the API with that identity: it serves an instance by
            # creating its base-server Deployment.
            run(*journey._instance(ENV, "1.0.0", 1))
            api = journey.ApiClient(client)
            deadline = time.monotonic() + 120
            while (wrong := journey.base_server(ENV)(api)) is not None:
                assert time.monotonic() < deadline, wrong
                time.sleep(0.5)
            log = client.get(f"/api/v1/namespaces/{ENV}/pods/{pod['metadata']['name']}/log")
            assert log.status_code == 200, log.text

            # base-server runs too, pulled the same way, and answers with its version (from
            # the host, on the pod's address: the host has no route to the Service range).
            web = client.get(f"/apis/apps/v1/namespaces/{ENV}/deployments/web").json()
            selector = ",".join(
                f"{k}={v}" for k, v in web["spec"]["selector"]["matchLabels"].items()
            )
            deadline = time.monotonic() + 120
            while True:
                (server,) = client.get(
                    f"/api/v1/namespaces/{ENV}/pods", params={"labelSelector": selector}
                ).json()["items"] or [{}]
                statuses = server.get("status", {}).get("containerStatuses") or [{}]
                if statuses[0].get("ready"):
                    break
                assert time.monotonic() < deadline, json.dumps(server.get("status"))[:800]
                time.sleep(0.5)
            assert server["spec"]["nodeName"] == "real-node-0"
            answer = httpx.get(f"http://{server['status']['podIP']}:8080/version", timeout=5)
            assert answer.json()["version"] == "1.0.0"
            # And through its Service, by name, from a pod (in default: the environment admits
            # only the Solution's images).
            reader = _pod("reader", podtool_image, real=False)
            reader["spec"]["restartPolicy"] = "Never"
            url = f"http://web.{ENV}.svc/version"
            reader["spec"]["containers"][0]["command"] = ["/podtool", "get", url]
            assert client.post("/api/v1/namespaces/default/pods", json=reader).status_code == 201
            _wait_phase(client, "reader", "Succeeded")
            log = client.get("/api/v1/namespaces/default/pods/reader/log").text
            assert log.splitlines()[0] == f"GET {url}: 200", log
            assert json.loads(log.splitlines()[1])["version"] == "1.0.0", log

        run("env", "delete-solution", ENV, SOL, "--timeout", "120")
        run("env", "delete", ENV, "--timeout", "120")
    finally:
        plane.down()
    assert footprint(plane.state_dir) == before
