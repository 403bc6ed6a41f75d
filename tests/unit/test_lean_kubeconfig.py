"""The lean client's kubeconfig reading: what it serves, and what it leaves to the full path.

Whatever it does not serve raises Fallback (the listing then runs through lightkube, which
answers or fails exactly as before); the kubeconfig is chosen as ``ClusterTarget`` chooses it.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from metalk8s_solutions.cluster import lean
from metalk8s_solutions.cluster.lean import Fallback, endpoint, kubeconfig_path
from metalk8s_solutions.testing.pki import CertificateAuthority


@pytest.fixture(scope="module")
def pki() -> dict[str, str]:
    """A CA and a client certificate, base64 as a kubeconfig holds them."""
    ca = CertificateAuthority.create("lean-test-ca")
    pair = ca.issue("admin", organizations=("system:masters",), client=True)

    def b64(pem: bytes) -> str:
        return base64.b64encode(pem).decode()

    return {"ca": b64(ca.cert_pem), "cert": b64(pair.cert_pem), "key": b64(pair.key_pem)}


def _doc(pki: dict[str, str], server: str = "https://127.0.0.1:6443/base/") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [
            {"name": "k", "cluster": {"server": server, "certificate-authority-data": pki["ca"]}}
        ],
        "users": [
            {
                "name": "u",
                "user": {"client-certificate-data": pki["cert"], "client-key-data": pki["key"]},
            }
        ],
        "contexts": [
            {"name": "c", "context": {"cluster": "k", "user": "u"}},
            {"name": "t", "context": {"cluster": "k", "user": "tok"}},
        ],
    }


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_certificates_inline(tmp_path: Path, pki: dict[str, str]) -> None:
    where = endpoint(_write(tmp_path, _doc(pki)), None)
    assert (where.host, where.port, where.prefix) == ("127.0.0.1", 6443, "/base")
    assert "Authorization" not in where.headers


def test_certificates_in_files_relative_to_the_kubeconfig(
    tmp_path: Path, pki: dict[str, str]
) -> None:
    doc = _doc(pki)
    for name, key in (("ca", "ca"), ("cert", "cert"), ("key", "key")):
        (tmp_path / f"{name}.pem").write_bytes(base64.b64decode(pki[key]))
    doc["clusters"][0]["cluster"] = {"server": "https://h", "certificate-authority": "ca.pem"}
    doc["users"][0]["user"] = {"client-certificate": "cert.pem", "client-key": "key.pem"}
    where = endpoint(_write(tmp_path, doc), None)
    assert (where.host, where.port, where.prefix) == ("h", 443, "")


def test_a_token_and_another_context(tmp_path: Path, pki: dict[str, str]) -> None:
    doc = _doc(pki)
    doc["users"].append({"name": "tok", "user": {"token": "s3cret"}})
    where = endpoint(_write(tmp_path, doc), "t")
    assert where.headers["Authorization"] == "Bearer s3cret"


def _user(**fields: Any) -> Any:
    return lambda doc: doc["users"][0].update(user=fields)


def _cluster(**fields: Any) -> Any:
    return lambda doc: doc["clusters"][0].update(cluster=fields)


LEFT_TO_THE_FULL_PATH = {
    "exec plugin": _user(exec={"apiVersion": "client.authentication.k8s.io/v1", "command": "x"}),
    "token file": _user(tokenFile="/var/run/token"),
    "basic auth": _user(username="a", password="b"),
    "auth provider": _user(**{"auth-provider": {"name": "oidc"}}),
    "no CA": _cluster(server="https://h"),
    "insecure": _cluster(server="https://h", **{"insecure-skip-tls-verify": True}),
    "plain http": _cluster(server="http://h:8080"),
    "a cert without its key": lambda doc: doc["users"][0]["user"].pop("client-key-data"),
    "a context without a user": lambda doc: doc["contexts"][0]["context"].pop("user"),
    "an unknown context": lambda doc: doc.update({"current-context": "nope"}),
    "no current context": lambda doc: doc.pop("current-context"),
    "a server that is not a string": _cluster(server=["h"]),
    "a malformed entry elsewhere": lambda doc: doc["clusters"].append({"name": "x"}),
    "no clusters": lambda doc: doc.pop("clusters"),
    "not a mapping": lambda doc: doc.clear(),
}


@pytest.mark.parametrize("case", sorted(LEFT_TO_THE_FULL_PATH))
def test_what_it_leaves_to_the_full_path(tmp_path: Path, pki: dict[str, str], case: str) -> None:
    doc = _doc(pki)
    LEFT_TO_THE_FULL_PATH[case](doc)
    with pytest.raises(Fallback):
        endpoint(_write(tmp_path, doc or []), None)


def test_unreadable_or_invalid_files_are_left_to_the_full_path(tmp_path: Path) -> None:
    with pytest.raises(Fallback):
        endpoint(tmp_path / "missing", None)
    bad = tmp_path / "bad"
    bad.write_text("a: [\n")
    with pytest.raises(Fallback):
        endpoint(bad, None)


def test_a_proxy_in_the_environment(
    tmp_path: Path, pki: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, _doc(pki))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    with pytest.raises(Fallback):
        endpoint(path, None)


def test_the_kubeconfig_chosen_as_cluster_target_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = tmp_path / "given"
    assert kubeconfig_path(given) == given
    monkeypatch.setattr(lean, "SERVICE_ACCOUNT_TOKEN", tmp_path / "no-token")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "env"))
    assert kubeconfig_path(None) == tmp_path / "env"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kubeconfig_path(None) == tmp_path / ".kube" / "config"
    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr(lean, "SERVICE_ACCOUNT_TOKEN", token)
    with pytest.raises(Fallback):  # lightkube tries the in-cluster service account first
        kubeconfig_path(None)
