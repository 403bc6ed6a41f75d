"""Stand in for a container: route a Service of the local control plane to a process of this host.

KWOK's pods never run anything, so nothing answers behind a Service.  To test a Solution's UI (or
any HTTP server of its images) through the API server's service proxy — exactly the way
``solutions ui`` reaches it — run the server as a local process, then call :func:`serve_service`:
it gives one Running pod of the Service the address of this host and writes the Service's
Endpoints to point at the local port.

Constraints of the API server, which this works within: Endpoints may not use a loopback address,
and the service proxy only goes to addresses that a pod of the Service has; so the local process
must listen on :func:`host_address` (a non-loopback address of this host), and the harness does
not run the Endpoints controller (only the EndpointSlice one), so nothing rewrites the
Endpoints.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import time
from typing import Any
from urllib.parse import quote

import httpx

from metalk8s_solutions.errors import EnvironmentFailure

SIOCGIFADDR = 0x8915


def _interface_addresses() -> list[str]:
    """The IPv4 address of each network interface (Linux: SIOCGIFADDR)."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:  # no IPv4 address on this interface
                continue
            found.append(socket.inet_ntoa(answer[20:24]))
    return found


def host_address() -> str:
    """A non-loopback IPv4 address of this host (the API server refuses loopback endpoints)."""
    for address in _interface_addresses():
        if not address.startswith("127."):
            return address
    raise EnvironmentFailure(
        "this host has no non-loopback IPv4 address, which the API server needs to proxy to a "
        "local process",
        hint="bring up a network interface (any address; no route outside is needed)",
    )


def _running_pod(
    http: httpx.Client, namespace: str, selector: dict[str, str], timeout: float
) -> dict[str, Any]:
    text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(
            f"/api/v1/namespaces/{quote(namespace)}/pods", params={"labelSelector": text}
        )
        response.raise_for_status()
        for pod in response.json().get("items") or []:
            if (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get(
                "deletionTimestamp"
            ):
                found: dict[str, Any] = pod
                return found
        if time.monotonic() > deadline:
            raise EnvironmentFailure(f"no Running pod in {namespace} matches {text}")
        time.sleep(0.25)


def serve_service(
    http: httpx.Client,
    namespace: str,
    service: str,
    port: int,
    *,
    address: str | None = None,
    timeout: float = 60.0,
) -> str:
    """Make Service ``namespace/service`` reach ``address:port`` (default: :func:`host_address`).

    ``http`` is an admin client of the cluster.  Every port of the Service goes to ``port``.
    Returns the pod that now "runs" the local process.
    """
    address = address or host_address()
    response = http.get(f"/api/v1/namespaces/{quote(namespace)}/services/{quote(service)}")
    response.raise_for_status()
    spec = response.json()["spec"]
    pod = _running_pod(http, namespace, dict(spec.get("selector") or {}), timeout)
    name = pod["metadata"]["name"]
    patched = http.patch(
        f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(name)}/status",
        json={"status": {"podIP": address, "podIPs": [{"ip": address}]}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    patched.raise_for_status()
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": service, "namespace": namespace},
        "subsets": [
            {
                "addresses": [
                    {
                        "ip": address,
                        "targetRef": {"kind": "Pod", "name": name, "namespace": namespace},
                    }
                ],
                "ports": [
                    {"name": p.get("name", ""), "port": port, "protocol": "TCP"}
                    for p in spec.get("ports") or []
                ],
            }
        ],
    }
    applied = http.patch(
        f"/api/v1/namespaces/{quote(namespace)}/endpoints/{quote(service)}",
        params={"fieldManager": "solutions-testing", "force": "true"},
        json=endpoints,
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    applied.raise_for_status()
    return str(name)


__all__ = ["host_address", "serve_service"]
