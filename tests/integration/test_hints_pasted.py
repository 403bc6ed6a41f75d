"""Issue #20 item 3: the hint of each main refusal, pasted and run on a real cluster.

Each test makes a mistake a new user makes, takes the command the refusal names, runs it as
pasted (shell-split; ``--config``/``--kubeconfig`` added as for every command of these tests,
a ``<placeholder>`` replaced by the value the user would choose) and expects progress: exit 0,
or another refusal naming the next step, which is followed the same way; once a hint's command
succeeds, the refused command runs again, until it succeeds. A usage error (exit 2), a
traceback, or a hint leading back to a command already refused fails the test.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from env_support import Api, build_solution, cli, write_config
from metalk8s_solutions.errors import PLACEHOLDER
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster

SOL = "hinttest"
GROUP = "hinttest.test.solutions"
CRD = f"gadgets.{GROUP}"
#: a command inside a printed message: up to the quote, semicolon, comma or parenthesis ending it
PRINTED = re.compile(r"(?<![\w./-])solutions [^';),]*")

Run = Callable[..., subprocess.CompletedProcess[str]]
Choose = Callable[[list[str]], str]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hints-archives")
    return {
        "1.0.0": build_solution(out, SOL, "1.0.0", group=GROUP),
        "2.0.0": build_solution(
            out, SOL, "2.0.0", group=GROUP, served=("v1alpha1", "v1beta1"), storage="v1beta1"
        ),
    }


@pytest.fixture(scope="module")
def config(archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("hints-config") / "solutions.yaml", [])


@pytest.fixture(scope="module")
def run(config: Path, local_cluster: LocalCluster) -> Run:
    def call(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(config, local_cluster.kubeconfig, *args)

    return call


@pytest.fixture(scope="module")
def admin(run: Run, archives: dict[str, Path], local_cluster: LocalCluster) -> Iterator[Api]:
    """SOL's archives imported, none active; afterwards SOL leaves the cluster."""
    imported = run("import", *map(str, archives.values()))
    assert imported.returncode == 0, imported.stderr
    with local_cluster.admin_http() as http:
        yield Api(http)
    run("deactivate", SOL, "--force")
    for version in archives:
        run("unimport", f"{SOL}-{version}")


@pytest.fixture
def env(run: Run, admin: Api) -> Iterator[str]:
    """A fresh, empty environment (deleted afterwards)."""
    name = f"hint-{secrets.token_hex(3)}"
    ok(run, "env", "create", name)
    yield name
    run("env", "delete", name, "--timeout", "120")


def ok(run: Run, *args: str) -> str:
    result = run(*args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def printed(text: str) -> list[str]:
    """The commands a message names, in order."""
    return [m.group(0).strip() for m in PRINTED.finditer(text)]


def follow(
    run: Run,
    *first: str,
    values: dict[str, str] | None = None,
    choose: Choose = lambda commands: commands[0],
    limit: int = 6,
) -> list[tuple[str, ...]]:
    """Run ``first``; while a command is refused, run the command its hint names; when that
    succeeds, run the refused one again.  Returns every command run, in order."""
    values = {"version": "1.0.0", **(values or {})}
    pending: list[tuple[str, ...]] = [first]
    ran: list[tuple[str, ...]] = []
    while pending:
        args = pending[-1]
        assert len(ran) < limit, f"no end in sight: {ran}"
        result = run(*args)
        ran.append(args)
        said = " ".join(result.stderr.split())
        assert "Traceback" not in result.stderr and "Usage:" not in result.stderr, (args, said)
        assert result.returncode in (0, 1), (args, result.returncode, said)
        if result.returncode == 0:
            pending.pop()
            continue
        commands = printed(said)
        assert commands, f"{args} was refused without a command to run: {said}"
        chosen = PLACEHOLDER.sub(lambda m: values[m.group(0)[1:-1]], choose(commands))
        words = shlex.split(chosen)
        assert words[0] == "solutions", chosen
        nxt = tuple(words[1:])
        assert nxt not in pending, f"{args} leads back to {nxt}: {said}"
        pending.append(nxt)
    return ran


def pasted(run: Run, args: tuple[str, ...], choose: Choose) -> tuple[str, ...]:
    """The command the refusal of ``args`` names, as words."""
    result = run(*args)
    assert result.returncode == 1, (args, result.stdout, result.stderr)
    words = shlex.split(choose(printed(result.stderr)))
    assert words[0] == "solutions", words
    return tuple(words[1:])


def test_env_show_of_a_missing_environment_leads_to_creating_it(run: Run, admin: Api) -> None:
    name = f"hint-{secrets.token_hex(3)}"
    try:
        ran = follow(run, "env", "show", name)
    finally:
        run("env", "delete", name, "--timeout", "120")
    assert ran == [("env", "show", name), ("env", "create", name), ("env", "show", name)]


def test_env_upgrade_before_anything_is_deployed_or_active(run: Run, env: str) -> None:
    """The case of the issue: the refusal of 'env upgrade' named 'activate ... VERSION'."""
    try:
        ran = follow(run, "env", "upgrade", env, SOL, "1.0.0")
        assert ran == [
            ("env", "upgrade", env, SOL, "1.0.0"),
            ("env", "add-solution", env, SOL, "1.0.0"),
            ("activate", SOL, "1.0.0"),
            ("env", "add-solution", env, SOL, "1.0.0"),
            ("env", "upgrade", env, SOL, "1.0.0"),
        ]
        # an upgrade whose CRDs are not active names the activation that serves them
        ran = follow(run, "env", "upgrade", env, SOL, "2.0.0")
        assert ran == [
            ("env", "upgrade", env, SOL, "2.0.0"),
            ("activate", SOL, "2.0.0"),
            ("env", "upgrade", env, SOL, "2.0.0"),
        ]
    finally:
        run("env", "delete-solution", env, SOL, "--delete-data")


def _deploy_with_an_instance(run: Run, env: str) -> None:
    ok(run, "activate", SOL, "1.0.0")
    ok(run, "env", "add-solution", env, SOL, "1.0.0", "--no-wait")
    ok(
        run,
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


def test_a_namespace_outside_the_environment_leads_to_adding_it(run: Run, env: str) -> None:
    other = f"{env}-b"
    add = ("env", "add-solution", env, SOL, "1.0.0", "-N", other, "--no-wait")
    ok(run, "activate", SOL, "1.0.0")
    try:
        ran = follow(run, *add, values={"namespace": other})
    finally:
        run("env", "delete-solution", env, SOL, "--delete-data")
    assert ran == [add, ("env", "create", env, "-N", other), add]


def test_creating_an_instance_that_exists_leads_to_editing_it(
    run: Run, env: str, admin: Api
) -> None:
    _deploy_with_an_instance(run, env)
    create = ("instance", "create", env, SOL, "--kind", "Gadget", "--name", "web")
    result = run(*create, "--set", "spec.size=1")
    assert result.returncode == 1, result.stderr
    (edit,) = printed(result.stderr)
    ok(run, *shlex.split(edit.replace("<field>=<value>", "spec.size=3"))[1:])
    web = admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{env}/gadgets/web")
    assert web is not None and web["spec"] == {"size": 3}
    run("env", "delete-solution", env, SOL, "--delete-data")


def test_deactivate_while_deployed_leads_to_removing_the_deployment(
    run: Run, env: str, admin: Api
) -> None:
    _deploy_with_an_instance(run, env)
    ran = follow(run, "deactivate", SOL)
    assert ran == [
        ("deactivate", SOL),
        ("env", "delete-solution", env, SOL, "--delete-data"),
        ("deactivate", SOL),
    ]
    assert admin.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD}") is None


def test_instances_kept_by_delete_solution_lead_to_deploying_or_deleting(
    run: Run, env: str, admin: Api
) -> None:
    _deploy_with_an_instance(run, env)
    kept = ok(run, "env", "delete-solution", env, SOL)
    assert "--delete-data" in kept, kept
    edit = ("instance", "edit", env, SOL, "Gadget/web", "--set", "spec.size=2")
    # the first way out: deploy it again (the version is the user's choice)
    ran = follow(run, *edit)
    assert ran == [edit, ("env", "add-solution", env, SOL, "1.0.0"), edit]
    # the second: delete the data
    ok(run, "env", "delete-solution", env, SOL)
    delete = pasted(run, edit, choose=lambda commands: commands[-1])
    assert delete == ("env", "delete-solution", env, SOL, "--delete-data")
    ok(run, *delete)
    assert admin.get(f"/apis/{GROUP}/v1alpha1/namespaces/{env}/gadgets/web") is None


def test_an_instance_in_a_missing_environment_leads_to_creating_and_deploying(
    run: Run, admin: Api
) -> None:
    name = f"hint-{secrets.token_hex(3)}"
    ok(run, "activate", SOL, "1.0.0")
    try:
        ran = follow(run, "instance", "list", name, SOL)
    finally:
        run("env", "delete", name, "--timeout", "120")
    assert ran == [
        ("instance", "list", name, SOL),
        ("env", "create", name),
        ("instance", "list", name, SOL),
        ("env", "add-solution", name, SOL, "1.0.0"),
        ("instance", "list", name, SOL),
    ]


def test_unimporting_a_version_in_use_leads_to_ending_its_uses(
    run: Run, env: str, admin: Api, archives: dict[str, Path]
) -> None:
    ok(run, "activate", SOL, "2.0.0")
    ok(run, "env", "add-solution", env, SOL, "2.0.0", "--no-wait")
    unimport = ("unimport", f"{SOL}-2.0.0")
    try:
        said = " ".join(run(*unimport).stderr.split())
        assert printed(said) == [
            f"solutions deactivate {SOL}",
            f"solutions activate {SOL} <version>",
            f"solutions env delete-solution {env} {SOL} -N {env}",
        ], said
        ran = follow(run, *unimport)
        assert ran == [
            unimport,
            ("deactivate", SOL),
            ("env", "delete-solution", env, SOL, "--delete-data"),
            ("deactivate", SOL),
            unimport,
        ]
    finally:
        ok(run, "import", str(archives["2.0.0"]))


def test_importing_another_file_with_the_same_id_leads_to_unimporting_the_first(
    run: Run, admin: Api, archives: dict[str, Path], tmp_path: Path
) -> None:
    other = build_solution(
        tmp_path, SOL, "2.0.0", group=GROUP, served=("v1alpha1", "v1beta1"), storage="v1alpha1"
    )
    run("deactivate", SOL, "--force")
    try:
        ran = follow(run, "import", str(other))
        assert ran == [
            ("import", str(other)),
            ("unimport", str(archives["2.0.0"])),
            ("import", str(other)),
        ]
    finally:
        run("unimport", str(other))
        ok(run, "import", str(archives["2.0.0"]))
