# The two commands of the README:
#   make demo   the main journey on the embedded default (local control plane and registry)
#   make test   every check and test
SHELL := /bin/bash
export PATH := $(HOME)/.local/bin:$(PATH)
VENV := .venv/bin

.PHONY: setup demo demo-down test lint typecheck layers unit integration clean docs examples bench

setup:
	@scripts/bootstrap.sh

demo: setup
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh --down

test: setup lint typecheck layers docs
	$(VENV)/pytest -q -p no:cacheprovider --durations=15

lint:
	$(VENV)/ruff check src tests bench examples scripts
	$(VENV)/ruff format --check src tests bench examples scripts
	uv lock --check --quiet

typecheck:
	$(VENV)/mypy
	$(VENV)/mypy --strict examples/example-solution/build.py examples/example-solution/ui/ui_server.py

layers:
	$(VENV)/lint-imports --no-cache

# The documentation site (mkdocs.yml): strict build (warnings are errors, links and anchors
# checked) into site/; open site/index.html.
docs: setup
	$(VENV)/ruff check docs/hooks
	$(VENV)/ruff format --check docs/hooks
	NO_MKDOCS_2_WARNING=1 $(VENV)/mkdocs build --strict --quiet

# The example Solution: its images (Debian packages + PyPI wheels, no container engine) and its
# three signed ISOs, in examples/example-solution/out/ (docs/developer/example-solution.md).
examples: setup
	$(VENV)/python examples/example-solution/build.py

# Every benchmark of bench/ (about 25 minutes on 2 cores), or some: make bench ONLY=build,validate.
# Writes bench/results.json, from which the docs' table is generated; commit it.
bench: setup
	$(VENV)/python bench/run_all.py $(if $(ONLY),--only $(ONLY))

unit: setup
	$(VENV)/pytest -q tests/unit

integration: setup
	$(VENV)/pytest -q tests/integration

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache build dist
