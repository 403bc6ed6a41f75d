"""SolutionsConfiguration: strict parsing, edits that keep unknown keys, a store that never
corrupts or loses an entry."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from metalk8s_solutions.api.config import (
    Policy,
    RegistryMode,
    SolutionsConfiguration,
    parse_config,
)
from metalk8s_solutions.engine.config_store import ConfigStore, load_config
from metalk8s_solutions.engine.solutions import resolve_active
from metalk8s_solutions.errors import InvalidInput

FULL = b"""\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: SolutionsConfiguration
archives: [/srv/a-1.0.0.iso]
active: {example-solution: latest}
registry: {mode: push, pushUrl: "https://harbor.local", pushPrefix: vendor, futureKey: 3}
trust: {keys: [/etc/metalk8s/vendor.pub]}
site-notes: {owner: ops}
"""


def test_parse_full_document() -> None:
    config = parse_config(FULL, "solutions.yaml")
    assert config.archives == ("/srv/a-1.0.0.iso",)
    assert config.active == {"example-solution": "latest"}
    assert config.registry.mode is RegistryMode.PUSH
    assert config.registry.push_prefix == "vendor"
    assert config.trust.effective_policy() is Policy.REQUIRED


def test_edits_keep_unknown_keys() -> None:
    config = parse_config(FULL, "solutions.yaml").with_archive("/srv/b-2.0.0.iso")
    config = config.with_active("other", "1.2.3").without_active("example-solution")
    doc = yaml.safe_load(config.to_yaml())
    assert doc["site-notes"] == {"owner": "ops"}
    assert doc["registry"]["futureKey"] == 3
    assert doc["archives"] == ["/srv/a-1.0.0.iso", "/srv/b-2.0.0.iso"]
    assert doc["active"] == {"other": "1.2.3"}
    assert list(doc)[:2] == ["apiVersion", "kind"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"kind: Other\n", "kind must be SolutionsConfiguration"),
        (b"archives: [relative.iso]\n", "must be absolute"),
        (b"archives: /a.iso\n", "'archives' must be a list"),
        (b"active: {x: One}\n", "active version of x: 'One' cannot name"),
        (b"registry: {mode: ftp}\n", "'registry.mode' must be one of builtin, push"),
        (b"registry: {mode: push}\n", "'registry.pushUrl' is required"),
        (b"trust: {policy: maybe}\n", "'trust.policy' must be one of"),
        (b"[1, 2]\n", "must be a YAML mapping"),
        (b"a: [\n", "not valid YAML"),
    ],
)
def test_bad_documents_name_the_file_and_key(text: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match="^conf.yaml: .*" + message.replace("(", r"\(")):
        parse_config(text, "conf.yaml")


def test_resolve_active_uses_semantic_order() -> None:
    versions = {"s": ["1.9.0", "1.10.0", "1.10.0-rc.1"], "t": ["1.0.0"]}
    assert resolve_active({"s": "latest", "t": "2.0.0", "u": "latest"}, versions) == {"s": "1.10.0"}


def _add(path: str, name: str) -> None:
    store = ConfigStore(Path(path))
    with store.edit() as edit:
        current = edit.config
        time.sleep(0.01)  # widen the read-modify-write window
        edit.config = current.with_archive(f"/srv/{name}.iso")


def test_concurrent_edits_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "solutions.yaml"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_add, args=(str(path), f"s{i}")) for i in range(12)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert sorted(load_config(path).archives) == sorted(f"/srv/s{i}.iso" for i in range(12))


def _killed_mid_write(path: str) -> None:
    store = ConfigStore(Path(path))
    original_replace = Path.replace

    def slow_replace(self: Path, target: Path) -> Path:  # the temp file is written and synced
        os.kill(os.getpid(), signal.SIGKILL)
        return original_replace(self, target)

    Path.replace = slow_replace  # type: ignore[method-assign]
    with store.edit() as edit:
        edit.config = edit.config.with_archive("/srv/never.iso")


def test_sigkill_during_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "solutions.yaml"
    store = ConfigStore(path)
    store.write(SolutionsConfiguration().with_archive("/srv/kept.iso"))
    before = path.read_bytes()
    proc = multiprocessing.get_context("fork").Process(target=_killed_mid_write, args=(str(path),))
    proc.start()
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    assert path.read_bytes() == before
    # The lock died with the process: the next command proceeds and converges.
    with store.edit() as edit:
        edit.config = edit.config.with_archive("/srv/next.iso")
    assert load_config(path).archives == ("/srv/kept.iso", "/srv/next.iso")
    # The killed writer's temporary file was cleaned up by the next edit.
    assert sorted(p.name for p in tmp_path.iterdir()) == [".solutions.yaml.lock", "solutions.yaml"]


def test_no_write_when_nothing_changes_or_on_error(tmp_path: Path) -> None:
    path = tmp_path / "solutions.yaml"
    store = ConfigStore(path)
    with store.edit():
        pass
    assert not path.exists()
    with pytest.raises(RuntimeError), store.edit() as edit:
        edit.config = edit.config.with_archive("/srv/x.iso")
        raise RuntimeError("refused halfway")
    assert not path.exists()


def test_unreadable_location_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(InvalidInput, match="is a directory"):
        load_config(tmp_path / "dir.yaml")


COMMENTED = """\
# Managed by the platform team: ask #platform before changing the trust section.
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: SolutionsConfiguration
archives:
  # the vendor's LTS line
  - /srv/a-1.0.0.iso  # kept for prod
  - /srv/a-2.0.0.iso
active:
  a: '2.0.0'   # pinned until the migration
trust: {keys: [/etc/metalk8s/vendor.pub]}  # flow style stays
metalk8sOnly:
  note: "a key we do not know"
"""


def test_a_rewrite_keeps_comments_order_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "solutions.yaml"
    path.write_text(COMMENTED)
    store = ConfigStore(path)
    with store.edit() as edit:
        edit.config = edit.config.with_archive("/srv/a-3.0.0.iso").without_archive(
            "/srv/a-2.0.0.iso"
        )
    text = path.read_text()
    for kept in (
        "# Managed by the platform team: ask #platform before changing the trust section.",
        "# the vendor's LTS line",
        "a: '2.0.0'   # pinned until the migration",
        "trust: {keys: [/etc/metalk8s/vendor.pub]}  # flow style stays",
        'note: "a key we do not know"',
    ):
        assert kept in text, text
    assert "/srv/a-2.0.0.iso" not in text
    kept_line = next(line for line in text.splitlines() if "/srv/a-1.0.0.iso" in line)
    assert kept_line.endswith("# kept for prod"), text
    config = load_config(path)
    assert config.archives == ("/srv/a-1.0.0.iso", "/srv/a-3.0.0.iso")
    assert config.document["metalk8sOnly"] == {"note": "a key we do not know"}
    with store.edit() as edit:
        edit.config = edit.config.with_active("a", "3.0.0")
    text = path.read_text()
    assert "a: 3.0.0" in text or "a: '3.0.0'" in text
    assert "# Managed by the platform team" in text and "# kept for prod" in text


def test_a_file_that_cannot_be_edited_in_place_is_written_anew(tmp_path: Path) -> None:
    path = tmp_path / "solutions.yaml"
    path.write_text("")  # empty: nothing to keep
    with ConfigStore(path).edit() as edit:
        edit.config = edit.config.with_archive("/srv/a.iso")
    assert load_config(path).archives == ("/srv/a.iso",)
