"""How containerd on a node pulls from a registry: its ``hosts.toml``, from one source.

``docs/operations/registry.md`` prints what :func:`containerd_hosts_toml` returns (rendered at
docs build by ``docs/hooks/docgen.py``), and the local cluster's real nodes write the same
function's output into their containerd's ``certs.d`` folder, so the page an administrator
follows is the configuration the tests pull through.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from metalk8s_solutions.errors import InvalidInput

#: Where containerd's CRI plugin reads host files when configured as the docs say.
CERTS_DIR = PurePosixPath("/etc/containerd/certs.d")


def containerd_hosts_dir(endpoint: str, certs_dir: PurePosixPath = CERTS_DIR) -> PurePosixPath:
    """The folder of ``endpoint``'s ``hosts.toml`` (containerd names it ``host:port``)."""
    return certs_dir / _host(endpoint)


def containerd_hosts_toml(
    endpoint: str, *, tls: bool = True, ca: str | None = None, skip_verify: bool = False
) -> str:
    """The ``hosts.toml`` that makes containerd pull ``endpoint``'s images from it.

    ``endpoint`` is ``host[:port][/path]`` (the configuration's ``registry.endpoint``, the
    name the images are referenced by; containerd finds the path in the image reference);
    ``tls=False`` is plain HTTP; ``ca`` names the CA certificate file on the node that signed
    the registry's certificate; ``skip_verify`` trusts any certificate (tests only).  Only
    ``pull`` and ``resolve``: the registry is read-only.
    """
    host = _host(endpoint)
    if not tls and (ca is not None or skip_verify):
        raise InvalidInput(
            "a CA certificate or skip_verify only applies to a registry served over TLS",
            hint="drop them, or serve the registry over TLS",
        )
    if ca is not None and skip_verify:
        raise InvalidInput(
            "give either a CA certificate or skip_verify, not both",
            hint="a CA certificate verifies the registry; skip_verify trusts any certificate",
        )
    url = f"{'https' if tls else 'http'}://{host}"
    lines = [f'server = "{url}"', "", f'[host."{url}"]', '  capabilities = ["pull", "resolve"]']
    if ca is not None:
        lines.append(f'  ca = "{_toml_string(ca)}"')
    if skip_verify:
        lines.append("  skip_verify = true")
    return "\n".join(lines) + "\n"


def _host(endpoint: str) -> str:
    """The ``host[:port]`` of ``host[:port][/path]``: containerd keys its host files by it."""
    host = endpoint.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host or any(c.isspace() or c in "\"'\\" for c in host):
        raise InvalidInput(
            f"{endpoint!r} is not a registry endpoint",
            hint="give host[:port], e.g. registry.example.net:5000",
        )
    return host


def _toml_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')
