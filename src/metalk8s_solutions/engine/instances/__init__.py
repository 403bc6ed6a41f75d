"""Application instances: the custom resources of a solution in an environment, without kubectl.

Scaling and configuring an application goes through its operator: the administrator creates and
edits custom resources of the solution's CRDs, from the CLI (``solutions instance …``) or the
web UI, which call the same functions of this package:

- :mod:`.kinds`: the kind type, picked from a CRD; printer columns, readiness, one row (pure);
- :mod:`.edits`: ``--set`` edits, cleaning a document, the check against the schema (pure);
- :mod:`.samples`: the archive's ``*_cr.yaml`` samples;
- :mod:`.scope`: where a solution runs in an environment and the kinds deployed there;
- :mod:`.read`: listings (CLI) and views (web pages and JSON API alike);
- :mod:`.details`: one instance's pods, events and operator log;
- :mod:`.write`: create, edit, save and delete, each checked before it is sent.

What the web adds is HTTP only (forms, templates, JSON); the cluster is reached from here.
"""

from __future__ import annotations

from metalk8s_solutions.engine.instances.details import (
    EVENTS,
    LOG_LINES,
    event_row,
    instance_details,
    operator_log,
    owned_pods,
    pod_row,
)
from metalk8s_solutions.engine.instances.edits import (
    apply_sets,
    check_schema,
    clean_body,
    editable,
    merge_posted,
    new_document,
    parse_path,
    parse_set,
)
from metalk8s_solutions.engine.instances.kinds import (
    CustomKind,
    column_values,
    find_kind,
    instance_row,
    instance_status,
    instance_summary,
    json_path,
    kind_of_crd,
    kinds_of_crds,
)
from metalk8s_solutions.engine.instances.read import (
    InstanceQuery,
    get_instance,
    instances_view,
    kind_info,
    kinds_view,
    list_instances,
    list_kinds,
    list_samples,
    solution_scope,
)
from metalk8s_solutions.engine.instances.samples import Sample, pick_sample, read_samples
from metalk8s_solutions.engine.instances.scope import (
    InstanceRef,
    Located,
    Scope,
    deployed,
    locate,
    resolve_scope,
    scope_samples,
)
from metalk8s_solutions.engine.instances.write import (
    CreateInstanceOptions,
    DeleteInstanceOptions,
    EditInstanceOptions,
    create_instance,
    delete_instance,
    edit_instance,
    remove_instance,
    save_instance,
    send,
)

__all__ = [
    "EVENTS",
    "LOG_LINES",
    "CreateInstanceOptions",
    "CustomKind",
    "DeleteInstanceOptions",
    "EditInstanceOptions",
    "InstanceQuery",
    "InstanceRef",
    "Located",
    "Sample",
    "Scope",
    "apply_sets",
    "check_schema",
    "clean_body",
    "column_values",
    "create_instance",
    "delete_instance",
    "deployed",
    "edit_instance",
    "editable",
    "event_row",
    "find_kind",
    "get_instance",
    "instance_details",
    "instance_row",
    "instance_status",
    "instance_summary",
    "instances_view",
    "json_path",
    "kind_info",
    "kind_of_crd",
    "kinds_of_crds",
    "kinds_view",
    "list_instances",
    "list_kinds",
    "list_samples",
    "locate",
    "merge_posted",
    "new_document",
    "operator_log",
    "owned_pods",
    "parse_path",
    "parse_set",
    "pick_sample",
    "pod_row",
    "read_samples",
    "remove_instance",
    "resolve_scope",
    "save_instance",
    "scope_samples",
    "send",
    "solution_scope",
]
