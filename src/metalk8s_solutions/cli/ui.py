"""``solutions ui``: serve the web UI and the JSON API (see docs/operations/ui.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import click

from metalk8s_solutions.cli.defaults import DEFAULT_LISTEN, DEFAULT_UPLOAD_LIMIT
from metalk8s_solutions.web.sessions import DEFAULT_LIFETIME, DEFAULT_TTL
from metalk8s_solutions.web.ui_origins import UiBase, host_label, parse_base


class Duration(click.ParamType[float, object]):
    """``90s``, ``30m``, ``12h`` or a number of seconds."""

    name = "duration"
    UNITS: ClassVar[dict[str, int]] = {"s": 1, "m": 60, "h": 3600}

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        unit = self.UNITS.get(text[-1:], 0)
        number = text[:-1] if unit else text
        try:
            seconds = float(number) * (unit or 1)
        except ValueError:
            seconds = 0
        if not seconds > 0:
            self.fail(f"{value!r} is not a duration, e.g. 90s, 30m or 12h", param, ctx)
        return seconds


def _shown(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds % 3600 == 0 else f"{seconds:g}s"


@click.command("ui")
@click.option(
    "--listen", default=DEFAULT_LISTEN, show_default=True, help="Address to serve on (HOST:PORT)."
)
@click.option(
    "--solution-ui-listen",
    help="Address serving Solutions' own UIs, another origin than the product's "
    "[default: the --listen host, next port].",
)
@click.option(
    "--solution-ui-url",
    help="Where browsers reach Solutions' own UIs, scheme://DOMAIN[:PORT]: each is served on "
    "its own host name <label>.DOMAIN (one origin each; needs a wildcard DNS record *.DOMAIN "
    "to the --solution-ui-listen socket) [default: <label>.localhost on the "
    "--solution-ui-listen port, for a browser on this host].",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--secure-cookies",
    is_flag=True,
    help="Send cookies over HTTPS only, behind a reverse proxy that terminates TLS "
    "[always on with --tls-cert].",
)
@click.option(
    "--session-idle-timeout",
    type=Duration(),
    default=_shown(DEFAULT_TTL),
    show_default=True,
    help="A session ends after this long without a request (e.g. 30m).",
)
@click.option(
    "--session-lifetime",
    type=Duration(),
    default=_shown(DEFAULT_LIFETIME),
    show_default=True,
    help="A session ends this long after login, however busy (e.g. 12h).",
)
@click.option(
    "--upload-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where uploaded archives are stored [default: archives/ next to the configuration].",
)
@click.option(
    "--upload-limit",
    default=DEFAULT_UPLOAD_LIMIT,
    show_default=True,
    metavar="SIZE",
    help="Largest archive a user may upload (e.g. 500MiB, 20GiB); larger uploads are refused "
    "before they are read.",
)
@click.option("--oidc-issuer", help="OpenID Connect issuer URL (https), e.g. Dex's.")
@click.option("--oidc-client-id", help="OAuth2 client id registered at the issuer.")
@click.option(
    "--oidc-client-secret-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="File holding the client secret [default: a public client, PKCE only].",
)
@click.option(
    "--oidc-redirect-url",
    help="Redirect URL registered at the issuer [default: <UI URL>/oidc/callback].",
)
@click.option(
    "--oidc-ca-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="CA bundle that signed the issuer's certificate [default: the system's].",
)
@click.pass_context
def ui_command(
    ctx: click.Context,
    listen: str,
    solution_ui_listen: str | None,
    solution_ui_url: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    secure_cookies: bool,
    session_idle_timeout: float,
    session_lifetime: float,
    upload_dir: Path | None,
    upload_limit: str,
    oidc_issuer: str | None,
    oidc_client_id: str | None,
    oidc_client_secret_file: Path | None,
    oidc_redirect_url: str | None,
    oidc_ca_file: Path | None,
) -> None:
    """Serve the web UI and the JSON HTTP API; users log in with OpenID Connect (--oidc-*) or a
    Kubernetes bearer token."""
    # Imported here, not at the top: the web stack (FastAPI, uvicorn) costs a second to import.
    from metalk8s_solutions.cluster.kube import ClusterTarget  # noqa: PLC0415
    from metalk8s_solutions.web.deps import UiSettings  # noqa: PLC0415
    from metalk8s_solutions.web.oidc import OidcSettings  # noqa: PLC0415
    from metalk8s_solutions.web.server import (  # noqa: PLC0415
        Sockets,
        Tls,
        bind,
        parse_listen,
        serve,
        url_of,
    )
    from metalk8s_solutions.web.server import (  # noqa: PLC0415
        solution_ui_listen as solution_ui_listen_default,
    )

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if (oidc_issuer is None) != (oidc_client_id is None):
        raise click.UsageError("--oidc-issuer and --oidc-client-id go together")
    from metalk8s_solutions.web.uploads import parse_size  # noqa: PLC0415

    limit = parse_size(upload_limit)
    options = ctx.find_root().obj
    target = ClusterTarget(kubeconfig=options.kubeconfig, context=options.context)
    target.load()  # fail now, clearly, when the kubeconfig is unusable
    tls = Tls(tls_cert, tls_key) if tls_cert and tls_key else None
    ui_base = parse_base(solution_ui_url) if solution_ui_url else None  # fail now if malformed
    address = parse_listen(listen)
    ui_address = (
        parse_listen(solution_ui_listen, "--solution-ui-listen")
        if solution_ui_listen
        else solution_ui_listen_default(address)
    )
    sock = bind(*address)
    try:
        ui_sock = bind(*ui_address, option="--solution-ui-listen")
    except Exception:
        sock.close()
        raise
    oidc = None
    if oidc_issuer and oidc_client_id:
        secret = oidc_client_secret_file.read_text().strip() if oidc_client_secret_file else None
        oidc = OidcSettings(
            issuer=oidc_issuer,
            client_id=oidc_client_id,
            client_secret=secret or None,
            redirect_url=oidc_redirect_url or f"{url_of(sock, tls is not None)}/oidc/callback",
            ca_file=oidc_ca_file,
        )
    settings = UiSettings(
        config_path=options.config,
        target=target,
        secure_cookies=secure_cookies or tls is not None,
        upload_dir=upload_dir,
        session_ttl=session_idle_timeout,
        session_lifetime=session_lifetime,
        upload_limit=limit,
        oidc=oidc,
        solution_ui_url=solution_ui_url,
    )
    secure = tls is not None
    click.echo(f"Solutions UI on {url_of(sock, secure)} (API: /api/openapi.json)", err=True)
    port = ui_sock.getsockname()[1]
    base = ui_base or UiBase("https" if secure else "http", "localhost", port)
    where = base.origin(("ENV", "NS", "SOLUTION")).replace(
        host_label("ENV", "NS", "SOLUTION"), "<label>"
    )
    click.echo(
        f"Solutions' own UIs on {url_of(ui_sock, secure)}, each on its own host name {where}",
        err=True,
    )
    serve(settings, Sockets(sock, ui_sock), tls)
