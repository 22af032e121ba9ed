"""The compiled pipeline under kfp.local.DockerRunner: every step runs in the components
image (as its pod would: read-only root, tmpfs /tmp, no capabilities, user 10001) against
the MLflow tracking server running in that same image on the host's PostgreSQL. The same
assertions as the SubprocessRunner test (tests/integration/test_pipeline_local.py)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(3600)]

MODEL = "churn-docker"


def _outputs(pipeline_root: Path, task: str) -> dict:
    [path] = sorted(pipeline_root.glob(f"churn-training-*/**/{task}/executor_output.json"))[-1:]
    return {
        name: spec["artifacts"][0]
        for name, spec in json.loads(path.read_text())["artifacts"].items()
    }


def docker_runner(images: dict):
    from kfp import local

    return local.DockerRunner(
        network_mode="host",
        user="10001:10001",
        read_only=True,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=512m"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        environment={"HOME": "/tmp"},
    )


@pytest.fixture(scope="module")
def docker_run(
    images: dict, container_mlflow: dict, churn_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path]:
    from churnops.training.runner import run_local

    root = tmp_path_factory.mktemp("kfp-docker")
    # DockerRunner mounts the pipeline root (same path) into every step; the data goes
    # there too. The steps run as uid 10001 and write their outputs under it.
    data = root / "data" / "churn.csv"
    data.parent.mkdir()
    shutil.copy(churn_csv, data)
    umask = os.umask(0)  # directories kfp.local makes on the host stay writable for 10001
    try:
        for p in (root, data.parent):
            p.chmod(0o777)
        data.chmod(0o644)
        result = run_local(
            data_uri=str(data),
            tracking_uri=container_mlflow["url"],
            model_name=MODEL,
            experiment="pipeline-docker",
            pipeline_root=root,
            runner=docker_runner(images),
        )
    finally:
        os.umask(umask)
    return result, root


def test_pipeline_in_containers_registers_and_promotes_a_champion(docker_run, container_mlflow):
    result, _ = docker_run
    client = MlflowClient(container_mlflow["url"])
    assert result["state"] == "SUCCEEDED"
    assert result["promoted"] is True
    assert result["aliases"] == {"challenger": result["version"], "champion": result["version"]}
    assert client.get_model_version_by_alias(MODEL, "champion").version == result["version"]
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert (
        run.data.tags["validation"] == "passed"
        and run.data.tags["churnops.pipeline_state"] == "SUCCEEDED"
    )
    children = client.search_runs(
        [run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}'"
    )
    assert sorted(c.data.tags["mlflow.runName"] for c in children) == [
        "logreg",
        "random_forest",
        "xgboost",
    ]
    # The model files went through the server's artifact proxy onto its volume.
    assert list(container_mlflow["artifacts"].rglob("MLmodel"))


def test_kfp_ui_artifacts_from_containerized_steps(docker_run):
    _, root = docker_run
    selected = _outputs(root, "evaluate-select-local")
    metrics = selected["metrics"]["metadata"]
    for name in ("logreg", "random_forest", "xgboost"):
        assert 0.7 < metrics[f"{name}.roc_auc"] <= 1.0
        assert 0 < metrics[f"{name}.threshold"] < 1
    classification = selected["classification"]["metadata"]
    [matrix] = [classification["confusionMatrix"]]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["stays", "churns"]
    assert sum(sum(row["row"]) for row in matrix["rows"]) == 800  # the 20% test split of 4,000
    curve = classification["confidenceMetrics"]
    assert curve[0]["recall"] == 0 and curve[-1]["recall"] == 1
    card = Path(selected["model_card"]["uri"]).read_text()
    assert card.startswith("# Model card") and "| roc_auc |" in card
    report = Path(_outputs(root, "ingest-validate")["report"]["uri"]).read_text()
    assert "# Data validation: PASSED" in report
    trained = sorted(
        root.glob("churn-training-*/train-candidates-local/*/train-candidate/executor_output.json")
    )
    assert len(trained) == 3
    # Written inside the containers, by the image's user.
    assert {p.stat().st_uid for p in trained} == {10001}
