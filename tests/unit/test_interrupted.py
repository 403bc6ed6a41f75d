"""The ``aborted:`` message of an interrupted version change: what state remains, what to run."""

from __future__ import annotations

from metalk8s_solutions.engine import environments as envs
from metalk8s_solutions.engine.environments.versions import again_command, interrupted
from metalk8s_solutions.errors import Interrupted


def test_the_command_to_paste_repeats_the_approvals_and_namespaces() -> None:
    opts = envs.AddSolutionOptions(
        "prod",
        "example-solution",
        "1.0.0",
        ("a", "b"),
        allow_cluster_scope=True,
        allow_privileged_role=True,
        webhook=True,
    )
    assert again_command(opts) == (
        "solutions env add-solution prod example-solution 1.0.0 -N a -N b "
        "--allow-cluster-scope --allow-privileged-role --webhook"
    )
    up = envs.UpgradeOptions("prod", "example-solution", "2.0.0")
    assert again_command(up) == ("solutions env upgrade prod example-solution 2.0.0")


def test_each_namespace_says_what_it_was_left_in() -> None:
    err = interrupted(
        "prod",
        "sol",
        origin={"a": "1.0.0", "b": "1.0.0", "c": None},
        wanted={"a": "2.0.0", "b": "2.0.0", "c": "2.0.0"},
        written={"a": "2.0.0"},
        revisions={"a": 4, "b": 7},
        again="solutions env upgrade prod sol 2.0.0",
    )
    assert isinstance(err, Interrupted) and err.exit_code == 130
    assert str(err) == (
        "sol: prod/a is set to 2.0.0 (1.0.0 -> 2.0.0, revision 4 in progress) but its operator "
        "may not be updated or Available yet; prod/b still runs 1.0.0 (1.0.0 -> 2.0.0, revision "
        "7 in progress); prod/c still runs nothing (none -> 2.0.0, nothing recorded); "
        "finish it with: solutions env upgrade prod sol 2.0.0"
    )


def test_an_interrupted_roll_back_is_finished_by_a_converge() -> None:
    err = interrupted(
        "prod",
        "sol",
        origin={"a": "1.0.0"},
        wanted={"a": "2.0.0"},
        written={"a": "1.0.0"},
        revisions={"a": 4},
        again="solutions env upgrade prod sol 2.0.0",
    )
    assert str(err) == (
        "sol: prod/a was being rolled back to 1.0.0 (1.0.0 -> 2.0.0, revision 4 in progress); "
        "finish it with: solutions env converge prod --wait"
    )


def test_the_command_to_paste_after_an_upgrade_has_only_flags_upgrade_takes() -> None:
    """``--webhook`` is add-solution's (the MetalK8s shim's upgrade sets it, and records it on
    the namespaces before the version changes): the upgrade to paste does not repeat it."""
    up = envs.UpgradeOptions("prod", "example-solution", "2.0.0", ("a",), webhook=True)
    assert again_command(up) == "solutions env upgrade prod example-solution 2.0.0 -N a"
