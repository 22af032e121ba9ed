"""`churnops pipeline submit` against a KFP API stand-in (_fake_kfp), through churnops'
KFP adapter: a run, and a recurring run that submitting again replaces instead of doubling
(what the chart's post-install/post-upgrade schedule Job relies on)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from _fake_kfp import FakeKfp

from churnops.training.runner import packaged_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PACKAGE = packaged_spec()


@pytest.fixture
def kfp() -> Iterator[FakeKfp]:
    fake = FakeKfp()
    fake.start()
    yield fake
    fake.stop()


def submit(kfp: FakeKfp, *extra: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "churnops.cli", "pipeline", "submit", "--host", kfp.url,
         "--package", str(PACKAGE), "--data", "s3://churn-data/latest.parquet", *extra],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # only the JSON result on stdout
    return json.loads(lines[0])


def test_schedule_is_replaced_not_duplicated(kfp: FakeKfp) -> None:
    weekly = ("--schedule", "0 0 3 * * 1", "--schedule-name", "churn-training-weekly")
    first = submit(kfp, *weekly)
    assert first["replaced"] == [] and first["schedule"] == "0 0 3 * * 1"
    (job,) = kfp.recurring_runs
    assert job["display_name"] == "churn-training-weekly"
    assert job["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1"
    assert job["runtime_config"]["parameters"] == {"data_uri": "s3://churn-data/latest.parquet"}
    assert job["max_concurrency"] in (1, "1") and job["no_catchup"] is True
    # its pods run as churnops' ServiceAccount, the one the chart lets patch the predictor
    assert job["service_account"] == "churnops-pipeline-runner"

    second = submit(kfp, *weekly, "--params", '{"candidates": ["logreg"]}')  # a helm upgrade
    assert second["replaced"] == [first["recurring_run_id"]]
    (job,) = kfp.recurring_runs
    assert job["recurring_run_id"] == second["recurring_run_id"]
    assert job["pipeline_version_reference"]["pipeline_version_id"] == second["version_id"]
    assert job["runtime_config"]["parameters"]["candidates"] == ["logreg"]
    assert len(kfp.pipelines) == 1 and len(kfp.versions) == 3  # the upload + two versions
    assert kfp.runs == []


def test_submit_starts_one_run(kfp: FakeKfp) -> None:
    result = submit(kfp)
    (run,) = kfp.runs
    assert result["run_id"] == run["run_id"] and result["url"].endswith(run["run_id"])
    assert run["pipeline_version_reference"]["pipeline_version_id"] == result["version_id"]
    assert kfp.recurring_runs == []
    assert run["service_account"] == "churnops-pipeline-runner"


def test_submit_runs_as_the_service_account_asked_for(kfp: FakeKfp) -> None:
    submit(kfp, "--service-account", "team-runner")
    submit(kfp, "--service-account", "")  # KFP's default account
    assert [r.get("service_account") or "" for r in kfp.runs] == ["team-runner", ""]
