"""``solutions dev``: tools for Solution developers (a local control plane to test against)."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.errors import EnvironmentFailure, command
from metalk8s_solutions.testing.paths import default_registry_dir, default_state_dir

if TYPE_CHECKING:  # imported when a command runs, not when it is declared (fast --help)
    from metalk8s_solutions.testing.registry import LocalRegistry

F = TypeVar("F", bound=Callable[..., Any])


def _state_dir_option(what: str, default: Path) -> Callable[[F], F]:
    """``--state-dir``, where ``what`` (the cluster's state, the registry's data) is kept."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=f"Where the {what} [default: {default}].",
    )


state_dir_option = _state_dir_option("cluster keeps its state and logs", default_state_dir())


@click.group()
def dev() -> None:
    """Tools for Solution developers."""


@dev.group()
def cluster() -> None:
    """A real local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK nodes).

    No Docker needed: binaries are built once from pinned Go modules and cached.
    """


@cluster.command("up")
@click.option(
    "--kubeconfig",
    "kubeconfig_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the admin kubeconfig to this file.",
)
@click.option(
    "--nodes",
    type=click.IntRange(0, 100),
    default=1,
    show_default=True,
    help="Number of fake (KWOK) nodes.",
)
@click.option(
    "--real-nodes",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    help="Number of real nodes (kubelet, containerd, runc, CNI, kube-proxy, CoreDNS on this "
    "machine; needs root), labelled solutions.metalk8s.io/real-node. Beside fake nodes "
    "(--nodes > 0) they are also tainted with it: only pods that tolerate the taint run there; "
    "with --nodes 0 every pod runs on them, as on a real cluster.",
)
@click.option(
    "--insecure-registry",
    "insecure_registries",
    multiple=True,
    metavar="HOST:PORT",
    help="A plain-HTTP registry the real nodes pull images from (repeatable).",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of kube-apiserver on 127.0.0.1 [default: a free port].",
)
@state_dir_option
@output_option
def up(
    kubeconfig_out: Path | None,
    nodes: int,
    real_nodes: int,
    insecure_registries: tuple[str, ...],
    port: int | None,
    state_dir: Path | None,
    output: str,
) -> None:
    """Start the local control plane in the background and wait until it is ready."""
    from metalk8s_solutions.testing.controlplane import LocalControlPlane  # noqa: PLC0415

    plane = LocalControlPlane(
        state_dir,
        nodes=nodes,
        real_nodes=real_nodes,
        insecure_registries=insecure_registries,
        api_port=port,
        progress=lambda m: click.echo(m, err=True),
    )
    info = plane.up()
    if kubeconfig_out is not None:
        kubeconfig_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info.kubeconfig, kubeconfig_out)
        kubeconfig_out.chmod(0o600)
    status = plane.status()
    if kubeconfig_out is not None:
        status["kubeconfig"] = str(kubeconfig_out)
    where = _state_dir_flag(state_dir)
    emit(status, output, lambda s: _human_up(s, where))


def _state_dir_flag(state_dir: Path | None) -> list[str]:
    """``--state-dir DIR`` for the hints, when the state is not in the default place."""
    return [] if state_dir is None else ["--state-dir", str(state_dir.resolve())]


def _human_up(status: dict[str, Any], where: list[str]) -> str:
    return "\n".join(
        [
            f"Local control plane {status['version']} is running at {status['server']} "
            f"with {status['nodes']} node(s){_real_nodes_phrase(status)}.",
            f"  export KUBECONFIG={shlex.quote(str(status['kubeconfig']))}",
            f"  {command('dev', 'cluster', 'status', *where)}    # what runs, and the log files",
            f"  {command('dev', 'cluster', 'down', *where)}      # stop it and delete its state",
        ]
    )


@cluster.command("status")
@state_dir_option
@output_option
def status(state_dir: Path | None, output: str) -> None:
    """Show whether the local control plane runs, and where its logs are."""
    from metalk8s_solutions.testing.controlplane import LocalControlPlane  # noqa: PLC0415

    emit(LocalControlPlane(state_dir).status(), output, _human_status)


def _real_nodes_phrase(status: dict[str, Any]) -> str:
    real = status.get("realNodes") or []
    return f" and {len(real)} real node(s)" if real else ""


def _human_status(status: dict[str, Any]) -> str:
    if status["state"] == "absent":
        return (
            f"No local control plane in {status['stateDir']} "
            f"(start one: {command('dev', 'cluster', 'up')})"
        )
    head = (
        f"{status['state']}: {status['server']} ({status['version']}, "
        f"{status['nodesReady']}/{status['nodes'] + len(status.get('realNodes') or [])} "
        "node(s) Ready)\n"
        f"kubeconfig: {status['kubeconfig']}\n"
    )
    rows = [
        (name, "running" if c["running"] else "stopped", c["pid"], c["log"])
        for name, c in status["components"].items()
    ]
    text = head + table(("component", "state", "pid", "log"), rows)
    real = status.get("realNodes") or []
    if real:
        nodes = [
            (n["name"], "Ready" if n["ready"] else "NotReady", n["address"] or "-") for n in real
        ]
        text += "\n\nreal nodes:\n" + table(("node", "state", "address"), nodes)
    return text


@cluster.command("down")
@state_dir_option
def down(state_dir: Path | None) -> None:
    """Stop every component and delete the cluster's state."""
    from metalk8s_solutions.testing.controlplane import LocalControlPlane  # noqa: PLC0415

    plane = LocalControlPlane(state_dir)
    if plane.down():
        click.echo(f"Local control plane stopped; {plane.state_dir} removed.")
    else:
        click.echo(f"No local control plane was running in {plane.state_dir}.")


registry_dir_option = _state_dir_option("registry keeps its data and log", default_registry_dir())


@dev.group()
def registry() -> None:
    """A local OCI registry (Debian's docker-registry) to push Solution images to."""


def _registry_status(reg: LocalRegistry | None, root: Path) -> dict[str, Any]:
    if reg is None:
        return {"state": "absent", "stateDir": str(root)}
    return {
        "state": "running" if reg.running() else "stopped",
        "address": reg.address,
        "url": reg.url,
        "stateDir": str(root),
        "log": str(root / "registry.log"),
    }


def _human_registry(status: dict[str, Any]) -> str:
    if status["state"] == "absent":
        return (
            f"No local registry in {status['stateDir']} "
            f"(start one: {command('dev', 'registry', 'up')})"
        )
    return (
        f"{status['state']}: {status['url']} (plain HTTP; skopeo needs --dest-tls-verify=false)\n"
        f"log: {status['log']}"
    )


@registry.command("up")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port on 127.0.0.1 [default: a free port].",
)
@registry_dir_option
@output_option
def registry_up(port: int | None, state_dir: Path | None, output: str) -> None:
    """Start the local registry in the background."""
    from metalk8s_solutions.testing.registry import LocalRegistry  # noqa: PLC0415

    root = (state_dir or default_registry_dir()).resolve()
    reg = LocalRegistry.attach(root)
    if reg is None or not reg.running():
        reg = LocalRegistry(root, port=port, bind_to_parent=False).start()
    elif port is not None and reg.port != port:
        raise EnvironmentFailure(
            f"a local registry already runs from {root} on port {reg.port}",
            hint="stop it with "
            f"'{command('dev', 'registry', 'down', *_state_dir_flag(state_dir))}' first",
        )
    emit(_registry_status(reg, root), output, _human_registry)


@registry.command("status")
@registry_dir_option
@output_option
def registry_status(state_dir: Path | None, output: str) -> None:
    """Show whether the local registry runs."""
    from metalk8s_solutions.testing.registry import LocalRegistry  # noqa: PLC0415

    root = (state_dir or default_registry_dir()).resolve()
    emit(_registry_status(LocalRegistry.attach(root), root), output, _human_registry)


@registry.command("down")
@registry_dir_option
def registry_down(state_dir: Path | None) -> None:
    """Stop the local registry and delete its data."""
    from metalk8s_solutions.testing.registry import LocalRegistry  # noqa: PLC0415

    root = (state_dir or default_registry_dir()).resolve()
    reg = LocalRegistry.attach(root)
    was_running = reg is not None and reg.running()
    if reg is not None:
        reg.stop()
    shutil.rmtree(root, ignore_errors=True)
    click.echo(
        f"Local registry stopped; {root} removed."
        if was_running
        else f"No local registry was running in {root}."
    )
