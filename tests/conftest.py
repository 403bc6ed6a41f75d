"""Shared test configuration: fixtures come from metalk8s_solutions.testing.pytest_plugin."""
