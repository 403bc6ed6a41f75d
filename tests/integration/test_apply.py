"""``solutions apply``: SolutionsConfiguration edited by hand is the desired state."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import SolutionsCli, make_source
from crd_versions import CRD_NAME, build_version
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster
CRD_URL = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}"
RECORD_URL = "/api/v1/namespaces/metalk8s-solutions/configmaps/metalk8s-solutions"


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("apply-versions")
    src = make_source(out / "src")
    return {v: build_version(src, out, v) for v in ("1.0.0", "1.1.0", "2.0.0")}


@pytest.fixture
def api(local_cluster: LocalCluster) -> Iterator[Any]:
    with local_cluster.admin_http() as http:
        http.delete(RECORD_URL)
        yield http
        http.delete(CRD_URL)
        http.delete(RECORD_URL)


@pytest.fixture
def apply(cli: SolutionsCli) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        return cli("apply", *args, kubeconfig=kubeconfig)

    run.config = cli.config  # type: ignore[attr-defined]
    return run


def write(config: Path, archives: list[Path], active: dict[str, str]) -> None:
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionsConfiguration",
                "archives": [str(a) for a in archives],
                "active": active,
                "site": {"owner": "ops"},
            }
        )
    )


def storage(api: Any) -> str:
    crd = api.get(CRD_URL).json()
    return next(v["name"] for v in crd["spec"]["versions"] if v["storage"])


def test_edit_apply_cycle(
    apply: Callable[..., subprocess.CompletedProcess[str]],
    archives: dict[str, Path],
    api: Any,
) -> None:
    config: Path = apply.config  # type: ignore[attr-defined]
    write(config, [archives["1.0.0"], archives["1.1.0"]], {"example-solution": "1.0.0"})
    before = config.read_bytes()

    plan = apply("--dry-run")
    assert plan.returncode == 0, plan.stderr
    for line in (
        "would images example-solution-1.0.0: served by the built-in registry",
        "would images example-solution-1.1.0: served by the built-in registry",
        f"would crd {CRD_NAME}: create (storage v1alpha1)",
        "would record example-solution-1.0.0: add to ConfigMap metalk8s-solutions",
        "would record example-solution-1.1.0: add to ConfigMap metalk8s-solutions",
        "dry run: nothing was changed",
    ):
        assert line in plan.stdout
    assert api.get(CRD_URL).status_code == 404

    done = apply()
    assert done.returncode == 0, done.stderr
    assert storage(api) == "v1alpha1"
    assert "example-solution" in api.get(RECORD_URL).json()["data"]
    assert config.read_bytes() == before  # apply never writes the file

    again = apply()
    assert again.returncode == 0
    assert again.stdout.strip() == "nothing to do: already in the desired state"

    # Edit by hand: add 2.0.0, activate latest -> migrated to v1beta1 storage.
    write(config, list(archives.values()), {"example-solution": "latest"})
    done = apply()
    assert done.returncode == 0, done.stderr
    assert storage(api) == "v1beta1"
    assert api.get(CRD_URL).json()["status"]["storedVersions"] == ["v1beta1"]

    # Edit by hand: remove 1.0.0 (not active, not deployed): removed from the record.
    write(config, [archives["1.1.0"], archives["2.0.0"]], {"example-solution": "latest"})
    done = apply()
    assert done.returncode == 0, done.stderr
    assert "record example-solution-1.0.0: remove from ConfigMap metalk8s-solutions" in done.stdout
    record = yaml.safe_load(api.get(RECORD_URL).json()["data"]["example-solution"])
    assert [r["version"] for r in record] == ["1.1.0", "2.0.0"]
    assert [r["active"] for r in record] == [False, True]

    # Drift: the record and the CRD deleted by hand are restored, and reported.
    api.delete(RECORD_URL)
    api.delete(CRD_URL)
    done = apply()
    assert done.returncode == 0, done.stderr
    assert f"crd {CRD_NAME}: create (storage v1beta1)" in done.stdout
    assert "record example-solution-2.0.0: add to ConfigMap metalk8s-solutions" in done.stdout
    assert storage(api) == "v1beta1"

    # Deactivation by removing the active mark.
    write(config, [archives["1.1.0"], archives["2.0.0"]], {})
    done = apply()
    assert done.returncode == 0, done.stderr
    assert f"crd {CRD_NAME}: delete (no object)" in done.stdout


def test_failures_stop_cleanly_and_resume(
    apply: Callable[..., subprocess.CompletedProcess[str]],
    archives: dict[str, Path],
    api: Any,
    tmp_path: Path,
    unreachable_kubeconfig: Path,
) -> None:
    config: Path = apply.config  # type: ignore[attr-defined]
    moved = tmp_path / "later.iso"
    write(config, [archives["1.0.0"], moved], {"example-solution": "1.0.0"})
    before = config.read_bytes()
    failed = apply()
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1] == (
        f"error: archive {moved}: archive file does not exist; check the path in 'archives'; "
        "nothing was changed"
    )
    assert api.get(CRD_URL).status_code == 404
    assert config.read_bytes() == before

    # API server unreachable: one clear line, nothing changed.
    down = apply(kubeconfig=unreachable_kubeconfig)
    assert down.returncode == 2
    assert "cannot reach the Kubernetes API at https://127.0.0.1:1" in down.stderr
    assert "Traceback" not in down.stderr

    # The archive comes back: re-running resumes and converges.
    moved.write_bytes(archives["2.0.0"].read_bytes())
    write(config, [archives["1.0.0"], moved], {"example-solution": "1.0.0"})
    done = apply()
    assert done.returncode == 0, done.stderr
    assert storage(api) == "v1alpha1"


def test_typos_missing_keys_and_files_are_said_before_anything_changes(
    apply: Callable[..., subprocess.CompletedProcess[str]],
    archives: dict[str, Path],
    api: Any,
    tmp_path: Path,
) -> None:
    config: Path = apply.config  # type: ignore[attr-defined]
    write(config, [archives["1.0.0"]], {"example-solution": "1.0.0"})
    done = apply()
    assert done.returncode == 0, done.stderr

    # A top-level 'activ:' instead of 'active:': the plan deactivates, and says why first.
    doc = yaml.safe_load(config.read_text())
    doc["activ"] = doc.pop("active")
    config.write_text(yaml.safe_dump(doc))
    plan = apply("--dry-run")
    assert plan.returncode == 0, plan.stderr
    lines = plan.stdout.splitlines()
    assert lines[0] == (
        "warning: unknown key 'activ' (did you mean 'active'?) is kept in the file but not used"
    )
    assert lines[1] == (
        "warning: the file has no 'active' key: this deactivates example-solution-1.0.0"
    )

    # A nested typo is named with its section; the unknown-but-unlike key is not reported.
    doc["active"] = doc.pop("activ")
    doc["trust"] = {"key": ["/nowhere.pub"]}
    config.write_text(yaml.safe_dump(doc))
    plan = apply("--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "warning: unknown key 'trust.key' (did you mean 'keys'?)" in plan.stdout
    assert "site" not in plan.stdout

    # A trust key file that does not exist is refused, even with nothing to import.
    doc["trust"] = {"keys": [str(tmp_path / "missing.pub")]}
    config.write_text(yaml.safe_dump(doc))
    refused = apply("--dry-run")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: trust.keys: {tmp_path / 'missing.pub'}: ")

    # A mistyped new archive path is not "moved or deleted after import".
    del doc["trust"]
    doc["archives"].append(str(tmp_path / "typo-2.0.0.iso"))
    config.write_text(yaml.safe_dump(doc))
    typo = apply("--dry-run")
    assert "does not exist; check the path in 'archives'" in typo.stdout + typo.stderr
    assert "moved or deleted after import" not in typo.stdout + typo.stderr
