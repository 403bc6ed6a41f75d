"""``solutions dev``: tools for Solution developers (a local control plane to test against)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click

from metalk8s_solutions.cli.output import emit, output_option, table
from metalk8s_solutions.testing.controlplane import LocalControlPlane, default_state_dir

state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where the cluster keeps its state and logs [default: {default_state_dir()}].",
)


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
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Port of kube-apiserver on 127.0.0.1 [default: a free port].",
)
@state_dir_option
@output_option
def up(
    kubeconfig_out: Path | None, nodes: int, port: int | None, state_dir: Path | None, output: str
) -> None:
    """Start the local control plane in the background and wait until it is ready."""
    plane = LocalControlPlane(
        state_dir, nodes=nodes, api_port=port, progress=lambda m: click.echo(m, err=True)
    )
    info = plane.up()
    if kubeconfig_out is not None:
        kubeconfig_out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(info.kubeconfig, kubeconfig_out)
        kubeconfig_out.chmod(0o600)
    status = plane.status()
    if kubeconfig_out is not None:
        status["kubeconfig"] = str(kubeconfig_out)
    emit(status, output, _human_up)


def _human_up(status: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Local control plane {status['version']} is running at {status['server']} "
            f"with {status['nodes']} node(s).",
            f"  export KUBECONFIG={status['kubeconfig']}",
            "  solutions dev cluster status    # what runs, and the log files",
            "  solutions dev cluster down      # stop it and delete its state",
        ]
    )


@cluster.command("status")
@state_dir_option
@output_option
def status(state_dir: Path | None, output: str) -> None:
    """Show whether the local control plane runs, and where its logs are."""
    emit(LocalControlPlane(state_dir).status(), output, _human_status)


def _human_status(status: dict[str, Any]) -> str:
    if status["state"] == "absent":
        return (
            f"No local control plane in {status['stateDir']} (start one: solutions dev cluster up)"
        )
    head = (
        f"{status['state']}: {status['server']} ({status['version']}, {status['nodes']} node(s))\n"
        f"kubeconfig: {status['kubeconfig']}\n"
    )
    rows = [
        (name, "running" if c["running"] else "stopped", c["pid"], c["log"])
        for name, c in status["components"].items()
    ]
    return head + table(("component", "state", "pid", "log"), rows)


@cluster.command("down")
@state_dir_option
def down(state_dir: Path | None) -> None:
    """Stop every component and delete the cluster's state."""
    plane = LocalControlPlane(state_dir)
    if plane.down():
        click.echo(f"Local control plane stopped; {plane.state_dir} removed.")
    else:
        click.echo(f"No local control plane was running in {plane.state_dir}.")
