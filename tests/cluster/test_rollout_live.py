"""`churnops rollout` against the live InferenceService (KServe Standard mode, spec.canary[]).

The InferenceService, its webhooks and the objects KServe derives from it are real (live API
server + KServe controller); the analysis is the real one against a real Prometheus scraping
two real model servers (stable and canary versions), the Prometheus side of
tests/integration/test_rollout.py. kwok runs no container, so traffic goes to those two local
servers, split by the canary share the live InferenceService carries at each moment.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pytest
import requests
from _cluster_support import (
    CHART,
    KUBECONFIG,
    NAMESPACE,
    eventually,
    get,
    helm,
    kubectl,
    values_file,
)
from mlflow import MlflowClient

from churnops import processes, tracking
from churnops.rollout.adapter import KServeTarget, ServingState, mlflow_storage_uri
from churnops.rollout.deploy import canary
from churnops.serving.process import start_model_server
from churnops.testing import REHEARSAL, Traffic, rehearsal_versions, sample_records

MODEL = "churn-live"
ISVC = "churn"
REPO = Path(__file__).resolve().parents[2]


class LiveTarget:
    """KServeTarget on the live InferenceService; the traffic follows what it says."""

    def __init__(self, kserve: KServeTarget, stable_url: str, canary_url: str):
        self.kserve, self.stable_url, self.canary_url = kserve, stable_url, canary_url
        self.canary_uri: str | None = None
        self.percent = 0
        self.calls: list[str] = []
        self._sync()

    def _sync(self) -> ServingState:
        s = self.kserve.state()
        self.canary_uri, self.percent = s.canary_model_uri, s.canary_percent
        return s

    def state(self) -> ServingState:
        return self._sync()

    def start_canary(self, model_uri: str, percent: int) -> None:
        self.kserve.start_canary(model_uri, percent)
        self.calls.append(f"start {percent}")
        self._sync()

    def set_canary_percent(self, percent: int) -> None:
        self.kserve.set_canary_percent(percent)
        self.calls.append(f"percent {percent}")
        self._sync()

    def promote(self) -> None:
        self.kserve.promote()
        self.calls.append("promote")
        self.stable_url = self.canary_url
        self._sync()

    def rollback(self) -> None:
        self.kserve.rollback()
        self.calls.append("rollback")
        self._sync()


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-live")
    with processes.start_mlflow(
        backend_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifacts_dir=root / "artifacts",
        log_path=root / "server.log",
    ) as server:
        yield server.url, root / "artifacts"


@pytest.fixture(scope="module")
def versions(mlflow, tmp_path_factory) -> dict[str, str]:
    url, _ = mlflow
    return rehearsal_versions(url, MODEL, tmp_path_factory.mktemp("rollout-live"))


@pytest.fixture(scope="module")
def kube(cluster, mlflow, versions):
    """The local release with the stable version pinned by storage URI (KServe's condition for
    a Standard-mode canary), and KServeTarget's environment: kubeconfig, artifact root."""
    url, _ = mlflow
    tracking.connect(url)
    old = {k: os.environ.get(k) for k in ("KUBECONFIG", "CHURNOPS_ARTIFACTS_DESTINATION")}
    os.environ["KUBECONFIG"] = str(KUBECONFIG)
    # What the rollout Job gets from the chart: MLflow's artifact PVC, where this MLflow's
    # artifacts would be in the cluster (the KServe storage initializer mounts it).
    os.environ["CHURNOPS_ARTIFACTS_DESTINATION"] = "pvc://churnops-mlflow-artifacts"
    stable_uri = f"models:/{MODEL}/{versions['stable']}"
    kubectl("apply", "--server-side", "--force-conflicts", "-k", "manifests/overlays/local")
    helm(
        "upgrade", "--install", "churnops", str(CHART), "-n", NAMESPACE,
        "-f", str(values_file("local")), "--server-side=true", "--wait=legacy", "--timeout", "5m",
        "--set", f"predictor.modelUri={stable_uri}",
        "--set", f"predictor.storageUri={mlflow_storage_uri(stable_uri)}",
    )  # fmt: skip
    eventually(lambda: get("deploy", f"{ISVC}-predictor"), "stable Deployment")
    try:
        yield KServeTarget(ISVC, NAMESPACE)
    finally:
        helm("uninstall", "churnops", "-n", NAMESPACE, "--wait", "--timeout", "3m", check=False)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def servers(mlflow, versions, tmp_path_factory):
    url, _ = mlflow
    ports = {"stable": processes.free_port(), "canary": processes.free_port()}
    logs = tmp_path_factory.mktemp("live-logs")
    targets = {"churnops/churn-predictor": [f"127.0.0.1:{p}" for p in ports.values()]}
    with (
        processes.start_prometheus(
            targets=targets,
            workdir=tmp_path_factory.mktemp("prometheus-live"),
            rule_files=sorted(REPO.glob("monitoring/prometheus/*.rules.yaml")),
            scrape_interval="1s",
        ) as prom,
        start_model_server(
            f"models:/{MODEL}/{versions['stable']}", url, port=ports["stable"],
            log_path=logs / "stable.log",
        ) as stable,
    ):  # fmt: skip
        yield {"prometheus": prom.url, "stable": stable.url, "ports": ports, "logs": logs}


def replicas(name: str) -> int | None:
    d = get("deploy", name)
    return None if d is None else d["spec"]["replicas"]


def canary_share_reconciled(percent: int) -> bool:
    """KServe writes canaryStatuses after it has reconciled the canary Deployments in the same
    pass. (Not status.observedGeneration: Standard mode copies it from the predictor
    Deployment, so it need not ever equal the InferenceService's generation.)"""
    status = get("inferenceservice", ISVC).get("status") or {}
    return [c.get("trafficPercent") for c in status.get("canaryStatuses") or []] == [percent]


def warm_up(url: str, n: int = 30) -> None:
    """Predictions before the canary takes traffic, as the stable server has had: the first
    calls of a fresh server are slower, and on a loaded machine that alone put the canary's
    p99 above the stable one's plus the slack (a rollback of a healthy version). They end
    before the first analysis window (REHEARSAL.interval_seconds) starts."""
    with requests.Session() as session:
        for record in sample_records()[:n]:
            session.post(f"{url}/v1/models/churn:predict", json={"instances": [record]}, timeout=5)
    time.sleep(2)  # Prometheus scrapes every second: the counters include the warm-up


def run_canary(kube, servers, mlflow, versions, version_key: str, *, chaos=None):
    url, _ = mlflow
    client = MlflowClient(url, url)
    client.set_registered_model_alias(MODEL, "champion", versions["stable"])
    version = versions[version_key]
    seen: list[tuple[int, int | None, list]] = []
    target = LiveTarget(kube, servers["stable"], f"http://127.0.0.1:{servers['ports']['canary']}")
    name = f"{ISVC}-v{version}-predictor"

    original = target.set_canary_percent

    def observed(percent: int) -> None:
        original(percent)
        # What KServe derived from this step, once it has reconciled it (the status reports
        # this share; until then the Deployment still has the previous step's replicas): the
        # canary Deployment's fixed replicas.
        eventually(lambda: canary_share_reconciled(percent), f"KServe reconciled {percent}%")
        seen.append((percent, eventually(lambda: replicas(name), f"{name} at {percent}%"), []))

    target.set_canary_percent = observed  # type: ignore[method-assign]
    with start_model_server(
        f"models:/{MODEL}/{version}", url, port=servers["ports"]["canary"],
        log_path=servers["logs"] / f"canary-{version_key}.log", env=chaos or {},
    ):  # fmt: skip
        warm_up(target.canary_url)
        with Traffic(target, sample_records()):
            result = canary(
                target, model_name=MODEL, version=version,
                prometheus_url=servers["prometheus"], config=REHEARSAL,
            )  # fmt: skip
    return result, target, seen, name


def test_canary_rolls_back_on_the_live_inferenceservice(kube, servers, mlflow, versions):
    result, target, _, name = run_canary(
        kube, servers, mlflow, versions, "healthy", chaos={"CHURNOPS_CHAOS_ERROR_RATIO": "0.5"}
    )
    assert result["outcome"] == "rolled_back", result["decisions"]
    assert "error ratio" in result["decisions"][-1]["reason"]
    assert target.calls[0] == "start 25" and target.calls[-1] == "rollback"
    isvc = get("inferenceservice", ISVC)
    assert not isvc["spec"].get("canary")
    assert isvc["spec"]["predictor"].get("name") in (None, "")
    eventually(lambda: replicas(name) is None, f"canary Deployment {name} removed")
    assert get("deploy", f"{ISVC}-predictor") is not None


def test_canary_is_promoted_on_the_live_inferenceservice(kube, servers, mlflow, versions):
    # While the canary runs: its own Deployment with ceil(stable replicas * share) pods, the
    # stable one reduced by as many, and the share in the InferenceService's status.
    kube.start_canary(f"models:/{MODEL}/{versions['healthy']}", 50)
    name = f"{ISVC}-v{versions['healthy']}-predictor"
    assert eventually(lambda: replicas(name), "canary Deployment at 50%") == math.ceil(2 * 50 / 100)
    status = eventually(
        lambda: (get("inferenceservice", ISVC)["status"].get("canaryStatuses") or [None])[0],
        "canaryStatuses",
    )
    assert (status["name"], status["trafficPercent"]) == (f"v{versions['healthy']}", 50)
    kube.rollback()
    eventually(lambda: replicas(name) is None, "canary removed before the rollout")

    result, target, seen, name = run_canary(kube, servers, mlflow, versions, "healthy")
    assert result["outcome"] == "promoted", result["decisions"]
    assert target.calls[0] == "start 25" and target.calls[-1] == "promote"
    assert [(p, r) for p, r, _ in seen] == [(p, math.ceil(2 * p / 100)) for p, _, _ in seen]
    isvc = get("inferenceservice", ISVC)
    # KServe's promotion: the stable predictor has the canary's name and model, no canary left.
    assert isvc["spec"]["predictor"]["name"] == f"v{versions['healthy']}"
    assert not isvc["spec"].get("canary")
    assert kube.state().stable_model_uri == f"models:/{MODEL}/{versions['healthy']}"
    eventually(lambda: replicas(name) == 2, f"{name} is the stable Deployment (2 replicas)")
    aliases = MlflowClient(mlflow[0], mlflow[0]).get_registered_model(MODEL).aliases
    assert str(aliases["champion"]) == versions["healthy"]
