"""Deploy a solution into 50 environments: time and mutating requests, first run and re-run.

Ours: ``add_solution`` per environment (plan, server-side apply, history; no wait), then a
no-change re-run of the whole set (``converge_environments``), counting requests with the
client's counter — the target on re-run is zero mutating requests.  References, measured in the
same run on 50 other namespaces with the very same objects: one raw server-side-apply PATCH per
object (the floor of any SSA-based deployer), and ``kubectl apply --server-side`` of each
environment's manifests (one kubectl process per environment).

    .venv/bin/python bench/environments.py [--envs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _results import record
from metalk8s_solutions.cluster.kube import ClusterTarget, Kube, RequestCounter
from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.deployment import desired_environment
from metalk8s_solutions.engine.desired import Settings
from metalk8s_solutions.engine.solutions import Context
from metalk8s_solutions.testing.controlplane import LocalControlPlane

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from env_support import build_solution, crd_document, write_config

SOL, GROUP = "benchsol", "benchsol.test.solutions"


async def ours(ctx: Context, n: int) -> dict[str, float]:
    async with Kube(ctx.target, counter=RequestCounter()) as kube:
        for i in range(n):
            await envs.create_environment(ctx, envs.CreateEnvOptions(f"env-{i}"), connection=kube)
        kube.counter.total = kube.counter.mutating = 0
        per_env = []
        started = time.monotonic()
        for i in range(n):
            t = time.monotonic()
            await envs.add_solution(
                ctx, envs.AddSolutionOptions(f"env-{i}", SOL, "1.0.0", wait=False), connection=kube
            )
            per_env.append(time.monotonic() - t)
        first = time.monotonic() - started
        first_mut, first_total = kube.counter.mutating, kube.counter.total
        kube.counter.total = kube.counter.mutating = 0
        started = time.monotonic()
        again = await envs.converge_environments(ctx, envs.ConvergeOptions(), connection=kube)
        rerun = time.monotonic() - started
        assert again.steps == [], again.steps
        return {
            "first_s": first,
            "first_per_env_ms": 1000 * first / n,
            "first_max_env_ms": 1000 * max(per_env),
            "first_mutating": first_mut,
            "first_total": first_total,
            "rerun_s": rerun,
            "rerun_per_env_ms": 1000 * rerun / n,
            "rerun_mutating": kube.counter.mutating,
            "rerun_total": kube.counter.total,
        }


async def raw_ssa(ctx: Context, objects: dict[str, list[dict[str, object]]]) -> float:
    """One SSA PATCH per object, nothing else: no read, no compare, no history."""
    from metalk8s_solutions.cluster.apply import apply_object  # noqa: PLC0415

    async with Kube(ctx.target) as kube:
        started = time.monotonic()
        for docs in objects.values():
            for doc in docs:
                await apply_object(kube, doc)
        return time.monotonic() - started


def kubectl_path() -> str:
    out = subprocess.run(
        [sys.executable, "-m", "metalk8s_solutions.testing.binaries"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        name, _, path = line.partition("\t")
        if name == "kubectl":
            return path
    raise SystemExit("kubectl not in the binary cache")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=50)
    args = parser.parse_args()
    n = args.envs
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        plane = LocalControlPlane(tmp / "plane", nodes=1, bind_to_parent=True)
        info = plane.up()
        try:
            iso = build_solution(tmp, SOL, "1.0.0", group=GROUP)
            ctx = Context(
                write_config(tmp / "solutions.yaml", [iso]), ClusterTarget(info.kubeconfig)
            )
            kubectl = kubectl_path()
            subprocess.run(
                [kubectl, f"--kubeconfig={info.kubeconfig}", "apply", "--server-side", "-f", "-"],
                input=yaml.safe_dump(crd_document(GROUP, ("v1alpha1",), "v1alpha1")),
                text=True,
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [
                    kubectl,
                    f"--kubeconfig={info.kubeconfig}",
                    "wait",
                    "--for=condition=Established",
                    f"crd/gadgets.{GROUP}",
                ],
                check=True,
                capture_output=True,
            )
            result = asyncio.run(ours(ctx, n))

            content = envs.load_version_content(iso)
            settings = Settings(endpoint="127.0.0.1:5000")
            refs: dict[str, dict[str, list[dict[str, object]]]] = {"raw": {}, "kubectl": {}}
            for kind, docs in refs.items():
                for i in range(n):
                    name = f"{kind}-{i}"
                    subprocess.run(
                        [kubectl, f"--kubeconfig={info.kubeconfig}", "create", "namespace", name],
                        check=True,
                        capture_output=True,
                    )
                    docs[name] = desired_environment(
                        name, {name: {SOL: "1.0.0"}}, {(SOL, "1.0.0"): content}, settings
                    )
            objects_per_env = len(refs["raw"]["raw-0"])
            raw = asyncio.run(raw_ssa(ctx, refs["raw"]))
            ctl = kubectl_ssa_with(kubectl, info.kubeconfig, refs["kubectl"], tmp)
        finally:
            plane.down()
    result.update(
        envs=n,
        objects_per_env=objects_per_env,
        raw_ssa_s=raw,
        raw_ssa_per_env_ms=1000 * raw / n,
        kubectl_ssa_s=ctl,
        kubectl_per_env_ms=1000 * ctl / n,
        ratio_vs_raw_ssa=result["first_s"] / raw,
        ratio_vs_kubectl=result["first_s"] / ctl,
    )
    print(
        json.dumps(
            {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}, indent=2
        )
    )
    record(
        "environments",
        f"add a solution to {n} environments, per environment",
        ours=result["first_s"] / n,
        unit="s",
        reference=ctl / n,
        reference_name="kubectl apply --server-side",
        ratio=result["ratio_vs_kubectl"],
        target=1.0,
        note=f"no-change re-run: {result['rerun_mutating']} mutating requests",
    )


def kubectl_ssa_with(
    kubectl: str, kubeconfig: Path, objects: dict[str, list[dict[str, object]]], tmp: Path
) -> float:
    files = []
    for name, docs in objects.items():
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(docs))
        files.append(path)
    started = time.monotonic()
    for path in files:
        subprocess.run(
            [
                kubectl,
                f"--kubeconfig={kubeconfig}",
                "apply",
                "--server-side",
                "--field-manager=bench",
                "--force-conflicts",
                "-f",
                str(path),
            ],
            check=True,
            capture_output=True,
        )
    return time.monotonic() - started


if __name__ == "__main__":
    main()
