"""What the chart promises about serving, monitoring, pipelines and RBAC."""

from __future__ import annotations

from base64 import b64decode
from typing import Any

import pytest
from conftest import CHART, NAMESPACE, Render, helm_template, load_objects


def env_of(isvc: dict[str, Any]) -> dict[str, Any]:
    c = isvc["spec"]["predictor"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


def test_serverless_inferenceservice(renders: dict[str, Render]) -> None:
    isvc = renders["kind"].one("InferenceService", "churn")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert "serving.kserve.io/autoscalerClass" not in isvc["metadata"]["annotations"]
    p = isvc["spec"]["predictor"]
    assert (p["minReplicas"], p["maxReplicas"], p["scaleMetric"]) == (1, 3, "concurrency")
    assert p["scaleTarget"] == 8 and "containerConcurrency" in p
    # the canary share belongs to `churnops rollout`; the chart never pins it
    assert "canaryTrafficPercent" not in p
    c = p["containers"][0]
    assert c["name"] == "kserve-container"
    assert c["command"] == ["churnops", "serve", "--http-port", "8080"]
    assert c["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    env = env_of(isvc)
    assert (
        env["MLFLOW_TRACKING_URI"] == f"http://churnops-mlflow.{NAMESPACE}.svc.cluster.local:5000"
    )
    assert env["CHURNOPS_MODEL_URI"] == "models:/churn@champion"
    # Serverless: revisions are pinned; a stable revision following the alias would jump to
    # the canary's version before the analysis judged it.
    assert env["CHURNOPS_RELOAD_INTERVAL"] == "0" and env["CHURNOPS_MAX_BATCH_ROWS"] == "5000"
    assert "STORAGE_URI" not in env


def test_standard_mode_inferenceservice(renders: dict[str, Render]) -> None:
    r = renders["standard-mode"]
    isvc = r.one("InferenceService", "churn")
    ann = isvc["metadata"]["annotations"]
    assert ann["serving.kserve.io/deploymentMode"] == "Standard"
    assert ann["serving.kserve.io/autoscalerClass"] == "hpa"
    p = isvc["spec"]["predictor"]
    assert (p["scaleMetric"], p["scaleTarget"], p["minReplicas"], p["maxReplicas"]) == (
        "cpu",
        70,
        2,
        6,
    )
    assert "containerConcurrency" not in p and "canaryTrafficPercent" not in p
    assert env_of(isvc)["CHURNOPS_RELOAD_INTERVAL"] == "60", (
        "without canaries, alias polling rolls out"
    )
    pdb = r.one("PodDisruptionBudget", "churnops-predictor")
    assert pdb["spec"]["selector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": "churn"}


def test_storage_uri_switches_to_the_model_directory() -> None:
    from conftest import load_objects

    objs = load_objects(
        helm_template(
            [CHART / "ci" / "kind-values.yaml"],
            ["--set", "predictor.storageUri=s3://models/churn/7"],
        )
    )
    isvc = next(o for o in objs if o["kind"] == "InferenceService")
    env = env_of(isvc)
    assert env["STORAGE_URI"] == "s3://models/churn/7"
    assert env["CHURNOPS_MODEL_URI"] == "/mnt/models"


@pytest.mark.parametrize(
    "bad",
    [
        [
            "--set",
            "predictor.deploymentMode=Standard",
            "--set",
            "predictor.scaleMetric=concurrency",
        ],
        ["--set", "images.serving.tag=latest"],
        ["--set", "predictor.deploymentMode=Raw"],
        ["--set", "mlflow.replica=2"],
        ["--set", "postgresql.enabled=false"],
    ],
)
def test_invalid_values_are_refused(bad: list[str]) -> None:
    import subprocess

    from conftest import tool

    proc = subprocess.run(
        [str(tool("helm")), "template", "x", str(CHART), *bad], capture_output=True, text=True
    )
    assert proc.returncode != 0, f"helm accepted {bad}"


def test_pipeline_runner_role_is_least_privilege(renders: dict[str, Render]) -> None:
    for name, r in renders.items():
        assert not r.of_kind("ClusterRole") and not r.of_kind("ClusterRoleBinding"), name
        (role,) = r.of_kind("Role")
        assert role["metadata"]["namespace"] == NAMESPACE
        assert role["rules"] == [
            {
                "apiGroups": ["serving.kserve.io"],
                "resources": ["inferenceservices"],
                "resourceNames": ["churn"],
                "verbs": ["get", "patch"],
            }
        ]
        (binding,) = r.of_kind("RoleBinding")
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        subjects = {(s["namespace"], s["name"]) for s in binding["subjects"]}
        # churnops' own pipeline account and the rollout Job's; never KFP's shared runner,
        # which every pipeline of the cluster runs as.
        assert subjects == {
            (NAMESPACE, "churnops-pipeline-runner"),
            ("kubeflow", "churnops-pipeline-runner"),
        }, name
        assert not any(s["name"] == "pipeline-runner" for s in binding["subjects"]), name


def test_rollout_job_runs_as_the_pipeline_runner(renders: dict[str, Render]) -> None:
    job = renders["kind+rollout"].one("Job", "churnops-rollout-v3")
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "churnops-pipeline-runner"
    c = spec["containers"][0]
    assert c["command"] == ["churnops", "rollout", "run", "--model-name", "churn", "--version", "3"]
    assert not renders["kind"].of_kind("Job") or all(
        j["metadata"]["labels"]["app.kubernetes.io/component"] != "rollout"
        for j in renders["kind"].of_kind("Job")
    )


def test_pipelines_get_mlflow_endpoint_and_credentials(renders: dict[str, Render]) -> None:
    cm = renders["kind"].one("ConfigMap", "churnops-mlflow")
    assert cm["metadata"]["namespace"] == "kubeflow"
    assert (
        cm["data"]["MLFLOW_TRACKING_URI"]
        == "http://churnops-mlflow.churnops.svc.cluster.local:5000"
    )
    for name in ("kind", "cloud"):
        secret = renders[name].one("Secret", "churnops-mlflow-auth")
        assert secret["metadata"]["namespace"] == "kubeflow"
        assert set(secret["data"]) == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
        # MLflow auth is on: the pipeline identity's own, non-empty credentials
        assert b64decode(secret["data"]["MLFLOW_TRACKING_USERNAME"]) == b"churnops-pipeline"
        assert len(b64decode(secret["data"]["MLFLOW_TRACKING_PASSWORD"])) >= 32


def test_mlflow_server_contract(renders: dict[str, Render]) -> None:
    dep = renders["kind"].one("Deployment", "churnops-mlflow")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["mlflow", "server"]
    args = c["args"]
    assert "--host=0.0.0.0" in args and "--port=5000" in args and "--serve-artifacts" in args
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in args
    assert "--artifacts-destination=/mlflow/artifacts" in args
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert {
        "localhost",
        "churnops-mlflow",
        "churnops-mlflow.churnops.svc.cluster.local:5000",
    } <= set(hosts)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["path"] == "/health"
    cloud = renders["cloud"].one("Deployment", "churnops-mlflow")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert "--app-name=basic-auth" in cloud["args"]
    assert "--artifacts-destination=s3://churnops-mlflow-artifacts/mlflow" in cloud["args"]
    assert "mlflow.churnops.example.com" in next(
        a for a in cloud["args"] if a.startswith("--allowed-hosts=")
    )
    assert not renders["cloud"].of_kind("StatefulSet")


def test_migrations_run_before_upgrades(renders: dict[str, Render]) -> None:
    job = renders["kind"].one("Job", "churnops-mlflow-db-upgrade")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-upgrade"
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"] == ["mlflow", "db", "upgrade", "$(MLFLOW_BACKEND_STORE_URI)"]


def test_monitoring_objects_carry_the_release_label(renders: dict[str, Render]) -> None:
    r = renders["kind+rollout"]
    pms = r.of_kind("PodMonitor")
    assert {p["metadata"]["name"] for p in pms} == {
        "churnops-predictor",
        "churnops-mlflow",
        "churnops-alert-receiver",
    }
    for obj in [*pms, *r.of_kind("PrometheusRule")]:
        assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    predictor = r.one("PodMonitor", "churnops-predictor")
    relabel = predictor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_serving_knative_dev_revision"]
    assert relabel["targetLabel"] == "revision"
    dashboards = [
        c for c in r.of_kind("ConfigMap") if c["metadata"]["labels"].get("grafana_dashboard") == "1"
    ]
    for d in dashboards:
        assert d["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_mlflow_authentication_is_on_by_default() -> None:
    """The chart's own defaults (no scenario file): basic-auth, generated admin, read-only
    default, one identity each for predictor, rollout and pipeline steps."""
    text = helm_template(
        [CHART / "values.yaml"], ["--set", "rollout.enabled=true,rollout.version=4"]
    )
    r = Render("default", text, load_objects(text))
    dep = r.one("Deployment", "churnops-mlflow")
    pod = dep["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert "--app-name=basic-auth" in server["args"]
    env = _env(server)
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"] == "/etc/mlflow/auth/basic_auth.ini"
    for key in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "churnops-mlflow-identities"
    (init,) = pod["initContainers"]
    assert _env(init)["DEFAULT_PERMISSION"]["value"] == "READ"
    assert "basic_auth.ini" in init["command"][-1]

    ids = r.one("Secret", "churnops-mlflow-identities")
    assert ids["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    users = {k: b64decode(v).decode() for k, v in ids["data"].items() if k.endswith("-username")}
    assert users == {
        "admin-username": "admin",
        "predictor-username": "churnops-predictor",
        "rollout-username": "churnops-rollout",
        "pipeline-username": "churnops-pipeline",
    }
    passwords = {b64decode(ids["data"][k]) for k in ("admin", "predictor", "rollout", "pipeline")}
    assert len(passwords) == 4 and all(len(p) >= 32 for p in passwords)

    def creds(container: dict) -> str:
        e = _env(container)
        secret = e["MLFLOW_TRACKING_USERNAME"]["valueFrom"]["secretKeyRef"]["name"]
        assert e["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == secret
        return secret

    isvc = r.one("InferenceService")
    assert creds(isvc["spec"]["predictor"]["containers"][0]) == "churnops-mlflow-predictor"
    rollout = r.one("Job", "churnops-rollout-v4")
    assert creds(rollout["spec"]["template"]["spec"]["containers"][0]) == "churnops-mlflow-rollout"
    for role in ("predictor", "rollout"):
        secret = r.one("Secret", f"churnops-mlflow-{role}")
        assert b64decode(secret["data"]["MLFLOW_TRACKING_USERNAME"]) == f"churnops-{role}".encode()
    pipeline = r.one("Secret", "churnops-mlflow-auth")
    assert b64decode(pipeline["data"]["MLFLOW_TRACKING_USERNAME"]) == b"churnops-pipeline"

    users_job = r.one("Job", "churnops-mlflow-users")
    assert users_job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    script = users_job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    for grant in ('("pipeline", "registered_model", model, "MANAGE")',
                  '("rollout", "registered_model", model, "EDIT")'):  # fmt: skip
        assert grant in script


def test_every_scenario_keeps_mlflow_authentication_on(renders: dict[str, Render]) -> None:
    for name, r in renders.items():
        server = r.one("Deployment", "churnops-mlflow")["spec"]["template"]["spec"]
        assert "--app-name=basic-auth" in server["containers"][0]["args"], name
