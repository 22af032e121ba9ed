"""Runs churnops starts on KFP run as churnops' own ServiceAccount, the one the chart binds."""

from __future__ import annotations

import pytest
from conftest import SCENARIOS, Render

from churnops.kfp_client import DEFAULT_SERVICE_ACCOUNT, SERVICE_ACCOUNT_ENV


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


@pytest.mark.parametrize("scenario", [*SCENARIOS, "kind+rollout"])
def test_what_starts_runs_names_the_bound_service_account(
    renders: dict[str, Render], scenario: str
) -> None:
    """The alert receiver and the schedule Job start runs whose pods (the canary step among
    them) must patch the InferenceService: they name the account the RoleBinding binds in
    the pipelines namespace, which is also the CLI's default."""
    r = renders[scenario]
    (binding,) = [
        b for b in r.of_kind("RoleBinding") if "inferenceservice" in b["metadata"]["name"]
    ]
    bound = {s["name"] for s in binding["subjects"]}
    starters = [
        o
        for o in r.of_kind("Deployment") + r.of_kind("Job")
        if o["metadata"]["name"].endswith(("alert-receiver", "pipeline-schedule"))
    ]
    if scenario == "kind+rollout":  # renders the schedule Job
        assert {o["kind"] for o in starters} == {"Deployment", "Job"}
    for o in starters:
        (container,) = o["spec"]["template"]["spec"]["containers"]
        account = _env(container)[SERVICE_ACCOUNT_ENV]
        assert account in bound, (o["metadata"]["name"], account, bound)
    assert DEFAULT_SERVICE_ACCOUNT in bound
