"""`make demo`: the whole Solutions journey on the embedded default, narrated.

A local control plane (etcd, kube-apiserver, controllers, scheduler, KWOK nodes) and the
built-in registry serving the example Solution's three signed ISOs; then, with the `solutions`
command as an administrator would type it: import, activate, create an environment, add the
Solution, create an application instance served by its operator, scale it, upgrade, downgrade,
remove, delete, deactivate, unimport.  Finally a `prod` environment is left running with the web
UI, and the script prints how to reach everything and how to stop it (`make demo-down`).

The example operator runs as a local process (KWOK nodes run no containers), with the token of
the ServiceAccount the product created for it: its RBAC is exactly what a real pod would get.
The example Solution's own UI runs as a local process too, its Service pointed at it
(``metalk8s_solutions.testing.pods``), so that the environment page's link to it works.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml

from metalk8s_solutions.testing import journey

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SOLUTIONS = str(VENV_BIN / "solutions")
OPERATOR = str(VENV_BIN / "example-solution-operator")
UI_SERVER = ROOT / "examples" / "example-solution" / "ui" / "ui_server.py"
STATE = Path(
    os.environ.get("SOLUTIONS_DEMO_DIR")
    or Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    / "metalk8s-solutions"
    / "demo"
)
SOL = journey.SOL
BOLD, DIM, RESET = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")


def step(title: str) -> None:
    print(f"\n{BOLD}==> {title}{RESET}", flush=True)


def cli_env() -> dict[str, str]:
    """The environment the demo's commands run in: its configuration file and cluster."""
    return dict(
        os.environ,
        SOLUTIONS_CONFIG=str(STATE / "solutions.yaml"),
        KUBECONFIG=str(STATE / "cluster" / "admin.kubeconfig"),
    )


def sh(*args: str, check: bool = True, quiet: bool = False) -> str:
    """Run `solutions ARGS` as a user would, showing the command and its output."""
    shown = "solutions " + " ".join(shlex.quote(a) for a in args)
    print(f"{DIM}${RESET} {shown}", flush=True)
    result = subprocess.run(
        [SOLUTIONS, *args], capture_output=True, text=True, env=cli_env(), check=False
    )
    if not quiet:
        for stream in (result.stdout, result.stderr):
            if stream.strip():
                print("  " + stream.rstrip().replace("\n", "\n  "), flush=True)
    if check and result.returncode != 0:
        sys.exit(f"demo: the step above failed (exit {result.returncode})")
    return result.stdout


def admin_http() -> httpx.Client:
    pki = STATE / "cluster" / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    server = yaml.safe_load((STATE / "cluster" / "admin.kubeconfig").read_text())["clusters"][0][
        "cluster"
    ]["server"]
    return httpx.Client(base_url=server, verify=ctx, timeout=30)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"demo: timed out waiting for {what}")
        time.sleep(0.5)
    print(f"  {what}: yes", flush=True)


def token_for(http: httpx.Client, namespace: str, account: str, seconds: int = 86400) -> str:
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": seconds},
    }
    resp = http.post(f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", json=body)
    resp.raise_for_status()
    return str(resp.json()["status"]["token"])


def background(name: str, argv: list[str], env: dict[str, str] | None = None) -> int:
    """Start a long-running process detached, recorded in STATE/pids so `--down` stops it."""
    log = STATE / f"{name}.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            argv,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    pids = STATE / "pids"
    pids.mkdir(exist_ok=True)
    (pids / name).write_text(str(proc.pid))
    return proc.pid


def stop(name: str) -> None:
    pid_file = STATE / "pids" / name
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    pid_file.unlink(missing_ok=True)


def start_solution_ui(http: httpx.Client, env: str) -> None:
    """The example Solution's UI for `env`, run as its Deployment would; its Service points here."""
    from metalk8s_solutions.testing.pods import host_address, serve_service  # noqa: PLC0415

    stop(f"solution-ui-{env}")
    cm = http.get(f"/api/v1/namespaces/{env}/configmaps/{SOL}-ui-config").json()
    config = STATE / f"solution-ui-{env}.json"
    config.write_text(cm["data"]["config.json"])
    address = host_address()
    port = free_port(address)
    background(
        f"solution-ui-{env}",
        [sys.executable, str(UI_SERVER)],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SOLUTION_UI_CONFIG": str(config),
            "SOLUTION_UI_PORT": str(port),
            "SOLUTION_UI_LISTEN": address,
        },
    )
    wait_for(lambda: _answers(f"http://{address}:{port}/healthz"), "the Solution UI answers", 30)
    serve_service(http, env, f"{SOL}-ui", port, address=address)
    print(
        f"  (the example Solution's UI now runs locally for environment {env} on "
        f"{address}:{port}, log {STATE / f'solution-ui-{env}.log'})",
        flush=True,
    )


def free_port(address: str = "127.0.0.1") -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def down() -> None:
    for name in ("ui", "registry", "operator-prod", "operator-journey", "solution-ui-prod"):
        stop(name)
    subprocess.run(
        [SOLUTIONS, "dev", "cluster", "down", "--state-dir", str(STATE / "cluster")], check=False
    )
    print(f"demo stopped (its logs stay in {STATE})")


def main() -> None:  # noqa: PLR0915 - one narrated journey
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", action="store_true", help="stop everything the demo started")
    if parser.parse_args().down:
        down()
        return
    if (STATE / "cluster").exists():
        step("A previous demo is still running: stopping it to start afresh")
        down()
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "solutions.yaml").unlink(missing_ok=True)

    step(
        "A local Kubernetes control plane: etcd, kube-apiserver, controllers, scheduler, "
        "2 KWOK nodes"
    )
    subprocess.run(
        [SOLUTIONS, "dev", "cluster", "up", "--nodes", "2", "--state-dir", str(STATE / "cluster")],
        check=True,
    )

    step("The example Solution: three versions, images built offline, signed ISOs")
    subprocess.run([sys.executable, str(ROOT / "examples/example-solution/build.py")], check=True)
    out = ROOT / "examples/example-solution/out"
    isos = {v: out / f"{SOL}-{v}.iso" for v in ("1.0.0", "1.1.0", "2.0.0")}
    key = out / "vendor.pub" if (out / "vendor.pub").exists() else next(out.glob("*.pub"))

    port = free_port()
    config = STATE / "solutions.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "solutions.metalk8s.scality.com/v1alpha1",
                "kind": "SolutionsConfiguration",
                "archives": [],
                "active": {},
                "registry": {
                    "mode": "builtin",
                    "endpoint": f"127.0.0.1:{port}",
                    "listen": f"127.0.0.1:{port}",
                },
                "trust": {"keys": [str(key)]},
            }
        )
    )
    step(f"The built-in registry on 127.0.0.1:{port}: images straight from the imported ISOs")
    background("registry", [SOLUTIONS, "--config", str(config), "registry", "serve"])
    print(f"  (log {STATE / 'registry.log'})")

    http = admin_http()
    narrator = Narrator(http, config)
    try:
        # The journey the e2e test checks (metalk8s_solutions.testing.journey), narrated.
        steps = journey.journey(
            isos, key, f"127.0.0.1:{port}", config, pulled=skopeo_pulls(f"127.0.0.1:{port}")
        )
        journey.walk(steps, narrator)
    finally:
        narrator.close()

    step("Leave something to explore: prod runs example-solution 2.0.0, with the web UI")
    sh("import", *map(str, isos.values()), quiet=True)
    sh("activate", SOL, quiet=True)
    sh("env", "create", "prod", "-d", "Production", quiet=True)
    sh("env", "add-solution", "prod", SOL, "2.0.0", "--timeout", "120", quiet=True)
    admin = yaml.safe_load((STATE / "cluster" / "admin.kubeconfig").read_text())["clusters"][0]
    prod = journey.LocalOperator(
        journey.ApiClient(http),
        OPERATOR,
        admin["cluster"]["server"],
        admin["cluster"]["certificate-authority-data"],
        STATE,
        "prod",
    )
    prod.start()  # left running: `make demo-down` stops it (its pid is in STATE/pids)
    print(f"  (the example operator runs locally for environment prod, log {prod.log})")
    start_solution_ui(http, "prod")
    sh(
        "instance",
        "create",
        "prod",
        SOL,
        "--kind",
        "VersionServer",
        "--name",
        "web",
        "--set",
        "spec.version=2.0.0",
        "--set",
        "spec.replicas=2",
        quiet=True,
    )
    http.post(
        "/api/v1/namespaces/kube-system/serviceaccounts",
        json={"metadata": {"name": "solutions-demo-admin"}},
    )
    http.post(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        json={
            "metadata": {"name": "solutions-demo-admin"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {
                    "kind": "ServiceAccount",
                    "name": "solutions-demo-admin",
                    "namespace": "kube-system",
                }
            ],
        },
    )
    token = token_for(http, "kube-system", "solutions-demo-admin")
    (STATE / "ui-token").write_text(token)
    (STATE / "ui-token").chmod(0o600)
    ui_port, solution_ui_port = free_port(), free_port()
    background(
        "ui",
        [
            SOLUTIONS,
            "--config",
            str(config),
            "--kubeconfig",
            str(STATE / "cluster" / "admin.kubeconfig"),
            "ui",
            "--listen",
            f"127.0.0.1:{ui_port}",
            "--solution-ui-listen",
            f"127.0.0.1:{solution_ui_port}",
        ],
    )
    wait_for(lambda: _answers(f"http://127.0.0.1:{ui_port}/"), "the web UI answers", 60)
    # Each Solution's own UI has its own origin: a host name under localhost (browsers resolve
    # *.localhost to this host) on the Solution UI port. The product's link hands over there.
    solution_ui = f"http://127.0.0.1:{ui_port}/env/prod/prod/{SOL}/"
    bearer = {"Authorization": f"Bearer {token}"}
    moved = httpx.get(solution_ui, headers=bearer, timeout=30)
    origin = moved.headers.get("location", "").split("/env/", 1)[0]
    if moved.status_code != 307 or not origin.endswith(f".localhost:{solution_ui_port}"):
        raise SystemExit(f"the example Solution's UI has no origin of its own: {moved.status_code}")
    page = httpx.get(
        f"http://127.0.0.1:{solution_ui_port}/env/prod/prod/{SOL}/",
        headers={**bearer, "Host": origin.split("://", 1)[1]},
        timeout=30,
    )
    if page.status_code != 200 or 'id="instances"' not in page.text:
        raise SystemExit(f"the example Solution's UI is not reachable: {page.status_code}")
    print(f"  the example Solution's own UI answers on its own origin: {origin}/")
    sh("env", "show", "prod")
    sh("status")

    step("Done. Everything below keeps running:")
    kubeconfig = STATE / "cluster" / "admin.kubeconfig"
    token_file = STATE / "ui-token"
    print(f"""  web UI:         http://127.0.0.1:{ui_port}/   (log in: the token in {token_file})
  Solution UI:    {solution_ui}   (linked from the prod environment page; served on
                  its own origin {origin}/, in a browser on this host)
  the CLI:        export SOLUTIONS_CONFIG={config} KUBECONFIG={kubeconfig}
                  {SOLUTIONS} status
  registry:       http://127.0.0.1:{port}/v2/_catalog
  control plane:  {SOLUTIONS} dev cluster status --state-dir {STATE / "cluster"}
  stop it all:    make demo-down""")


def skopeo_pulls(endpoint: str) -> journey.Check:
    """skopeo, a standard client, reads an image of the archive from the built-in registry."""
    reference = f"docker://{endpoint}/{SOL}-1.0.0/base-server:1.0.0"

    def test(_: journey.Reader) -> str | None:
        done = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", reference],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            return done.stderr.strip() or f"skopeo exit {done.returncode}"
        print(f"  skopeo inspect {reference}: {json.loads(done.stdout)['Digest']}")
        return None

    return journey.Check(f"skopeo pulls {SOL}-1.0.0/base-server:1.0.0", test)


class Narrator:
    """Walks the journey for a reader: each step titled, each command shown with its output,
    each fact said when it holds; the demo stops at the first that does not."""

    def __init__(self, http: httpx.Client, config: Path) -> None:
        self.api = journey.ApiClient(http)
        self.config = config
        admin = yaml.safe_load((STATE / "cluster" / "admin.kubeconfig").read_text())
        cluster = admin["clusters"][0]["cluster"]
        self.server, self.ca = cluster["server"], cluster["certificate-authority-data"]
        self.operators: dict[str, journey.LocalOperator] = {}

    def step(self, title: str) -> None:
        step(title)

    def run(self, action: journey.Run) -> None:
        shown = "solutions " + " ".join(shlex.quote(a) for a in action.args)
        print(f"{DIM}${RESET} {shown}", flush=True)
        result = subprocess.run(
            [SOLUTIONS, *action.args], capture_output=True, text=True, env=cli_env(), check=False
        )
        for stream in (result.stdout, result.stderr):
            if stream.strip() and "-o" not in action.args:
                print("  " + stream.rstrip().replace("\n", "\n  "), flush=True)
        wrong = journey.verdict(action, result.returncode, result.stdout, result.stderr)
        if wrong is not None:
            sys.exit(f"demo: the step above went wrong: {wrong}")

    def check(self, action: journey.Check) -> None:
        wait_for(lambda: action.test(self.api) is None, action.what, max(action.wait, 5))

    def operator(self, action: journey.Operator) -> None:
        if not action.start:
            if action.env in self.operators:
                self.operators.pop(action.env).stop()
            return
        running = self.operators.setdefault(
            action.env,
            journey.LocalOperator(self.api, OPERATOR, self.server, self.ca, STATE, action.env),
        )
        running.start()
        print(
            f"  (the example operator now runs locally for environment {action.env}, "
            f"log {running.log})",
            flush=True,
        )

    def close(self) -> None:
        for running in self.operators.values():
            running.stop()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
