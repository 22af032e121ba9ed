"""Model-server fixtures: registered versions (good and deliberately broken) and running
``churnops serve`` processes on loopback, shared per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _serving_support import RELOAD_MODEL


@pytest.fixture(scope="session")
def champion_source(trained: dict, mlflow_server: str) -> str:
    """The artifact source of the session's trained champion (to register it again)."""
    from mlflow import MlflowClient

    from churnops import tracking

    tracking.connect(mlflow_server)
    return MlflowClient().get_model_version(trained["model_name"], trained["version"]).source


@pytest.fixture(scope="session")
def broken_source(
    champion_source: str, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A model whose MLmodel is fine but whose serialized estimator is garbage."""
    import mlflow
    import mlflow.artifacts

    local = Path(
        mlflow.artifacts.download_artifacts(
            champion_source, dst_path=str(tmp_path_factory.mktemp("broken"))
        )
    )
    for path in local.glob("model.*"):
        path.write_bytes(b"this is not a model")
    mlflow.set_experiment("serving-fixtures")
    with mlflow.start_run(run_name="broken-model") as run:
        mlflow.log_artifacts(str(local), "model")
    return f"runs:/{run.info.run_id}/model"


@pytest.fixture(scope="session")
def reload_registry(champion_source: str, broken_source: str) -> dict[str, str]:
    """Registered model ``serving-reload``: v1 good (champion), v2 broken, v3 good.

    Returns:
        {"good": "1", "broken": "2", "good2": "3"}
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    versions = {}
    for key, source in (
        ("good", champion_source),
        ("broken", broken_source),
        ("good2", champion_source),
    ):
        versions[key] = str(mlflow.register_model(source, RELOAD_MODEL).version)
    client.set_registered_model_alias(RELOAD_MODEL, "champion", versions["good"])
    return versions


@pytest.fixture(scope="module")
def model_server(
    trained: dict, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator:
    """``churnops serve`` on the session champion (``models:/churn-fixture@champion``)."""
    from churnops.serving.process import start_model_server

    log = tmp_path_factory.mktemp("serve") / "server.log"
    with start_model_server(
        f"models:/{trained['model_name']}@champion",
        mlflow_server,
        log_path=log,
        max_batch_rows=2000,
    ) as proc:
        yield proc
