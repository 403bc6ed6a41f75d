"""The journey's data and its verdicts (the journey itself runs in tests/e2e/test_journey.py and
in ``make demo``)."""

from __future__ import annotations

from pathlib import Path

from metalk8s_solutions.testing import journey as j


def test_a_command_outcome_is_judged_on_exit_words_and_output() -> None:
    run = j.Run(("list",), says=("example-solution-1.0.0",), output=lambda out: None)
    assert j.verdict(run, 0, "example-solution-1.0.0 valid", "") is None
    assert j.verdict(run, 1, "example-solution-1.0.0", "") == "exit 1, expected 0"
    assert "does not say" in str(j.verdict(run, 0, "nothing", ""))
    refused = j.Run(("x",), exit=1, output=lambda out: "bad output")
    assert j.verdict(refused, 1, "", "") == "bad output"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def step(self, title: str) -> None:
        self.seen.append(f"step {title}")

    def run(self, action: j.Run) -> None:
        self.seen.append("run " + " ".join(action.args))

    def check(self, action: j.Check) -> None:
        self.seen.append(f"check {action.what}")

    def operator(self, action: j.Operator) -> None:
        self.seen.append(f"operator {action.env} {action.start}")


def test_the_journey_covers_the_seeds_test_plan_in_order(tmp_path: Path) -> None:
    isos = {v: tmp_path / f"example-solution-{v}.iso" for v in ("1.0.0", "1.1.0", "2.0.0")}
    recorder = Recorder()
    j.walk(j.journey(isos, tmp_path / "k.pub", "reg:5000", tmp_path / "c.yaml"), recorder)
    verbs = [line.split()[1] for line in recorder.seen if line.startswith("run ")]
    order = ["import", "activate", "env", "instance", "deactivate", "unimport"]
    positions = [verbs.index(v) for v in order]
    assert positions == sorted(positions), verbs
    runs = [line for line in recorder.seen if line.startswith("run ")]
    for wanted in (
        "run env upgrade journey example-solution 2.0.0 --timeout 120",
        "run env upgrade journey example-solution 1.1.0 --timeout 120",
        "run env delete-solution journey example-solution --timeout 60",
        "run env delete journey --timeout 120",
    ):
        assert wanted in runs
    # The operator is stopped before its solution is removed.
    assert recorder.seen.index("operator journey False") < recorder.seen.index(
        "run env delete-solution journey example-solution --timeout 60"
    )


def test_a_fact_that_does_not_hold_says_what_is_wrong() -> None:
    class Empty:
        def get(self, path: str) -> dict[str, object] | None:
            return None

    assert j.crd_serves(["v1alpha1"])(Empty()) == "no CRD"
    assert j.crd_serves(None)(Empty()) is None
    assert j.instance_ready("e", 1, "1.0.0")(Empty()) == "web has None ready replicas on None"
