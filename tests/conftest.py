"""Session fixtures: real servers on free loopback ports, torn down always.

In CI (``CI=true``) a skipped test fails the run: every dependency a test needs is
installed by ``make setup``/``make tools``, so a skip means something is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops import processes
from churnops.data.generate import GeneratorConfig, write


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI", "").lower() == "true" and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {skipped} test(s) skipped; in CI a skip is a failure", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _postgres_database(url: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server at ``url``, dropped afterwards."""
    import psycopg

    name = f"churnops_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg.connect(url, autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def mlflow_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """PostgreSQL when ``CHURNOPS_TEST_POSTGRES_URL`` is set (CI), SQLite otherwise."""
    url = os.environ.get("CHURNOPS_TEST_POSTGRES_URL")
    if url:
        yield from _postgres_database(url)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('mlflow-db') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def mlflow_server(mlflow_backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` with proxied artifacts; yields its URL."""
    root = tmp_path_factory.mktemp("mlflow")
    with processes.start_mlflow(
        backend_uri=mlflow_backend, artifacts_dir=root / "artifacts", log_path=root / "server.log"
    ) as server:
        yield server.url


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def churn_csv(data_dir: Path) -> Path:
    """4,000 synthetic customers (seed 11) as CSV."""
    return write(GeneratorConfig(rows=4000, seed=11), data_dir / "churn.csv", show_progress=False)


@pytest.fixture(scope="session")
def trained(mlflow_server: str, churn_csv: Path) -> dict:
    """A champion trained once per session on ``churn_csv`` (model name ``churn-fixture``)."""
    from churnops.model.train import TrainConfig
    from churnops.training.flow import run_training

    return run_training(
        str(churn_csv),
        tracking_uri=mlflow_server,
        model_name="churn-fixture",
        experiment="fixtures",
        train_config=TrainConfig(candidates=("logreg", "xgboost")),
    )
