"""Real nodes for the local cluster: a kubelet with containerd, runc and CNI, on this machine.

Each node lives in its own folder under the cluster's state dir (``nodes/<name>/``) and touches
the host only through things it names and records in ``node.json`` before creating them:

- the cluster's Linux bridge ``<bridge>`` (made by its first real node, deleted with its last)
  holding the cluster's range, a /20 of 10.245.0.0/16 that must not be routed on the host yet;
  each node has a /24 of it and its IP is that /24's first address.  Pods are attached to the
  bridge by the CNI bridge plugin with ``ipMasq: false``, no gateway, no default route: a pod
  reaches the pods of every real node of its cluster on the bridge, and nothing else;
- containerd with its own config, root, state and socket under the node folder (never the
  system's /var/lib/containerd or /run/containerd), the CRI plugin on runc
  (``restrict_oom_score_adj``: this sandbox lacks CAP_SYS_RESOURCE), the sandbox image built by
  :mod:`podtool` and imported with ``ctr``;
- kubelet (cgroupfs driver, cgroup v1 allowed) whose pods' cgroups are under ``/<cgroup>`` in
  every hierarchy, registered with a ``system:node:<name>`` client certificate from the
  cluster's CA, labelled :data:`REAL_NODE_LABEL`, and tainted with it when the cluster also has
  fake nodes (``taint``), so that pods land there only when asked; in a cluster of real nodes
  only, every pod runs there unchanged, as on a real cluster;
- on the cluster's first real node only (all of them share the host's network), what makes
  Services work for pods (:class:`ClusterServices`): a TCP relay from the node's IP to the API
  server on loopback (the ``kubernetes`` EndpointSlice points there) and kube-proxy in nftables
  mode, whose rules live in its own ``kube-proxy`` tables, and CoreDNS serving ``cluster.local``
  from the API server on the node's IP, port 53 (every kubelet's ``clusterDNS``).  Pods route
  the Service range to their node's IP, where kube-proxy translates it; nothing is forwarded
  off the bridge.

:func:`sweep` removes all of it from ``node.json`` alone: it runs on ``down``, and on the next
``up`` in the same state dir when a previous run died without ``down``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from metalk8s_solutions.errors import EnvironmentFailure
from metalk8s_solutions.images.containerd import containerd_hosts_dir, containerd_hosts_toml
from metalk8s_solutions.testing import podtool
from metalk8s_solutions.testing.pki import CertificateAuthority, kubeconfig_document
from metalk8s_solutions.testing.processes import (
    ProcessRecord,
    _start_ticks,
    free_port,
    spawn,
    wait_until,
)

REAL_NODE_LABEL = "solutions.metalk8s.io/real-node"
NODE_FILE = "node.json"
CGROUP_ROOT = Path("/sys/fs/cgroup")
RUN_ROOT = Path("/run/metalk8s-solutions")
#: One marker per running real node, machine-wide: see :func:`sweep_orphans`.
MARKERS = RUN_ROOT / "real-nodes"
#: Present while kubelet's iptables chains are ours to delete (the machine had none before).
CHAINS_OURS = MARKERS.parent / "kubelet-chains-ours"
#: The host's values of the kernel tunables kubelet sets, saved by the first real node and put
#: back by the last one.
TUNABLES_BEFORE = RUN_ROOT / "kernel-tunables-before.json"
KERNEL_TUNABLES = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
SHIM_SOCKETS = Path("/run/containerd/s")
CNI_CACHE = Path("/var/lib/cni/results")
INSTALL_HINT = (
    "install containerd, runc, containernetworking-plugins and nftables "
    "('apt-get install containerd runc containernetworking-plugins nftables', "
    "or 'make setup' as root)"
)
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
NODES_PER_CLUSTER = 16
#: Names the real node whose kube-proxy owns the machine's ``kube-proxy`` nftables tables.
KUBE_PROXY_OWNER = RUN_ROOT / "kube-proxy-owner"
#: The cluster's DNS domain, and the user CoreDNS reads the API server as.
CLUSTER_DOMAIN = "cluster.local"
COREDNS_USER = "solutions:coredns"
#: kube-proxy's tables in nftables mode (its table name is fixed: one kube-proxy per machine).
KUBE_PROXY_TABLES = (("ip", "kube-proxy"), ("ip6", "kube-proxy"))
#: Held (``flock``) by the test process whose cluster has real nodes: there can be one such
#: cluster per machine, so a second test process waits for the first instead of failing.
MACHINE_LOCK = RUN_ROOT / "real-nodes.lock"
#: How long a test process waits for that lock, in seconds (environment variable).
LOCK_WAIT_ENV = "SOLUTIONS_REAL_NODES_WAIT"


def hold_machine(say: Callable[[str], None] | None = None) -> int:
    """Take the machine's real-node lock, waiting for another test process to release it.

    Returns the lock's file descriptor; closing it (or the process ending) releases the lock.
    """
    import fcntl  # noqa: PLC0415

    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    fd = os.open(MACHINE_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    wait = float(os.environ.get(LOCK_WAIT_ENV, "3600"))
    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise EnvironmentFailure(
                    f"another test process has run a cluster with real nodes for over {wait:.0f} s "
                    f"(it holds {MACHINE_LOCK})",
                    hint=f"wait for it to end, or raise {LOCK_WAIT_ENV}",
                ) from None
            if not told and say is not None:
                say("waiting for another test process's cluster with real nodes to stop")
                told = True
            time.sleep(1.0)


@dataclass(frozen=True)
class ClusterServices:
    """What the cluster's first real node runs for every pod of the cluster."""

    kube_proxy: Path
    coredns: Path
    #: the static tool whose ``forward`` relays the node IP's ``api_port`` to the API server
    podtool: Path
    #: kube-apiserver's port on 127.0.0.1, relayed on the same port of the node's IP
    api_port: int


@dataclass(frozen=True)
class NodeLayout:
    """Everything a node creates on the host, written to ``node.json`` before it is created."""

    name: str
    dir: str
    bridge: str
    #: the cluster's range, on-link on the bridge for every pod
    cluster_range: str
    #: this node's share of it: its IP and its pods' addresses
    subnet: str
    cgroup: str
    #: short folder for what has a unix socket (108-byte limit): containerd's socket, kubelet's
    #: root dir
    run_dir: str

    @property
    def socket(self) -> str:
        return f"{self.run_dir}/cd.sock"

    @property
    def node_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    @property
    def network(self) -> str:
        """The CNI network's name (libcni's cache files start with it)."""
        return f"solutions-{self.key}"

    @property
    def key(self) -> str:
        """Unique on the machine: names the node's marker."""
        return Path(self.run_dir).name

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeLayout:
        return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})

    @classmethod
    def plan(cls, cluster_dir: Path, index: int) -> NodeLayout:
        """Names and ranges for node ``index`` of the cluster rooted at ``cluster_dir``."""
        if not 0 <= index < NODES_PER_CLUSTER:
            raise EnvironmentFailure(
                f"at most {NODES_PER_CLUSTER} real nodes per cluster, not {index + 1}"
            )
        tag = hashlib.sha256(str(cluster_dir).encode()).hexdigest()[:6]
        base = int(tag, 16) % 16 * 16  # one of 16 /20s of 10.245.0.0/16
        name = f"real-node-{index}"
        node_dir = cluster_dir / "nodes" / name
        return cls(
            name=name,
            dir=str(node_dir),
            bridge=f"slk{tag}",
            cluster_range=f"10.245.{base}.0/20",
            subnet=f"10.245.{base + index}.0/24",
            cgroup=f"solutions-{tag}-{index}",
            run_dir=str(RUN_ROOT / f"{tag}-{index}"),
        )


def host_can_run_real_nodes() -> str | None:
    """None when this host can run real nodes, else the reason why not."""
    if os.geteuid() != 0:
        return "real nodes need root (network bridges, mounts, cgroups)"
    for program in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "nft"):
        if shutil.which(program) is None:
            return f"{program} is not installed; {INSTALL_HINT}"
    if _cni_bin_dir() is None:
        return f"the CNI plugins (bridge, host-local, loopback) are missing; {INSTALL_HINT}"
    return None


def _cni_bin_dir() -> str | None:
    for folder in CNI_BIN_DIRS:
        if all((Path(folder) / p).is_file() for p in ("bridge", "host-local", "loopback")):
            return folder
    return None


def _run(argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise EnvironmentFailure(
            f"'{' '.join(argv)}' failed: {(result.stderr or result.stdout).strip()[:300]}"
        )
    return result


def _cgroup_hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies (v1 controllers, named ones, and the unified one)."""
    seen: set[Path] = set()
    found: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in sorted(CGROUP_ROOT.iterdir()):
            real = entry.resolve()
            if entry.is_dir() and real not in seen and (real / "cgroup.procs").exists():
                seen.add(real)
                found.append(real)
    if not found and (CGROUP_ROOT / "cgroup.procs").exists():
        found.append(CGROUP_ROOT)  # pure cgroup v2
    return found


def _make_cgroup(name: str) -> None:
    for hierarchy in _cgroup_hierarchies():
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # v1 cpuset: empty until inherited
            if (path / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((hierarchy / knob).read_text())


class RealNode:
    """Start and stop one real node; ``sweep`` cleans up after it from its folder alone."""

    def __init__(
        self,
        layout: NodeLayout,
        *,
        server: str,
        ca: CertificateAuthority,
        ca_file: Path,
        kubelet: Path,
        bind_to_parent: bool,
        service_cidr: str,
        cluster_dns: str,
        services: ClusterServices | None = None,
        taint: bool = True,
        insecure_registries: tuple[str, ...] = (),
        say: Callable[[str], None] = lambda _m: None,
    ) -> None:
        self.layout = layout
        self.dir = Path(layout.dir)
        self.server = server
        self.ca = ca
        self.ca_file = ca_file
        self.kubelet = kubelet
        self.bind_to_parent = bind_to_parent
        self.service_cidr = service_cidr
        self.cluster_dns = cluster_dns
        self.services = services
        self.taint = taint
        self.insecure_registries = insecure_registries
        self.records: dict[str, ProcessRecord] = {}
        self._say = say

    # -- start -------------------------------------------------------------------------------

    def start(self, timeout: float) -> dict[str, ProcessRecord]:
        """Network, containerd, sandbox image, kubelet (and the cluster's services on the
        first node); returns the processes started."""
        deadline = time.monotonic() + timeout

        def remaining() -> float:
            return max(deadline - time.monotonic(), 1.0)

        reason = host_can_run_real_nodes()
        if reason is not None:
            raise EnvironmentFailure(f"cannot start real node {self.layout.name}: {reason}")
        if not (Path("/sys/class/net") / self.layout.bridge).exists():
            self._check_range_free(self.layout.cluster_range, "pod range")
        if self.services is not None:
            self._check_range_free(self.service_cidr, "Service range")
            _check_kube_proxy_tables_free()
        self.dir.mkdir(parents=True, exist_ok=True)
        Path(self.layout.run_dir).mkdir(parents=True, exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        (self.dir / NODE_FILE).write_text(json.dumps(self.layout.to_json(), indent=2))
        first = not (MARKERS.is_dir() and list(MARKERS.glob("*.json")))
        if first and not _iptables_has_kube_chains():
            CHAINS_OURS.parent.mkdir(parents=True, exist_ok=True)
            CHAINS_OURS.write_text("kubelet's iptables chains were created by real nodes\n")
        if first:
            _save_tunables()
        _write_marker(self.layout, {})
        self._network()
        _make_cgroup(self.layout.cgroup)
        self._containerd(remaining())
        self._import_pause_image()
        self._say(f"{self.layout.name}: containerd ready, sandbox image imported")
        healthz_port = free_port()
        kubelet = self._kubelet(healthz_port)
        wait_until(
            kubelet,
            lambda: _http_ok(f"http://127.0.0.1:{healthz_port}/healthz"),
            timeout=remaining(),
            what="answer /healthz",
        )
        if self.services is not None:
            self._cluster_services(self.services, remaining())
            self._say(
                f"{self.layout.name}: kube-proxy ready, the API server reachable from pods on "
                f"{self.layout.node_ip}:{self.services.api_port}"
            )
        return dict(self.records)

    def _cluster_services(self, services: ClusterServices, timeout: float) -> None:
        """The API server's relay on the node IP, and kube-proxy (nftables mode)."""
        deadline = time.monotonic() + timeout
        listen = f"{self.layout.node_ip}:{services.api_port}"
        relay = self._spawn(
            "api-relay",
            [str(services.podtool), "forward", listen, f"127.0.0.1:{services.api_port}"],
        )
        wait_until(
            relay,
            lambda: _tcp_open(self.layout.node_ip, services.api_port),
            timeout=max(deadline - time.monotonic(), 1.0),
            what=f"listen on {listen}",
        )
        pki = self.dir / "pki"
        pair = self.ca.issue("system:kube-proxy", client=True)  # bound to system:node-proxier
        kubeconfig = pki / "kube-proxy.kubeconfig"
        doc = kubeconfig_document(
            self.server, self.ca.cert_pem, pair.cert_pem, pair.key_pem, "system:kube-proxy"
        )
        _write_private(kubeconfig, yaml.safe_dump(doc).encode())
        healthz_port, metrics_port = free_port(), free_port()
        config = {
            "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
            "kind": "KubeProxyConfiguration",
            "mode": "nftables",
            "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": self.layout.name,
            "bindAddress": self.layout.node_ip,
            "clusterCIDR": self.layout.cluster_range,
            # Pod to Service to pod on one bridge: without br_netfilter the answer would go
            # straight back to the client pod, around the host's translation; masquerading
            # makes it come back through the host.
            "nftables": {"masqueradeAll": True},
            "detectLocalMode": "ClusterCIDR",
            # NodePorts only on the cluster's bridge, never on the host's own interfaces.
            "nodePortAddresses": [self.layout.cluster_range],
            "healthzBindAddress": f"127.0.0.1:{healthz_port}",
            "metricsBindAddress": f"127.0.0.1:{metrics_port}",
            # Leave the host's conntrack tunables alone.
            "conntrack": {
                "maxPerCore": 0,
                "min": 0,
                "tcpEstablishedTimeout": "0s",
                "tcpCloseWaitTimeout": "0s",
            },
        }
        config_path = self.dir / "kube-proxy.yaml"
        config_path.write_text(yaml.safe_dump(config))
        KUBE_PROXY_OWNER.parent.mkdir(parents=True, exist_ok=True)
        KUBE_PROXY_OWNER.write_text(self.layout.key + "\n")
        proxy = self._spawn(
            "kube-proxy", [str(services.kube_proxy), f"--config={config_path}", "--v=1"]
        )
        wait_until(
            proxy,
            lambda: _http_ok(f"http://127.0.0.1:{healthz_port}/healthz"),
            timeout=max(deadline - time.monotonic(), 1.0),
            what="answer /healthz (its rules in place)",
        )
        self._coredns(services, max(deadline - time.monotonic(), 1.0))

    def _coredns(self, services: ClusterServices, timeout: float) -> None:
        """CoreDNS answering for cluster.local on the node's IP, port 53, from the API server.

        No ``forward``: names outside the cluster get no answer, so pods resolve nothing
        outside this machine.
        """
        pki = self.dir / "pki"
        pair = self.ca.issue(COREDNS_USER, client=True)  # bound by the control plane
        kubeconfig = pki / "coredns.kubeconfig"
        doc = kubeconfig_document(
            self.server, self.ca.cert_pem, pair.cert_pem, pair.key_pem, COREDNS_USER
        )
        _write_private(kubeconfig, yaml.safe_dump(doc).encode())
        health_port, ready_port = free_port(), free_port()
        corefile = self.dir / "Corefile"
        corefile.write_text(
            f"{CLUSTER_DOMAIN}:53 in-addr.arpa:53 ip6.arpa:53 {{\n"
            f"    bind {self.layout.node_ip}\n"
            "    errors\n"
            f"    health 127.0.0.1:{health_port}\n"
            f"    ready 127.0.0.1:{ready_port}\n"
            f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
            f"        kubeconfig {kubeconfig}\n"
            "        pods insecure\n"
            "        fallthrough in-addr.arpa ip6.arpa\n"
            "    }\n"
            "    cache 30\n"
            "}\n"
        )
        record = self._spawn("coredns", [str(services.coredns), "-conf", str(corefile)])
        wait_until(
            record,
            lambda: _http_ok(f"http://127.0.0.1:{ready_port}/ready"),
            timeout=timeout,
            what="answer /ready (the API server's Services read)",
        )

    def _check_range_free(self, cidr: str, what: str) -> None:
        routes = _run(["ip", "-o", "-4", "route", "show", "table", "all"]).stdout
        net = ipaddress.ip_network(cidr)
        for line in routes.splitlines():
            first = line.split()[0] if line.split() else ""
            if first in ("default", "broadcast", "local"):
                continue
            with contextlib.suppress(ValueError):
                if ipaddress.ip_network(first, strict=False).overlaps(net):
                    raise EnvironmentFailure(
                        f"the {what} {net} of the real nodes is already routed on this host "
                        f"({line.strip()})",
                        hint="another local cluster with real nodes may be running: stop it "
                        "with 'solutions dev cluster down --state-dir ...'",
                    )

    def _network(self) -> None:
        bridge = self.layout.bridge
        cluster = ipaddress.ip_network(self.layout.cluster_range)
        if not (Path("/sys/class/net") / bridge).exists():
            _run(["ip", "link", "add", "name", bridge, "type", "bridge"])
            # Each node's address is a secondary of the first: keep them when it goes.
            Path(f"/proc/sys/net/ipv4/conf/{bridge}/promote_secondaries").write_text("1\n")
            _contain_forwarding(bridge)
            # Service traffic between pods: kube-proxy translates it on the host, which sends
            # it back onto the bridge.  Forwarding is on for packets received on the bridge
            # only (the host's ip_forward stays as it is), and the table above drops any of
            # them routed anywhere but the bridge.
            Path(f"/proc/sys/net/ipv4/conf/{bridge}/forwarding").write_text("1\n")
            _run(["ip", "link", "set", bridge, "up"])
        _run(["ip", "addr", "add", f"{self.layout.node_ip}/{cluster.prefixlen}", "dev", bridge])
        subnet = ipaddress.ip_network(self.layout.subnet)
        first, *_middle, last = list(subnet.hosts())
        cni = self.dir / "cni"
        (cni / "net.d").mkdir(parents=True, exist_ok=True)
        conflist = {
            "cniVersion": "0.4.0",
            "name": self.layout.network,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": bridge,
                    # No gateway on the pods' side (the plugin would turn on the host's
                    # ip_forward), no masquerade, no default route: traffic stays here.
                    "isGateway": False,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        # The Service range through the node's IP: kube-proxy's rules there.
                        "routes": [{"dst": self.service_cidr, "gw": self.layout.node_ip}],
                        # On-link: the whole cluster range; handed out: this node's share.
                        "ranges": [
                            [
                                {
                                    "subnet": str(cluster),
                                    "rangeStart": str(first + 1),
                                    "rangeEnd": str(last),
                                    "gateway": str(first),
                                }
                            ]
                        ],
                        "dataDir": str(cni / "ipam"),
                    },
                }
            ],
        }
        (cni / "net.d" / "10-solutions.conflist").write_text(json.dumps(conflist, indent=2))

    def _containerd_config(self) -> str:
        d = self.dir / "containerd"
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        lines = [
            "version = 2",
            f'root = "{d / "root"}"',
            f'state = "{d / "state"}"',
            "disabled_plugins = ["
            + ", ".join(
                f'"io.containerd.snapshotter.v1.{s}"' for s in ("aufs", "btrfs", "devmapper", "zfs")
            )
            + ', "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
            "[grpc]",
            f'  address = "{self.layout.socket}"',
            "[ttrpc]",
            f'  address = "{self.layout.socket}.ttrpc"',
            "[metrics]",
            '  address = ""',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{d / "opt"}"',
            f"[{cri}]",
            f'  sandbox_image = "{podtool.PAUSE_IMAGE}"',
            "  restrict_oom_score_adj = true",
            '  stream_server_address = "127.0.0.1"',
            '  stream_server_port = "0"',
            "  enable_selinux = false",
            f"[{cri}.containerd]",
            '  default_runtime_name = "runc"',
            '  snapshotter = "overlayfs"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f'  Root = "{d / "runc"}"',
            f"[{cri}.cni]",
            f'  bin_dir = "{_cni_bin_dir()}"',
            f'  conf_dir = "{self.dir / "cni" / "net.d"}"',
            "  max_conf_num = 1",
            f"[{cri}.registry]",
            f'  config_path = "{d / "certs.d"}"',
        ]
        return "\n".join(lines) + "\n"

    def _containerd(self, timeout: float) -> ProcessRecord:
        d = self.dir / "containerd"
        d.mkdir(exist_ok=True)
        for registry in self.insecure_registries:
            # The file docs/operations/registry.md tells an administrator to write.
            folder = containerd_hosts_dir(registry, PurePosixPath(d / "certs.d"))
            hosts = Path(folder) / "hosts.toml"
            hosts.parent.mkdir(parents=True, exist_ok=True)
            hosts.write_text(containerd_hosts_toml(registry, tls=False))
        config = d / "config.toml"
        config.write_text(self._containerd_config())
        record = self._spawn("containerd", ["containerd", "--config", str(config)])
        wait_until(
            record,
            lambda: self._ctr("version", check=False).returncode == 0,
            timeout=timeout,
            what="answer on its socket",
        )
        return record

    def _ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(["ctr", "--address", self.layout.socket, "-n", "k8s.io", *args], check=check)

    def _import_pause_image(self) -> None:
        tar = self.dir / "pause-image.tar"
        podtool.write_image_tar(tar, podtool.PAUSE_IMAGE, ["/pause"])
        self._ctr("images", "import", "--no-unpack", str(tar))
        tar.unlink()

    def _kubelet(self, healthz_port: int) -> ProcessRecord:
        name = self.layout.name
        pki = self.dir / "pki"
        pki.mkdir(exist_ok=True)
        pair = self.ca.issue(f"system:node:{name}", organizations=("system:nodes",), client=True)

        kubeconfig = pki / "kubelet.kubeconfig"
        doc = kubeconfig_document(
            self.server, self.ca.cert_pem, pair.cert_pem, pair.key_pem, f"system:node:{name}"
        )
        _write_private(kubeconfig, yaml.safe_dump(doc).encode())
        serving = self.ca.issue(
            name, dns_names=(name,), ip_addresses=(self.layout.node_ip,), server=True
        )
        _write_private(pki / "kubelet.crt", serving.cert_pem)
        _write_private(pki / "kubelet.key", serving.key_pem)
        resolv = self.dir / "resolv.conf"
        resolv.write_text("# no name server: pods of the local cluster stay on this machine\n")
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "failCgroupV1": False,
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.layout.cgroup}",
            "cgroupsPerQOS": True,
            "containerRuntimeEndpoint": f"unix://{self.layout.socket}",
            "address": self.layout.node_ip,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "tlsCertFile": str(pki / "kubelet.crt"),
            "tlsPrivateKeyFile": str(pki / "kubelet.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.ca_file)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "registerNode": True,
            "registerWithTaints": (
                [{"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}]
                if self.taint
                else []
            ),
            "podLogsDirectory": str(self.dir / "pod-logs"),
            "resolvConf": str(resolv),
            "clusterDNS": [self.cluster_dns],
            "clusterDomain": CLUSTER_DOMAIN,
            "failSwapOn": False,
            "localStorageCapacityIsolation": False,
            "serializeImagePulls": False,
            "evictionHard": {
                "memory.available": "1Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
                "nodefs.inodesFree": "1%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "nodeStatusReportFrequency": "10s",
            "fileCheckFrequency": "1h",
            "staticPodPath": "",
        }
        config_path = self.dir / "kubelet-config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        return self._spawn(
            "kubelet",
            [
                str(self.kubelet),
                f"--config={config_path}",
                f"--kubeconfig={kubeconfig}",
                f"--root-dir={Path(self.layout.run_dir) / 'kubelet'}",
                f"--cert-dir={pki}",
                f"--hostname-override={name}",
                f"--node-ip={self.layout.node_ip}",
                f"--node-labels={REAL_NODE_LABEL}=true",
                "--v=1",
            ],
        )

    def _spawn(self, component: str, argv: list[str]) -> ProcessRecord:
        name = f"{self.layout.name}/{component}"
        record = spawn(
            name,
            argv,
            self.dir / "logs" / f"{component}.log",
            bind_to_parent=self.bind_to_parent,
        )
        self.records[name] = record
        _write_marker(self.layout, self.records)
        return record


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _contain_forwarding(bridge: str) -> None:
    """The cluster's nftables table: what comes in on the bridge is forwarded only onto it."""
    ruleset = (
        f"table inet {bridge} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter - 1; policy accept;\n"
        f'    iifname "{bridge}" oifname != "{bridge}" drop\n'
        "  }\n"
        "}\n"
    )
    result = subprocess.run(
        ["nft", "-f", "-"], input=ruleset, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise EnvironmentFailure(
            f"cannot create the nftables table 'inet {bridge}': {result.stderr.strip()[:300]}"
        )


def _tcp_open(host: str, port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.create_connection((host, port), timeout=2):
        return True


def _check_kube_proxy_tables_free() -> None:
    for family, table in KUBE_PROXY_TABLES:
        if _run(["nft", "list", "table", family, table], check=False).returncode == 0:
            raise EnvironmentFailure(
                f"the nftables table '{family} {table}' already exists on this host: another "
                "local cluster's real nodes (or another kube-proxy) run kube-proxy here, and "
                "there can be one per machine",
                hint="stop that cluster with 'solutions dev cluster down --state-dir ...'",
            )


def _delete_kube_proxy_tables(key: str) -> None:
    """kube-proxy's nftables tables, if this node's kube-proxy made them."""
    try:
        owner = KUBE_PROXY_OWNER.read_text().strip()
    except OSError:
        return
    if owner != key:
        return
    for family, table in KUBE_PROXY_TABLES:
        _run(["nft", "delete", "table", family, table], check=False)
    KUBE_PROXY_OWNER.unlink(missing_ok=True)


def _http_ok(url: str) -> bool:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (loopback http)
        return bool(resp.status == 200)


# -- cleanup ---------------------------------------------------------------------------------


def node_dirs(cluster_dir: Path) -> list[Path]:
    """The folders of the real nodes recorded under ``cluster_dir``."""
    root = cluster_dir / "nodes"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / NODE_FILE).is_file())


def sweep(node_dir: Path, records: Iterable[ProcessRecord] = ()) -> None:
    """Remove everything the node in ``node_dir`` made (see :func:`sweep_layout`)."""
    try:
        layout = NodeLayout.from_json(json.loads((node_dir / NODE_FILE).read_text()))
    except (OSError, ValueError, KeyError):
        shutil.rmtree(node_dir, ignore_errors=True)
        return
    sweep_layout(layout, records)


def sweep_layout(layout: NodeLayout, records: Iterable[ProcessRecord] = ()) -> None:
    """Remove everything a node made, whatever state it was left in; safe to run twice.

    Processes (CoreDNS, kube-proxy and the API relay, kubelet, containerd, its shims, the
    containers), kube-proxy's nftables tables (when this node's kube-proxy made them), the pods'
    network namespaces
    (those holding an address of the node's range), mounts under the node folder, the bridge,
    the node's cgroups, the node folder and the node's marker.
    """
    node_dir = Path(layout.dir)
    by_name = {r.name.rsplit("/", 1)[-1]: r for r in records}
    for service in ("coredns", "kube-proxy", "api-relay"):
        if service in by_name:
            by_name[service].stop(timeout=10)
    relay = f" forward {layout.node_ip}:"
    services = (f"--config={layout.dir}/kube-proxy.yaml", f"-conf {layout.dir}/Corefile")
    _kill_matching(lambda cmd: relay in cmd or any(s in cmd for s in services))  # not recorded
    _delete_kube_proxy_tables(layout.key)
    if "kubelet" in by_name:
        by_name["kubelet"].stop(timeout=10)
    kubelet_root = f"--root-dir={layout.run_dir}/kubelet"
    _kill_matching(lambda cmd: kubelet_root in cmd)  # one not recorded (a crash during up)
    if "containerd" in by_name and by_name["containerd"].alive():
        _delete_containers(layout.socket)  # lets each shim exit and remove its socket
    _kill_cgroup_processes(layout.cgroup)
    if "containerd" in by_name:
        by_name["containerd"].stop(timeout=10)
    shims = _shim_sockets(layout.socket)
    ours = (layout.socket, layout.dir + "/")
    _kill_matching(lambda cmd: any(w in cmd for w in ours))  # shims, a containerd not recorded
    for socket in shims:
        socket.unlink(missing_ok=True)
    _kill_cgroup_processes(layout.cgroup)
    _delete_pod_netns(layout.subnet)
    _delete_cni_cache(layout.network)
    _unmount_under(node_dir)
    _unmount_under(Path(layout.run_dir))
    _delete_links(layout)
    _remove_cgroup(layout.cgroup)
    shutil.rmtree(node_dir, ignore_errors=True)
    shutil.rmtree(layout.run_dir, ignore_errors=True)
    (MARKERS / f"{layout.key}.json").unlink(missing_ok=True)
    for folder in (SHIM_SOCKETS, SHIM_SOCKETS.parent):  # made by our shims when absent
        with contextlib.suppress(OSError):
            folder.rmdir()
    if not (MARKERS.is_dir() and list(MARKERS.glob("*.json"))):  # the machine's last node
        _delete_kubelet_chains()
        _restore_tunables()


def _save_tunables() -> None:
    """Record the kernel tunables kubelet overwrites (it never puts them back)."""
    values: dict[str, str] = {}
    for name in KERNEL_TUNABLES:
        with contextlib.suppress(OSError):
            values[name] = (Path("/proc/sys") / name).read_text().strip()
    TUNABLES_BEFORE.parent.mkdir(parents=True, exist_ok=True)
    TUNABLES_BEFORE.write_text(json.dumps(values))


def _restore_tunables() -> None:
    try:
        values = json.loads(TUNABLES_BEFORE.read_text())
    except (OSError, ValueError):
        return
    for name, value in dict(values).items():
        path = Path("/proc/sys") / str(name)
        with contextlib.suppress(OSError):
            if path.read_text().strip() != str(value):
                path.write_text(f"{value}\n")
    TUNABLES_BEFORE.unlink(missing_ok=True)


def _delete_containers(socket: str) -> None:
    """Kill and delete every task and container of the node's containerd (``ctr``)."""

    def ctr(*args: str) -> subprocess.CompletedProcess[str]:
        return _run(["ctr", "--address", socket, "-n", "k8s.io", *args], check=False)

    ids = ctr("containers", "list", "--quiet").stdout.split()
    for cid in ids:
        ctr("tasks", "kill", "--signal", "SIGKILL", "--all", cid)
    for cid in ids:
        for _ in range(50):
            ctr("tasks", "delete", "--force", cid)
            if cid not in ctr("tasks", "list", "--quiet").stdout.split():
                break
            time.sleep(0.1)
        ctr("containers", "delete", cid)


def _shim_sockets(socket: str) -> list[Path]:
    """The sockets of the node's running shims (containerd 1.6 puts them in /run/containerd/s).

    Their name is sha256("<containerd address>/<namespace>/<shim id>"); a shim killed rather
    than shut down leaves its socket behind.
    """
    found: list[Path] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        argv = _cmdline(proc.name).split()
        if not argv or not argv[0].endswith("containerd-shim-runc-v2") or socket not in argv:
            continue
        with contextlib.suppress(ValueError, IndexError):
            namespace = argv[argv.index("-namespace") + 1]
            shim_id = argv[argv.index("-id") + 1]
            name = hashlib.sha256(f"{socket}/{namespace}/{shim_id}".encode()).hexdigest()
            found.append(SHIM_SOCKETS / name)
    return found


def _delete_cni_cache(network: str) -> None:
    """libcni's cached results of our pods (kept when a pod's network was never torn down)."""
    with contextlib.suppress(OSError):
        for entry in CNI_CACHE.iterdir():
            if entry.name.startswith(network + "-"):
                sandbox = entry.name[len(network) + 1 :].rsplit("-", 1)[0]
                (CNI_CACHE / f"cni-loopback-{sandbox}-lo").unlink(missing_ok=True)
                entry.unlink(missing_ok=True)


def _iptables_has_kube_chains() -> bool:
    for program in ("iptables-save", "ip6tables-save"):
        if shutil.which(program) and ":KUBE-" in _run([program], check=False).stdout:
            return True
    return False


def _delete_kubelet_chains() -> None:
    """Remove the chains kubelet adds (KUBE-FIREWALL, canaries) if the first node found none.

    kubelet creates them in the host's tables whatever its configuration; they are shared by
    every kubelet of the machine, so they go with the last real node, and only when the
    machine had none before (:data:`CHAINS_OURS`).
    """
    if not CHAINS_OURS.exists():
        return
    for program in ("iptables", "ip6tables"):
        if shutil.which(program) is None:
            continue
        for chain in ("INPUT", "OUTPUT"):
            while (
                _run(
                    [program, "-t", "filter", "-D", chain, "-j", "KUBE-FIREWALL"], check=False
                ).returncode
                == 0
            ):
                pass
        for table in ("filter", "nat", "mangle"):
            for name in ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"):
                _run([program, "-t", table, "-F", name], check=False)
                _run([program, "-t", table, "-X", name], check=False)
    CHAINS_OURS.unlink(missing_ok=True)


def _write_marker(layout: NodeLayout, records: dict[str, ProcessRecord]) -> None:
    """The node's marker: its layout, its processes and the process starting it (the owner)."""
    MARKERS.mkdir(parents=True, exist_ok=True)
    owner = ProcessRecord("owner", os.getpid(), _start_ticks(os.getpid()), "")
    data = {
        "layout": layout.to_json(),
        "records": [owner.to_json()] + [r.to_json() for r in records.values()],
    }
    (MARKERS / f"{layout.key}.json").write_text(json.dumps(data, indent=2))


def sweep_orphans() -> list[str]:
    """Clean up after real nodes whose kubelet and containerd are gone (a test run that died).

    Every node leaves a marker in :data:`MARKERS` (machine-wide, since each test run has its
    own state dir) from its start until :func:`sweep_layout`; a marker whose processes (the
    one that started the node, kubelet, containerd) all exited is an orphan.  Returns the
    keys of the nodes swept.
    """
    swept: list[str] = []
    if os.geteuid() != 0:  # only root makes real nodes, and only root can remove them
        return swept
    with contextlib.suppress(OSError):
        for marker in sorted(MARKERS.glob("*.json")):
            try:
                data = json.loads(marker.read_text())
                layout = NodeLayout.from_json(data["layout"])
                records = [ProcessRecord.from_json(r) for r in data["records"]]
            except (OSError, ValueError, KeyError, TypeError):
                marker.unlink(missing_ok=True)
                continue
            if any(r.alive() for r in records):
                continue
            sweep_layout(layout, records)
            swept.append(layout.key)
    return swept


def _cmdline(pid: str) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _kill_pids(pids: set[int]) -> None:
    pids.discard(os.getpid())
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
            except OSError:
                state = "gone"
            if state in ("gone", "Z", "X"):
                pids.discard(pid)
        time.sleep(0.05)


def _kill_matching(match: Callable[[str], bool]) -> None:
    pids = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    _kill_pids({pid for pid in pids if match(_cmdline(str(pid)))})


def _cgroup_dirs(name: str) -> list[Path]:
    """The node's cgroups, deepest first."""
    found: list[Path] = []
    for hierarchy in _cgroup_hierarchies():
        top = hierarchy / name
        if top.is_dir():
            found += [Path(p) for p, _d, _f in os.walk(top)]
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _kill_cgroup_processes(name: str) -> None:
    pids: set[int] = set()
    for folder in _cgroup_dirs(name):
        with contextlib.suppress(OSError, ValueError):
            pids |= {int(x) for x in (folder / "cgroup.procs").read_text().split()}
    _kill_pids(pids)


def _remove_cgroup(name: str) -> None:
    for _ in range(50):
        left = _cgroup_dirs(name)
        if not left:
            return
        for folder in left:
            with contextlib.suppress(OSError):
                folder.rmdir()
        time.sleep(0.1)


def _delete_pod_netns(subnet: str) -> None:
    net = ipaddress.ip_network(subnet)
    listing = _run(["ip", "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns:
            continue
        addrs = _run(["ip", "-n", ns, "-o", "-4", "addr", "show"], check=False).stdout
        mine = False
        for row in addrs.split("\n"):
            parts = row.split()
            if "inet" in parts:
                with contextlib.suppress(ValueError, IndexError):
                    addr = ipaddress.ip_interface(parts[parts.index("inet") + 1]).ip
                    mine = mine or addr in net
        if mine:
            _run(["ip", "netns", "delete", ns], check=False)


def _unmount_under(folder: Path) -> None:
    prefix = str(folder.resolve())
    for _ in range(5):
        targets = _run(["findmnt", "-rn", "-o", "TARGET"], check=False).stdout.splitlines()
        # findmnt escapes blanks as \x20; our paths have none.
        mine = [t for t in targets if t == prefix or t.startswith(prefix + "/")]
        if not mine:
            return
        for target in sorted(mine, key=len, reverse=True):
            if _run(["umount", target], check=False).returncode != 0:
                _run(["umount", "-l", target], check=False)


def _delete_links(layout: NodeLayout) -> None:
    """The node's address on the bridge; the bridge and its nftables table too when no other
    node of it remains."""
    bridge = layout.bridge
    if not (Path("/sys/class/net") / bridge).exists():
        _run(["nft", "delete", "table", "inet", bridge], check=False)
        return
    prefix = ipaddress.ip_network(layout.cluster_range).prefixlen
    _run(["ip", "addr", "del", f"{layout.node_ip}/{prefix}", "dev", bridge], check=False)
    addresses = _run(["ip", "-o", "-4", "addr", "show", "dev", bridge], check=False).stdout
    if addresses.strip():
        return  # another real node of the cluster still uses the bridge
    with contextlib.suppress(OSError):
        for port in (Path("/sys/class/net") / bridge / "brif").iterdir():  # veths left on it
            _run(["ip", "link", "delete", port.name], check=False)
    _run(["ip", "link", "delete", bridge], check=False)
    _run(["nft", "delete", "table", "inet", bridge], check=False)
