"""DVC-versioned data: a real DVC repository made here (git init, dvc init, dvc add, a
local remote, two revisions), read through ``dvc://<repo>#<path>@<rev>`` by the readers,
``churnops train`` and ``churnops score``, with the lineage logged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _consumers_support import save_model_dir

from churnops.data.generate import GeneratorConfig, write

pytestmark = pytest.mark.integration

DVC = str(Path(sys.executable).parent / "dvc")


def sh(*argv: str, cwd: Path) -> str:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(argv)}: {proc.stderr}{proc.stdout}"
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two revisions (tags v1, v2) of data/customers.csv, pushed to a local remote; the
    local cache is then emptied so reads go through the remote."""
    root = tmp_path_factory.mktemp("dvc")
    repo, remote = root / "repo", root / "remote"
    repo.mkdir()
    remote.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.email", "ci@example.com", cwd=repo)
    sh("git", "config", "user.name", "ci", cwd=repo)
    sh(DVC, "init", "-q", cwd=repo)
    sh(DVC, "remote", "add", "-d", "local", str(remote), cwd=repo)
    for tag, seed in (("v1", 1), ("v2", 2)):
        write(
            GeneratorConfig(rows=2000, seed=seed),
            repo / "data" / "customers.csv",
            show_progress=False,
        )
        sh(DVC, "add", "-q", "data/customers.csv", cwd=repo)
        sh("git", "add", "-A", cwd=repo)
        sh("git", "commit", "-qm", f"customers {tag}", cwd=repo)
        sh("git", "tag", tag, cwd=repo)
        sh(DVC, "push", "-q", cwd=repo)
    shutil.rmtree(repo / ".dvc" / "cache")
    return repo


def uri(repo: Path, rev: str) -> str:
    return f"dvc://{repo}#data/customers.csv@{rev}"


def test_each_revision_reads_its_own_data(dvc_repo: Path) -> None:
    from churnops import tracking
    from churnops.data import validate
    from churnops.data.io import dvc_lineage

    a, b = dvc_lineage(uri(dvc_repo, "v1")), dvc_lineage(uri(dvc_repo, "v2"))
    assert a["md5"] and b["md5"] and a["md5"] != b["md5"]
    assert a["commit"] == sh("git", "rev-parse", "v1^{commit}", cwd=dvc_repo)
    assert b["commit"] == sh("git", "rev-parse", "v2^{commit}", cwd=dvc_repo)
    assert tracking.content_digest(uri(dvc_repo, "v1")) != tracking.content_digest(
        uri(dvc_repo, "v2")
    )
    report = validate(uri(dvc_repo, "v1"))
    assert report.ok and report.rows == 2000


def test_bad_dvc_uri_is_one_line(tmp_path: Path, dvc_repo: Path) -> None:
    for bad, fragment in (
        (f"dvc://{dvc_repo}", "dvc://<repo>#<path>"),
        (f"dvc://{dvc_repo}#data/nope.csv@v1", "nope.csv"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "churnops.cli", "data", "validate", bad],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 3 and fragment in proc.stderr and "Traceback" not in proc.stderr


def test_training_on_each_revision_logs_its_lineage(dvc_repo: Path, mlflow_server: str) -> None:
    from mlflow import MlflowClient

    from churnops.data.io import dvc_lineage
    from churnops.model.train import TrainConfig
    from churnops.training.flow import run_training

    client = MlflowClient(mlflow_server, mlflow_server)
    runs = {}
    for rev in ("v1", "v2"):
        out = run_training(
            uri(dvc_repo, rev),
            tracking_uri=mlflow_server,
            model_name="churn-dvc",
            experiment="dvc-lineage",
            train_config=TrainConfig(candidates=("logreg",), search_rows=1000),
        )
        runs[rev] = (out, client.get_run(out["run_id"]))
    for rev, (out, run) in runs.items():
        lineage = dvc_lineage(uri(dvc_repo, rev))
        tags = run.data.tags
        assert tags["churnops.dvc.md5"] == lineage["md5"]
        assert tags["churnops.dvc.rev"] == rev and tags["churnops.dvc.commit"] == lineage["commit"]
        dataset = run.inputs.dataset_inputs[0].dataset
        assert dataset.digest == out["data_digest"][:32]
        assert uri(dvc_repo, rev) in dataset.source
        card = client.download_artifacts(run.info.run_id, "model_card.md")
        assert lineage["md5"] in Path(card).read_text()
    assert runs["v1"][0]["data_digest"] != runs["v2"][0]["data_digest"]


def test_score_reads_a_dvc_revision(dvc_repo: Path, tmp_path: Path) -> None:
    model = save_model_dir(tmp_path / "model")
    proc = subprocess.run(
        [sys.executable, "-m", "churnops.cli", "score", "--model-uri", str(model),
         "--data", uri(dvc_repo, "v2"), "--out", str(tmp_path / "scores.parquet")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["scored"] == 2000 and result["data_lineage"]["rev"] == "v2"
