"""Start-up time of the local control plane, against the floor of etcd + kube-apiserver alone.

Ours: ``LocalControlPlane.up()`` until 2 KWOK nodes are Ready and service accounts exist (PKI,
five components, readiness waits).  Reference: the same etcd and kube-apiserver binaries started
by hand with the minimum flags, until /readyz answers — the floor no harness can beat.
Prints the median of N runs of each and the ratio.

    .venv/bin/python bench/control_plane_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from _results import record
from metalk8s_solutions.testing import binaries
from metalk8s_solutions.testing.controlplane import LocalControlPlane
from metalk8s_solutions.testing.pki import CertificateAuthority, service_account_keys
from metalk8s_solutions.testing.processes import free_port, spawn, wait_until

#: no issue set one: "the harness costs at most as much again as the bare floor"
TARGET = 2.0


def ours(nodes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        plane = LocalControlPlane(Path(tmp) / "c", nodes=nodes, bind_to_parent=True)
        started = time.monotonic()
        plane.up()
        elapsed = time.monotonic() - started
        plane.down()
    return elapsed


def floor(paths: dict[str, Path]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ca = CertificateAuthority.create()
        serving = ca.issue("api", ip_addresses=("127.0.0.1",), server=True)
        admin = ca.issue("admin", organizations=("system:masters",), client=True)
        sa_key, sa_pub = service_account_keys()
        for name, data in {
            "ca.crt": ca.cert_pem,
            "tls.crt": serving.cert_pem,
            "tls.key": serving.key_pem,
            "sa.key": sa_key,
            "sa.pub": sa_pub,
            "admin.crt": admin.cert_pem,
            "admin.key": admin.key_pem,
        }.items():
            (root / name).write_bytes(data)
        etcd_port, peer, api = free_port(), free_port(), free_port()
        started = time.monotonic()
        etcd = spawn(
            "etcd",
            [
                str(paths["etcd"]),
                f"--data-dir={root / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
            ],
            root / "etcd.log",
            bind_to_parent=True,
        )
        apiserver = spawn(
            "kube-apiserver",
            [
                str(paths["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                f"--secure-port={api}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--tls-cert-file={root / 'tls.crt'}",
                f"--tls-private-key-file={root / 'tls.key'}",
                f"--service-account-issuer=https://127.0.0.1:{api}",
                f"--service-account-key-file={root / 'sa.pub'}",
                f"--service-account-signing-key-file={root / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--endpoint-reconciler-type=none",  # loopback endpoints are invalid
                f"--client-ca-file={root / 'ca.crt'}",
            ],
            root / "api.log",
            bind_to_parent=True,
        )
        ctx = ssl.create_default_context(cafile=str(root / "ca.crt"))
        ctx.load_cert_chain(str(root / "admin.crt"), str(root / "admin.key"))
        wait_until(
            apiserver,  # 200 on /readyz: every post-start hook is done
            lambda: httpx.get(f"https://127.0.0.1:{api}/readyz", verify=ctx).status_code == 200,
            timeout=120,
        )
        elapsed = time.monotonic() - started
        apiserver.stop()
        etcd.stop()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=2)
    args = parser.parse_args()
    paths = binaries.ensure()
    ours_runs, floor_runs = [], []
    for _ in range(args.runs):  # interleaved, so machine noise hits both alike
        floor_runs.append(floor(paths))
        ours_runs.append(ours(args.nodes))
    o, f = statistics.median(ours_runs), statistics.median(floor_runs)
    print(
        f"control plane up ({args.nodes} nodes ready), median of {args.runs}: {o:.2f}s "
        f"(runs: {', '.join(f'{x:.2f}' for x in ours_runs)})"
    )
    print(
        f"reference: etcd + kube-apiserver alone to /readyz, median of {args.runs}: {f:.2f}s "
        f"(runs: {', '.join(f'{x:.2f}' for x in floor_runs)})"
    )
    print(f"ratio ours/reference: {o / f:.2f}x")
    record(
        "control-plane",
        f"local control plane up, {args.nodes} KWOK nodes ready",
        ours=o,
        unit="s",
        reference=f,
        reference_name="etcd + kube-apiserver alone to /readyz",
        ratio=o / f,
        target=TARGET,
        runs=args.runs,
    )


if __name__ == "__main__":
    main()
