"""Canary rollout against a real Prometheus scraping two real model servers.

Stable and canary are real ``churnops serve`` processes on different model versions;
the test sends traffic split by the canary's current weight. Only the InferenceService
is faked (``LocalTarget``): the Kubernetes API is the one thing that cannot run here.
Chaos knobs of the model server make a canary fail or slow down.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from churnops import processes, tracking
from churnops.errors import PromotionRejected
from churnops.rollout.deploy import canary, require_served
from churnops.serving.process import start_model_server
from churnops.testing import (
    REHEARSAL,
    LocalTarget,
    Traffic,
    rehearsal_versions,
    sample_records,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "churn-rollout"
REPO = Path(__file__).resolve().parents[2]
FAST = REHEARSAL


@pytest.fixture(scope="module")
def versions(mlflow_server: str, data_dir: Path) -> dict[str, str]:
    """v1 stable, v2 a healthy retrain, v3 trained where churn looks far more common."""
    workdir = data_dir / "rollout"
    workdir.mkdir(exist_ok=True)
    return rehearsal_versions(mlflow_server, MODEL, workdir, experiment="rollout-tests")


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    # "deployed": the stable server of the kfp.local deploy test (served under MODEL)
    return {name: processes.free_port() for name in ("stable", "canary", "deployed")}


@pytest.fixture(scope="module")
def prometheus(ports: dict[str, int], tmp_path_factory: pytest.TempPathFactory):
    targets = {"churnops/churn-predictor": [f"127.0.0.1:{p}" for p in ports.values()]}
    with processes.start_prometheus(
        targets=targets,
        workdir=tmp_path_factory.mktemp("prometheus"),
        rule_files=sorted(REPO.glob("monitoring/prometheus/*.rules.yaml")),
        scrape_interval="1s",
    ) as prom:
        yield prom.url


@pytest.fixture(scope="module")
def stable(versions, mlflow_server, ports, tmp_path_factory):
    with start_model_server(
        f"models:/{MODEL}/{versions['stable']}",
        mlflow_server,
        port=ports["stable"],
        log_path=tmp_path_factory.mktemp("logs") / "stable.log",
    ) as server:
        yield server


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return sample_records()


def _reset_aliases(mlflow_server: str, versions: dict[str, str], gate_moved: str | None) -> None:
    """Champion = stable; or, as after a pipeline's gate, champion = the candidate and
    previous-champion = stable (the stable revision still serves what it loaded)."""
    client = MlflowClient(mlflow_server, mlflow_server)
    with contextlib.suppress(Exception):
        client.delete_registered_model_alias(MODEL, "previous-champion")
    client.set_registered_model_alias(MODEL, "champion", versions["stable"])
    if gate_moved:
        client.set_registered_model_alias(MODEL, "previous-champion", versions["stable"])
        client.set_registered_model_alias(MODEL, "champion", gate_moved)


def rollout(
    scenario: str,
    *,
    version: str,
    versions,
    mlflow_server,
    prometheus,
    stable,
    ports,
    records,
    tmp_path: Path,
    chaos: dict[str, str] | None = None,
    traffic: bool = True,
    prometheus_url: str | None = None,
    gate_moved: bool = False,
) -> tuple[dict, LocalTarget]:
    tracking.connect(mlflow_server)
    _reset_aliases(mlflow_server, versions, version if gate_moved else None)
    # After a gate promotion the stable revision was created from the alias, as the chart does.
    stable_uri = (
        f"models:/{MODEL}@champion" if gate_moved else f"models:/{MODEL}/{versions['stable']}"
    )
    target = LocalTarget(stable_uri, stable.url, f"http://127.0.0.1:{ports['canary']}")
    with start_model_server(
        f"models:/{MODEL}/{version}",
        mlflow_server,
        port=ports["canary"],
        log_path=tmp_path / f"canary-{scenario}.log",
        env=chaos or {},
    ):
        if traffic:
            with Traffic(target, records):
                result = canary(
                    target,
                    model_name=MODEL,
                    version=version,
                    prometheus_url=prometheus_url or prometheus,
                    config=FAST,
                )
        else:
            result = canary(
                target,
                model_name=MODEL,
                version=version,
                prometheus_url=prometheus_url or prometheus,
                config=FAST,
            )
    return result, target


@pytest.fixture
def scenario(versions, mlflow_server, prometheus, stable, ports, records, tmp_path):
    def run(name: str, version_key: str, **kwargs):
        return rollout(
            name,
            version=versions[version_key],
            versions=versions,
            mlflow_server=mlflow_server,
            prometheus=prometheus,
            stable=stable,
            ports=ports,
            records=records,
            tmp_path=tmp_path,
            **kwargs,
        )

    return run


def _aliases(mlflow_server: str) -> dict[str, str]:
    return {
        k: str(v)
        for k, v in MlflowClient(mlflow_server, mlflow_server)
        .get_registered_model(MODEL)
        .aliases.items()
    }


def test_healthy_canary_is_promoted_and_aliases_move(scenario, versions, mlflow_server):
    result, target = scenario("healthy", "healthy", gate_moved=True)
    assert result["outcome"] == "promoted", result["decisions"]
    assert [d["decision"] for d in result["decisions"]][-1] == "promote"
    assert target.calls[0].startswith("start") and target.calls[-1] == "promote"
    assert "percent 50" in target.calls and "percent 100" in target.calls
    aliases = _aliases(mlflow_server)
    assert (
        aliases["champion"] == versions["healthy"]
        and aliases["previous-champion"] == versions["stable"]
    )
    # Compared with stable while both had traffic (at 100% the stable side is idle).
    compared = [d["numbers"] for d in result["decisions"] if "prediction_ks" in d["numbers"]]
    assert compared and all(
        n["prediction_ks"] <= max(FAST.max_prediction_shift, n["prediction_ks_critical"])
        for n in compared
    )
    assert result["decisions"][-1]["numbers"]["canary_requests"] >= FAST.min_requests


def test_erroring_canary_is_rolled_back(scenario, versions, mlflow_server):
    result, target = scenario(
        "erroring", "healthy", chaos={"CHURNOPS_CHAOS_ERROR_RATIO": "0.5"}, gate_moved=True
    )
    assert result["outcome"] == "rolled_back"
    assert "error ratio" in result["decisions"][-1]["reason"]
    assert target.calls[-1] == "rollback" and target.canary_uri is None
    assert _aliases(mlflow_server)["champion"] == versions["stable"]
    tags = (
        MlflowClient(mlflow_server, mlflow_server)
        .get_model_version(MODEL, versions["healthy"])
        .tags
    )
    assert tags["rollout"] == "rolled_back" and "error ratio" in tags["rollout_reason"]


def test_slow_canary_is_rolled_back(scenario):
    result, _ = scenario("slow", "healthy", chaos={"CHURNOPS_CHAOS_LATENCY_SECONDS": "0.25"})
    assert result["outcome"] == "rolled_back"
    assert "p99" in result["decisions"][-1]["reason"]


def test_canary_with_shifted_predictions_is_rolled_back(scenario):
    result, _ = scenario("shifted", "shifted")
    assert result["outcome"] == "rolled_back"
    assert "distribution shift" in result["decisions"][-1]["reason"]


def test_no_traffic_is_its_own_outcome_and_never_promotes(scenario, versions, mlflow_server):
    result, target = scenario("idle", "healthy", traffic=False)
    decisions = [d["decision"] for d in result["decisions"]]
    assert result["outcome"] == "no_traffic" and "promote" not in decisions and "hold" in decisions
    assert result["reason"].startswith("no traffic: no verdict within 15s: canary got 0 requests")
    assert "warm-up traffic" in result["reason"]
    assert target.calls[-1] == "rollback"
    assert _aliases(mlflow_server)["champion"] == versions["stable"]
    with pytest.raises(
        PromotionRejected, match=r"got no traffic and was rolled back \(no_traffic\)"
    ):
        require_served(result)


def test_prometheus_down_never_promotes(scenario, versions, mlflow_server):
    result, _ = scenario(
        "blind", "healthy", prometheus_url=f"http://127.0.0.1:{processes.free_port()}"
    )
    assert result["outcome"] == "rolled_back" and "Prometheus unavailable" in result["reason"]
    assert all(d["decision"] in ("hold", "rollback") for d in result["decisions"])
    assert "Prometheus unavailable" in result["decisions"][0]["reason"]
    assert _aliases(mlflow_server)["champion"] == versions["stable"]


class RecordedSplit:
    """The traffic split as the local deploy step records it (serve-<model>.json), for
    ``Traffic``: what Knative's router would read from the revisions."""

    def __init__(self, path: Path):
        self.path = path

    def _canary(self) -> dict:
        return json.loads(self.path.read_text()).get("canary") or {}

    @property
    def stable_url(self) -> str:
        return json.loads(self.path.read_text())["url"]

    @property
    def canary_uri(self) -> str | None:
        return self._canary().get("model_uri")

    @property
    def canary_url(self) -> str:
        return self._canary().get("url", "")

    @property
    def percent(self) -> int:
        return self._canary().get("percent", 0)


def _deploy_component():
    from churnops.training.components import deploy_canary

    return deploy_canary


@pytest.fixture
def deployed_stable(versions, mlflow_server, ports, tmp_path):
    """The stable server as an earlier `--deploy local` left it: served under the registered
    model's name (the module's ``stable`` serves under the InferenceService's, ``churn``)."""
    with start_model_server(
        f"models:/{MODEL}/{versions['stable']}",
        mlflow_server,
        port=ports["deployed"],
        model_name=MODEL,
        log_path=tmp_path / "stable.log",
    ) as server:
        yield server


def test_rolled_back_canary_fails_the_deploy_task_under_kfp_local(
    versions,
    mlflow_server,
    prometheus,
    deployed_stable,
    ports,
    records,
    tmp_path,
    monkeypatch,
    capfd,
):
    """The pipeline's deploy step, run by kfp.local: the new champion goes out as a canary
    next to the running stable server, errors on half its requests, is rolled back, and
    the task fails with the reason, so the run does not show as succeeded."""
    from kfp import local

    tracking.connect(mlflow_server)
    _reset_aliases(mlflow_server, versions, versions["healthy"])  # the gate promoted it
    home = tmp_path / "home"
    home.mkdir()
    record = home / f"serve-{MODEL}.json"
    stable = deployed_stable
    stable_record = {
        "outcome": "serving",
        "version": versions["stable"],
        "model_uri": f"models:/{MODEL}/{versions['stable']}",
        "url": stable.url,
        "pid": stable.popen.pid,
    }
    record.write_text(json.dumps(stable_record))
    monkeypatch.setenv("CHURNOPS_HOME", str(home))
    # Inherited by the canary server the task starts; the stable server runs already.
    monkeypatch.setenv("CHURNOPS_CHAOS_ERROR_RATIO", "0.5")
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp"),
        raise_on_error=True,
    )
    deploy_canary = _deploy_component()
    try:
        with Traffic(RecordedSplit(record), records, model=MODEL), pytest.raises(RuntimeError):
            deploy_canary(
                model_name=MODEL,
                version=versions["healthy"],
                promoted=True,
                tracking_uri=mlflow_server,
                target="local",
                namespace="churnops",
                inference_service="churn",
                canary_percent=25,
                steps_percent=[25, 50, 100],
                interval_seconds=5,
                prometheus_url=prometheus,
                local_port=ports["canary"],
            )
    finally:
        leftover = json.loads(record.read_text()).get("canary") or {}
        if leftover.get("pid"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover["pid"], 15)
    out = capfd.readouterr()
    logged = out.out + out.err
    assert f"canary {MODEL} v{versions['healthy']} was rolled back (rolled_back)" in logged
    assert "canary error ratio" in logged
    assert json.loads(record.read_text()) == stable_record  # stable serves, canary gone
    assert _aliases(mlflow_server)["champion"] == versions["stable"]
    tags = (
        MlflowClient(mlflow_server, mlflow_server)
        .get_model_version(MODEL, versions["healthy"])
        .tags
    )
    assert tags["rollout"] == "rolled_back" and "error ratio" in tags["rollout_reason"]


def _load_generator():
    import importlib.util

    path = REPO / "monitoring" / "grafana" / "generate.py"
    module_spec = importlib.util.spec_from_file_location("dashboards_generate", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_no_dead_panels_or_recording_rules(prometheus, stable, records):
    """After the scenarios' traffic, every dashboard query and recording rule has data
    (panels marked "Cluster only" read Knative/kube-state-metrics series and are exempt)."""
    import json
    import time

    import requests
    import yaml

    from churnops.rollout.analysis import Prometheus

    prom = Prometheus(prometheus)
    with requests.Session() as session:  # a last burst so 5m windows surely hold traffic
        for record in records[:200]:
            session.post(
                f"{stable.url}/v1/models/churn:predict", json={"instances": [record]}, timeout=5
            )
    time.sleep(4)  # two rule evaluations
    dead = []
    rules = yaml.safe_load((REPO / "monitoring/prometheus/churnops.rules.yaml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "record" in rule and not prom.query(f'{{__name__="{rule["record"]}"}}'):
                dead.append(f"recording rule {rule['record']}")
    generator = _load_generator()
    checked = 0
    for path in sorted((REPO / "monitoring/grafana/dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        for title, expr, cluster_only in generator.panel_queries(dashboard):
            if cluster_only:
                continue
            checked += 1
            if not prom.query(expr):
                dead.append(f"{path.name}: {title}: {expr}")
    assert checked > 30
    assert not dead, "\n".join(dead)
