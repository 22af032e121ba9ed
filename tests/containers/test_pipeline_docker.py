"""The compiled pipeline under kfp.local's DockerRunner (`churnops pipeline run --local
--runner docker`): every step runs in the components image as its pod runs it (read-only
root, tmpfs /tmp, no capabilities, no-new-privileges, non-root) against the MLflow tracking
server that runs in that same image on the host's PostgreSQL. The same assertions as the
SubprocessRunner test (tests/integration/test_pipeline_local.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from integration._pipeline_support import check_kfp_ui_artifacts
from mlflow import MlflowClient

from churnops.errors import UsageError
from churnops.training.runner import IMAGE_UID, require_image

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(3600)]

MODEL = "churn-docker"


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "churnops.cli", "pipeline", "run", "--local", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=3000,
        check=False,
    )


@pytest.fixture(scope="module")
def docker_run(
    images: dict, container_mlflow: dict, churn_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path, subprocess.CompletedProcess]:
    """What a data scientist runs: the CLI with a relative data path, from its folder."""
    root = tmp_path_factory.mktemp("kfp-docker")
    proc = _run(
        "--runner", "docker", "--data", churn_csv.name,
        "--tracking-uri", container_mlflow["url"], "--model-name", MODEL,
        "--experiment", "pipeline-docker", "--pipeline-root", str(root),
        cwd=churn_csv.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), root, proc


def test_one_json_line_and_progress_on_stderr(docker_run):
    result, root, proc = docker_run
    assert len(proc.stdout.strip().splitlines()) == 1
    assert result["runner"] == "docker" and result["pipeline_root"] == str(root)
    assert "in the components image (DockerRunner)" in proc.stderr
    assert "pipeline: train-candidate success" in proc.stderr


def test_pipeline_in_containers_registers_and_promotes_a_champion(docker_run, container_mlflow):
    result, _, _ = docker_run
    client = MlflowClient(container_mlflow["url"], container_mlflow["url"])
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


def test_kfp_ui_artifacts_written_inside_the_containers(docker_run):
    result, root, _ = docker_run
    trained = check_kfp_ui_artifacts(result, root)
    # Written by the steps' non-root user: the caller's own uid, or the image's when root.
    expected = IMAGE_UID if os.getuid() == 0 else os.getuid()
    assert {p.stat().st_uid for p in trained} == {expected} and expected != 0


def test_broken_data_fails_at_validation_and_registers_nothing(
    docker_run, container_mlflow, churn_csv, tmp_path
):
    result, _, _ = docker_run
    broken = pd.read_csv(churn_csv, dtype=str, keep_default_na=False)
    broken.loc[3, "MonthlyCharges"] = "lots"
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    client = MlflowClient(container_mlflow["url"], container_mlflow["url"])
    before = len(client.search_model_versions(f"name='{MODEL}'"))
    proc = _run(
        "--runner", "docker", "--data", str(path), "--tracking-uri", container_mlflow["url"],
        "--model-name", MODEL, "--experiment", "pipeline-docker",
        "--pipeline-root", str(tmp_path / "kfp"),
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 7, proc.stderr[-3000:]
    failed = json.loads(proc.stdout)
    assert failed["state"] == "FAILED" and failed["aliases"] == result["aliases"]
    assert failed["failed_task"] == "ingest-validate"
    # The step's own error, from inside its container, ends the one-line message.
    assert failed["cause"].startswith("ContractViolation: ") and "MonthlyCharges" in failed["cause"]
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert "ingest-validate" in error and failed["cause"] in error
    assert len(client.search_model_versions(f"name='{MODEL}'")) == before
    run = client.get_run(failed["run_id"])
    assert run.info.status == "FAILED" and run.data.tags["validation"] == "failed"


def test_no_engine_is_one_line_naming_make_docker_engine(churn_csv, tmp_path):
    proc = _run(
        "--runner", "docker", "--data", str(churn_csv), "--tracking-uri", "http://127.0.0.1:9",
        "--pipeline-root", str(tmp_path / "kfp"),
        cwd=tmp_path, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"},
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: --runner docker: no Docker engine answers at unix://")
    assert "make docker-engine" in line


def test_missing_image_names_make_images_build(images):
    with pytest.raises(UsageError, match=r"not on this engine; build it with `make images-build`"):
        require_image("churnops/components:not-built-here")


def test_deploy_local_needs_the_subprocess_runner(churn_csv, tmp_path):
    proc = _run(
        "--runner", "docker", "--deploy", "local", "--data", str(churn_csv),
        "--tracking-uri", "http://127.0.0.1:9", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        "error: --deploy local needs --runner subprocess: a model server started inside a "
        "step's container ends with it"
    )
