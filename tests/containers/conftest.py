"""Fixtures for the real images: the engine, the two images, a champion to serve, and the
MLflow tracking server running in the components image against the host's PostgreSQL.

Everything runs as in a pod: read-only root, tmpfs /tmp, all capabilities dropped,
no-new-privileges, the image's own non-root user. Host networking stands in for the pod
network (the host's MLflow and PostgreSQL are on loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _docker import ROOT, docker, image, image_exists, run_detached

from churnops import processes

DEFAULT_POSTGRES = "postgresql://churnops:churnops@127.0.0.1:5432/test"


def _engine(*args: str) -> dict:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts/docker-engine.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"no Docker engine (make docker-engine): {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[dict]:
    """An engine: the one that answers, else the project's dockerd (stopped at the end).

    ``CHURNOPS_KEEP_DOCKER=1`` leaves the project's dockerd running after the session.
    An engine churnops did not start is never stopped.
    """
    status = _engine()
    yield status
    if _engine("--status")["started_by_churnops"] and not os.environ.get("CHURNOPS_KEEP_DOCKER"):
        _engine("--stop")


@pytest.fixture(scope="session")
def images(docker_engine: dict) -> dict[str, str]:
    """Both images, built by ``make images-build`` if this session has not got them."""
    tags = {role: image(role) for role in ("components", "serving")}
    if not all(image_exists(tag) for tag in tags.values()):
        subprocess.run(["make", "-s", "images-build"], cwd=ROOT, check=True)
    return tags


@pytest.fixture(scope="session")
def champion(container_mlflow: dict, churn_csv: Path) -> dict:
    """An XGBoost champion ``churn`` (the xgboost-cpu wheel must load it in the serving
    image), trained here and registered in the containerized tracking server."""
    from churnops.model.train import TrainConfig
    from churnops.training.flow import run_training

    result = run_training(
        str(churn_csv),
        tracking_uri=container_mlflow["url"],
        model_name="churn",
        experiment="containers",
        train_config=TrainConfig(candidates=("xgboost",)),
    )
    assert result["aliases"]["champion"] == result["version"], result
    return {**result, "tracking_uri": container_mlflow["url"]}


@pytest.fixture(scope="session")
def model_dir(champion: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What KServe's storage initializer leaves at /mnt/models: the model's files."""
    import mlflow.artifacts

    from churnops import tracking

    tracking.connect(champion["tracking_uri"])
    path = tmp_path_factory.mktemp("mnt-models")
    mlflow.artifacts.download_artifacts(f"models:/churn/{champion['version']}", dst_path=str(path))
    # Readable by the image's user (uid 10001), as a volume is; never writable.
    for p in [path, *path.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    assert (path / "MLmodel").is_file()
    return path


def _postgres_database() -> Iterator[str]:
    import psycopg

    url = os.environ.get("CHURNOPS_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL at {url} does not answer (make postgres): {err}")
    name = f"churnops_containers_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{url.rpartition('/')[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def mlflow_database() -> Iterator[str]:
    """A fresh database on the host's PostgreSQL for the containerized tracking server."""
    yield from _postgres_database()


@pytest.fixture(scope="session")
def mlflow_migration(images: dict, mlflow_database: str) -> subprocess.CompletedProcess:
    """``mlflow db upgrade`` in the components image (the chart's migration Job)."""
    proc = docker(
        "run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        images["components"], "mlflow", "db", "upgrade", mlflow_database,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="session")
def container_mlflow(
    images: dict,
    mlflow_database: str,
    mlflow_migration: subprocess.CompletedProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict]:
    """``mlflow server`` in the components image on PostgreSQL, proxied artifacts on a volume."""
    artifacts = tmp_path_factory.mktemp("container-artifacts")
    artifacts.chmod(0o777)  # the image's user writes here, as on a PVC with fsGroup
    port = processes.free_port()
    container = run_detached(
        images["components"],
        "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", mlflow_database,
        "--serve-artifacts", "--artifacts-destination", "/artifacts", "--workers", "1",
        options=("-v", f"{artifacts}:/artifacts"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        container.wait_http(f"{url}/health", timeout=240)
        yield {"url": url, "container": container, "artifacts": artifacts}
    finally:
        container.remove()
