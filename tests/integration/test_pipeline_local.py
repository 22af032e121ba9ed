"""The whole KFP pipeline under kfp.local against a real MLflow server."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _pipeline_support import check_kfp_ui_artifacts
from mlflow import MlflowClient

from churnops.errors import PipelineFailed
from churnops.training.runner import run_local

# Minutes of real training in separate processes; a loaded machine needs the headroom.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]

MODEL = "churn-pipeline"


@pytest.fixture(scope="module")
def good_run(
    mlflow_server: str, churn_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("kfp")
    result = run_local(
        data_uri=str(churn_csv),
        tracking_uri=mlflow_server,
        model_name=MODEL,
        experiment="pipeline-tests",
        pipeline_root=root,
    )
    return result, root


def test_pipeline_registers_and_promotes_a_champion(good_run, mlflow_server):
    result, _ = good_run
    assert result["state"] == "SUCCEEDED"
    assert result["promoted"] is True
    assert result["aliases"] == {"challenger": result["version"], "champion": result["version"]}
    run = MlflowClient(mlflow_server, mlflow_server).get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert (
        run.data.tags["validation"] == "passed"
        and run.data.tags["churnops.pipeline_state"] == "SUCCEEDED"
    )
    children = MlflowClient(mlflow_server, mlflow_server).search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
    )
    assert sorted(c.data.tags["mlflow.runName"] for c in children) == [
        "logreg",
        "random_forest",
        "xgboost",
    ]


def test_kfp_ui_artifacts(good_run):
    result, root = good_run
    check_kfp_ui_artifacts(result, root)


def test_broken_data_fails_at_validation_and_registers_nothing(
    good_run, mlflow_server, churn_csv, tmp_path
):
    result, _ = good_run
    broken = pd.read_csv(churn_csv, dtype=str, keep_default_na=False)
    broken.loc[3, "MonthlyCharges"] = "lots"
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    client = MlflowClient(mlflow_server, mlflow_server)
    before = len(client.search_model_versions(f"name='{MODEL}'"))
    with pytest.raises(PipelineFailed, match="ingest-validate") as failure:
        run_local(
            data_uri=str(path),
            tracking_uri=mlflow_server,
            model_name=MODEL,
            experiment="pipeline-tests",
            pipeline_root=tmp_path / "kfp",
        )
    failed = failure.value.result
    assert failed["state"] == "FAILED" and failed["aliases"] == result["aliases"]
    # The task's own error, not kfp.local's "Inner task failed", ends the message.
    assert failed["cause"].startswith("ContractViolation: ") and "MonthlyCharges" in failed["cause"]
    assert failed["cause"] in str(failure.value) and failed["log"] in str(failure.value)
    assert len(client.search_model_versions(f"name='{MODEL}'")) == before
    run = client.get_run(failed["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["validation"] == "failed"
    report = client.download_artifacts(run.info.run_id, "validation/report.md", str(tmp_path))
    assert (
        "column 'MonthlyCharges'" in Path(report).read_text()
        and "row 3" in Path(report).read_text()
    )
