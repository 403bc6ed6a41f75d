"""The API server dies in the middle of an apply: the command fails clearly, and re-running
converges.  A control plane of its own (the session's is shared), with no node: nothing here
waits for pods."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from env_support import Api, build_solution, crd_document, wait_for, write_config
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube, RequestCounter
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.errors import ClusterError
from metalk8s_solutions.testing.controlplane import LocalControlPlane
from metalk8s_solutions.testing.processes import ProcessRecord, spawn

pytestmark = pytest.mark.cluster
GROUP = "restart.test.solutions"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[LocalControlPlane]:
    plane = LocalControlPlane(tmp_path / "plane", nodes=0, bind_to_parent=True)
    plane.up()
    try:
        yield plane
    finally:
        plane.down()


def restart_apiserver(plane: LocalControlPlane, record: ProcessRecord) -> ProcessRecord:
    """SIGKILL kube-apiserver and start it again with the same arguments and log."""
    argv = Path(f"/proc/{record.pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    os.killpg(record.pid, signal.SIGKILL)
    wait_for(lambda: not record.alive(), what="kube-apiserver to die")
    return spawn(
        "kube-apiserver",
        [a.decode() for a in argv],
        Path(record.log),
        bind_to_parent=True,
    )


def wait_ready_again(http: httpx.Client, record: ProcessRecord, timeout: float = 180) -> None:
    """Wait for the restarted API server; on failure say why, with the end of its log."""
    last = "no answer yet"

    def ready() -> bool:
        nonlocal last
        assert record.alive(), f"the restarted kube-apiserver exited:\n{log_tail(record)}"
        try:
            answer = http.get("/readyz", params={"verbose": "1"})
        except httpx.HTTPError as err:
            last = f"{type(err).__name__}: {err}"
            return False
        last = f"{answer.status_code}: {answer.text[-2000:]}"
        return answer.status_code == 200

    try:
        wait_for(ready, timeout=timeout, what="kube-apiserver ready again")
    except AssertionError as err:
        raise AssertionError(f"{err}\nlast /readyz: {last}\n{log_tail(record)}") from None


def log_tail(record: ProcessRecord, lines: int = 40) -> str:
    text = Path(record.log).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


async def test_apiserver_restart_in_the_middle_of_an_apply(
    plane: LocalControlPlane, tmp_path: Path
) -> None:
    info = plane.info()
    assert info is not None
    iso = build_solution(tmp_path, "restartsol", "1.0.0", group=GROUP)
    ctx = Context(write_config(tmp_path / "solutions.yaml", [iso]), ClusterTarget(info.kubeconfig))
    with httpx.Client(base_url=info.server, verify=plane.admin_ssl_context(), timeout=30) as http:
        admin = Api(http)
        admin.install_crd(crd_document(GROUP, ("v1alpha1",), "v1alpha1"))
        await envs.create_environment(ctx, envs.CreateEnvOptions("restart"))

        record = info.components["kube-apiserver"]
        restarted: list[ProcessRecord] = []

        def kill_after_first_write(message: str) -> None:
            # The first object written in the namespace (cluster-scoped ones of the same wave,
            # e.g. the admission policy, may come first: the wave is applied concurrently).
            if message.startswith("created") and " restart/" in message and not restarted:
                restarted.append(restart_apiserver(plane, record))

        try:
            with pytest.raises(ClusterError, match=r"cannot reach the Kubernetes API|answered"):
                await envs.add_solution(
                    Context(ctx.config_path, ctx.target, kill_after_first_write),
                    envs.AddSolutionOptions("restart", "restartsol", "1.0.0", wait=False),
                )
            assert restarted, "the API server was not restarted during the apply"

            wait_ready_again(http, restarted[-1])
            label = "app.kubernetes.io/part-of=restartsol"
            half = admin.items("/api/v1/namespaces/restart/serviceaccounts", label) + admin.items(
                "/api/v1/namespaces/restart/configmaps", label
            )
            assert half, "the first objects were applied before the API server went away"
            assert (
                admin.get("/apis/apps/v1/namespaces/restart/deployments/restartsol-operator")
                is None
            )

            # The desired state was recorded first, so a converge finishes the job.
            async with Kube(ctx.target, counter=RequestCounter()) as kube:
                done = await envs.converge_environments(
                    ctx, envs.ConvergeOptions(("restart",)), connection=kube
                )
                assert ("create", "Deployment restart/restartsol-operator") in {
                    (s.action, s.target) for s in done.steps
                }
                before = kube.counter.mutating
                again = await envs.converge_environments(
                    ctx, envs.ConvergeOptions(("restart",)), connection=kube
                )
                assert again.steps == []
                assert kube.counter.mutating == before
            assert (
                admin.get("/apis/apps/v1/namespaces/restart/deployments/restartsol-operator")
                is not None
            )
        finally:
            for new in restarted:
                new.stop()
