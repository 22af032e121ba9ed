"""The retraining decision in-process: which notifications start a run, keyed by alert group.

The receiver process against a KFP stand-in, across restarts, is in
tests/integration/test_alert_receiver_process.py; here the KFP side is a list of started runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from churnops.kfp_client import RunRef
from churnops.monitoring.alerts import TRIGGERS, RetrainTrigger, group_key, run_name


@dataclass
class Runs:
    """Remembers the runs it was asked to start, like KFP's run list."""

    now: list[float]
    started: list[RunRef] = field(default_factory=list)

    def latest_run(self, name: str, *, experiment: str) -> RunRef | None:
        mine = [r for r in self.started if r.name == name]
        return max(mine, key=lambda r: r.created_at) if mine else None

    def start_run(self, *, package, name, experiment, params) -> RunRef:
        run = RunRef(f"run-{len(self.started) + 1}", name, "PENDING", self.now[0])
        self.started.append(run)
        return run


def _notification(status: str = "firing", action: str = "retrain", name: str = "X") -> dict:
    return {
        "version": "4",
        "status": status,
        "groupKey": f'{{}}/{{action="retrain"}}:{{alertname="{name}"}}',
        "alerts": [{"status": status, "labels": {"alertname": name, "action": action}}],
    }


def _count(outcome: str) -> float:
    return TRIGGERS.labels(outcome)._value.get()


@pytest.fixture
def trigger() -> tuple[RetrainTrigger, Runs, list[float]]:
    now = [1_000_000.0]
    runs = Runs(now)
    return (
        RetrainTrigger(
            runs, package="p.yaml", params={}, cooldown_seconds=600, clock=lambda: now[0]
        ),
        runs,
        now,
    )


def test_one_run_per_group_within_the_cooldown(trigger) -> None:
    t, runs, now = trigger
    before = _count("cooldown")
    assert t.handle(_notification())["outcome"] == "started"
    assert t.handle(_notification())["outcome"] == "cooldown"
    assert t.handle(_notification(name="Y"))["outcome"] == "started"
    now[0] += 601
    assert t.handle(_notification())["outcome"] == "started"
    assert len(runs.started) == 3 and _count("cooldown") == before + 1


def test_a_fresh_receiver_reads_the_last_run_from_kfp(trigger) -> None:
    t, runs, _ = trigger
    t.handle(_notification())
    restarted = RetrainTrigger(
        runs, package="p.yaml", params={}, cooldown_seconds=600, clock=t.clock
    )
    decision = restarted.handle(_notification())
    assert decision["outcome"] == "cooldown" and "KFP run run-1" in decision["reason"]
    assert len(runs.started) == 1


def test_resolved_and_other_alerts_start_nothing(trigger) -> None:
    t, runs, _ = trigger
    assert t.handle(_notification(status="resolved"))["outcome"] == "resolved"
    assert t.handle(_notification(action="page"))["outcome"] == "ignored"
    assert runs.started == []


def test_malformed_alerts_are_refused(trigger) -> None:
    t, _, _ = trigger
    with pytest.raises(ValueError, match="alerts"):
        t.handle({"alerts": "nope"})


def test_group_key_falls_back_to_group_labels() -> None:
    a = {"groupLabels": {"alertname": "X", "model_name": "churn"}, "alerts": []}
    b = {"groupLabels": {"model_name": "churn", "alertname": "X"}, "alerts": []}
    assert group_key(a) == group_key(b)
    assert run_name(group_key(a)).startswith("churn-retrain-") and len(run_name("k")) == 30
