"""The exception tree: one root, one subclass per domain, messages written for the user.

Every error a user can cause is raised as a :class:`SolutionsError` whose message names the
object, says what is wrong and what to do.  The CLI prints ``str(err)`` on one line and exits with
``err.exit_code``; it never shows a traceback for these.
"""

from __future__ import annotations

import re
import shlex

#: a value the tool cannot know, in a printed command: ``<version>``, ``<field>=<value>``
PLACEHOLDER = re.compile(r"<[a-z][a-z-]*>")


def command(*words: str) -> str:
    """A command line a user can paste: ``solutions`` and ``words``, each shell-quoted.

    Every command a message or hint prints is built here, so that ``tests/unit/test_hints.py``
    finds each one and parses it with the real command tree.  A word holding a placeholder
    (``<version>``, ``<field>=<value>``: lower case in angle brackets, the one convention for a
    value only the user knows) is printed as it is; use one only when the value is unknowable.
    """
    return " ".join(
        ["solutions"]
        + [
            w if PLACEHOLDER.search(w) and not re.search(r"[\s'\"]", w) else shlex.quote(w)
            for w in words
        ]
    )


class SolutionsError(Exception):
    """Root of every error this package raises on purpose."""

    #: 1: the operation was refused or the input is invalid; 2: the tool could not run.
    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class InvalidInput(SolutionsError):
    """The user's input (a name, a file, a flag) is not acceptable."""

    exit_code = 1


class Refused(SolutionsError):
    """The operation is understood but would be unsafe or is not allowed now."""

    exit_code = 1


class Missing(Refused):
    """What the user named does not exist (an environment): refused like any refusal (exit 1);
    the web answers 404 with a way back."""


class Interrupted(SolutionsError):
    """The user interrupted a command (Ctrl-C): the message says what state remains, the hint
    the command that finishes the work.  The CLI prints it as one ``aborted:`` line."""

    exit_code = 130


class EnvironmentFailure(SolutionsError):
    """Something on this machine prevents the tool from running (missing tool, port in use)."""

    exit_code = 2


class ComponentFailure(EnvironmentFailure):
    """A component we start (etcd, kube-apiserver, a registry) failed; the log says why."""

    def __init__(self, component: str, message: str, *, log: str | None = None) -> None:
        hint = f"read {log}" if log else None
        super().__init__(f"{component}: {message}", hint=hint)
        self.component = component
        self.log = log


class ClusterError(SolutionsError):
    """The Kubernetes API could not be reached or answered with an error."""

    exit_code = 2


class ArchiveError(SolutionsError):
    """A Solution archive is unreadable or breaks the format."""

    exit_code = 1


class RegistryError(SolutionsError):
    """An OCI registry could not be reached or refused an operation."""

    exit_code = 2


class ManifestError(InvalidInput):
    """A Solution manifest (or another YAML document of an archive) breaks its schema."""


class ChecksumMismatch(ArchiveError):
    """A file of an archive does not match its recorded checksum or digest: tampering or rot."""


class ArchiveChanged(ArchiveError):
    """An imported archive no longer holds what was verified at import (its pin)."""


class SignatureError(ArchiveError):
    """A signature is invalid, or the verification policy demands one that is not there."""


class KeyFileError(SolutionsError):
    """A key file is unreadable, of an unsupported type, or not the kind expected."""

    exit_code = 2


class ArchiveInvalid(ArchiveError):
    """``validate`` found errors; the report has been printed."""
