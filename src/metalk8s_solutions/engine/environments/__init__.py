"""Environments and the deployment lifecycle, one module per verb.

Every verb takes its options type (:mod:`.options`: the fields, with the CLI flag and the web
parameter of each) and returns an :class:`~.core.EnvOutcome` (the web UI calls the same
functions).  They all end in one convergence (:mod:`.plan`): the desired objects of the
environment (:mod:`engine.desired`, pure) are planned against what is deployed (found by our
labels) and the difference is applied and pruned (:mod:`cluster.apply`); ``dry_run`` stops after
the plan.  :mod:`.versions` is the version change add-solution and upgrade share (approvals,
revisions, wait, roll back), :mod:`.data` the custom resources a plan names, :mod:`.core` what
every verb shares (the outcome, the imported versions, the session).

The state lives in the cluster only: each namespace's ``metalk8s-environment`` says which version
of which solution it runs (plus the options an administrator allowed, so that a later converge
does not lose them), and ``metalk8s-solutions-history`` keeps the revisions.

This package's names are loaded on first use (``environments.add_solution`` imports
:mod:`.add`), so that importing :mod:`.options` (every ``solutions env … --help`` does) loads
no engine.  No module is named like a name of the package: once imported, it would hide it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Each name this package offers, and the module that owns it.
OWNERS: dict[str, str] = {
    "DEFAULT_TIMEOUT": "options",
    "POD_SECURITY": "options",
    "AddSolutionOptions": "options",
    "ConvergeOptions": "options",
    "CreateEnvOptions": "options",
    "DeleteEnvOptions": "options",
    "DeleteSolutionOptions": "options",
    "UpgradeOptions": "options",
    "EnvOutcome": "core",
    "Inventory": "core",
    "RolloutFailed": "core",
    "check_crds_served": "core",
    "load_version_content": "core",
    "read_inventory": "core",
    "require_environment": "core",
    "session": "core",
    "plan_environment": "plan",
    "read_ingress_choice": "plan",
    "read_monitoring_support": "plan",
    "settle_interrupted": "versions",
    "create_environment": "create",
    "delete_environment": "delete",
    "list_environments": "show",
    "show_environment": "show",
    "status": "show",
    "add_solution": "add",
    "upgrade_solution": "upgrade",
    "delete_solution": "remove",
    "converge_environments": "converge",
}

if TYPE_CHECKING:
    from metalk8s_solutions.engine.environments.add import add_solution
    from metalk8s_solutions.engine.environments.converge import converge_environments
    from metalk8s_solutions.engine.environments.core import (
        EnvOutcome,
        Inventory,
        RolloutFailed,
        check_crds_served,
        load_version_content,
        read_inventory,
        require_environment,
        session,
    )
    from metalk8s_solutions.engine.environments.create import create_environment
    from metalk8s_solutions.engine.environments.delete import delete_environment
    from metalk8s_solutions.engine.environments.options import (
        DEFAULT_TIMEOUT,
        POD_SECURITY,
        AddSolutionOptions,
        ConvergeOptions,
        CreateEnvOptions,
        DeleteEnvOptions,
        DeleteSolutionOptions,
        UpgradeOptions,
    )
    from metalk8s_solutions.engine.environments.plan import (
        plan_environment,
        read_ingress_choice,
        read_monitoring_support,
    )
    from metalk8s_solutions.engine.environments.remove import delete_solution
    from metalk8s_solutions.engine.environments.show import (
        list_environments,
        show_environment,
        status,
    )
    from metalk8s_solutions.engine.environments.upgrade import upgrade_solution
    from metalk8s_solutions.engine.environments.versions import settle_interrupted


def __getattr__(name: str) -> Any:
    owner = OWNERS.get(name)
    if owner is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{owner}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_TIMEOUT",
    "POD_SECURITY",
    "AddSolutionOptions",
    "ConvergeOptions",
    "CreateEnvOptions",
    "DeleteEnvOptions",
    "DeleteSolutionOptions",
    "EnvOutcome",
    "Inventory",
    "RolloutFailed",
    "UpgradeOptions",
    "add_solution",
    "check_crds_served",
    "converge_environments",
    "create_environment",
    "delete_environment",
    "delete_solution",
    "list_environments",
    "load_version_content",
    "plan_environment",
    "read_ingress_choice",
    "read_inventory",
    "read_monitoring_support",
    "require_environment",
    "session",
    "settle_interrupted",
    "show_environment",
    "status",
    "upgrade_solution",
]
