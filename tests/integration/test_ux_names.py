"""Issue #20 items 2, 4 and 7, as a user meets them: the exact CLI commands on a real cluster.

2. a typo'd field is refused (with the closest field), never reported as a success;
4. custom resources kept by ``env delete-solution`` stay listable and deletable, and every
   refusal on the way names the command that gets out;
7. a name that does not exist is refused with the closest existing name.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from env_support import Api, build_solution, cli, write_config
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "uxtest"
GROUP = "uxtest.test.solutions"
CRD = f"gadgets.{GROUP}"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ux-archives")
    archive = build_solution(out, SOL, "1.0.0", group=GROUP)
    return write_config(out / "solutions.yaml", [archive])


@pytest.fixture(scope="module")
def admin(config: Path, local_cluster: LocalCluster) -> Iterator[Api]:
    """Admin calls; afterwards SOL leaves the cluster (its CRD and its import record), so that
    other modules' configurations do not meet it."""
    with local_cluster.admin_http() as http:
        yield Api(http)
    run(config, local_cluster, "deactivate", SOL, "--force")
    run(config, local_cluster, "unimport", f"{SOL}-1.0.0")


@pytest.fixture
def env(config: Path, admin: Api, local_cluster: LocalCluster) -> Iterator[str]:
    """A fresh environment where SOL 1.0.0 is active and deployed (not awaited)."""
    name = f"ux-{secrets.token_hex(3)}"
    ok(config, local_cluster, "activate", SOL, "--version", "1.0.0")
    ok(config, local_cluster, "env", "create", name)
    ok(config, local_cluster, "env", "add-solution", name, SOL, "1.0.0", "--no-wait")
    yield name
    run(config, local_cluster, "env", "delete", name, "--timeout", "120")


def run(config: Path, cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cli(config, cluster.kubeconfig, *args)


def ok(config: Path, cluster: LocalCluster, *args: str) -> str:
    result = run(config, cluster, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def refused(config: Path, cluster: LocalCluster, *args: str) -> str:
    result = run(config, cluster, *args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return " ".join((result.stdout + result.stderr).split())


def gadget(admin: Api, env: str, name: str) -> dict[str, object] | None:
    return admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{env}/gadgets/{name}")


# -- 2. a typo'd field --------------------------------------------------------------------


def test_a_typod_field_is_refused_with_the_closest_field(
    config: Path, env: str, admin: Api, local_cluster: LocalCluster
) -> None:
    ok(
        config,
        local_cluster,
        "instance",
        "create",
        env,
        SOL,
        "--kind",
        "Gadget",
        "--name",
        "web",
        "--set",
        "spec.size=1",
    )
    for extra in ((), ("--dry-run",)):
        said = refused(
            config,
            local_cluster,
            "instance",
            "edit",
            env,
            SOL,
            "Gadget/web",
            "--set",
            "spec.sise=3",
            *extra,
        )
        assert "spec.sise" in said and "did you mean spec.size" in said, said
        assert "updated" not in said
    assert gadget(admin, env, "web")["spec"] == {"size": 1}  # type: ignore[index]
    said = refused(
        config,
        local_cluster,
        "instance",
        "create",
        env,
        SOL,
        "--kind",
        "Gadget",
        "--name",
        "db",
        "--set",
        "spec.size=1",
        "--set",
        "spec.colour=red",
    )
    assert "spec.colour" in said and "did you mean spec.color" in said, said
    assert gadget(admin, env, "db") is None
    said = refused(
        config, local_cluster, "instance", "edit", env, SOL, "Gadget/web", "--set", "spex.size=3"
    )
    assert "did you mean spec" in said, said
    # Known fields and metadata still go through.
    ok(
        config,
        local_cluster,
        "instance",
        "edit",
        env,
        SOL,
        "Gadget/web",
        "--set",
        "spec.size=3",
        "--set",
        "metadata.labels.team=a",
    )
    assert gadget(admin, env, "web")["spec"] == {"size": 3}  # type: ignore[index]


# -- 4. leftovers after delete-solution -----------------------------------------------------


def test_kept_instances_stay_listable_and_deletable(
    config: Path, env: str, admin: Api, local_cluster: LocalCluster
) -> None:
    for name in ("web", "db"):
        ok(
            config,
            local_cluster,
            "instance",
            "create",
            env,
            SOL,
            "--kind",
            "Gadget",
            "--name",
            name,
            "--set",
            "spec.size=1",
        )
    kept = ok(config, local_cluster, "env", "delete-solution", env, SOL)
    assert "--delete-data" in kept
    listed = ok(config, local_cluster, "instance", "list", env, SOL)
    assert "web" in listed and "db" in listed, listed
    said = refused(
        config, local_cluster, "instance", "edit", env, SOL, "Gadget/web", "--set", "spec.size=2"
    )
    assert f"solutions env add-solution {env} {SOL}" in said, said
    said = refused(config, local_cluster, "deactivate", SOL)
    assert f"solutions env delete-solution {env} {SOL} --delete-data" in said, said
    said = refused(config, local_cluster, "env", "delete-solution", env, SOL)
    assert f"solutions env delete-solution {env} {SOL} --delete-data" in said, said
    ok(config, local_cluster, "instance", "delete", env, SOL, "Gadget/db")
    assert gadget(admin, env, "db") is None
    plan = ok(
        config, local_cluster, "env", "delete-solution", env, SOL, "--delete-data", "--dry-run"
    )
    assert f"Gadget {env}/web" in plan and gadget(admin, env, "web") is not None
    ok(config, local_cluster, "env", "delete-solution", env, SOL, "--delete-data")
    assert gadget(admin, env, "web") is None
    said = refused(config, local_cluster, "instance", "list", env, SOL)
    assert "not deployed" in said and f"solutions env add-solution {env} {SOL}" in said
    ok(config, local_cluster, "deactivate", SOL)


# -- 7. did you mean ------------------------------------------------------------------------


def test_unknown_names_are_refused_with_the_closest_name(
    config: Path, env: str, local_cluster: LocalCluster
) -> None:
    said = refused(config, local_cluster, "deactivate", "uxtset")
    assert f"did you mean {SOL}" in said, said
    said = refused(config, local_cluster, "activate", "uxtset")
    assert f"did you mean {SOL}" in said, said
    typo = env[:-1]  # one character short
    for args in (
        ("env", "show", typo),
        ("env", "delete", typo),
        ("env", "add-solution", typo, SOL, "1.0.0"),
    ):
        said = refused(config, local_cluster, *args)
        assert f"did you mean {env}" in said and "env create" not in said, said
    said = refused(config, local_cluster, "env", "show", "nothing-like-any")
    assert "solutions env create nothing-like-any" in said and "did you mean" not in said
    said = refused(config, local_cluster, "env", "add-solution", env, "uxtset", "1.0.0")
    assert f"did you mean {SOL}" in said, said
    said = refused(config, local_cluster, "env", "upgrade", env, "uxtset", "1.0.0")
    assert f"did you mean {SOL}" in said, said
    said = refused(config, local_cluster, "env", "delete-solution", env, "uxtset")
    assert f"did you mean {SOL}" in said, said
    said = refused(config, local_cluster, "env", "add-solution", env, SOL, "1.0")
    assert "did you mean 1.0.0" in said, said
    ok(
        config,
        local_cluster,
        "instance",
        "create",
        env,
        SOL,
        "--kind",
        "Gadget",
        "--name",
        "web",
        "--set",
        "spec.size=1",
    )
    said = refused(
        config, local_cluster, "instance", "edit", env, SOL, "Gadget/wbe", "--set", "spec.size=2"
    )
    assert "did you mean Gadget/web" in said, said
    said = refused(config, local_cluster, "instance", "delete", env, SOL, "Gadget/wbe")
    assert "did you mean Gadget/web" in said, said
    said = refused(
        config, local_cluster, "instance", "edit", env, SOL, "Gadgt/web", "--set", "spec.size=2"
    )
    assert "did you mean Gadget" in said, said
    said = refused(config, local_cluster, "instance", "list", env, "uxtset")
    assert f"did you mean {SOL}" in said, said
