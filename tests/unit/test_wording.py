"""Issue 20 item 9: plans in the application administrator's words (engine.wording, pure)."""

from __future__ import annotations

from metalk8s_solutions.engine.wording import (
    InstanceRef,
    Move,
    PlanFacts,
    Readiness,
    environment_health,
    follow_pointer,
    plan_sentences,
    readiness,
)

SOL = "example-solution"


def web(name: str = "web", ns: str = "prod") -> InstanceRef:
    return InstanceRef("VersionServer", ns, name)


def test_install_names_the_version_and_the_instances() -> None:
    facts = PlanFacts("prod", [Move("prod", SOL, None, "2.0.0")])
    assert plan_sentences(facts) == [f"Install {SOL} 2.0.0 (its operator) in prod; no instance yet"]
    facts.instances = [web("a"), web("b"), web("c")]
    assert plan_sentences(facts) == [
        f"Install {SOL} 2.0.0 (its operator) in prod; 3 instances keep running: "
        "VersionServer a, VersionServer b, VersionServer c"
    ]


def test_upgrade_and_downgrade_by_the_one_version_order() -> None:
    up = PlanFacts("prod", [Move("prod", SOL, "1.0.0", "2.0.0")], [web()])
    assert plan_sentences(up) == [
        f"Upgrade {SOL} 1.0.0 → 2.0.0 in prod; 1 instance keeps running: VersionServer web"
    ]
    down = PlanFacts("prod", [Move("prod", SOL, "1.10.0", "1.9.0")])
    assert plan_sentences(down)[0].startswith(f"Downgrade {SOL} 1.10.0 → 1.9.0 in prod")


def test_several_namespaces_are_one_sentence_naming_them() -> None:
    facts = PlanFacts(
        "prod",
        [Move("prod-a", SOL, "1.0.0", "1.1.0"), Move("prod-b", SOL, "1.0.0", "1.1.0")],
        [web("x", "prod-b")],
    )
    assert plan_sentences(facts) == [
        f"Upgrade {SOL} 1.0.0 → 1.1.0 in prod (namespaces prod-a, prod-b); "
        "1 instance keeps running: VersionServer prod-b/x"
    ]


def test_remove_says_whether_the_data_is_lost_or_kept() -> None:
    kept = PlanFacts("prod", [Move("prod", SOL, "1.0.0", None)], [web()])
    assert plan_sentences(kept) == [
        f"Remove {SOL} 1.0.0 from prod; 1 instance is kept but no longer managed by an "
        "operator: VersionServer web"
    ]
    lost = PlanFacts("prod", [Move("prod", SOL, "1.0.0", None)], [web("a"), web("b")], True)
    assert plan_sentences(lost) == [
        f"Remove {SOL} 1.0.0 from prod; its 2 instances are deleted, and their data is lost: "
        "VersionServer a, VersionServer b"
    ]
    nothing = PlanFacts("prod", [Move("prod", SOL, "1.0.0", None)], [], True)
    assert plan_sentences(nothing) == [f"Remove {SOL} 1.0.0 from prod"]


def test_environment_deletion_names_what_is_lost() -> None:
    facts = PlanFacts(
        "prod",
        [Move("prod", SOL, "1.0.0", None)],
        [web()],
        data_deleted=True,
        deleted_namespaces=["prod"],
    )
    assert plan_sentences(facts) == [
        "Delete environment prod: namespace prod and everything in them",
        f"Removes {SOL} 1.0.0",
        "1 instance deleted, its data is lost: VersionServer web",
    ]
    empty = PlanFacts("test", deleted_namespaces=["test"], data_deleted=True)
    assert plan_sentences(empty)[-1] == "No instance to lose"


def test_creation_and_long_lists() -> None:
    assert plan_sentences(PlanFacts("prod", created_namespaces=["prod"])) == [
        "Create environment prod"
    ]
    assert plan_sentences(PlanFacts("prod", created_namespaces=["p1", "p2"])) == [
        "Create environment prod (namespaces p1, p2)"
    ]
    refs = [web(f"i{n}") for n in range(7)]
    many = PlanFacts("prod", [Move("prod", SOL, "1.0.0", "1.0.0")], refs)
    (sentence,) = plan_sentences(many)
    assert sentence.startswith(f"Keep {SOL} 1.0.0 in prod and repair what differs; 7 instances")
    assert sentence.endswith("VersionServer i4 and 2 more")
    assert plan_sentences(PlanFacts("prod")) == []


def test_health_covers_instances_with_the_reason() -> None:
    ok = {"prod": "Available"}
    ready = Readiness("VersionServer a", "True", "Ready")
    assert environment_health({}, []) == ("empty", "")
    assert environment_health(ok, []) == ("healthy", "")
    assert environment_health(ok, [ready]) == ("healthy", "")
    scaling = Readiness("VersionServer b", "False", "Scaling", "1/3 pods ready")
    unknown = Readiness("VersionServer c", "Unknown", "Pending")
    health, problem = environment_health(ok, [ready, scaling, unknown])
    assert health == "degraded"
    assert problem == (
        "2 of 3 instances not ready: VersionServer b (1/3 pods ready), "
        "VersionServer c (readiness unknown: Pending)"
    )
    silent = Readiness("VersionServer d", "")
    health, problem = environment_health(ok, [ready, silent])
    assert health == "unknown"
    assert problem.startswith("no readiness reported by 1 of 2 instances (VersionServer d): ")
    assert "fake nodes" in problem
    health, problem = environment_health({"prod": "Progressing: 0/1"}, [silent])
    assert health == "degraded"
    assert problem == (
        "operator not available (prod: Progressing: 0/1); 1 of 1 instances: no readiness reported"
    )


def test_readiness_from_status_conditions() -> None:
    cond = {"type": "Ready", "status": "False", "reason": "Scaling", "message": "1/3"}
    found = readiness("VersionServer web", {"status": {"conditions": [cond]}})
    assert (found.ready, found.why()) == (False, "1/3")
    assert readiness("x", {}).ready is None and readiness("x", {}).why() == "no readiness reported"
    assert readiness("x", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}).ready


def test_an_instance_behind_the_operator_is_pointed_out() -> None:
    assert follow_pointer({"version": "1.0.0"}, "2.0.0") == (
        "runs 1.0.0; the operator is 2.0.0 — edit to follow"
    )
    assert follow_pointer({"version": "2.0.0"}, "2.0.0") == ""
    assert follow_pointer({"replicas": 3}, "2.0.0") == ""
    assert follow_pointer({"version": 3}, "2.0.0") == ""


def test_instances_that_could_not_be_listed_are_not_called_none() -> None:
    facts = PlanFacts("prod", [Move("prod", SOL, "1.0.0", "2.0.0")], instances_read=False)
    (sentence,) = plan_sentences(facts)
    assert "no instance" not in sentence and "not readable with your rights" in sentence
    gone = PlanFacts("prod", deleted_namespaces=["prod"], data_deleted=True, instances_read=False)
    assert "could not be listed" in plan_sentences(gone)[-1]


def test_fields_the_deployed_version_deprecates_are_pointed_out() -> None:
    schema = {
        "properties": {
            "spec": {
                "properties": {
                    "version": {"type": "string"},
                    "logFormat": {"type": "string", "description": "Deprecated: use logging."},
                    "tls": {
                        "properties": {"legacy": {"description": "DEPRECATED since 2.0.0"}},
                    },
                }
            }
        }
    }
    spec = {"version": "1.0.0", "logFormat": "json", "tls": {"legacy": True}}
    assert follow_pointer(spec, "2.0.0", schema) == (
        "runs 1.0.0; the operator is 2.0.0; sets spec.logFormat, which 2.0.0 deprecates; "
        "sets spec.tls.legacy, which 2.0.0 deprecates — edit to follow"
    )
    assert follow_pointer({"version": "2.0.0", "tls": {}}, "2.0.0", schema) == ""


def test_the_cli_prints_the_plan_in_words_first() -> None:
    from metalk8s_solutions.cli.env import render  # noqa: PLC0415
    from metalk8s_solutions.engine.environments import EnvOutcome  # noqa: PLC0415
    from metalk8s_solutions.engine.state import Step  # noqa: PLC0415

    outcome = EnvOutcome(dry_run=True, steps=[Step("change", "Deployment prod/x-operator")])
    outcome.facts = PlanFacts("prod", [Move("prod", SOL, "1.0.0", "2.0.0")], [web()])
    lines = render(outcome, "done").splitlines()
    assert lines[0] == (
        f"Upgrade {SOL} 1.0.0 → 2.0.0 in prod; 1 instance keeps running: VersionServer web"
    )
    assert lines[1] == "would change Deployment prod/x-operator"
    assert outcome.to_json()["summary"] == [lines[0]]
    assert render(EnvOutcome(dry_run=True), "done") == "nothing to do: already in the desired state"
