"""The Solutions journey of the seed's test plan, written once.

``make demo`` (``scripts/demo.py``) narrates it on the embedded default and
``tests/e2e/test_journey.py`` checks it on the test cluster: both walk :func:`journey`, so a step
added here is in both.  Import, activate, create an environment, add the Solution, create an
instance served by its operator, scale it, upgrade, downgrade, remove the Solution, delete the
environment, deactivate, unimport.

A journey is a list of :class:`Step`; each holds actions of three kinds:

- :class:`Run`: ``solutions ARGS`` as a user types it, the exit code it must end with, words its
  output must hold, and an optional check of its standard output;
- :class:`Check`: a fact about the cluster (read through the API), waited for when ``wait`` is set;
- :class:`Operator`: start (again) or stop the example operator of an environment.  Fake nodes
  run no container, so the operator runs as a local process, as its Deployment would run it: the
  OperatorConfig from its ConfigMap, a token of the ServiceAccount the product made (its RBAC is
  what is exercised), ``WATCH_NAMESPACE``.

The runner (:class:`Driver`) is the caller's: the demo prints, the test asserts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

SOL = "example-solution"
GROUP = "example-solution.metalk8s.scality.com"
CRD = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/versionservers.{GROUP}"
RECORD = "/api/v1/namespaces/metalk8s-solutions/configmaps/metalk8s-solutions"
ENV_LABEL = "solutions.metalk8s.scality.com/environment"


class Reader(Protocol):
    """What a check reads the cluster with: the JSON at an API path, None when it is absent."""

    def get(self, path: str) -> dict[str, Any] | None: ...


class ApiClient:
    """:class:`Reader` (and the token requests of :class:`LocalOperator`) over an httpx client
    authenticated as the cluster administrator."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.http.get(path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=dict(body))
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data


#: What a check returns: None when the fact holds, else what is wrong.
Verdict = str | None


@dataclass(frozen=True)
class Run:
    """``solutions ARGS``: ends with exit code ``exit``, says each of ``says`` (stdout or
    stderr), and ``output`` (given the standard output) returns None."""

    args: tuple[str, ...]
    exit: int = 0
    says: tuple[str, ...] = ()
    output: Callable[[str], Verdict] | None = None


@dataclass(frozen=True)
class Check:
    """A fact about the cluster: ``test`` returns None when it holds.  With ``wait`` (seconds),
    it is waited for (the operator works in the background)."""

    what: str
    test: Callable[[Reader], Verdict]
    wait: float = 0


@dataclass(frozen=True)
class Operator:
    """Start the example operator of ``env`` (again: a new version's config), or stop it."""

    env: str
    start: bool = True


Action = Run | Check | Operator


@dataclass(frozen=True)
class Step:
    title: str
    actions: tuple[Action, ...] = field(default=())


class Driver(Protocol):
    """Walks a journey: the demo narrates each action, the test asserts it."""

    def step(self, title: str) -> None: ...
    def run(self, action: Run) -> None: ...
    def check(self, action: Check) -> None: ...
    def operator(self, action: Operator) -> None: ...


def walk(steps: Sequence[Step], driver: Driver) -> None:
    for step in steps:
        driver.step(step.title)
        for action in step.actions:
            if isinstance(action, Run):
                driver.run(action)
            elif isinstance(action, Check):
                driver.check(action)
            else:
                driver.operator(action)


def verdict(result: Run, code: int, stdout: str, stderr: str) -> Verdict:
    """What is wrong with a command's outcome against ``result``'s expectations, or None."""
    if code != result.exit:
        return f"exit {code}, expected {result.exit}"
    missing = [word for word in result.says if word not in stdout + stderr]
    if missing:
        return f"the output does not say {missing}"
    return result.output(stdout) if result.output is not None else None


# -- the facts the journey checks ----------------------------------------------------------


def _versionserver(api: Reader, env: str, version: str = "v1alpha1") -> dict[str, Any]:
    return api.get(f"/apis/{GROUP}/{version}/namespaces/{env}/versionservers/web") or {}


def instance_ready(env: str, replicas: int, version: str) -> Callable[[Reader], Verdict]:
    def test(api: Reader) -> Verdict:
        status = _versionserver(api, env).get("status") or {}
        ready, running = status.get("readyReplicas"), status.get("version")
        if ready == replicas and running == version:
            return None
        return f"web has {ready} ready replicas on {running}"

    return test


def recorded_versions(expected: list[str]) -> Callable[[Reader], Verdict]:
    def test(api: Reader) -> Verdict:
        record = api.get(RECORD) or {}
        found = [r["version"] for r in json.loads((record.get("data") or {}).get(SOL, "[]"))]
        return None if found == expected else f"the cluster record lists {found}"

    return test


def crd_serves(versions: list[str] | None) -> Callable[[Reader], Verdict]:
    """The example CRD serves ``versions`` (None: the CRD is gone)."""

    def test(api: Reader) -> Verdict:
        crd = api.get(CRD)
        if versions is None:
            return None if crd is None else "the CRD is still there"
        if crd is None:
            return "no CRD"
        served = [v["name"] for v in crd["spec"]["versions"] if v["served"]]
        return None if served == versions else f"the CRD serves {served}"

    return test


def environment_namespace(env: str, exists: bool = True) -> Callable[[Reader], Verdict]:
    def test(api: Reader) -> Verdict:
        ns = api.get(f"/api/v1/namespaces/{env}")
        if not exists:
            return None if ns is None else f"namespace {env} is still there"
        labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
        return None if labels.get(ENV_LABEL) == env else f"namespace {env} is not labelled {env}"

    return test


def operator_deployed(env: str, version: str, endpoint: str) -> Callable[[Reader], Verdict]:
    """The operator Deployment runs ``version``'s image, by digest from ``endpoint``, and is
    Available."""

    def test(api: Reader) -> Verdict:
        dep = api.get(f"/apis/apps/v1/namespaces/{env}/deployments/{SOL}-operator")
        if dep is None:
            return "no operator Deployment"
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        if not image.startswith(f"{endpoint}/{SOL}-{version}/{SOL}-operator@sha256:"):
            return f"the operator image is {image}"
        if dep["metadata"]["labels"].get("app.kubernetes.io/version") != version:
            return "the Deployment is not labelled with the version"
        if (dep.get("status") or {}).get("availableReplicas") != 1:
            return "the operator is not Available"
        return None

    return test


def base_server(
    env: str, *, replicas: int | None = None, version: str | None = None
) -> Callable[[Reader], Verdict]:
    """The base-server Deployment the operator made for instance ``web``."""

    def test(api: Reader) -> Verdict:
        dep = api.get(f"/apis/apps/v1/namespaces/{env}/deployments/web")
        if dep is None:
            return "no base-server Deployment"
        if replicas is not None and dep["spec"]["replicas"] != replicas:
            return f"base-server has {dep['spec']['replicas']} replicas"
        image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
        if version is not None and f"/{SOL}-{version}/base-server" not in image:
            return f"base-server runs {image}"
        return None

    return test


def removed_but_data_kept(env: str) -> Callable[[Reader], Verdict]:
    def test(api: Reader) -> Verdict:
        if api.get(f"/apis/apps/v1/namespaces/{env}/deployments/{SOL}-operator") is not None:
            return "the operator is still deployed"
        if not _versionserver(api, env, "v1beta1"):
            return "the instance is gone"
        config = api.get(f"/api/v1/namespaces/{env}/configmaps/metalk8s-environment") or {}
        return "metalk8s-environment still names it" if config.get("data") else None

    return test


def unimported(config: Path) -> Callable[[Reader], Verdict]:
    def test(api: Reader) -> Verdict:
        record = api.get(RECORD) or {}
        if SOL in (record.get("data") or {}):
            return "the cluster record still lists it"
        archives = yaml.safe_load(config.read_text()).get("archives")
        return None if archives == [] else f"the configuration still lists {archives}"

    return test


def _instances(stdout: str) -> Verdict:
    listed = [(i["kind"], i["name"], i["columns"]["Replicas"]) for i in json.loads(stdout)]
    return None if listed == [("VersionServer", "web", 1)] else f"instance list says {listed}"


def _history(env: str) -> Callable[[str], Verdict]:
    def test(stdout: str) -> Verdict:
        info = json.loads(stdout)["namespaces"][env]["solutions"][SOL]
        if info["version"] != "1.1.0" or not info["operator"].startswith("Available"):
            return f"env show says {info['version']}, {info['operator']}"
        history = [(r["from"], r["to"], r["result"]) for r in info["history"]]
        expected = [
            (None, "1.0.0", "succeeded"),
            ("1.0.0", "2.0.0", "succeeded"),
            ("2.0.0", "1.1.0", "succeeded"),
        ]
        return None if history == expected else f"the history is {history}"

    return test


def _instance(env: str, version: str, replicas: int) -> tuple[str, ...]:
    return (
        "instance",
        "create",
        env,
        SOL,
        "--kind",
        "VersionServer",
        "--name",
        "web",
        "--set",
        f"spec.version={version}",
        "--set",
        f"spec.replicas={replicas}",
    )


def journey(
    isos: Mapping[str, Path],
    key: Path,
    endpoint: str,
    config: Path,
    env: str = "journey",
    *,
    pulled: Check | None = None,
) -> list[Step]:
    """The journey over the example Solution's ``isos`` (version -> ISO) signed by ``key``,
    its images served at ``endpoint``, with the configuration file ``config``; ``pulled``, when
    given, checks after the import that a client pulls an image from the registry."""
    versions = sorted(isos)
    paths = tuple(str(isos[v]) for v in versions)
    ids = tuple(f"{SOL}-{v}" for v in versions)
    edit = ("instance", "edit", env, SOL, "VersionServer/web", "--set")
    wait = 120.0
    return [
        Step(
            "A developer checks an archive",
            (Run(("validate", str(isos["2.0.0"]), "--key", str(key)), says=("valid",)),),
        ),
        Step(
            "The cluster administrator imports the three versions (checked first)",
            (
                Run(("import", "--dry-run", "--key", str(key), *paths)),
                Run(("import", "--key", str(key), *paths)),
                Check("the three versions are recorded", recorded_versions(versions)),
                Run(("list",), says=ids),
                *((pulled,) if pulled is not None else ()),
            ),
        ),
        Step(
            "Activate 1.0.0: its CRDs, checked against the live cluster",
            (
                Run(("activate", SOL, "--version", "1.0.0")),
                Check("the CRD serves v1alpha1", crd_serves(["v1alpha1"])),
            ),
        ),
        Step(
            f"The application administrator creates environment {env!r} and deploys 1.0.0",
            (
                Run(("env", "create", env, "-d", "The demo journey")),
                Check(f"namespace {env} is the environment's", environment_namespace(env)),
                Run(
                    ("env", "add-solution", env, SOL, "1.0.0", "--timeout", "120"),
                    says=(f"{SOL} 1.0.0 is deployed in {env}",),
                ),
                Check(
                    "the operator runs 1.0.0, by digest", operator_deployed(env, "1.0.0", endpoint)
                ),
                Operator(env),
            ),
        ),
        Step(
            "An application instance, served by the operator; then scaled",
            (
                Run(_instance(env, "1.0.0", 1), says=(f"created VersionServer {env}/web",)),
                Check("web ready on 1.0.0", instance_ready(env, 1, "1.0.0"), wait=wait),
                Run(("instance", "list", env, SOL, "-o", "json"), output=_instances),
                Run((*edit, "spec.replicas=500"), exit=1, says=("does not match",)),
                Run((*edit, "spec.replicas=3")),
                Check("web scaled to 3 replicas", instance_ready(env, 3, "1.0.0"), wait=wait),
                Check("base-server has 3 replicas", base_server(env, replicas=3)),
                Run(("instance", "list", env, SOL)),
            ),
        ),
        Step(
            "Upgrade to 2.0.0: refused until its CRDs are active, then done",
            (
                Run(
                    ("env", "upgrade", env, SOL, "2.0.0", "--timeout", "120"),
                    exit=1,
                    says=("v1beta1", "activate"),
                ),
                Run(("activate", SOL, "--version", "2.0.0")),
                Run(("env", "upgrade", env, SOL, "2.0.0", "--timeout", "120")),
                Check("the operator runs 2.0.0", operator_deployed(env, "2.0.0", endpoint)),
                Operator(env),
                Run((*edit, "spec.version=2.0.0")),
                Check("web runs 2.0.0", instance_ready(env, 3, "2.0.0"), wait=wait),
                Check("base-server runs 2.0.0's image", base_server(env, version="2.0.0")),
            ),
        ),
        Step(
            "Downgrade to 1.1.0 (2.0.0's CRDs still serve what it needs)",
            (
                Run(("env", "upgrade", env, SOL, "1.1.0", "--timeout", "120")),
                Operator(env),
                Run(("env", "show", env, "-o", "json"), output=_history(env)),
                Run(("env", "show", env)),
            ),
        ),
        Step(
            "Remove it: the operator goes, the data stays (listed); then the environment",
            (
                Operator(env, start=False),
                Run(
                    ("env", "delete-solution", env, SOL, "--timeout", "60"),
                    says=(f"VersionServer {env}/web", "--delete-data"),
                ),
                Check("the operator is gone, the instance kept", removed_but_data_kept(env)),
                Run(("env", "delete", env, "--timeout", "120")),
                Check(f"namespace {env} is gone", environment_namespace(env, exists=False)),
            ),
        ),
        Step(
            "Deactivate and unimport",
            (
                Run(("deactivate", SOL)),
                Check("the CRD is gone", crd_serves(None)),
                Run(("unimport", *ids)),
                Check("nothing of it is recorded", unimported(config)),
                Run(("list",)),
            ),
        ),
    ]


# -- the operator as a local process -------------------------------------------------------


class LocalOperator:
    """The example operator of one environment, run as its Deployment would run it: the
    OperatorConfig of its ConfigMap, a token of the ServiceAccount the product created (its RBAC
    is what a pod would get), ``WATCH_NAMESPACE``.  Files and log under ``directory``."""

    def __init__(
        self,
        api: ApiClient,
        executable: str,
        server: str,
        ca_data: str,
        directory: Path,
        env: str,
    ) -> None:
        self.api, self.executable, self.server, self.ca_data = api, executable, server, ca_data
        self.directory, self.env = directory, env
        self.log = directory / f"operator-{env}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _kubeconfig(self) -> Path:
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400},
        }
        path = f"/api/v1/namespaces/{self.env}/serviceaccounts/{SOL}-operator/token"
        token = self.api.post(path, request)["status"]["token"]
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "c",
            "clusters": [
                {
                    "name": "c",
                    "cluster": {"server": self.server, "certificate-authority-data": self.ca_data},
                }
            ],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "c",
                    "context": {"cluster": "c", "user": "operator", "namespace": self.env},
                }
            ],
        }
        kubeconfig = self.directory / f"operator-{self.env}.kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(doc))
        kubeconfig.chmod(0o600)
        return kubeconfig

    def start(self) -> None:
        """Start it, or restart it with the config of the version now deployed."""
        self.stop()
        cm = self.api.get(f"/api/v1/namespaces/{self.env}/configmaps/{SOL}-operator-config")
        if cm is None:
            raise RuntimeError(f"no {SOL}-operator-config in {self.env}")
        config = self.directory / f"operator-{self.env}.yaml"
        config.write_text(cm["data"]["operator.yaml"])
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "KUBECONFIG": str(self._kubeconfig()),
            "WATCH_NAMESPACE": self.env,
            "POD_NAME": f"{SOL}-operator-local",
            "OPERATOR_NAME": f"{SOL}-operator",
        }
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [self.executable, f"--config={config}"],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=environment,
                start_new_session=True,
            )
        pid_file = self.directory / "pids" / f"operator-{self.env}"
        pid_file.parent.mkdir(exist_ok=True)
        pid_file.write_text(str(self.process.pid))

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        (self.directory / "pids" / f"operator-{self.env}").unlink(missing_ok=True)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""
