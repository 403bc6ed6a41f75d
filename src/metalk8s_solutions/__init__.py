"""Solutions: ship and run applications on air-gapped Kubernetes clusters.

The package is layered (see docs/architecture.md): ``cli`` and ``web`` are thin adapters over
``engine``; the engine uses ``archive``, ``images`` and ``cluster``; everything shares the models
of ``api``.  ``testing`` holds the local control plane that tests and Solution developers reuse.
"""

__version__ = "0.1.0"
