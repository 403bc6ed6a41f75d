"""Where the local control plane and registry keep their state (light: the CLI's help shows it)."""

from __future__ import annotations

import os
from pathlib import Path


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state"))


def default_state_dir() -> Path:
    """The local control plane's state directory."""
    return _state_home() / "metalk8s-solutions" / "dev-cluster"


def default_registry_dir() -> Path:
    """The local registry's state directory."""
    return _state_home() / "metalk8s-solutions" / "dev-registry"
