"""``solutions registry``: the built-in registry that serves imported images from the ISO files.

Argument parsing and logging setup only; the work is in :mod:`metalk8s_solutions.engine.registry`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # imported when the command runs, not when it is declared (fast --help)
    from metalk8s_solutions.engine.registry import RunningRegistry

tls_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def registry() -> None:
    """The built-in OCI registry (read-only, served straight from the imported archives)."""


@registry.command("serve")
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="Address to listen on [default: registry.listen of the configuration]; "
    "port 0 picks a free port.",
)
@click.option("--tls-cert", type=tls_file, default=None, help="PEM certificate (chain) for HTTPS.")
@click.option("--tls-key", type=tls_file, default=None, help="PEM private key of --tls-cert.")
@click.option(
    "--auth-htpasswd",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Require a login (HTTP Basic) to read: users and bcrypt hashes, as 'htpasswd -B' "
    "writes them.",
)
@click.option(
    "--insecure-public",
    is_flag=True,
    help="Serve without a login on a non-loopback address (anyone who reaches the port "
    "can pull every imported image).",
)
@click.option("-q", "--quiet", is_flag=True, help="No access log.")
@click.pass_context
def serve_command(
    ctx: click.Context,
    listen: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    auth_htpasswd: Path | None,
    insecure_public: bool,
    quiet: bool,
) -> None:
    """Serve the images of every imported archive until interrupted (SIGINT or SIGTERM).

    Repositories are <name>-<version>/<image>.  A non-loopback --listen needs --auth-htpasswd
    (or --insecure-public).  Imports and unimports are picked up within a
    second, without a restart.  Logs go to stderr; the address is printed on stdout once the
    registry listens.
    """
    import asyncio  # noqa: PLC0415

    from metalk8s_solutions.engine.registry import ServeOptions, serve  # noqa: PLC0415

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    if quiet:
        logging.getLogger("metalk8s_solutions.registry.access").setLevel(logging.WARNING)

    def ready(running: RunningRegistry) -> None:
        click.echo(f"serving on {running.url}")

    options = ServeOptions(
        ctx.obj.config,
        listen,
        tls_cert,
        tls_key,
        auth_htpasswd=auth_htpasswd,
        insecure_public=insecure_public,
    )
    asyncio.run(serve(options, ready))
