"""Values that option declarations show, without importing the modules that own them.

``solutions VERB --help`` must not import the engine, an HTTP stack or a parser (see
CONTRIBUTING.md, "Start-up"): the choices and defaults below are copies, and
``tests/unit/test_startup.py`` checks that each equals its owner's value.
"""

from __future__ import annotations

from pathlib import Path

#: :class:`metalk8s_solutions.api.config.Policy` values.
POLICIES = ("required", "if-signed", "disabled")
#: :class:`metalk8s_solutions.archive.signing.Algorithm` values.
ALGORITHMS = ("ecdsa-p256", "ed25519")
#: :data:`metalk8s_solutions.engine.config_store.DEFAULT_CONFIG`.
DEFAULT_CONFIG = Path("/etc/metalk8s/solutions.yaml")
#: :data:`metalk8s_solutions.images.push.DEFAULT_CONCURRENCY`.
DEFAULT_CONCURRENCY = 4
#: :data:`metalk8s_solutions.web.server.DEFAULT_LISTEN`.
DEFAULT_LISTEN = "127.0.0.1:8080"
#: :data:`metalk8s_solutions.web.uploads.DEFAULT_UPLOAD_LIMIT`, as ``show_size`` writes it.
DEFAULT_UPLOAD_LIMIT = "20GiB"
