"""A real Kubernetes control plane on loopback, without Docker: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK with fake nodes.

Usage from Python (tests, or a Solution developer's own suite)::

    plane = LocalControlPlane(state_dir, nodes=2)
    info = plane.up()            # returns once nodes are Ready and accounts are provisioned
    ...                          # talk to info.kubeconfig
    plane.down()

The state (ports, pids, logs, certificates) lives in ``state_dir``, so ``status`` and ``down``
work from another process: that is how ``solutions dev cluster up|status|down`` are built.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# lightkube's HTTP client (httpx2 keeps httpx's API): one HTTP stack in the process, not two.
import httpx2 as httpx
import yaml

from metalk8s_solutions.errors import ComponentFailure, EnvironmentFailure
from metalk8s_solutions.testing import binaries, podtool, realnode
from metalk8s_solutions.testing.paths import default_state_dir
from metalk8s_solutions.testing.pki import (
    CertificateAuthority,
    KeyPair,
    kubeconfig_document,
    service_account_keys,
)
from metalk8s_solutions.testing.processes import (
    ProcessRecord,
    check_port_free,
    free_port,
    spawn,
    wait_until,
)

HOST = "127.0.0.1"
#: Services' cluster IPs: a range next to the real nodes' pod range (10.245.0.0/16), routed
#: only inside pods (to their node's IP, where kube-proxy translates it), never on the host.
SERVICE_CIDR = "10.246.0.0/24"
#: The ``kubernetes`` Service's cluster IP (the first of the range), in the serving certificate.
API_SERVICE_IP = "10.246.0.1"
POD_CIDR = "10.244.0.1/16"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
STATE_FILE = "state.json"

CONTROLLERS = (
    "namespace-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "pod-garbage-collector-controller",
    "clusterrole-aggregation-controller",
    "endpointslice-controller",
    # Lifts the not-ready taint once KWOK reports a node Ready, and evicts pods from nodes that
    # go away, so that they are rescheduled elsewhere.
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "root-ca-certificate-publisher-controller",
)


@dataclass(frozen=True)
class ClusterInfo:
    """Where a running local control plane is and how to reach it."""

    state_dir: Path
    server: str
    kubeconfig: Path
    nodes: int
    version: str
    components: dict[str, ProcessRecord] = field(default_factory=dict)
    #: names of the real (kubelet + containerd) nodes
    real_nodes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kubeconfig": str(self.kubeconfig),
            "nodes": self.nodes,
            "version": self.version,
            "stateDir": str(self.state_dir),
            "components": {n: r.to_json() for n, r in self.components.items()},
            "realNodes": list(self.real_nodes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterInfo:
        return cls(
            state_dir=Path(data["stateDir"]),
            server=str(data["server"]),
            kubeconfig=Path(data["kubeconfig"]),
            nodes=int(data["nodes"]),
            version=str(data["version"]),
            components={n: ProcessRecord.from_json(r) for n, r in dict(data["components"]).items()},
            real_nodes=tuple(str(n) for n in data.get("realNodes", ())),
        )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class LocalControlPlane:
    """Start, inspect and stop one local control plane rooted at ``state_dir``."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        nodes: int = 1,
        real_nodes: int = 0,
        insecure_registries: tuple[str, ...] = (),
        api_port: int | None = None,
        bind_to_parent: bool = False,
        apiserver_args: tuple[str, ...] = (),
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if nodes < 0:
            raise EnvironmentFailure(f"--nodes must be 0 or more, not {nodes}")
        if real_nodes < 0:
            raise EnvironmentFailure(f"--real-nodes must be 0 or more, not {real_nodes}")
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.nodes = nodes
        self.real_nodes = real_nodes
        self.insecure_registries = insecure_registries
        self.api_port = api_port
        self.bind_to_parent = bind_to_parent
        self.apiserver_args = apiserver_args
        self._records: dict[str, ProcessRecord] = {}
        self._machine_lock: int | None = None  # the real-node lock a test process holds
        self._progress = progress
        self._t0 = time.monotonic()

    def _say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(f"[{time.monotonic() - self._t0:5.1f}s] {message}")

    # -- paths -------------------------------------------------------------------------------

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    # -- state -------------------------------------------------------------------------------

    def info(self) -> ClusterInfo | None:
        """The recorded cluster, or None when nothing was started here."""
        try:
            data = json.loads((self.state_dir / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise EnvironmentFailure(
                f"{self.state_dir / STATE_FILE} is unreadable ({err})",
                hint="run 'solutions dev cluster down' to clean it up",
            ) from err
        return ClusterInfo.from_json(data)

    def status(self) -> dict[str, Any]:
        """Whether each component runs and whether the API server answers."""
        info = self.info()
        if info is None:
            return {"state": "absent", "stateDir": str(self.state_dir)}
        running = {n: r.alive() for n, r in info.components.items()}
        ready = False
        nodes_ready = 0
        real: list[dict[str, Any]] = [
            {"name": n, "ready": False, "address": None} for n in info.real_nodes
        ]
        if running.get("kube-apiserver"):
            with contextlib.suppress(Exception), self._admin_client(info.server) as client:
                ready = client.get("/readyz").status_code == 200
                nodes_ready = self._ready_nodes(client)
                real = [self._real_node_status(client, n) for n in info.real_nodes]
        if all(running.values()) and ready:
            state = "running"
        elif any(running.values()):
            state = "degraded"
        else:
            state = "stopped"
        return {
            "state": state,
            "server": info.server,
            "kubeconfig": str(info.kubeconfig),
            "version": info.version,
            "nodes": info.nodes,
            "nodesReady": nodes_ready,
            "realNodes": real,
            "stateDir": str(self.state_dir),
            "components": {
                n: {"running": running[n], "pid": r.pid, "log": r.log}
                for n, r in info.components.items()
            },
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def up(self, *, timeout: float = 180.0) -> ClusterInfo:
        """Start every component and wait until the cluster can run pods."""
        existing = self.info()
        if existing is not None:
            if self.status()["state"] == "running":
                return existing
            self.down()  # leftovers of a crashed run: clear them first
        if self.api_port is not None:
            check_port_free(self.api_port, HOST, what="kube-apiserver")
        self._t0 = time.monotonic()
        wanted = list(binaries.CONTROL_PLANE_BINARIES)
        if self.real_nodes:
            reason = realnode.host_can_run_real_nodes()
            if reason is not None:
                raise EnvironmentFailure(f"cannot start real nodes: {reason}")
            wanted += binaries.REAL_NODE_BINARIES
        if self.real_nodes and self.bind_to_parent and self._machine_lock is None:
            # A test process: wait for another one's real nodes to stop rather than fail.
            self._machine_lock = realnode.hold_machine(
                lambda m: print(f"solutions: {m}", file=sys.stderr, flush=True)
            )
        realnode.sweep_orphans()  # real nodes of a test run that died (a glob when none)
        try:
            paths = binaries.ensure(wanted)
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.logs.mkdir(exist_ok=True)
            started = time.monotonic()
            try:
                info = self._start(paths, timeout)
            except BaseException:
                self._stop_records()
                raise
        except BaseException:
            self._release_machine()
            raise
        (self.state_dir / "startup-seconds").write_text(f"{time.monotonic() - started:.2f}\n")
        return info

    def down(self) -> bool:
        """Stop every component and delete the state; True if anything was running."""
        info = self.info()
        was_running = False
        if info is not None:
            self._records = dict(info.components)
            was_running = any(r.alive() for r in self._records.values())
        self._stop_records()
        if not was_running and realnode.node_dirs(self.state_dir):
            was_running = True
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
        self._release_machine()
        return was_running

    def _release_machine(self) -> None:
        if self._machine_lock is not None:
            os.close(self._machine_lock)
            self._machine_lock = None

    def _stop_records(self) -> None:
        # Real nodes first (each in its own order, and whatever they left), then the rest in
        # reverse start order: clients first, etcd last.
        for node_dir in realnode.node_dirs(self.state_dir):
            prefix = node_dir.name + "/"
            mine = [r for n, r in self._records.items() if n.startswith(prefix)]
            realnode.sweep(node_dir, mine)
            self._records = {n: r for n, r in self._records.items() if not n.startswith(prefix)}
        for name in reversed(list(self._records)):
            self._records[name].stop()
        self._records = {}

    # -- internals ---------------------------------------------------------------------------

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ProcessRecord:
        record = spawn(
            name, argv, self.logs / f"{name}.log", bind_to_parent=self.bind_to_parent, env=env
        )
        self._records[name] = record
        return record

    def _client_kubeconfig(
        self, ca: CertificateAuthority, server: str, user: str, groups: tuple[str, ...]
    ) -> Path:
        pair = ca.issue(user, organizations=groups, client=True)
        doc = kubeconfig_document(server, ca.cert_pem, pair.cert_pem, pair.key_pem, user)
        path = self.pki / f"{user.replace(':', '-')}.kubeconfig"
        _write_private(path, yaml.safe_dump(doc).encode())
        return path

    def admin_ssl_context(self) -> ssl.SSLContext:
        """TLS context trusting the local CA and presenting the admin client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _get(self, server: str, path: str) -> httpx.Response:
        with httpx.Client(verify=self.admin_ssl_context(), timeout=5) as client:
            return client.get(server + path)

    def _write_pki(self) -> tuple[CertificateAuthority, KeyPair]:
        """CA, serving cert, admin client cert and service-account keys, on disk."""
        ca = CertificateAuthority.create()
        _write_private(self.pki / "ca.crt", ca.cert_pem)
        _write_private(self.pki / "ca.key", ca.key_pem)
        addresses = [HOST, API_SERVICE_IP]
        if self.real_nodes:  # pods reach the API server through the first node's IP
            addresses.append(realnode.NodeLayout.plan(self.state_dir, 0).node_ip)
        serving = ca.issue(
            "kube-apiserver",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=tuple(addresses),
            server=True,
        )
        _write_private(self.pki / "apiserver.crt", serving.cert_pem)
        _write_private(self.pki / "apiserver.key", serving.key_pem)
        admin = ca.issue("solutions-admin", organizations=("system:masters",), client=True)
        _write_private(self.pki / "admin.crt", admin.cert_pem)
        _write_private(self.pki / "admin.key", admin.key_pem)
        sa_key, sa_pub = service_account_keys()
        _write_private(self.pki / "sa.key", sa_key)
        _write_private(self.pki / "sa.pub", sa_pub)
        return ca, admin

    def _start(self, paths: dict[str, Path], timeout: float) -> ClusterInfo:
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(deadline - time.monotonic(), 1.0)

        ca, admin = self._write_pki()
        etcd_port, peer_port = free_port(), free_port()
        etcd = self._spawn(
            "etcd",
            [
                str(paths["etcd"]),
                "--name=solutions-local",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls=http://{HOST}:{etcd_port}",
                f"--advertise-client-urls=http://{HOST}:{etcd_port}",
                f"--listen-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{HOST}:{peer_port}",
                f"--initial-cluster=solutions-local=http://{HOST}:{peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
        )
        etcd_url = f"http://{HOST}:{etcd_port}"

        def etcd_ready() -> bool:
            return bool(httpx.get(etcd_url + "/health", timeout=2).json().get("health") == "true")

        wait_until(etcd, etcd_ready, timeout=remaining(), what="answer /health")
        self._say(f"etcd ready on {etcd_url}")

        # kube-apiserver
        api_port = self.api_port or free_port()
        server = f"https://{HOST}:{api_port}"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                str(paths["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={api_port}",
                f"--tls-cert-file={self.pki / 'apiserver.crt'}",
                f"--tls-private-key-file={self.pki / 'apiserver.key'}",
                f"--client-ca-file={self.pki / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                f"--service-account-issuer={server}",
                f"--service-account-key-file={self.pki / 'sa.pub'}",
                f"--service-account-signing-key-file={self.pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                *self._kubelet_client_args(ca),
                *self.apiserver_args,
            ],
        )
        wait_until(
            apiserver,
            lambda: self._get(server, "/readyz").status_code == 200,
            timeout=remaining(),
            what="answer /readyz",
        )
        self._say(f"kube-apiserver {server} ready")
        version = str(self._get(server, "/version").json().get("gitVersion", "unknown"))

        cm_kubeconfig = self._client_kubeconfig(ca, server, "system:kube-controller-manager", ())
        sched_kubeconfig = self._client_kubeconfig(ca, server, "system:kube-scheduler", ())
        kwok_kubeconfig = self._client_kubeconfig(ca, server, "kwok", ("system:masters",))
        admin_doc = kubeconfig_document(
            server, ca.cert_pem, admin.cert_pem, admin.key_pem, "solutions-admin"
        )
        _write_private(self.kubeconfig, yaml.safe_dump(admin_doc).encode())

        cm_port, sched_port, kwok_port = free_port(), free_port(), free_port()
        cm = self._spawn(
            "kube-controller-manager",
            [
                str(paths["kube-controller-manager"]),
                f"--kubeconfig={cm_kubeconfig}",
                f"--authentication-kubeconfig={cm_kubeconfig}",
                f"--authorization-kubeconfig={cm_kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={cm_port}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                "--leader-elect=false",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-namespace-syncs=10",
            ],
        )
        sched = self._spawn(
            "kube-scheduler",
            [
                str(paths["kube-scheduler"]),
                f"--kubeconfig={sched_kubeconfig}",
                f"--authentication-kubeconfig={sched_kubeconfig}",
                f"--authorization-kubeconfig={sched_kubeconfig}",
                f"--bind-address={HOST}",
                f"--secure-port={sched_port}",
                "--leader-elect=false",
            ],
        )
        kwok_home = self.state_dir / "kwok"
        kwok_home.mkdir(exist_ok=True)
        kwok_config = kwok_home / "kwok.yaml"
        kwok_config.write_text(
            "apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n"
        )
        kwok = self._spawn(
            "kwok",
            [
                str(paths["kwok"]),
                f"--config={kwok_config}",
                f"--kubeconfig={kwok_kubeconfig}",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={POD_CIDR}",
                "--node-ip=10.244.0.1",
                f"--server-address={HOST}:{kwok_port}",
                "--node-lease-duration-seconds=40",
            ],
            env=dict(os.environ, HOME=str(kwok_home)),
        )

        def healthz(port: int) -> bool:
            resp = httpx.get(f"https://{HOST}:{port}/healthz", verify=False, timeout=2)
            return resp.status_code == 200

        wait_until(cm, lambda: healthz(cm_port), timeout=remaining(), what="answer /healthz")
        wait_until(sched, lambda: healthz(sched_port), timeout=remaining(), what="answer /healthz")
        wait_until(
            kwok,
            lambda: httpx.get(f"http://{HOST}:{kwok_port}/healthz", timeout=2).status_code == 200,
            timeout=remaining(),
            what="answer /healthz",
        )

        self._say("controller-manager, scheduler and kwok ready")
        info = ClusterInfo(
            state_dir=self.state_dir,
            server=server,
            kubeconfig=self.kubeconfig,
            nodes=self.nodes,
            version=version,
            components=dict(self._records),
        )
        (self.state_dir / STATE_FILE).write_text(json.dumps(info.to_json(), indent=2))

        self._provision(server, kwok, cm, remaining())
        if self.real_nodes:
            info = self._start_real_nodes(info, ca, paths, remaining())
        return info

    def _kubelet_client_args(self, ca: CertificateAuthority) -> list[str]:
        """How kube-apiserver reaches real kubelets (logs, exec): none without real nodes."""
        if not self.real_nodes:
            return []
        pair = ca.issue(
            "kube-apiserver-kubelet-client", organizations=("system:masters",), client=True
        )
        _write_private(self.pki / "apiserver-kubelet-client.crt", pair.cert_pem)
        _write_private(self.pki / "apiserver-kubelet-client.key", pair.key_pem)
        return [
            f"--kubelet-client-certificate={self.pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={self.pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _start_real_nodes(
        self, info: ClusterInfo, ca: CertificateAuthority, paths: dict[str, Path], timeout: float
    ) -> ClusterInfo:
        """Start the real nodes one after the other; wait until each is Ready.

        The first one also runs the cluster's services (the API server's relay on its IP,
        kube-proxy): the ``kubernetes`` EndpointSlice points pods at that relay.
        """
        deadline = time.monotonic() + timeout
        api_port = int(info.server.rsplit(":", 1)[1])
        services = realnode.ClusterServices(
            kube_proxy=paths["kube-proxy"],
            coredns=paths["coredns"],
            podtool=podtool.ensure_podtool(),
            api_port=api_port,
        )
        first = realnode.NodeLayout.plan(self.state_dir, 0)
        with self._admin_client(info.server) as client:
            # Kubelets authenticate as system:node:<name> in group system:nodes; with RBAC
            # alone (no Node authorizer) that group needs the bootstrap role bound.
            binding = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "solutions:real-nodes"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:node",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Group",
                        "name": "system:nodes",
                    }
                ],
            }
            resp = client.post(
                "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json=binding
            )
            if resp.status_code not in (200, 201, 409):
                raise ComponentFailure("kube-apiserver", f"cannot bind system:nodes: {resp.text}")
            self._kubernetes_endpoints(client, first.node_ip, api_port)
            self._coredns_rbac(client)
            names: list[str] = []
            for index in range(self.real_nodes):
                layout = realnode.NodeLayout.plan(self.state_dir, index)
                node = realnode.RealNode(
                    layout,
                    server=info.server,
                    ca=ca,
                    ca_file=self.pki / "ca.crt",
                    kubelet=paths["kubelet"],
                    bind_to_parent=self.bind_to_parent,
                    service_cidr=SERVICE_CIDR,
                    cluster_dns=first.node_ip,
                    services=services if index == 0 else None,
                    # Beside fake nodes, only pods that ask run on real ones; in a cluster of
                    # real nodes only, the product's pods run there as it makes them.
                    taint=self.nodes > 0,
                    insecure_registries=self.insecure_registries,
                    say=self._say,
                )
                try:
                    node.start(max(deadline - time.monotonic(), 1.0))
                finally:
                    self._records.update(node.records)
                names.append(layout.name)
                info = ClusterInfo(
                    state_dir=info.state_dir,
                    server=info.server,
                    kubeconfig=info.kubeconfig,
                    nodes=info.nodes,
                    version=info.version,
                    components=dict(self._records),
                    real_nodes=tuple(names),
                )
                (self.state_dir / STATE_FILE).write_text(json.dumps(info.to_json(), indent=2))

                def node_ready(node_name: str = layout.name) -> bool:
                    return bool(self._real_node_status(client, node_name)["ready"])

                wait_until(
                    node.records[f"{layout.name}/kubelet"],
                    node_ready,
                    timeout=max(deadline - time.monotonic(), 1.0),
                    what="report its node Ready",
                )
                self._say(f"{layout.name} Ready ({layout.node_ip}, pods in {layout.subnet})")
        return info

    @staticmethod
    def _coredns_rbac(client: httpx.Client) -> None:
        """What CoreDNS's kubernetes plugin reads (as in CoreDNS's own deployment manifest)."""
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        name = realnode.COREDNS_USER
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"],
                },
                {
                    "apiGroups": ["discovery.k8s.io"],
                    "resources": ["endpointslices"],
                    "verbs": ["list", "watch"],
                },
            ],
        }
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
        }
        for kind, body in (("clusterroles", role), ("clusterrolebindings", binding)):
            resp = client.post(f"{rbac}/{kind}", json=body)
            if resp.status_code not in (200, 201, 409):
                raise ComponentFailure(
                    "kube-apiserver", f"cannot create {kind} {name}: {resp.text}"
                )

    @staticmethod
    def _kubernetes_endpoints(client: httpx.Client, address: str, port: int) -> None:
        """The ``kubernetes`` Service's EndpointSlice: the API server as pods reach it.

        kube-apiserver runs with ``--endpoint-reconciler-type=none`` (its own address is
        loopback, which pods cannot reach), so the harness writes the slice itself.
        """
        body: dict[str, Any] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {
                    "kubernetes.io/service-name": "kubernetes",
                    "endpointslice.kubernetes.io/managed-by": "dev-cluster.solutions.metalk8s.io",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
        path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
        resp = client.post(path, json=body)
        if resp.status_code == 409:
            current = client.get(f"{path}/kubernetes").json()
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            resp = client.put(f"{path}/kubernetes", json=body)
        if resp.status_code not in (200, 201):
            raise ComponentFailure(
                "kube-apiserver", f"cannot write the kubernetes EndpointSlice: {resp.text}"
            )

    @staticmethod
    def _real_node_status(client: httpx.Client, name: str) -> dict[str, Any]:
        node = client.get(f"/api/v1/nodes/{name}")
        ready = False
        address = None
        if node.status_code == 200:
            status = node.json().get("status", {})
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions", [])
            )
            address = next(
                (a["address"] for a in status.get("addresses", []) if a["type"] == "InternalIP"),
                None,
            )
        return {"name": name, "ready": ready, "address": address}

    def _provision(
        self, server: str, kwok: ProcessRecord, cm: ProcessRecord, timeout: float
    ) -> None:
        """Create the fake nodes and wait until pods can be scheduled."""
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(deadline - time.monotonic(), 1.0)

        with self._admin_client(server) as client:
            for index in range(self.nodes):
                self._create_node(client, f"kwok-node-{index}")
            wait_until(
                kwok,
                lambda: self._ready_nodes(client) >= self.nodes,
                timeout=remaining(),
                what=f"make {self.nodes} fake node(s) Ready",
            )
            # Pods can be created once the default ServiceAccount exists.
            wait_until(
                cm,
                lambda: (
                    client.get("/api/v1/namespaces/default/serviceaccounts/default").status_code
                    == 200
                ),
                timeout=remaining(),
                what="create the default ServiceAccount",
            )
        self._say(f"{self.nodes} node(s) Ready, service accounts provisioned")

    def _admin_client(self, server: str) -> httpx.Client:
        return httpx.Client(base_url=server, verify=self.admin_ssl_context(), timeout=10)

    def add_node(self, name: str) -> None:
        """Create one more fake node (KWOK makes it Ready)."""
        info = self._require()
        with self._admin_client(info.server) as client:
            self._create_node(client, name)

    def _require(self) -> ClusterInfo:
        info = self.info()
        if info is None:
            raise EnvironmentFailure(
                f"no local control plane in {self.state_dir}",
                hint="start one with 'solutions dev cluster up'",
            )
        return info

    @staticmethod
    def _create_node(client: httpx.Client, name: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/hostname": name,
                    "type": "kwok",
                },
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "fake",
                    "kubeProxyVersion": "fake",
                },
            },
        }
        resp = client.post("/api/v1/nodes", json=body)
        if resp.status_code not in (200, 201, 409):
            raise ComponentFailure("kube-apiserver", f"cannot create node {name}: {resp.text}")

    @staticmethod
    def _ready_nodes(client: httpx.Client) -> int:
        items = client.get("/api/v1/nodes").json().get("items", [])
        count = 0
        for node in items:
            for cond in node.get("status", {}).get("conditions", []):
                if cond.get("type") == "Ready" and cond.get("status") == "True":
                    count += 1
        return count

    def user_kubeconfig(
        self, user: str, groups: tuple[str, ...] = (), path: Path | None = None
    ) -> Path:
        """Mint a kubeconfig for a non-admin ``user`` in ``groups`` (client certificate)."""
        info = self._require()
        ca = CertificateAuthority.load(self.pki / "ca.crt", self.pki / "ca.key")
        pair = ca.issue(user, organizations=groups, client=True)
        doc = kubeconfig_document(info.server, ca.cert_pem, pair.cert_pem, pair.key_pem, user)
        target = path or self.pki / "users" / f"{user}.kubeconfig"
        _write_private(target, yaml.safe_dump(doc).encode())
        return target
