"""containerd's hosts.toml for the registry: one function, printed by the docs, used by nodes."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from metalk8s_solutions.errors import InvalidInput
from metalk8s_solutions.images.containerd import containerd_hosts_dir, containerd_hosts_toml

ROOT = Path(__file__).resolve().parents[2]


def test_plain_http() -> None:
    text = containerd_hosts_toml("127.0.0.1:5000", tls=False)
    assert text == (
        'server = "http://127.0.0.1:5000"\n\n'
        '[host."http://127.0.0.1:5000"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    assert tomllib.loads(text)["host"]["http://127.0.0.1:5000"]["capabilities"] == [
        "pull",
        "resolve",
    ]


def test_tls_with_a_ca_and_an_endpoint_with_a_path() -> None:
    ca = "/etc/containerd/certs.d/registry.example.net:5000/ca.crt"
    text = containerd_hosts_toml("registry.example.net:5000/solutions", ca=ca)
    assert tomllib.loads(text) == {
        "server": "https://registry.example.net:5000",
        "host": {
            "https://registry.example.net:5000": {"capabilities": ["pull", "resolve"], "ca": ca}
        },
    }
    assert containerd_hosts_dir("registry.example.net:5000/solutions") == PurePosixPath(
        "/etc/containerd/certs.d/registry.example.net:5000"
    )


def test_tls_without_verification() -> None:
    data = tomllib.loads(containerd_hosts_toml("r.example:443", skip_verify=True))
    assert data["host"]["https://r.example:443"]["skip_verify"] is True


@pytest.mark.parametrize(
    ("endpoint", "kwargs", "message"),
    [
        ("", {}, "'' is not a registry endpoint"),
        ('a"b:5000', {}, "'a\"b:5000' is not a registry endpoint"),
        (
            "r:5000",
            {"tls": False, "ca": "/ca.crt"},
            "a CA certificate or skip_verify only applies to a registry served over TLS",
        ),
        (
            "r:5000",
            {"ca": "/ca.crt", "skip_verify": True},
            "give either a CA certificate or skip_verify, not both",
        ),
    ],
)
def test_refusals(endpoint: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        containerd_hosts_toml(endpoint, **kwargs)  # type: ignore[arg-type]
    assert err.value.message == message
    assert err.value.hint


def test_the_registry_page_prints_what_the_function_returns() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    import docgen  # noqa: PLC0415

    page = (ROOT / "docs" / "operations" / "registry.md").read_text()
    rendered = docgen.containerd_hosts_examples(page)
    assert page.count(docgen.HOSTS_TOML_MARKER) == 3
    assert docgen.HOSTS_TOML_MARKER not in rendered
    endpoint = docgen.HOSTS_TOML_EXAMPLE_ENDPOINT
    ca = f"{containerd_hosts_dir(endpoint)}/ca.crt"
    for text in (
        containerd_hosts_toml(endpoint, tls=False),
        containerd_hosts_toml(endpoint, ca=ca),
        containerd_hosts_toml(endpoint, skip_verify=True),
    ):
        indented = "".join(f"   {line}\n" if line else "\n" for line in text.splitlines())
        assert indented in rendered
