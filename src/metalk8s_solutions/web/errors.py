"""Engine errors as HTTP answers: one status and one ``kind`` per error class, same text as the CLI.

The API answers ``{"error": {"message": ..., "kind": ..., "hint": ...}}``; pages show the same
message.  Nothing here ever exposes a traceback: an unexpected exception becomes a 500 whose
message says only that the server failed and where to look (the server log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from metalk8s_solutions.cluster.kube import Conflict, Forbidden, NotFound
from metalk8s_solutions.errors import (
    ArchiveChanged,
    ArchiveError,
    ClusterError,
    InvalidInput,
    Missing,
    Refused,
    SolutionsError,
)


class WebError(SolutionsError):
    """An error of the web layer itself (not logged in, bad CSRF token, unknown page)."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        *,
        hint: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.kind = kind
        self.retry_after = retry_after  # seconds, for a 429's Retry-After header


def unauthenticated(message: str = "not logged in") -> WebError:
    return WebError(401, "unauthenticated", message, hint="log in with a Kubernetes bearer token")


def forbidden(message: str) -> WebError:
    return WebError(403, "forbidden", message, hint="ask a cluster administrator for the rights")


def not_found(message: str) -> WebError:
    return WebError(404, "not-found", message)


@dataclass(frozen=True)
class ErrorInfo:
    status: int
    kind: str
    message: str
    hint: str | None

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "kind": self.kind}
        if self.hint:
            error["hint"] = self.hint
        return {"error": error}

    @property
    def text(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


def classify(err: SolutionsError) -> ErrorInfo:
    """The HTTP status and kind of an engine error (the most specific class wins)."""
    table: list[tuple[type[SolutionsError], int, str]] = [
        (Forbidden, 403, "forbidden"),
        (NotFound, 404, "not-found"),
        (Missing, 404, "not-found"),
        (Conflict, 409, "conflict"),
        (ArchiveChanged, 409, "archive-changed"),
        (ArchiveError, 422, "invalid-archive"),
        (InvalidInput, 400, "invalid-input"),
        (Refused, 409, "refused"),
        (ClusterError, 503, "cluster-unavailable"),
    ]
    if isinstance(err, WebError):
        return ErrorInfo(err.status, err.kind, err.message, err.hint)
    message = err.message
    if isinstance(err, ClusterError) and "did not accept your credentials" in message:
        return ErrorInfo(401, "unauthenticated", message, "log in again with a valid token")
    for cls, status, kind in table:
        if isinstance(err, cls):
            return ErrorInfo(status, kind, message, err.hint)
    if err.exit_code == 1:
        return ErrorInfo(409, "refused", message, err.hint)
    return ErrorInfo(503, "unavailable", message, err.hint)


INTERNAL = ErrorInfo(
    500, "internal", "the server failed unexpectedly; the server log has the details", None
)


#: A command line: ``solutions …`` (quoted or not), or an option such as ``--force`` or ``-N``.
_CLI = re.compile(r"(?<![\w-])(?:'?solutions\s+[a-z]|--?[a-zA-Z])")
_PAREN = re.compile(r"\s*\([^()]*\)")


def without_cli(text: str | None) -> str:
    """``text`` (an engine message, hint or warning) without what only the CLI can run.

    The pages are for someone with a browser, not a shell: a hint that names a command
    (``solutions env create prd``) or an option (``--force``) is dropped — the clause that names
    it goes, or only the command after a colon ("create it first: solutions env create prd" ->
    "create it first").  What is left keeps its order.
    """
    if not text:
        return ""
    kept: list[str] = []
    text = _PAREN.sub(lambda m: "" if _CLI.search(m.group()) else m.group(), text)
    for clause in text.split("; "):
        shown = _browser_part(clause)
        if shown:
            kept.append(shown)
    return "; ".join(kept)


def _browser_part(clause: str) -> str:
    """One clause of :func:`without_cli`: itself, its words before a command, or nothing."""
    text = ", or ".join(p for p in clause.split(", or ") if not _CLI.search(p) or ":" in p)
    match = _CLI.search(text)
    if match is not None:
        head = text[: match.start()]
        if ":" not in head:
            return ""
        text = re.sub(r"\s+(?:with|by|using|run)$", "", head.rsplit(":", 1)[0].rstrip())
    return text.strip(" ,")
