"""A malformed kubeconfig ends every command in one line naming the file, never a traceback.

lightkube raises KeyError, AttributeError or a YAML error for a kubeconfig that is not valid
YAML, has no ``clusters``, is empty, or whose context names a cluster or user it does not
define.  Each command that may reach the cluster is run the way a user runs it (``main`` of the
console script, the environment's ``KUBECONFIG``): ``import``, ``env list``, ``apply`` and ``ui``
must stop with one ``error:`` line; ``list`` (documented to work without a cluster) must still
list, with one warning line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from metalk8s_solutions.cli.main import main
from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.errors import ClusterError
from security.registry_support import write_config

GOOD_HEAD = "apiVersion: v1\nkind: Config\n"
CLUSTER = "clusters:\n- name: k\n  cluster: {server: 'https://127.0.0.1:1'}\n"
USER = "users:\n- name: u\n  user: {token: abc}\n"

#: name -> (kubeconfig text, or None for a directory, and a word the message must hold)
BROKEN: dict[str, tuple[str | None, str]] = {
    "bad-yaml": ("garbage: [\n", "YAML"),
    "no-clusters": ("foo: bar\n", "clusters"),
    "empty": ("", "empty"),
    "a-list": ("- a\n- b\n", "mapping"),
    "directory": (None, "directory"),
    "not-utf8": ("\udcff\udcfe", "UTF-8"),
    "clusters-not-a-list": (GOOD_HEAD + "clusters: 3\ncontexts: []\n", "clusters"),
    "cluster-without-server": (
        GOOD_HEAD + "clusters:\n- name: k\n  cluster: {server: [1]}\ncontexts: []\n",
        "clusters",
    ),
    "entry-without-name": (GOOD_HEAD + "clusters:\n- cluster: {server: x}\ncontexts: []\n", "name"),
    "no-current-context": (GOOD_HEAD + CLUSTER + "contexts: []\n" + USER, "current-context"),
    "missing-context": (
        GOOD_HEAD + "current-context: nope\n" + CLUSTER + "contexts: []\n" + USER,
        "nope",
    ),
    "missing-cluster": (
        GOOD_HEAD
        + "current-context: c\n"
        + CLUSTER
        + "contexts:\n- name: c\n  context: {cluster: gone, user: u}\n"
        + USER,
        "gone",
    ),
    "missing-user": (
        GOOD_HEAD
        + "current-context: c\n"
        + CLUSTER
        + "contexts:\n- name: c\n  context: {cluster: k, user: nobody}\n"
        + USER,
        "nobody",
    ),
}


def make_kubeconfig(tmp_path: Path, case: str) -> Path:
    text, _ = BROKEN[case]
    path = tmp_path / f"{case}.kubeconfig"
    if text is None:
        path.mkdir()
    else:
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path


def run_cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kubeconfig: Path,
    *args: str,
) -> tuple[int, str, str]:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_loading_names_the_file_and_the_fault(tmp_path: Path, case: str) -> None:
    path = make_kubeconfig(tmp_path, case)
    with pytest.raises(ClusterError) as raised:
        ClusterTarget(kubeconfig=path).load()
    message = str(raised.value)
    assert str(path) in message
    assert BROKEN[case][1].lower() in message.lower(), message
    assert "--kubeconfig" in message or "--context" in message  # what to do
    assert "\n" not in message


def test_an_unreadable_kubeconfig(tmp_path: Path) -> None:
    # /proc/self/mem is a regular file that cannot be read at offset 0, even by root
    with pytest.raises(ClusterError, match="cannot read kubeconfig /proc/self/mem"):
        ClusterTarget(kubeconfig=Path("/proc/self/mem")).load()


def test_the_default_kubeconfig_is_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".kube").mkdir()
    (tmp_path / ".kube" / "config").write_text("foo: bar\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ClusterError, match=r"\.kube/config has no clusters"):
        ClusterTarget().load()


@pytest.mark.parametrize(
    "case", ["bad-yaml", "no-clusters", "empty", "directory", "missing-cluster"]
)
def test_commands_end_in_one_line(
    tmp_path: Path,
    case: str,
    built_archive: Callable[[], Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kubeconfig = make_kubeconfig(tmp_path, case)
    config = write_config(tmp_path / "solutions.yaml", [])
    before = config.read_bytes()
    monkeypatch.setenv("SOLUTIONS_CONFIG", str(config))
    archive = built_archive()
    for args in (
        ["import", str(archive)],
        ["env", "list"],
        ["apply"],
        ["ui", "--listen", "127.0.0.1:0"],
    ):
        code, out, err = run_cli(capsys, monkeypatch, kubeconfig, *args)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (args, code, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        assert str(kubeconfig) in lines[0], (args, err)
        assert "Traceback" not in out + err
    assert config.read_bytes() == before  # nothing half-done: the import was not recorded

    code, out, err = run_cli(capsys, monkeypatch, kubeconfig, "list")
    assert code == 0, err
    assert "No Solution imported" in out
    warnings = [line for line in (out + err).splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(kubeconfig) in warnings[0], out + err
    assert "Traceback" not in out + err
