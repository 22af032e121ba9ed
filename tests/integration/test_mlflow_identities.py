"""The chart's MLflow users Job against a real ``mlflow server --app-name basic-auth`` that
grants nothing by default (``default_permission = NO_PERMISSIONS``): each identity can do
its job and no more.

The Job's script is taken from ``helm template`` as the chart renders it and run with the
environment the Job gives it, so what is tested is what a cluster runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from churnops import processes

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
MODEL = "churn"
ADMIN = ("admin", "churnops-test-admin-7f3a")
USERS = {
    "predictor": ("churnops-predictor", "pw-predictor-1a"),
    "rollout": ("churnops-rollout", "pw-rollout-2b"),
    "pipeline": ("churnops-pipeline", "pw-pipeline-3c"),
}


def users_job_script() -> str:
    rendered = subprocess.run(
        [str(HELM), "template", "churnops", str(ROOT / "charts" / "churnops"), "-n", "churnops"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (job,) = [
        d
        for d in yaml.safe_load_all(rendered)
        if d and d["kind"] == "Job" and d["metadata"]["name"] == "churnops-mlflow-users"
    ]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return container["command"][2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("mlflow-auth")
    config = home / "basic_auth.ini"
    config.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{home}/auth.db\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = processes.free_port()
    proc = processes.start(
        "mlflow-auth",
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--backend-store-uri", f"sqlite:///{home}/mlflow.db",
         "--artifacts-destination", str(home / "artifacts"), "--serve-artifacts",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        url=f"http://127.0.0.1:{port}", health="/health", log_path=home / "server.log",
        timeout=600,
        env={"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test",
             "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )  # fmt: skip
    try:
        yield proc.url
    finally:
        proc.stop()


def run_users_job(url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLFLOW_URL": url,
        "REGISTERED_MODEL": MODEL,
        "ADMIN_USERNAME": ADMIN[0],
        "ADMIN_PASSWORD": ADMIN[1],
    }
    for role, (name, password) in USERS.items():
        env[f"{role.upper()}_USERNAME"], env[f"{role.upper()}_PASSWORD"] = name, password
    return subprocess.run(
        [sys.executable, "-c", users_job_script()],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def as_user(monkeypatch: pytest.MonkeyPatch, url: str, role: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    name, password = USERS[role]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(url, url)


def denied(call) -> bool:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    try:
        call()
    except MlflowException as err:
        return "403" in str(err) or "PERMISSION_DENIED" in str(err)
    return False


def test_each_identity_can_do_its_job_and_no_more(server, monkeypatch, tmp_path) -> None:
    first = run_users_job(server)
    assert first.returncode == 0, first.stderr
    again = run_users_job(server)  # every helm upgrade runs it again
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["registered_model"] == MODEL and summary["experiment_id"]

    # The pipeline: runs in the model's experiment, a registered version, the aliases.
    pipeline = as_user(monkeypatch, server, "pipeline")
    experiment = pipeline.get_experiment_by_name(MODEL)
    run = pipeline.create_run(experiment.experiment_id)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("artifact_path: model\n")
    pipeline.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    pipeline.set_terminated(run.info.run_id)
    version = pipeline.create_model_version(
        MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    ).version
    pipeline.set_registered_model_alias(MODEL, "challenger", version)

    # The rollout moves aliases, and nothing else.
    rollout = as_user(monkeypatch, server, "rollout")
    rollout.set_registered_model_alias(MODEL, "champion", version)
    assert denied(lambda: rollout.create_run(experiment.experiment_id))
    assert denied(lambda: rollout.delete_model_version(MODEL, version))

    # The predictor resolves the champion and downloads it; it can change nothing.
    predictor = as_user(monkeypatch, server, "predictor")
    assert predictor.get_model_version_by_alias(MODEL, "champion").version == version
    uri = predictor.get_model_version_download_uri(MODEL, version)
    import mlflow.artifacts

    # Explicit: an earlier test's tracking.connect() leaves MLflow's global URI elsewhere.
    local = mlflow.artifacts.download_artifacts(
        uri, dst_path=str(tmp_path / "download"), tracking_uri=server
    )
    assert (Path(local) / "MLmodel").exists()
    assert denied(lambda: predictor.set_registered_model_alias(MODEL, "champion", version))
    assert denied(lambda: predictor.create_run(experiment.experiment_id))
