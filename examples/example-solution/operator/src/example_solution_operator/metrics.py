"""Prometheus metrics of the operator (served from version 2.0.0 on, as its manifest declares).

The Solution's manifest (``spec.operator.metrics``) tells the product that the operator serves
``/metrics`` on port 8080: the product then adds that port to the operator Deployment and
creates a metrics Service and a ServiceMonitor in each environment.  The exposition format is
written by hand (text format 0.0.4): a few counters and gauges need no client library.
"""

from __future__ import annotations

import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

METRICS_PORT = 8080
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Metrics:
    """What the operator counts; one instance per process."""

    reconciliations: Counter[str] = field(default_factory=Counter)  # result -> count
    ready_replicas: dict[str, int] = field(default_factory=dict)  # VersionServer -> ready
    started: float = field(default_factory=time.time)

    def reconciled(self, name: str, result: str, ready: int | None) -> None:
        self.reconciliations[result] += 1
        if ready is not None:
            self.ready_replicas[name] = ready

    def forget(self, name: str) -> None:
        self.ready_replicas.pop(name, None)

    def exposition(self, version: str) -> str:
        lines = [
            "# HELP example_solution_operator_info The operator's version.",
            "# TYPE example_solution_operator_info gauge",
            f'example_solution_operator_info{{version="{version}"}} 1',
            "# HELP example_solution_operator_start_time_seconds When the operator started.",
            "# TYPE example_solution_operator_start_time_seconds gauge",
            f"example_solution_operator_start_time_seconds {self.started:.3f}",
            "# HELP example_solution_reconciliations_total VersionServer reconciliations, by "
            "result.",
            "# TYPE example_solution_reconciliations_total counter",
        ]
        for result in sorted(set(self.reconciliations) | {"ok", "error", "unknown_version"}):
            lines.append(
                f'example_solution_reconciliations_total{{result="{result}"}} '
                f"{self.reconciliations[result]}"
            )
        lines += [
            "# HELP example_solution_versionserver_ready_replicas Ready replicas of each "
            "VersionServer.",
            "# TYPE example_solution_versionserver_ready_replicas gauge",
        ]
        for name, ready in sorted(self.ready_replicas.items()):
            lines.append(f'example_solution_versionserver_ready_replicas{{name="{name}"}} {ready}')
        return "\n".join(lines) + "\n"


async def serve(
    metrics: Metrics, version: str, port: int = METRICS_PORT, *, cert_path: Path | None = None
) -> web.AppRunner:
    """Serve ``/metrics`` on ``port`` (all interfaces: Prometheus scrapes the pod IP), over
    https with ``tls.crt``/``tls.key`` of ``cert_path`` when given (``--metrics-cert-path``)."""
    context = None
    if cert_path is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path / "tls.crt", cert_path / "tls.key")

    async def handler(_: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(version).encode(),
            content_type=None,
            headers={"Content-Type": CONTENT_TYPE},
        )

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port, ssl_context=context).start()  # noqa: S104 - scraped on the pod IP
    return runner


def serves_metrics(version: str) -> bool:
    """Metrics came with 2.0.0 (the version whose manifest declares them)."""
    try:
        return int(version.split(".", 1)[0]) >= 2
    except ValueError:
        return False
