"""`churnops train` against a real MLflow server: registry state after each kind of run."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from churnops.data.generate import GeneratorConfig, write
from churnops.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "churn-registry"


def train(data: Path, tracking_uri: str, *extra: str) -> tuple[int, dict | None, str]:
    """Run the real CLI; return (exit code, JSON of the last stdout line, stderr)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "churnops.cli",
            "train",
            "--data",
            str(data),
            "--tracking-uri",
            tracking_uri,
            "--model-name",
            MODEL,
            "--experiment",
            "registry-tests",
            "--candidates",
            "logreg",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if proc.returncode == 0 and lines else None
    return proc.returncode, result, proc.stderr


@pytest.fixture(scope="module")
def data(data_dir: Path) -> dict[str, Path]:
    small = write(GeneratorConfig(rows=1500, seed=1), data_dir / "small.csv", show_progress=False)
    large = write(GeneratorConfig(rows=6000, seed=2), data_dir / "large.csv", show_progress=False)
    noisy = pd.read_csv(large, dtype=str, keep_default_na=False)
    flip = np.random.default_rng(0).random(len(noisy)) < 0.3
    noisy.loc[flip, "Churn"] = noisy.loc[flip, "Churn"].map({"Yes": "No", "No": "Yes"})
    noisy_path = data_dir / "noisy.csv"
    noisy.to_csv(noisy_path, index=False)
    broken = pd.read_csv(large, dtype=str, keep_default_na=False)
    broken.loc[7, "tenure"] = "-5"
    broken_path = data_dir / "broken.csv"
    broken.to_csv(broken_path, index=False, lineterminator="\r\n")
    return {"small": small, "large": large, "noisy": noisy_path, "broken": broken_path}


@pytest.fixture(scope="module")
def runs(mlflow_server: str, data: dict[str, Path]) -> dict:
    """The four runs in order; later runs see the registry the earlier ones left."""
    client = MlflowClient(mlflow_server, mlflow_server)
    out = {}
    out["first"] = train(data["small"], mlflow_server)
    out["better"] = train(data["large"], mlflow_server)
    out["worse"] = train(data["noisy"], mlflow_server, "--min-roc-auc", "0.5", "--min-f1", "0.3")
    versions_before = len(client.search_model_versions(f"name='{MODEL}'"))
    out["broken"] = train(data["broken"], mlflow_server)
    out["versions_after_broken"] = (
        versions_before,
        len(client.search_model_versions(f"name='{MODEL}'")),
    )
    out["aliases"] = MlflowClient(mlflow_server, mlflow_server).get_registered_model(MODEL).aliases
    return out


def test_first_run_sets_the_champion(runs):
    code, result, stderr = runs["first"]
    assert code == 0, stderr
    assert result["version"] == "1" and result["promoted"] is True
    assert result["aliases"] == {"challenger": "1", "champion": "1"}
    assert set(result["metrics"]) >= {
        "roc_auc",
        "pr_auc",
        "f1",
        "precision",
        "recall",
        "accuracy",
        "brier",
    }
    assert result["metrics"]["roc_auc"] > 0.75 and 0 < result["threshold"] < 1
    assert "train[logreg]" in stderr, "progress goes to stderr"


def test_better_run_is_promoted_and_keeps_the_previous_champion(runs):
    code, result, stderr = runs["better"]
    assert code == 0, stderr
    assert result["promoted"] is True and result["version"] == "2"
    assert result["aliases"] == {"challenger": "2", "champion": "2", "previous-champion": "1"}
    assert result["gate"]["champion_version"] == "1"


def test_worse_run_stays_challenger(runs):
    code, result, stderr = runs["worse"]
    assert code == 0, stderr
    assert result["promoted"] is False
    assert result["aliases"] == {"challenger": "3", "champion": "2", "previous-champion": "1"}
    assert any("worse than champion v2" in r for r in result["gate"]["reasons"])


def test_invalid_data_registers_nothing(runs, mlflow_server):
    code, result, stderr = runs["broken"]
    assert code == 2 and result is None
    assert "column 'tenure'" in stderr and "row 7" in stderr
    before, after = runs["versions_after_broken"]
    assert before == after == 3
    assert {k: str(v) for k, v in runs["aliases"].items()} == {
        "challenger": "3",
        "champion": "2",
        "previous-champion": "1",
    }
    mlflow.set_tracking_uri(mlflow_server)
    experiment = mlflow.get_experiment_by_name("registry-tests")
    failed = MlflowClient(mlflow_server, mlflow_server).search_runs(
        [experiment.experiment_id], "tags.validation = 'failed'"
    )
    assert len(failed) == 1 and failed[0].info.status == "FAILED"


def test_champion_is_one_loadable_model_with_its_evidence(runs, mlflow_server, data):
    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient(mlflow_server, mlflow_server)
    version = client.get_model_version_by_alias(MODEL, "champion")
    assert {"data_digest", "git_commit", "threshold", "metric.roc_auc", "candidate"} <= set(
        version.tags
    )
    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")
    out = model.predict(pd.read_csv(data["large"]).head(20))  # the raw export, as read
    assert list(out.columns) == ["churn_probability", "churn", "model_version"]
    assert out["churn_probability"].between(0, 1).all()
    assert (out["model_version"] == version.version).all()
    assert [i.name for i in model.metadata.get_input_schema().inputs][:3] == [
        "customerID",
        "gender",
        "SeniorCitizen",
    ]
    run = client.get_run(version.run_id)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {
        f"plots/{n}.png" for n in ("roc_curve", "pr_curve", "confusion_matrix", "calibration")
    }
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "model_card.md",
        "validation",
        "plots",
    }
    assert run.inputs.dataset_inputs[0].dataset.digest == version.tags["data_digest"][:32]
    assert {"test_roc_auc", "test_log_loss", "cv_roc_auc"} <= set(run.data.metrics)


def test_unreachable_mlflow_fails_clearly(data):
    code, _, stderr = train(data["small"], f"http://127.0.0.1:{free_port()}")
    assert code == 4
    assert "unreachable" in stderr


def test_health_of_the_real_server(mlflow_server):
    with urllib.request.urlopen(mlflow_server + "/health") as response:
        assert response.status == 200


def test_the_gate_refuses_a_pickled_champion(mlflow_server, data, tmp_path):
    """A champion whose artifact is pickle is never deserialized by the gate: the new
    version is gated on the floors alone, and the payload never runs."""
    import mlflow.artifacts
    from _serving_support import hostile_model_dirs

    name = "churn-registry-hostile"
    code, first, stderr = train(data["small"], mlflow_server, "--model-name", name)
    assert code == 0, stderr
    mlflow.set_tracking_uri(mlflow_server)
    good = Path(
        mlflow.artifacts.download_artifacts(
            f"models:/{name}/{first['version']}", dst_path=str(tmp_path / "good")
        )
    )
    marker = tmp_path / "payload-ran"
    hostile = hostile_model_dirs(good, tmp_path, marker)["pickle"]
    mlflow.set_experiment("registry-tests")
    with mlflow.start_run(run_name="hostile-champion") as run:
        mlflow.log_artifacts(str(hostile), "model")
    client = MlflowClient(mlflow_server, mlflow_server)
    bad = mlflow.register_model(f"runs:/{run.info.run_id}/model", name).version
    client.set_registered_model_alias(name, "champion", str(bad))

    code, result, stderr = train(data["small"], mlflow_server, "--model-name", name)
    assert code == 0, stderr
    assert not marker.exists(), "the gate deserialized a pickle"
    assert f"champion {name} v{bad}" in stderr and "pickle" in stderr
    assert result["gate"]["champion_version"] is None  # floors only
    assert result["promoted"] is True
