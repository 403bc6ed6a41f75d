"""The ``example-solution-operator`` command: check the config, then run kopf in one namespace.

The product's operator Deployment runs ``example-solution-operator
--config=/etc/config/operator.yaml`` with ``WATCH_NAMESPACE`` set to its own namespace.  The
operator serves that namespace only (``namespaces=[WATCH_NAMESPACE]``) and runs standalone: one
operator per namespace, no peering objects, no cluster-wide permission.

Exit status: 0 stopped normally; 1 the config is invalid (the message names the field);
2 usage error (no namespace, bad option).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from example_solution_operator._version import VERSION
from example_solution_operator.config import ConfigError, load_config

DEFAULT_CONFIG = Path("/etc/config/operator.yaml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="example-solution-operator",
        description="Reconcile VersionServer resources of one namespace into base-server "
        "Deployments and Services, with the images listed in the operator config.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"the OperatorConfig file (default: {DEFAULT_CONFIG})",
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("WATCH_NAMESPACE"),
        help="the namespace to serve (default: $WATCH_NAMESPACE)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the config, print the versions it lists, and exit",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        help="serve a liveness probe, e.g. http://0.0.0.0:8081/healthz",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve Prometheus metrics on this port (default: 8080 from version 2.0.0 on, "
        "as the manifest declares; 0 turns them off)",
    )
    parser.add_argument(
        "--metrics-bind-address",
        metavar="[HOST]:PORT",
        default=None,
        help="where to serve metrics, as MetalK8s passes it (e.g. ':8443'; '0' turns them off); "
        "overrides --metrics-port",
    )
    parser.add_argument(
        "--metrics-cert-path",
        type=Path,
        default=None,
        help="a directory holding tls.crt and tls.key: serve the metrics over https",
    )
    parser.add_argument("--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    return parser


def _metrics_port(flag: int | None) -> int | None:
    from example_solution_operator.metrics import METRICS_PORT, serves_metrics  # noqa: PLC0415

    if flag is not None:
        return flag or None
    return METRICS_PORT if serves_metrics(VERSION) else None


def _bind_port(address: str) -> int:
    """The port of ``--metrics-bind-address`` (``:8443``, ``0.0.0.0:8443``; ``0`` is off)."""
    port = address.rsplit(":", 1)[-1]
    if not port.isdigit():
        raise SystemExit(f"error: --metrics-bind-address {address!r} has no port")
    return int(port)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.metrics_bind_address is not None:
        args.metrics_port = _bind_port(args.metrics_bind_address)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.check_config:
        for version in config.versions():
            endpoints = ", ".join(r.endpoint for r in config.repositories[version])
            print(f"{version}\t{endpoints}")
        return 0
    if not args.namespace:
        print(
            "error: no namespace to watch: set WATCH_NAMESPACE (the operator Deployment does) "
            "or pass --namespace",
            file=sys.stderr,
        )
        return 2

    # Imported here so that --help, --version and --check-config stay fast.
    import kopf  # noqa: PLC0415

    from example_solution_operator import handlers  # noqa: PLC0415

    kopf.configure(verbose=args.verbose)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2"):  # one line per request otherwise
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    logging.getLogger(__name__).info(
        "example-solution-operator %s (pod %s) serving namespace %s",
        VERSION,
        os.environ.get("POD_NAME", "-"),
        args.namespace,
    )
    kopf.run(
        standalone=True,
        clusterwide=False,
        namespaces=[args.namespace],
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(
            state=handlers.State(
                config_path=args.config,
                config=config,
                namespace=args.namespace,
                metrics_port=_metrics_port(args.metrics_port),
                metrics_cert_path=args.metrics_cert_path,
            )
        ),
    )
    return 0
