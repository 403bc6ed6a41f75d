"""``solutions import|unimport|list`` against the real local control plane, run as a user would."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import ApiError, Client, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace

from conftest import SolutionsCli
from metalk8s_solutions.archive.iso import IsoReader
from metalk8s_solutions.testing.pytest_plugin import LocalCluster

pytestmark = pytest.mark.cluster
REF_NAME = "org.opencontainers.image.ref.name"


@pytest.fixture
def admin(local_cluster: LocalCluster) -> Client:
    return Client(config=KubeConfig.from_file(local_cluster.kubeconfig), field_manager="tests")


def record(admin: Client) -> dict[str, Any]:
    cm = admin.get(ConfigMap, "metalk8s-solutions", namespace="metalk8s-solutions")
    return {k: json.loads(v) for k, v in (cm.data or {}).items()}


@pytest.fixture(autouse=True)
def _clean_record(admin: Client) -> None:
    """Each test starts from an empty cluster record (tests share one control plane)."""
    with contextlib.suppress(ApiError):  # absent is fine
        admin.delete(ConfigMap, "metalk8s-solutions", namespace="metalk8s-solutions")


def test_import_list_unimport_journey(
    cli: SolutionsCli,
    built_archive: Callable[[], Path],
    admin: Client,
) -> None:
    iso = built_archive()
    config: Path = cli.config

    plan = cli("import", str(iso), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"would configure {iso}: add to SolutionsConfiguration" in plan.stdout
    assert "would record example-solution-1.0.0: add to ConfigMap metalk8s-solutions" in plan.stdout
    assert not config.exists()

    done = cli("import", str(iso))
    assert done.returncode == 0, done.stderr
    with IsoReader(iso) as reader:
        sums = hashlib.sha256(reader.read_bytes("SHA256SUMS")).hexdigest()
    # Pinned: what was verified (no trusted key configured, so no signer) in both places.
    pin = {"id": "example-solution-1.0.0", "sha256sums": f"sha256:{sums}", "signer": "unsigned"}
    written = yaml.safe_load(config.read_text())
    assert written["archives"] == [str(iso)]
    assert written["pins"] == {str(iso): pin}
    entry = record(admin)["example-solution"]
    assert entry == [
        {
            "name": "Example Solution",
            "id": "example-solution-1.0.0",
            "version": "1.0.0",
            "archive": str(iso),
            "mountpoint": None,
            "manifest": entry[0]["manifest"],
            "active": False,
            "pin": pin,
        }
    ]
    assert entry[0]["manifest"]["spec"]["version"] == "1.0.0"
    ns = admin.get(Namespace, "metalk8s-solutions")
    assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "metalk8s-solutions"

    again = cli("import", str(iso))
    assert again.returncode == 0
    assert "nothing to do" in again.stdout

    listed = cli("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)["solutions"]["example-solution"]
    assert [(v["id"], v["active"], v["recorded"], v["problem"]) for v in versions] == [
        ("example-solution-1.0.0", False, True, None)
    ]
    table = cli("list")
    assert "example-solution-1.0.0" in table.stdout

    gone = cli("unimport", "example-solution-1.0.0")
    assert gone.returncode == 0, gone.stderr
    assert yaml.safe_load(config.read_text())["archives"] == []
    assert "example-solution" not in record(admin)


def test_same_id_from_another_file_is_refused(
    cli: SolutionsCli, built_archive: Callable[[], Path]
) -> None:
    first, second = built_archive(), built_archive()
    assert cli("import", str(first)).returncode == 0
    before = cli.config.read_bytes()
    refused = cli("import", str(second))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: solution example-solution-1.0.0 is already imported from {first}; {second} is "
        f"a different archive with the same id; unimport it first (solutions unimport {first}), "
        "or import that same file"
    )
    assert cli.config.read_bytes() == before


def test_a_tampered_archive_changes_nothing(
    cli: SolutionsCli, built_archive: Callable[[], Path]
) -> None:
    iso = built_archive()
    with IsoReader(iso) as reader:
        offset, size = reader.extent("images/index.json")
    data = bytearray(iso.read_bytes())
    data[offset + size // 2] ^= 0x01  # one bit of one file's content
    iso.write_bytes(bytes(data))
    result = cli("import", str(iso), "--key", str(iso.parent / "vendor.pub"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("  checking")]
    assert len(lines) == 1
    assert lines[0].startswith(f"error: archive {iso} is not valid: ")
    assert lines[0].endswith(
        f"nothing was changed; run 'solutions validate {iso}' for the full report"
    )
    assert not cli.config.exists()


def test_missing_cluster_is_one_clear_error(
    cli: SolutionsCli, built_archive: Callable[[], Path], unreachable_kubeconfig: Path
) -> None:
    result = cli("import", str(built_archive()), kubeconfig=unreachable_kubeconfig)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(
        "error: connecting to the cluster: cannot reach the Kubernetes API at https://127.0.0.1:1"
    )
    assert not cli.config.exists()


def test_unimport_refuses_active_and_deployed_versions(
    cli: SolutionsCli,
    built_archive: Callable[[], Path],
    admin: Client,
    kube_namespace: str,
) -> None:
    iso = built_archive()
    config: Path = cli.config
    assert cli("import", str(iso)).returncode == 0
    doc = yaml.safe_load(config.read_text())
    doc["active"] = {"example-solution": "latest"}
    config.write_text(yaml.safe_dump(doc))
    before = config.read_bytes()

    refused = cli("unimport", str(iso))
    assert refused.returncode == 1
    assert "example-solution-1.0.0 is the active version of example-solution" in refused.stderr
    assert config.read_bytes() == before

    # Deployed in an environment: a labelled namespace whose metalk8s-environment names it.
    doc["active"] = {}
    config.write_text(yaml.safe_dump(doc))
    before = config.read_bytes()
    ns = admin.get(Namespace, kube_namespace)
    ns.metadata.labels = {
        **(ns.metadata.labels or {}),
        "solutions.metalk8s.scality.com/environment": "staging",
    }
    admin.replace(ns)
    admin.create(
        ConfigMap(
            metadata=ObjectMeta(name="metalk8s-environment", namespace=kube_namespace),
            data={"example-solution": "1.0.0"},
        )
    )
    refused = cli("unimport", "example-solution-1.0.0")
    assert refused.returncode == 1
    assert f"example-solution-1.0.0 is deployed in staging/{kube_namespace}" in refused.stderr
    assert config.read_bytes() == before
    assert "example-solution" in record(admin)
    admin.delete(ConfigMap, "metalk8s-environment", namespace=kube_namespace)
    assert cli("unimport", "example-solution-1.0.0").returncode == 0


def test_list_reports_a_moved_archive(cli: SolutionsCli, built_archive: Callable[[], Path]) -> None:
    iso = built_archive()
    assert cli("import", str(iso)).returncode == 0
    iso.rename(iso.with_suffix(".moved"))
    listed = cli("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = json.loads(listed.stdout)["solutions"]["example-solution"]
    assert entry["problem"].startswith("archive file is missing (moved or deleted after import)")
    assert entry["id"] == "example-solution-1.0.0"  # still known, from the cluster record
    table = cli("list")
    assert "archive file is missing" in table.stdout
    # It can still be unimported.
    assert cli("unimport", str(iso)).returncode == 0


def test_a_key_given_at_import_shows_as_the_verified_signer(
    cli: SolutionsCli, built_archive: Callable[[], Path], local_cluster: LocalCluster
) -> None:
    """``import --key`` verifies with a key that is not in trust.keys: ``list`` and the UI say
    which key verified it, instead of "signed by an unknown key"."""
    import asyncio  # noqa: PLC0415

    from metalk8s_solutions.archive.signing import key_id, load_public_key  # noqa: PLC0415
    from metalk8s_solutions.cluster.kube import ClusterTarget  # noqa: PLC0415
    from metalk8s_solutions.engine.solutions import Context  # noqa: PLC0415
    from metalk8s_solutions.engine.views import solutions_view  # noqa: PLC0415

    iso = built_archive()
    public = iso.parent / "vendor.pub"
    signer = key_id(load_public_key(public.read_bytes(), "vendor.pub"))
    result = cli("import", str(iso), "--key", str(public))
    assert result.returncode == 0, result.stderr
    assert "trust" not in yaml.safe_load(cli.config.read_text())  # the key is not configured
    listed = json.loads(cli.ok("list", "-o", "json"))["solutions"]["example-solution"]
    assert [v["signer"] for v in listed] == [signer]
    assert signer in cli.ok("list")
    ctx = Context(cli.config, ClusterTarget(kubeconfig=local_cluster.kubeconfig))
    view = asyncio.run(solutions_view(ctx))
    details = view["solutions"]["example-solution"][0]["details"]
    assert details["signature"] == "verified" and details["verifiedAtImport"] == signer
    cli.ok("unimport", str(iso))


def test_the_same_file_under_another_name_is_the_same_archive(
    cli: SolutionsCli, built_archive: Callable[[], Path]
) -> None:
    """``../x/a.iso``, a symlink or ``/x/a.iso``: one file, so importing again is a no-op, and
    unimport finds it by any of its names."""
    iso = built_archive()
    cli.ok("import", str(iso))
    dotted = iso.parent / ".." / iso.parent.name / iso.name
    link = iso.parent / "link.iso"
    link.symlink_to(iso)
    for other in (dotted, link):
        again = cli("import", str(other))
        assert again.returncode == 0, again.stderr
        assert "nothing to do" in again.stdout
    assert yaml.safe_load(cli.config.read_text())["archives"] == [str(iso)]
    cli.ok("unimport", str(dotted))
    assert yaml.safe_load(cli.config.read_text())["archives"] == []
    fresh = cli("import", str(dotted))  # a first import stores the folded name
    assert fresh.returncode == 0, fresh.stderr
    assert yaml.safe_load(cli.config.read_text())["archives"] == [str(iso)]
    cli.ok("unimport", str(link))


def test_an_image_signature_for_another_image_is_refused(
    cli: SolutionsCli, built_archive: Callable[[], Path]
) -> None:
    """Import checks every image's cosign signature: an archive whose SHA256SUMS and archive
    signature are intact (re-made, by a key it trusts) but whose image signatures are swapped
    between the two images (each names the other's manifest) is refused, nothing changed."""
    import io  # noqa: PLC0415

    from metalk8s_solutions.archive.checksums import format_sums  # noqa: PLC0415
    from metalk8s_solutions.archive.signing import (  # noqa: PLC0415
        generate_key,
        load_private_key,
        sign,
    )
    from metalk8s_solutions.archive.writer import IsoFile, write_iso  # noqa: PLC0415

    iso = built_archive()
    with IsoReader(iso) as reader:
        files = {n: reader.read_bytes(n) for n in reader.files() if not n.startswith("signatures/")}
    index = json.loads(files["images/index.json"])
    sigs = [m for m in index["manifests"] if m["annotations"][REF_NAME].endswith(".sig")]
    for key in ("digest", "size"):
        sigs[0][key], sigs[1][key] = sigs[1][key], sigs[0][key]
    files["images/index.json"] = json.dumps(index).encode()
    del files["SHA256SUMS"]
    files["SHA256SUMS"] = format_sums({n: hashlib.sha256(d).hexdigest() for n, d in files.items()})
    private, public = generate_key()
    (iso.parent / "signer.key").write_bytes(private)
    (iso.parent / "signer.pub").write_bytes(public)
    kid, signature = sign(load_private_key(iso.parent / "signer.key"), files["SHA256SUMS"])
    files[f"signatures/{kid}.sig"] = signature
    entries = [IsoFile(n, len(d), (lambda d=d: io.BytesIO(d))) for n, d in files.items()]
    write_iso(iso, entries, volume_id="X", epoch=0)
    result = cli("import", str(iso), "--key", str(iso.parent / "signer.pub"))
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "SOL083" in result.stderr and "signs manifest sha256:" in result.stderr, result.stderr
    assert not cli.config.exists()
