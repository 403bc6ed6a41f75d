"""A plan in the application administrator's words: what happens to solutions and instances.

The engine's plans list Kubernetes objects (ServiceAccount, Role, Deployment…); someone who does
not know Kubernetes wants the sentence first — "Upgrade example-solution 1.0.0 → 2.0.0 in prod;
1 instance keeps running: VersionServer web" — and the objects on request.  The verbs of
:mod:`.environments` record the facts of a plan (:class:`PlanFacts`); :func:`plan_sentences`
turns them into sentences, for the web UI and the CLI alike.  Pure: no cluster, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metalk8s_solutions.api.versions import compare_versions

#: How many instance names a sentence lists before "and N more".
SHOWN = 5


@dataclass(frozen=True)
class Move:
    """A solution's version in one namespace, before and after (None: not deployed)."""

    namespace: str
    solution: str
    before: str | None
    after: str | None


@dataclass(frozen=True, order=True)
class InstanceRef:
    """One instance (a custom resource of a solution's CRDs)."""

    kind: str
    namespace: str
    name: str


@dataclass
class PlanFacts:
    """What a plan does, in the terms an application administrator knows."""

    env: str = ""
    moves: list[Move] = field(default_factory=list)
    #: the instances of the solution(s) the plan concerns (they keep running, or are lost)
    instances: list[InstanceRef] = field(default_factory=list)
    data_deleted: bool = False  # the plan deletes those instances
    instances_read: bool = True  # False: they could not be listed (no right): nothing is said
    created_namespaces: list[str] = field(default_factory=list)
    deleted_namespaces: list[str] = field(default_factory=list)


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _where(env: str, namespaces: Iterable[str]) -> str:
    spaces = sorted(set(namespaces))
    if not env or spaces == [env]:
        return env or ", ".join(spaces)
    label = "namespace" if len(spaces) == 1 else "namespaces"
    return f"{env} ({label} {', '.join(spaces)})"


def _instance_names(facts: PlanFacts, refs: Iterable[InstanceRef]) -> list[str]:
    spaces = {r.namespace for r in facts.instances}
    several = len(spaces) > 1 or (spaces and spaces != {facts.env})
    return [
        f"{r.kind} {r.namespace}/{r.name}" if several else f"{r.kind} {r.name}"
        for r in sorted(refs)
    ]


def _of(facts: PlanFacts, namespaces: Iterable[str]) -> list[InstanceRef]:
    spaces = set(namespaces)
    return [r for r in facts.instances if r.namespace in spaces]


def _running(facts: PlanFacts, refs: list[InstanceRef]) -> str:
    if not facts.instances_read:
        return "its instances (not readable with your rights) are not changed"
    if not refs:
        return "no instance yet"
    names = _names(_instance_names(facts, refs))
    verb = "keeps" if len(refs) == 1 else "keep"
    return f"{_plural(len(refs), 'instance')} {verb} running: {names}"


def _lost(facts: PlanFacts, refs: list[InstanceRef]) -> str:
    names = _names(_instance_names(facts, refs))
    if len(refs) == 1:
        return f"its instance {names} is deleted, and its data is lost"
    return f"its {len(refs)} instances are deleted, and their data is lost: {names}"


def _kept(facts: PlanFacts, refs: list[InstanceRef]) -> str:
    names = _names(_instance_names(facts, refs))
    count = _plural(len(refs), "instance")
    verb = "is" if len(refs) == 1 else "are"
    return f"{count} {verb} kept but no longer managed by an operator: {names}"


Key = tuple[str, str | None, str | None]  # solution, before, after


def _move_sentence(facts: PlanFacts, key: Key, spaces: list[str]) -> str:
    solution, before, after = key
    where = _where(facts.env, spaces)
    refs = _of(facts, spaces)
    if after is None:
        text = f"Remove {solution} {before} from {where}"
        if not facts.instances_read:
            text += "; its instances could not be listed with your rights"
        elif refs:
            text += "; " + (_lost(facts, refs) if facts.data_deleted else _kept(facts, refs))
        return text
    if before is None:
        return f"Install {solution} {after} (its operator) in {where}; {_running(facts, refs)}"
    if before == after:
        running = _running(facts, refs)
        return f"Keep {solution} {after} in {where} and repair what differs; {running}"
    way = "Upgrade" if compare_versions(after, before) > 0 else "Downgrade"
    return f"{way} {solution} {before} → {after} in {where}; {_running(facts, refs)}"


def plan_sentences(facts: PlanFacts) -> list[str]:
    """The plan in words, most important first; empty when the facts say nothing."""
    sentences: list[str] = []
    if facts.created_namespaces:
        sentences.append(f"Create environment {_where(facts.env, facts.created_namespaces)}")
    if facts.deleted_namespaces:
        doomed = ", ".join(sorted(facts.deleted_namespaces))
        label = "namespace" if len(facts.deleted_namespaces) == 1 else "namespaces"
        sentences.append(f"Delete environment {facts.env}: {label} {doomed} and everything in them")
        running = sorted({(m.solution, m.before or "") for m in facts.moves if m.before})
        if running:
            sentences.append("Removes " + ", ".join(f"{s} {v}".strip() for s, v in running))
        if not facts.instances_read:
            sentences.append("Its instances could not be listed with your rights: all are lost")
        elif facts.instances:
            refs = sorted(facts.instances)
            names = _names(_instance_names(facts, refs))
            sentences.append(
                f"{_plural(len(refs), 'instance')} deleted, their data is lost: {names}"
                if len(refs) > 1
                else f"1 instance deleted, its data is lost: {names}"
            )
        else:
            sentences.append("No instance to lose")
        return sentences
    groups: dict[Key, list[str]] = {}
    for move in facts.moves:
        groups.setdefault((move.solution, move.before, move.after), []).append(move.namespace)
    for key, spaces in groups.items():
        sentences.append(_move_sentence(facts, key, spaces))
    if not facts.moves and facts.instances and facts.data_deleted:
        refs = sorted(facts.instances)
        names = _names(_instance_names(facts, refs))
        sentences.append(
            f"Delete {_plural(len(refs), 'instance')} left in {facts.env} "
            f"(no operator manages them any more); their data is lost: {names}"
        )
    return sentences


# -- health ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    """An instance's ``Ready`` condition as its operator reported it (or did not)."""

    name: str  # as the administrator sees it: "VersionServer web"
    status: str  # "True", "False", "Unknown", or "" when no Ready condition is reported
    reason: str = ""
    message: str = ""

    @property
    def ready(self) -> bool | None:
        """True, False (not ready or Unknown), or None (nothing reported)."""
        return None if not self.status else self.status == "True"

    def why(self) -> str:
        if not self.status:
            return "no readiness reported"
        if self.status == "Unknown":
            detail = self.message or self.reason or "its operator does not know yet"
            return f"readiness unknown: {detail}"
        detail = self.message or self.reason
        return detail or "not ready"


def readiness(name: str, obj: Mapping[str, Any]) -> Readiness:
    """The ``Ready`` condition of a custom resource's status (the convention operators follow)."""
    status = obj.get("status") or {}
    for cond in status.get("conditions") or [] if isinstance(status, Mapping) else []:
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return Readiness(
                name,
                str(cond.get("status") or "Unknown"),
                str(cond.get("reason") or ""),
                str(cond.get("message") or ""),
            )
    return Readiness(name, "")


#: Said when instances report nothing: their operator does not run (yet), or cannot.
NO_REPORT = (
    "their operator has not reported on them (on a local cluster with fake nodes no pod runs, "
    "so no operator ever does)"
)


def environment_health(
    operators: Mapping[str, str | None], instances: Sequence[Readiness]
) -> tuple[str, str]:
    """``(health, problem)`` of an environment from its operators and its instances.

    ``health`` is ``empty`` (nothing deployed), ``healthy`` (every operator Available and every
    instance Ready), ``degraded`` (an operator not Available, or an instance Ready False or
    Unknown) or ``unknown`` (instances that report no readiness at all); ``problem`` says why in
    words, e.g. "1 of 3 instances not ready: VersionServer web (Scaling: 1/3 pods ready)".
    """
    if not operators:
        return "empty", ""
    problems: list[str] = []
    down = sorted(
        f"{where}: {status or 'not found'}"
        for where, status in operators.items()
        if not str(status or "").startswith("Available")
    )
    if down:
        problems.append(f"operator not available ({'; '.join(down)})")
    total = len(instances)
    bad = [i for i in instances if i.ready is False]
    silent = [i for i in instances if i.ready is None]
    if bad:
        listed = _names([f"{i.name} ({i.why()})" for i in bad])
        problems.append(f"{len(bad)} of {total} instances not ready: {listed}")
    if problems:
        if silent:
            problems.append(f"{len(silent)} of {total} instances: no readiness reported")
        return "degraded", "; ".join(problems)
    if silent:
        listed = _names([i.name for i in silent])
        return "unknown", (
            f"no readiness reported by {len(silent)} of {total} instances ({listed}): {NO_REPORT}"
        )
    return "healthy", ""


# -- instances that should follow an upgrade ------------------------------------------------


def follow_pointer(
    spec: Mapping[str, Any], deployed: str, schema: Mapping[str, Any] | None = None
) -> str:
    """What an instance should change after its solution changed version, or "".

    Operators of the MetalK8s kind (the example Solution's) run what ``spec.version`` says:
    after an upgrade to 2.0.0 an instance still at 1.0.0 keeps running 1.0.0 until someone
    edits it.  Said when ``spec.version`` is set and differs from the deployed version; and for
    each field set that the deployed version's schema (``schema``, the kind's openAPIV3Schema)
    describes as deprecated.
    """
    said: list[str] = []
    version = spec.get("version") if isinstance(spec, Mapping) else None
    if isinstance(version, str) and version and deployed and version != deployed:
        said.append(f"runs {version}; the operator is {deployed}")
    for path in deprecated_fields(spec, (schema or {}).get("properties", {}).get("spec") or {}):
        said.append(f"sets {path}, which {deployed or 'this version'} deprecates")
    return "; ".join(said) + " — edit to follow" if said else ""


_DEPRECATED = re.compile(r"\bdeprecated\b", re.IGNORECASE)


def deprecated_fields(value: Any, schema: Mapping[str, Any], path: str = "spec") -> list[str]:
    """The fields set in ``value`` whose schema description says they are deprecated."""
    found: list[str] = []
    if not isinstance(value, Mapping) or not isinstance(schema, Mapping):
        return found
    for key, sub in (schema.get("properties") or {}).items():
        if key not in value or not isinstance(sub, Mapping):
            continue
        where = f"{path}.{key}"
        if _DEPRECATED.search(str(sub.get("description") or "")):
            found.append(where)
        else:
            found += deprecated_fields(value[key], sub, where)
    return found
