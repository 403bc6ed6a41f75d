#!/usr/bin/env bash
# `make demo`: the whole Solutions journey on the embedded default, narrated (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/demo.py "$@"
