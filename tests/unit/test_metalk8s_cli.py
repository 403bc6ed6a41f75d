"""``solutions metalk8s VERB``: solutions.sh's verbs, flags and defaults, parsed (no cluster)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
import pytest

from cli_parsing import parse
from metalk8s_solutions.cli import metalk8s
from metalk8s_solutions.cli.main import GlobalOptions, cli, main
from metalk8s_solutions.engine import activation, environments, solutions

#: Every verb of scripts/solutions.sh (MetalK8s development branch), with its mandatory flags.
MANDATORY = {
    "import": ["--archive"],
    "unimport": ["--archive"],
    "activate": ["--name"],
    "deactivate": ["--name"],
    "create-env": ["--name"],
    "delete-env": ["--name"],
    "add-solution": ["--name", "--solution", "--version"],
    "delete-solution": ["--name", "--solution"],
}


def options(line: str) -> tuple[str, dict[str, object]]:
    ctx = parse(f"metalk8s {line}")
    assert ctx.info_name is not None
    return ctx.info_name, ctx.params


def test_the_verbs_are_those_of_solutions_sh() -> None:
    ctx = click.Context(metalk8s.metalk8s_group)
    assert sorted(metalk8s.metalk8s_group.list_commands(ctx)) == sorted(MANDATORY)


@pytest.mark.parametrize(("verb", "mandatory"), MANDATORY.items())
def test_each_mandatory_flag_is_required(verb: str, mandatory: list[str]) -> None:
    values = {"--archive": "a.iso", "--version": "1.0.0"}
    for missing in mandatory:
        line = [verb] + [
            w for flag in mandatory if flag != missing for w in (flag, values.get(flag, "x"))
        ]
        with pytest.raises(click.MissingParameter) as caught:
            parse(["metalk8s", *line])
        assert caught.value.param is not None
        assert missing in caught.value.param.opts


def test_short_and_long_flags_as_getopt_spells_them() -> None:
    long = options(
        "add-solution --name env --solution sol --version 1.1.2-dev --namespace ns "
        "--webhook --verbose --log-file /tmp/s.log"
    )
    short = options("add-solution -n env -s sol -V 1.1.2-dev -N ns -w -v -l /tmp/s.log")
    assert long == short
    assert short[1] == {
        "archive": (),
        "description": None,
        "dry_run": False,
        "log_file": "/tmp/s.log",
        "name": "env",
        "namespace": "ns",
        "solution": "sol",
        "verbose": True,
        "version": "1.1.2-dev",
        "webhook": True,
    }
    _, imported = options("import -a one.iso --archive two.iso -a three.iso")
    assert imported["archive"] == (Path("one.iso"), Path("two.iso"), Path("three.iso"))


def test_any_flag_is_accepted_by_any_verb_as_getopt_does() -> None:
    """solutions.sh's getopt takes every option with every verb (older scripts pass
    'deactivate --version V', as its older usage text told them to)."""
    verb, params = options("deactivate --name sol --version 1.0.0")
    assert (verb, params["version"]) == ("deactivate", "1.0.0")


def test_general_flags_before_or_after_the_verb() -> None:
    for line in ("-v -l /tmp/s.log activate --name sol", "activate --name sol -v -l /tmp/s.log"):
        _, params = options(line)
        assert (params["verbose"], params["log_file"]) == (True, "/tmp/s.log")


def test_flags_from_the_environment_as_solutions_sh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBOSE", "1")
    monkeypatch.setenv("WEBHOOK_ENABLED", "true")
    _, params = options("add-solution -n env -s sol -V 1")
    assert params["verbose"] and params["webhook"]
    _, params = options("import -a a.iso")  # import has no use for it: not set, no warning
    assert params["verbose"] and not params["webhook"]
    monkeypatch.setenv("VERBOSE", "0")
    monkeypatch.setenv("WEBHOOK_ENABLED", "false")
    _, params = options("add-solution -n env -s sol -V 1")
    assert not params["verbose"] and not params["webhook"]


def test_options_before_the_verb_as_getopt_permutes_them() -> None:
    assert options("--name sol --version 1.0.3 activate") == options(
        "activate --name sol --version 1.0.3"
    )
    assert options("-vn sol activate")[1]["name"] == "sol"
    assert options("-nimport activate")[1]["name"] == "import"
    assert options("--name import -l x.log activate -V 1")[1]["name"] == "import"
    assert options("--name=import activate")[1]["name"] == "import"
    assert options("-a a.iso import -a b.iso")[1]["archive"] == (Path("a.iso"), Path("b.iso"))
    assert metalk8s.verb_first(["--", "activate"], ["activate"]) == ["--", "activate"]


def test_the_help_of_a_verb_shows_only_the_flags_it_uses() -> None:
    text = metalk8s.add_solution_command.get_help(parse("metalk8s add-solution -n e -s s -V 1"))
    for flag in ("--name", "--solution", "--version", "--namespace", "--webhook", "--log-file"):
        assert flag in text
    assert "--archive" not in text and "--description" not in text


def engine(line: str) -> Any:
    verb, params = options(line)
    return metalk8s.engine_options(verb, params)


def test_metalk8s_defaults() -> None:
    """The namespace defaults to the environment's name; activate's version to 'latest'."""
    assert engine("activate --name sol") == activation.ActivateOptions("sol", "latest")
    assert engine("activate --name sol -V 1.0.3") == activation.ActivateOptions("sol", "1.0.3")
    assert engine("deactivate --name sol") == activation.DeactivateOptions("sol")
    assert engine("create-env --name env") == environments.CreateEnvOptions("env", (), "")
    assert engine("create-env --name env -N ns -d 'Team A'") == environments.CreateEnvOptions(
        "env", ("ns",), "Team A"
    )
    assert engine("delete-env --name env") == environments.DeleteEnvOptions("env", ())
    assert engine("delete-env --name env -N ns") == environments.DeleteEnvOptions("env", ("ns",))
    add = engine("add-solution --name env --solution sol --version 1.0.3")
    assert add == environments.AddSolutionOptions("env", "sol", "1.0.3", ("env",))
    assert add.wait and not add.webhook
    hooked = engine("add-solution -n env -s sol -V 1.0.3 -N ns --webhook")
    assert hooked == environments.AddSolutionOptions("env", "sol", "1.0.3", ("ns",), webhook=True)
    assert engine("delete-solution --name env --solution sol") == (
        environments.DeleteSolutionOptions("env", "sol", ("env",))
    )
    assert engine("import -a a.iso -a b.iso") == solutions.ImportOptions(
        (Path("a.iso"), Path("b.iso"))
    )
    assert engine("unimport -a a.iso") == solutions.UnimportOptions(("a.iso",))


def test_dry_run_of_every_verb() -> None:
    """Not a solutions.sh flag: added, as every mutating command of ours takes it."""
    lines = {
        "import": "-a a.iso",
        "unimport": "-a a.iso",
        "activate": "-n sol",
        "deactivate": "-n sol",
        "create-env": "-n env",
        "delete-env": "-n env",
        "add-solution": "-n env -s sol -V 1",
        "delete-solution": "-n env -s sol",
    }
    for verb, flags in lines.items():
        assert not engine(f"{verb} {flags}").dry_run
        assert engine(f"{verb} {flags} --dry-run").dry_run, verb
    add = engine("add-solution -n env -s sol -V 1 --dry-run")
    assert metalk8s.upgrade_options(add).dry_run


def test_add_solution_of_another_version_changes_it() -> None:
    add = environments.AddSolutionOptions("env", "sol", "1.1.2-dev", ("ns",), webhook=True)
    upgrade = metalk8s.upgrade_options(add)
    assert upgrade == environments.UpgradeOptions("env", "sol", "1.1.2-dev", ("ns",), webhook=True)
    envs = [
        {"name": "env", "namespaces": {"ns": {"config": {"sol": "1.0.3"}}, "b": {"config": {}}}}
    ]
    assert metalk8s.deployed_version(envs, "env", "ns", "sol") == "1.0.3"
    assert metalk8s.deployed_version(envs, "env", "b", "sol") is None
    assert metalk8s.deployed_version(envs, "other", "ns", "sol") is None


def test_usage_errors_exit_2_on_one_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metalk8s", "add-solution", "--name", "env", "--solution", "sol"]) == 2
    assert "Missing option '-V' / '--version'" in capsys.readouterr().err
    assert main(["metalk8s", "frobnicate"]) == 2
    assert "No such command 'frobnicate'" in capsys.readouterr().err


def test_log_file_gets_the_command_its_warnings_and_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "logs" / "solutions.log"
    argv = ["--config", str(tmp_path / "s.yaml"), "--kubeconfig", str(tmp_path / "kc")]
    missing = tmp_path / "missing.iso"
    for _ in range(2):  # appended, as tee -a does
        code = main(
            [*argv, "metalk8s", "import", "-a", str(missing), "--name", "x", "-l", str(log)]
        )
        assert code == 1
    err = capsys.readouterr().err
    assert "warning: --name is not used by import; ignored" in err
    assert f"error: archive {missing} does not exist" in err
    lines = log.read_text().splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("--- ")
    assert lines[0].endswith(
        f" solutions metalk8s import --archive {missing} --name x --log-file {log}"
    )
    assert lines[1] == "warning: --name is not used by import; ignored"
    assert lines[2].startswith(f"error: archive {missing} does not exist")


def test_kubeconfig_defaults_to_metalk8s_admin_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As solutions.sh: KUBECONFIG, else /etc/kubernetes/admin.conf when it exists."""
    admin = tmp_path / "admin.conf"
    monkeypatch.setattr(metalk8s, "METALK8S_KUBECONFIG", admin)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    base = GlobalOptions(config=tmp_path / "s.yaml", kubeconfig=None, context=None)

    def resolved(options: GlobalOptions) -> Path | None:
        root = click.Context(cli, obj=options)
        metalk8s._metalk8s_kubeconfig(click.Context(metalk8s.metalk8s_group, parent=root))
        return root.obj.kubeconfig  # type: ignore[no-any-return]

    assert resolved(base) is None  # no admin.conf: the usual lookup (~/.kube/config)
    admin.write_text("{}")
    assert resolved(base) == admin
    assert resolved(dataclasses.replace(base, kubeconfig=tmp_path / "mine")) == tmp_path / "mine"
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    assert resolved(base) is None  # ClusterTarget reads KUBECONFIG
