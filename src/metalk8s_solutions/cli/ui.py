"""``solutions ui``: serve the web UI and the JSON API (see docs/operations/ui.md)."""

from __future__ import annotations

from pathlib import Path

import click

from metalk8s_solutions.cluster.kube import ClusterTarget
from metalk8s_solutions.web.deps import UiSettings
from metalk8s_solutions.web.server import DEFAULT_LISTEN, Tls, bind, parse_listen, serve, url_of


@click.command("ui")
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, help="Address to serve on (HOST:PORT)."
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--upload-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where uploaded archives are stored [default: archives/ next to the configuration].",
)
@click.pass_context
def ui_command(
    ctx: click.Context,
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    upload_dir: Path | None,
) -> None:
    """Serve the web UI and the JSON HTTP API; users log in with a Kubernetes bearer token."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    options = ctx.find_root().obj
    target = ClusterTarget(kubeconfig=options.kubeconfig, context=options.context)
    target.load()  # fail now, clearly, when the kubeconfig is unusable
    tls = Tls(tls_cert, tls_key) if tls_cert and tls_key else None
    settings = UiSettings(
        config_path=options.config,
        target=target,
        secure_cookies=tls is not None,
        upload_dir=upload_dir,
    )
    sock = bind(*parse_listen(listen))
    click.echo(
        f"Solutions UI on {url_of(sock, tls is not None)} (API: /api/openapi.json)", err=True
    )
    serve(settings, sock, tls)
