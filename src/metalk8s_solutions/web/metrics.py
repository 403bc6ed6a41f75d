"""The UI's own metrics, served at ``/metrics`` in the Prometheus text format.

Hand-written like the registry's (``images/registry_index.py``): a handful of counters and
histograms do not justify a client library.  Every label value comes from a bounded set (route
templates, operation keys, error kinds, HTTP statuses), never from user input, so a client
cannot grow the series without bound.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
Labels = tuple[tuple[str, str], ...]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render_labels(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = (*labels, *extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs) + "}"


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(BUCKETS, seconds)
        if index < len(BUCKETS):
            self.counts[index] += 1
        self.total += seconds
        self.count += 1


@dataclass
class UiMetrics:
    """Requests, operations (plans and runs) with their durations and outcomes, refusals, errors."""

    requests: dict[Labels, int] = field(default_factory=dict)
    request_seconds: dict[Labels, _Histogram] = field(default_factory=dict)
    operations: dict[Labels, int] = field(default_factory=dict)
    operation_seconds: dict[Labels, _Histogram] = field(default_factory=dict)
    refusals: dict[Labels, int] = field(default_factory=dict)
    errors: dict[Labels, int] = field(default_factory=dict)
    logins: dict[Labels, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @staticmethod
    def _inc(table: dict[Labels, int], labels: Labels) -> None:
        table[labels] = table.get(labels, 0) + 1

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._inc(
                self.requests, (("method", method), ("route", route), ("status", str(status)))
            )
            key = (("method", method), ("route", route))
            self.request_seconds.setdefault(key, _Histogram()).observe(seconds)

    def operation(self, operation: str, mode: str, outcome: str, seconds: float) -> None:
        """``mode``: plan or run; ``outcome``: ok, refused (4xx-class error) or failed."""
        with self._lock:
            self._inc(
                self.operations, (("operation", operation), ("mode", mode), ("outcome", outcome))
            )
            key = (("operation", operation), ("mode", mode))
            self.operation_seconds.setdefault(key, _Histogram()).observe(seconds)

    def refusal(self, kind: str, status: int) -> None:
        with self._lock:
            self._inc(self.refusals, (("kind", kind), ("status", str(status))))

    def error(self, kind: str) -> None:
        with self._lock:
            self._inc(self.errors, (("kind", kind),))

    def login(self, method: str, outcome: str) -> None:
        with self._lock:
            self._inc(self.logins, (("method", method), ("outcome", outcome)))

    def render(self, sessions: int | None = None) -> str:
        lines: list[str] = []
        with self._lock:
            counters = (
                ("solutions_ui_requests_total", "HTTP requests answered.", self.requests),
                (
                    "solutions_ui_operations_total",
                    "Engine operations (plans and runs) by outcome.",
                    self.operations,
                ),
                (
                    "solutions_ui_refusals_total",
                    "Requests refused (4xx), by error kind and status.",
                    self.refusals,
                ),
                ("solutions_ui_errors_total", "Requests that failed (5xx), by kind.", self.errors),
                ("solutions_ui_logins_total", "Login attempts by method and outcome.", self.logins),
            )
            for name, help_text, table in counters:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
                lines += [f"{name}{_render_labels(k)} {v}" for k, v in sorted(table.items())]
            histograms = (
                (
                    "solutions_ui_request_duration_seconds",
                    "Time to answer HTTP requests.",
                    self.request_seconds,
                ),
                (
                    "solutions_ui_operation_duration_seconds",
                    "Time of engine operations (a converge, an import...).",
                    self.operation_seconds,
                ),
            )
            for name, help_text, hists in histograms:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for labels, hist in sorted(hists.items()):
                    running = 0
                    for bound, count in zip(BUCKETS, hist.counts, strict=True):
                        running += count
                        le = (("le", f"{bound:g}"),)
                        lines.append(f"{name}_bucket{_render_labels(labels, le)} {running}")
                    inf = (("le", "+Inf"),)
                    lines.append(f"{name}_bucket{_render_labels(labels, inf)} {hist.count}")
                    lines.append(f"{name}_sum{_render_labels(labels)} {hist.total:.6f}")
                    lines.append(f"{name}_count{_render_labels(labels)} {hist.count}")
        if sessions is not None:
            lines += [
                "# HELP solutions_ui_sessions Logged-in browser sessions.",
                "# TYPE solutions_ui_sessions gauge",
                f"solutions_ui_sessions {sessions}",
            ]
        return "\n".join(lines) + "\n"
