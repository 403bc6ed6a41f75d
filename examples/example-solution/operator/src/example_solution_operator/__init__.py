"""example-solution-operator: reconciles VersionServer resources into base-server Deployments."""

from example_solution_operator._version import VERSION

__all__ = ["VERSION"]
