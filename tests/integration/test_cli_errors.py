"""Every mistake a user can make on the command line: one line on stderr naming the
culprit, the exit code ``churnops.cli.EXIT_CODES`` documents, never a traceback, and
nothing changed in the registry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from churnops.cli import EXIT_CODES

pytestmark = [pytest.mark.integration]

MODEL = "cli-errors"


def churnops(*args: str, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, "-m", "churnops.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "CHURNOPS_REGISTRY_RETRY_SECONDS": "5", **(env or {})},
    )


@pytest.fixture(scope="module")
def model(mlflow_server: str) -> str:
    """A registered model with no versions (nothing to promote, nothing to roll back)."""
    client = MlflowClient(mlflow_server, mlflow_server)
    client.create_registered_model(MODEL)
    return MODEL


def _assert_one_line_error(done: subprocess.CompletedProcess, code: int, *culprits: str) -> None:
    assert done.returncode == code, (done.returncode, done.stderr[-2000:])
    assert code in EXIT_CODES
    assert "Traceback" not in done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr
    for culprit in culprits:
        assert culprit in lines[0], lines[0]


def test_registry_mistakes_change_nothing(mlflow_server, model):
    client = MlflowClient(mlflow_server, mlflow_server)
    uri = ["--tracking-uri", mlflow_server, "--model-name", model]
    _assert_one_line_error(churnops("registry", "promote", *uri), 2, "--version")
    _assert_one_line_error(churnops("registry", "promote", *uri, "--version", "abc"), 9, "'abc'")
    _assert_one_line_error(
        churnops("registry", "promote", *uri, "--version", "99"), 9, model, "version 99"
    )
    assert client.get_registered_model(model).aliases == {}
    _assert_one_line_error(churnops("registry", "rollback", *uri), 9, "previous-champion")
    _assert_one_line_error(
        churnops("registry", "aliases", "--tracking-uri", mlflow_server, "--model-name", "nosuch"),
        9,
        "'nosuch'",
    )


def test_a_directory_is_not_a_tracking_uri(tmp_path):
    _assert_one_line_error(
        churnops("registry", "aliases", "--tracking-uri", str(tmp_path)), 2, str(tmp_path)
    )


def test_train_checks_its_arguments_and_data_before_touching_mlflow(mlflow_server, tmp_path):
    client = MlflowClient(mlflow_server, mlflow_server)
    before = {e.name for e in client.search_experiments()}
    common = ["--tracking-uri", mlflow_server, "--experiment", "cli-errors-train"]
    data = tmp_path / "c.csv"
    data.write_text("customerID\n")
    _assert_one_line_error(
        churnops("train", "--data", str(data), *common, "--candidates", "logreg,svm"), 2, "svm"
    )
    _assert_one_line_error(
        churnops("train", "--data", str(tmp_path / "nonexistent.csv"), *common),
        3,
        "nonexistent.csv",
    )
    _assert_one_line_error(
        churnops("train", "--data", str(data), *common, "--min-roc-auc", "3"), 2, "--min-roc-auc"
    )
    assert {e.name for e in client.search_experiments()} == before


def test_data_generate_ranges(tmp_path):
    out = str(tmp_path / "x.csv")
    _assert_one_line_error(churnops("data", "generate", "--rows", "-5", "--out", out), 2, "--rows")
    _assert_one_line_error(
        churnops("data", "generate", "--rows", "5", "--drift", "7", "--out", out), 2, "--drift"
    )
    assert not Path(out).exists()


def test_pipeline_mistakes(tmp_path):
    _assert_one_line_error(
        churnops("pipeline", "run", "--local", "--data", "x.csv", "--params", "{bad"),
        2,
        "--params",
    )
    _assert_one_line_error(
        churnops("pipeline", "submit", "--host", "http://127.0.0.1:1"), 8, "http://127.0.0.1:1"
    )
    _assert_one_line_error(
        churnops(
            "pipeline", "submit", "--host", "http://127.0.0.1:1", "--image-registry", "HTTP://x"
        ),
        2,
        "--image-registry",
    )
    _assert_one_line_error(
        churnops(
            "pipeline", "submit", "--host", "http://x", "--package", str(tmp_path / "no.yaml")
        ),
        2,
        "no.yaml",
    )


def test_rollout_without_a_kubeconfig(mlflow_server, model, tmp_path):
    env = {"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)}
    common = ["--tracking-uri", mlflow_server, "--model-name", model]
    _assert_one_line_error(churnops("rollout", "rollback", *common, env=env), 10, "Kubernetes")
    _assert_one_line_error(
        churnops("rollout", "run", *common, "--version", "1", env=env), 10, "Kubernetes"
    )


def test_serve_exits_when_the_model_cannot_be_loaded_at_start(mlflow_server, model, tmp_path):
    """A pod that cannot serve ends (exit 5, one line naming the model) and Kubernetes shows
    it restarting with the reason, instead of a server that stays up and never gets ready."""
    from churnops.processes import free_port

    def serve(uri: str, *extra: str) -> subprocess.CompletedProcess:
        return churnops(
            "serve", "--model-uri", uri, "--host", "127.0.0.1",
            "--http-port", str(free_port()), *extra, timeout=120,
        )  # fmt: skip

    _assert_one_line_error(
        serve(f"models:/{model}@champion", "--tracking-uri", mlflow_server), 5, "champion"
    )
    _assert_one_line_error(serve(str(tmp_path / "no-such-dir")), 5, "no-such-dir")
    # an MLflow that does not answer is not waited on for minutes: exit 4 naming it
    closed = f"http://127.0.0.1:{free_port()}"
    _assert_one_line_error(
        serve(f"models:/{model}@champion", "--tracking-uri", closed), 4, closed, "unreachable"
    )


def test_help_and_version():
    done = churnops("--version")
    assert done.returncode == 0 and done.stdout.startswith("churnops ")
    done = churnops("registry", "promote", "--help")
    assert done.returncode == 0 and "--version VERSION" in done.stdout
    top = churnops("--help").stdout
    assert "``" not in top and "exit codes:" in top
