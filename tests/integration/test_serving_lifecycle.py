"""Readiness and reload: a broken version never serves; an alias move swaps atomically."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from _serving_support import RELOAD_MODEL, metric_value, sample_records

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _predict_versions(url: str, n: int = 1) -> set[str]:
    r = requests.post(
        f"{url}/v1/models/churn:predict", json={"instances": sample_records(n, seed=50)}, timeout=30
    )
    assert r.status_code == 200, r.text
    return {p["model_version"] for p in r.json()["predictions"]}


def _wait(condition, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_fresh_start_on_broken_version_exits(reload_registry, mlflow_server) -> None:
    from churnops.processes import free_port

    uri = f"models:/{RELOAD_MODEL}/{reload_registry['broken']}"
    done = _serve_at_start(uri, "--tracking-uri", mlflow_server, "--http-port", str(free_port()))
    assert done.returncode == 5, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1].startswith(f"error: cannot load {uri}: "), done.stderr


def _serve_at_start(uri: str, *args: str, env: dict[str, str] | None = None):
    import os
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "churnops.cli", "serve", "--model-uri", uri, "--host", "127.0.0.1",
         *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_fresh_start_on_broken_version_waiting_for_a_model_stays_unready(
    reload_registry, mlflow_server, tmp_path
) -> None:
    from churnops.serving.process import start_model_server

    uri = f"models:/{RELOAD_MODEL}/{reload_registry['broken']}"
    with start_model_server(
        uri, mlflow_server, log_path=tmp_path / "broken.log", wait_ready=False, wait_for_model=True
    ) as server:
        assert requests.get(f"{server.url}/v2/health/live", timeout=5).status_code == 200
        assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 503
        assert requests.get(f"{server.url}/v2/models/churn/ready", timeout=5).status_code == 503
        r = requests.post(
            f"{server.url}/v1/models/churn:predict",
            json={"instances": sample_records(1)},
            timeout=10,
        )
        assert r.status_code == 503 and "not ready" in r.json()["error"]
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        assert metric_value(text, "churnops_model_ready", model_name="churn") == 0
        assert metric_value(text, "churnops_requests_total", code="503") == 1
        assert server.popen.poll() is None  # alive, just not ready
        assert "cannot load" in server.log_tail(200)


def test_reload_keeps_old_version_on_failure_then_swaps(
    reload_registry, mlflow_server, tmp_path
) -> None:
    from mlflow import MlflowClient

    from churnops.serving.process import start_model_server

    client = MlflowClient()
    good, broken, good2 = (
        reload_registry["good"],
        reload_registry["broken"],
        reload_registry["good2"],
    )
    client.set_registered_model_alias(RELOAD_MODEL, "champion", good)
    with start_model_server(
        f"models:/{RELOAD_MODEL}@champion",
        mlflow_server,
        log_path=tmp_path / "reload.log",
        reload_interval=0.5,
    ) as server:
        assert _predict_versions(server.url) == {good}

        client.set_registered_model_alias(RELOAD_MODEL, "champion", broken)

        def failed() -> bool:
            text = requests.get(f"{server.url}/metrics", timeout=5).text
            return metric_value(text, "churnops_model_reloads_total", outcome="failure") >= 1

        assert _wait(failed), server.log_tail()
        assert requests.get(f"{server.url}/v2/health/ready", timeout=5).status_code == 200
        assert _predict_versions(server.url) == {good}

        client.set_registered_model_alias(RELOAD_MODEL, "champion", good2)
        # requests keep succeeding while the new version loads and swaps in
        seen: set[str] = set()
        assert _wait(lambda: seen.update(_predict_versions(server.url, 5)) or good2 in seen), (
            server.log_tail()
        )
        assert seen <= {good, good2}
        text = requests.get(f"{server.url}/metrics", timeout=5).text
        assert metric_value(text, "churnops_model_reloads_total", outcome="success") == 1
        assert metric_value(text, "churnops_model_info", model_version=good2) == 1
        assert metric_value(text, "churnops_model_info", model_version=good) == 0
        assert metric_value(text, "churnops_requests_total", code="200", model_version=good) >= 2
        assert metric_value(text, "churnops_requests_total", code="500") == 0

    assert server.popen.returncode == 0  # SIGTERM: graceful shutdown, clean exit


@pytest.fixture(scope="module")
def hostile_dirs(champion_source: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Hostile copies of the champion's model directory and the marker their code creates."""
    import mlflow.artifacts
    from _serving_support import hostile_model_dirs

    root = tmp_path_factory.mktemp("hostile")
    good = mlflow.artifacts.download_artifacts(champion_source, dst_path=str(root / "good"))
    marker = root / "payload-ran"
    return {"marker": marker, **hostile_model_dirs(Path(good), root, marker)}


@pytest.mark.parametrize("kind", ["pickle", "trusted", "untrusted"])
def test_serve_refuses_a_hostile_model_directory(hostile_dirs, tmp_path, kind: str) -> None:
    """``churnops serve --model-uri <dir>``: refused at load, nothing runs, even with
    MLflow's pickle opt-in set."""
    from churnops.processes import free_port

    done = _serve_at_start(
        str(hostile_dirs[kind]),
        "--http-port",
        str(free_port()),
        env={"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"},
    )
    assert done.returncode == 5, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "refused" in done.stderr.splitlines()[-1], done.stderr[-2000:]
    assert not hostile_dirs["marker"].exists()


def test_alias_reload_refuses_hostile_versions(
    reload_registry, hostile_dirs, mlflow_server, tmp_path
) -> None:
    """An alias moved to a hostile version: the reload refuses it, the previous version
    keeps serving, nothing runs."""
    import mlflow
    from mlflow import MlflowClient

    from churnops.serving.process import start_model_server

    client = MlflowClient()
    mlflow.set_experiment("serving-fixtures")
    hostile = {}
    for kind in ("pickle", "trusted"):
        with mlflow.start_run(run_name=f"hostile-{kind}") as run:
            mlflow.log_artifacts(str(hostile_dirs[kind]), "model")
        source = f"runs:/{run.info.run_id}/model"
        hostile[kind] = str(mlflow.register_model(source, RELOAD_MODEL).version)
    good = reload_registry["good"]
    client.set_registered_model_alias(RELOAD_MODEL, "champion", good)
    with start_model_server(
        f"models:/{RELOAD_MODEL}@champion",
        mlflow_server,
        log_path=tmp_path / "reload-hostile.log",
        reload_interval=0.5,
        env={"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"},
    ) as server:
        assert _predict_versions(server.url) == {good}
        for n, kind in enumerate(("pickle", "trusted"), start=1):
            client.set_registered_model_alias(RELOAD_MODEL, "champion", hostile[kind])

            def failed(n: int = n) -> bool:
                text = requests.get(f"{server.url}/metrics", timeout=5).text
                return metric_value(text, "churnops_model_reloads_total", outcome="failure") >= n

            assert _wait(failed), server.log_tail()
            assert _predict_versions(server.url) == {good}
        assert server.log_tail(400).count("refused") >= 2
        client.set_registered_model_alias(RELOAD_MODEL, "champion", good)
    assert not hostile_dirs["marker"].exists()
