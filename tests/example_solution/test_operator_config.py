"""The operator validates its OperatorConfig strictly, and says which field is wrong."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from example_solution_operator.config import ConfigError, ImageRef, load_config, parse_config
from example_solution_operator.resources import resolve_image

from metalk8s_solutions.api.manifest import parse_manifest

from .support import EXAMPLE, VERSIONS, operator_config

VALID = """\
apiVersion: solutions.metalk8s.scality.com/v1alpha1
kind: OperatorConfig
repositories:
  1.0.0:
    - endpoint: registry.example:5000/example-solution-1.0.0
      images: [base-server:1.0.0, example-solution-operator:1.0.0]
  1.1.0:
    - endpoint: registry.example:5000/example-solution-1.1.0/
      images:
        - base-server:1.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
        - example-solution-operator:1.1.0
"""


def test_a_valid_config_lists_every_version() -> None:
    config = parse_config(VALID)
    assert config.versions() == ["1.0.0", "1.1.0"]
    (repo,) = config.repositories["1.1.0"]
    assert repo.endpoint == "registry.example:5000/example-solution-1.1.0"  # trailing / dropped
    image = repo.find("base-server")
    assert image is not None and image.tag == "1.1.0" and image.digest is not None
    assert image.pull_reference(repo.endpoint).endswith("/base-server@" + image.digest)


def test_the_generated_config_of_the_tests_is_valid() -> None:
    config = parse_config(operator_config({"1.0.0": ["r/a"], "2.0.0": ["r/b"]}))
    assert config.versions() == ["1.0.0", "2.0.0"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("v1alpha1", "v1beta1"), "apiVersion is 'solutions.metalk8s"),
        (lambda t: t.replace("kind: OperatorConfig", "kind: Config"), "kind is 'Config'"),
        (lambda t: t.split("repositories:")[0] + "repositories: {}\n", "non-empty mapping"),
        (lambda t: t.split("repositories:")[0], "repositories must be"),
        (lambda t: t.replace("  1.0.0:\n", "  1.0:\n"), "key 1.0 is not a version string"),
        (
            lambda t: t.replace(
                "    - endpoint: registry.example:5000/example-solution-1.0.0\n"
                "      images: [base-server:1.0.0, example-solution-operator:1.0.0]\n",
                "    []\n",
            ),
            "must be a non-empty list of repositories",
        ),
        (
            lambda t: t.replace(
                "- endpoint: registry.example:5000/example-solution-1.0.0", "- endpoint: ''"
            ),
            "endpoint: must be a non-empty string",
        ),
        (
            lambda t: t.replace(
                "- endpoint: registry.example:5000/example-solution-1.0.0", "- where: x"
            ),
            "unknown field(s) 'where'",
        ),
        (
            lambda t: t.replace("[base-server:1.0.0, example", "['', example"),
            "images[0]: must be a non-empty string",
        ),
        (
            lambda t: t.replace("[base-server:1.0.0, example-solution-operator:1.0.0]", "[]"),
            "images: must be a non-empty list",
        ),
        (lambda t: t.replace("[base-server:1.0.0,", "[base-server,"), "not an image reference"),
        (lambda t: t.replace("[base-server:1.0.0,", "[Base Server:1.0.0,"), "not an image ref"),
        (lambda t: t + "extra: 1\n", "unknown field(s) 'extra'"),
        (lambda t: "- a list\n", "must be a YAML mapping"),
        (lambda t: "repositories: [\n", "not valid YAML"),
    ],
)
def test_an_invalid_config_is_refused_with_the_field_named(
    change: Callable[[str], str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(change(VALID), "operator.yaml")
    assert message in str(caught.value)
    assert str(caught.value).startswith("operator.yaml")


@pytest.mark.parametrize(
    ("text", "name", "tag", "digest"),
    [
        ("base-server:1.0.0", "base-server", "1.0.0", None),
        ("base-server@sha256:" + "a" * 64, "base-server", None, "sha256:" + "a" * 64),
        ("my.image_x:v2-rc.1@sha256:" + "b" * 64, "my.image_x", "v2-rc.1", "sha256:" + "b" * 64),
    ],
)
def test_image_references(text: str, name: str, tag: str | None, digest: str | None) -> None:
    assert ImageRef.parse(text, "x") == ImageRef(name, tag, digest)


@pytest.mark.parametrize(
    "text", ["base-server", "base-server:", "base-server@sha256:abc", "a/b:1", ":1.0.0", "a:b c"]
)
def test_bad_image_references(text: str) -> None:
    with pytest.raises(ConfigError, match="not an image reference"):
        ImageRef.parse(text, "x")


def test_unreadable_and_oversized_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the operator config"):
        load_config(tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (1024 * 1024 + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(big)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)


def run_operator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "example_solution_operator", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_the_command_refuses_an_invalid_config_before_starting(tmp_path: Path) -> None:
    bad = tmp_path / "operator.yaml"
    bad.write_text(VALID.replace("kind: OperatorConfig", "kind: Nope"))
    result = run_operator(f"--config={bad}", "--namespace=ns")
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: {bad}: kind is 'Nope', expected 'OperatorConfig'")


def test_the_command_needs_a_namespace(tmp_path: Path) -> None:
    good = tmp_path / "operator.yaml"
    good.write_text(VALID)
    result = run_operator(f"--config={good}", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "set WATCH_NAMESPACE" in result.stderr


def test_check_config_lists_the_versions(tmp_path: Path) -> None:
    good = tmp_path / "operator.yaml"
    good.write_text(VALID)
    result = run_operator(f"--config={good}", "--check-config")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "1.0.0\tregistry.example:5000/example-solution-1.0.0",
        "1.1.0\tregistry.example:5000/example-solution-1.1.0",
    ]


def test_the_config_the_product_writes_is_accepted() -> None:
    """Contract: the OperatorConfig the product deploys parses, and lists the example's images."""
    desired = pytest.importorskip("metalk8s_solutions.engine.desired")
    contents = [
        desired.VersionContent(
            manifest=parse_manifest(
                (EXAMPLE / "versions" / version / "manifest.yaml").read_bytes(), "manifest.yaml"
            )
        )
        for version in VERSIONS
    ]
    text = desired.operator_config("10.0.0.5:5000", contents)
    config = parse_config(text, "operator.yaml")
    assert config.versions() == list(VERSIONS)
    for version in VERSIONS:
        (repository,) = config.repositories[version]
        assert repository.endpoint == f"10.0.0.5:5000/example-solution-{version}"
        assert resolve_image(config, version).image == (
            f"10.0.0.5:5000/example-solution-{version}/base-server:{version}"
        )


def test_the_operator_deploys_what_admission_allows() -> None:
    """Contract: the OperatorConfig lists images as MetalK8s does (``name:tag``); the operator
    deploys base-server as ``<endpoint>/<entry>``, a reference the environment's admission
    policy admits (engine/admission.py ``offered_references``)."""
    desired = pytest.importorskip("metalk8s_solutions.engine.desired")
    admission = pytest.importorskip("metalk8s_solutions.engine.admission")
    manifest = parse_manifest(
        (EXAMPLE / "versions" / "1.0.0" / "manifest.yaml").read_bytes(), "manifest.yaml"
    )
    content = desired.VersionContent(manifest=manifest)
    config = parse_config(desired.operator_config("10.0.0.5:5000", [content]), "operator.yaml")
    image = resolve_image(config, "1.0.0").image
    assert image == "10.0.0.5:5000/example-solution-1.0.0/base-server:1.0.0"
    assert image in admission.offered_references("10.0.0.5:5000", [content])


def test_the_metrics_flags_the_product_passes_are_accepted(tmp_path: Path) -> None:
    """The Deployment passes ``--metrics-bind-address`` and ``--metrics-cert-path`` (as MetalK8s
    does): the operator takes them (here with --check-config, which exits before serving)."""
    good = tmp_path / "operator.yaml"
    good.write_text(VALID)
    result = run_operator(
        f"--config={good}",
        "--metrics-bind-address=:8443",
        f"--metrics-cert-path={tmp_path}",
        "--check-config",
    )
    assert result.returncode == 0, result.stderr
    bad = run_operator(f"--config={good}", "--metrics-bind-address=nope", "--check-config")
    assert bad.returncode != 0 and "has no port" in bad.stderr


async def test_metrics_over_https_with_the_mounted_certificate(tmp_path: Path) -> None:
    import base64  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import ssl  # noqa: PLC0415

    import httpx  # noqa: PLC0415
    from example_solution_operator.metrics import Metrics, serve  # noqa: PLC0415

    from metalk8s_solutions.engine.certificates import generate_tls  # noqa: PLC0415

    for key, value in generate_tls(["localhost"]).items():
        (tmp_path / key).write_bytes(base64.b64decode(value))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = await serve(Metrics(), "2.0.0", port, cert_path=tmp_path)
    try:
        async with httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=tmp_path / "ca.crt")
        ) as http:
            answer = await http.get(f"https://localhost:{port}/metrics", timeout=10)
        assert answer.status_code == 200
        assert 'example_solution_operator_info{version="2.0.0"} 1' in answer.text
    finally:
        await runner.cleanup()
