"""A progress line on stderr, for any command that moves bytes (push, import, build...).

On a terminal the line is redrawn in place a few times a second; in a log (not a terminal) it is
printed every few seconds and once at the end, so that CI logs stay short.  It shows bytes done
and total, the rate, and whatever counts the command adds (``blobs 3/12, 4 skipped``).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import click


def human_size(n: float) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``512 B``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def human_rate(done: int, seconds: float) -> str:
    return f"{human_size(done / seconds)}/s" if seconds >= 0.05 else "-"


class ProgressLine:
    """One status line: ``label: done / total  rate  extra``."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 0.2,
        log_interval: float = 5.0,
    ) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if self.tty else log_interval
        self.label = ""
        self.started = time.monotonic()
        self.last = 0.0
        self.drawn = False

    def update(self, label: str, done: int, total: int, extra: str = "") -> None:
        """Show progress; a new ``label`` starts a new phase (its own rate)."""
        if self.quiet:
            return
        now = time.monotonic()
        if label != self.label:
            self.close()
            # The first line of a phase waits one interval: a rate over a few microseconds
            # would be meaningless.
            self.label, self.started, self.last = label, now, now
        if now - self.last < self.interval:
            return
        self.last = now
        self._draw(self.render(label, done, total, now - self.started, extra), final=False)

    def finish(self, label: str, done: int, total: int, extra: str = "") -> None:
        """The last line of a phase, always shown."""
        if self.quiet:
            return
        if label != self.label:
            self.close()
            self.label, self.started = label, time.monotonic()
        elapsed = time.monotonic() - self.started
        self._draw(self.render(label, done, total, elapsed, extra), final=True)
        self.label = ""

    @staticmethod
    def render(label: str, done: int, total: int, elapsed: float, extra: str = "") -> str:
        parts = [f"{label}: {human_size(done)} / {human_size(total)}"]
        if done:
            parts.append(human_rate(done, elapsed))
        if extra:
            parts.append(extra)
        return "  ".join(parts)

    def _draw(self, line: str, *, final: bool) -> None:
        if self.tty:
            click.echo(f"\r\033[K{line}", file=self.stream, nl=final)
            self.drawn = not final
        else:
            click.echo(line, file=self.stream)

    def close(self) -> None:
        """End a line left open on a terminal."""
        if self.tty and self.drawn:
            click.echo("", file=self.stream)
            self.drawn = False
