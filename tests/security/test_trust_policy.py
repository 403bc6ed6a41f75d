"""The site's signature policy is a floor: a request (CLI or web) may only make it stricter."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import SolutionsCli
from metalk8s_solutions.api.config import Policy, request_policy
from metalk8s_solutions.errors import Refused
from metalk8s_solutions.testing.pytest_plugin import LocalCluster
from security.trust_support import (
    admin_token,
    build_archive,
    keypair,
    running_ui,
    ui_client,
    write_trust_config,
)


@pytest.mark.parametrize(
    ("site", "requested", "effective"),
    [
        (Policy.REQUIRED, None, Policy.REQUIRED),
        (Policy.REQUIRED, Policy.REQUIRED, Policy.REQUIRED),
        (Policy.IF_SIGNED, Policy.REQUIRED, Policy.REQUIRED),
        (Policy.DISABLED, Policy.IF_SIGNED, Policy.IF_SIGNED),
        (Policy.DISABLED, Policy.DISABLED, Policy.DISABLED),
    ],
)
def test_a_request_may_keep_or_raise_the_site_policy(
    site: Policy, requested: Policy | None, effective: Policy
) -> None:
    assert request_policy(site, requested) is effective


@pytest.mark.parametrize(
    ("site", "requested"),
    [
        (Policy.REQUIRED, Policy.IF_SIGNED),
        (Policy.REQUIRED, Policy.DISABLED),
        (Policy.IF_SIGNED, Policy.DISABLED),
    ],
)
def test_a_request_may_not_lower_the_site_policy(site: Policy, requested: Policy) -> None:
    with pytest.raises(Refused) as caught:
        request_policy(site, requested)
    message = str(caught.value)
    assert f"'{requested}'" in message and f"'{site}'" in message
    assert "trust.policy" in message


@pytest.mark.cluster
def test_cli_import_cannot_lower_the_site_policy(cli: SolutionsCli, tmp_path: Path) -> None:
    _, vendor_pub = keypair(tmp_path / "keys", "vendor")
    unsigned = build_archive(tmp_path, key=None)
    write_trust_config(cli.config, [vendor_pub], "required")
    before = cli.config.read_text()

    lowered = cli("import", str(unsigned), "--policy", "disabled")
    assert lowered.returncode == 1, lowered.stdout + lowered.stderr
    assert "Traceback" not in lowered.stderr
    assert "policy 'disabled' is lower than the site's trust.policy 'required'" in lowered.stderr
    assert cli.config.read_text() == before  # nothing was imported

    # Through apply too (the other verb that checks archives).
    applied = cli("apply", "--policy", "if-signed", "--dry-run")
    assert applied.returncode == 1 and "lower than the site's" in applied.stderr


@pytest.mark.cluster
def test_cli_import_may_raise_the_site_policy(cli: SolutionsCli, tmp_path: Path) -> None:
    _, vendor_pub = keypair(tmp_path / "keys", "vendor")
    unsigned = build_archive(tmp_path, key=None)
    write_trust_config(cli.config, [vendor_pub], "if-signed")
    stricter = cli("import", str(unsigned), "--policy", "required", "--dry-run")
    assert stricter.returncode == 1, stricter.stdout + stricter.stderr
    assert "SOL080" in stricter.stderr  # refused by the stricter policy, not by the floor
    same = cli("import", str(unsigned), "--policy", "if-signed", "--dry-run")
    assert same.returncode == 0, same.stderr


@pytest.mark.cluster
def test_web_import_cannot_lower_the_site_policy(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    _, vendor_pub = keypair(tmp_path / "keys", "vendor")
    unsigned = build_archive(tmp_path, key=None)
    config = write_trust_config(tmp_path / "etc" / "solutions.yaml", [vendor_pub], "required")
    before = config.read_text()
    token = admin_token(local_cluster, "trust-admin")
    with running_ui(local_cluster, config, tmp_path) as url, ui_client(url, token) as http:
        body = {"archives": [str(unsigned)], "policy": "disabled"}
        answer = http.post("/api/solutions/import", json=body)
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["kind"] == "refused"
        assert "lower than the site's trust.policy 'required'" in error["message"]
        assert config.read_text() == before
        assert yaml.safe_load(config.read_text())["archives"] == []
        # The Solutions page offers only the site's policy and stricter ones...
        page = http.get("/solutions")
        assert page.status_code == 200, page.text[:2000]
        assert 'value="required"' in page.text and "as configured (required)" in page.text
        assert 'value="disabled"' not in page.text and 'value="if-signed"' not in page.text
        # ... and its HTML form, sent with a lower one anyway, is refused the same way.
        form = {"archives": str(unsigned), "policy": "disabled"}
        page = http.post("/ops/import/plan", data=form)
        assert page.status_code == 409, page.text[:2000]
        assert "lower than the site&#39;s trust.policy" in page.text or (
            "lower than the site's trust.policy" in page.text
        )
        assert config.read_text() == before
