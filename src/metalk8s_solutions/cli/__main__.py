"""``python -m metalk8s_solutions.cli``."""

from metalk8s_solutions.cli.main import run

run()
