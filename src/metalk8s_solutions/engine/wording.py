"""A plan in the application administrator's words: what happens to solutions and instances.

The engine's plans list Kubernetes objects (ServiceAccount, Role, Deployment…); someone who does
not know Kubernetes wants the sentence first — "Upgrade example-solution 1.0.0 → 2.0.0 in prod;
1 instance keeps running: VersionServer web" — and the objects on request.  The verbs of
:mod:`.environments` record the facts of a plan (:class:`PlanFacts`); :func:`plan_sentences`
turns them into sentences, for the web UI and the CLI alike.  Pure: no cluster, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

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
        if refs:
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
        if facts.instances:
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
