# The two commands of the README:
#   make demo   the main journey on the embedded default (local control plane and registry)
#   make test   every check and test
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
VENV := .venv/bin

.PHONY: setup demo test lint typecheck layers unit integration clean

setup:
	@scripts/bootstrap.sh

demo: setup
	@scripts/demo.sh

test: setup lint typecheck layers
	$(VENV)/pytest -q -p no:cacheprovider --durations=15

lint:
	$(VENV)/ruff check src tests bench
	$(VENV)/ruff format --check src tests bench
	uv lock --check --quiet

typecheck:
	$(VENV)/mypy

layers:
	$(VENV)/lint-imports --no-cache

unit: setup
	$(VENV)/pytest -q tests/unit

integration: setup
	$(VENV)/pytest -q tests/integration

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache build dist
