"""The drift alert receiver and the schedule Job as the chart renders them.

NetworkPolicies are evaluated as a CNI would (every policy selecting the pod, rules
OR-ed, peers matched by namespace and pod labels), so "only Alertmanager reaches the
webhook" is checked against the callers that exist in a kube-prometheus-stack cluster.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from conftest import CHART, NAMESPACE, SCENARIOS, Render, helm_template, load_objects, tool

RECEIVER = "churnops-alert-receiver"
AM_LABELS = {
    "app.kubernetes.io/name": "alertmanager",
    "alertmanager": "kube-prometheus-stack-alertmanager",
}
PROM_LABELS = {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus-stack"}


def _labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "extend the evaluator for matchExpressions"
    return selector.get("matchLabels", {}).items() <= labels.items()


def admitted(
    render: Render, pod_labels: dict[str, str], *, namespace: str, labels: dict[str, str], port: int
) -> bool:
    """Would a pod (``namespace``, ``labels``) reach ``port`` of a pod with ``pod_labels`` in
    the release namespace, under the rendered NetworkPolicies?"""
    policies = [
        p
        for p in render.of_kind("NetworkPolicy")
        if "Ingress" in p["spec"]["policyTypes"]
        and _labels_match(p["spec"]["podSelector"], pod_labels)
    ]
    assert policies, "no policy selects the pod: everything would be admitted"
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            if ports and port not in ports:
                continue
            for peer in rule.get("from", []):
                if "ipBlock" in peer:
                    continue
                ns_ok = (
                    _labels_match(peer["namespaceSelector"], ns_labels)
                    if "namespaceSelector" in peer
                    else namespace == NAMESPACE
                )
                pod_ok = _labels_match(peer.get("podSelector", {}), labels)
                if ns_ok and pod_ok:
                    return True
    return False


def _pod_labels(render: Render) -> dict[str, str]:
    return render.one("Deployment", RECEIVER)["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_receiver_renders_without_api_rights(renders: dict[str, Render], scenario: str) -> None:
    r = renders[scenario]
    deploy = r.one("Deployment", RECEIVER)
    pod = deploy["spec"]["template"]["spec"]
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"]["type"] == "Recreate"
    assert pod["serviceAccountName"] == RECEIVER and pod["automountServiceAccountToken"] is False
    assert r.one("ServiceAccount", RECEIVER)["automountServiceAccountToken"] is False
    bound = [
        s
        for b in r.of_kind("RoleBinding") + r.of_kind("ClusterRoleBinding")
        for s in b.get("subjects", [])
        if s.get("name") == RECEIVER
    ]
    assert bound == []
    (container,) = pod["containers"]
    assert container["command"] == ["churnops", "alerts", "serve"]
    env = {e["name"]: e for e in container["env"]}
    assert env["KFP_HOST"]["value"] == "http://ml-pipeline.kubeflow.svc:8888"
    assert env["CHURNOPS_DATA_URI"]["value"].endswith("Telco-Customer-Churn.csv")
    assert env["CHURNOPS_ALERTS_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": RECEIVER,
        "key": "webhook-token",
    }
    assert "webhook-token" in r.one("Secret", RECEIVER)["data"]
    service = r.one("Service", RECEIVER)
    assert [p["port"] for p in service["spec"]["ports"]] == [9095]
    assert service["spec"]["selector"].items() <= _pod_labels(r).items()
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_only_alertmanager_reaches_the_webhook(renders: dict[str, Render], scenario: str) -> None:
    r = renders[scenario]
    pod = _pod_labels(r)

    def can(namespace: str, labels: dict[str, str], port: int = 9095) -> bool:
        return admitted(r, pod, namespace=namespace, labels=labels, port=port)

    assert can("monitoring", AM_LABELS)
    assert not can("monitoring", PROM_LABELS)
    assert not can("monitoring", {"app.kubernetes.io/name": "grafana"})
    assert not can("kubeflow", {"app": "ml-pipeline"})
    assert not can(NAMESPACE, {"app.kubernetes.io/component": "mlflow"})
    assert not can("attacker", AM_LABELS)  # Alertmanager's labels in another namespace
    # Prometheus scrapes /metrics, on its own port; Alertmanager cannot reach that one.
    assert can("monitoring", PROM_LABELS, 9096) and not can("monitoring", AM_LABELS, 9096)
    egress = r.one("NetworkPolicy", RECEIVER)["spec"]["egress"]
    assert egress[0]["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
    ]
    assert egress[0]["ports"] == [{"protocol": "TCP", "port": 8888}]


def test_values_move_the_selector_the_endpoint_and_the_secret() -> None:
    objects = load_objects(
        helm_template(
            [CHART / "ci" / "kind-values.yaml"],
            [
                "--set", "alertReceiver.alertmanager.namespace=observability",
                "--set", "alertReceiver.alertmanager.podLabels.app=am",
                "--set", "alertReceiver.existingSecret=my-receiver-secret",
                "--set", "pipelines.kfp.host=https://kubeflow.example.com",
                "--set", "pipelines.dataUri=s3://bucket/churn.parquet",
            ],
        )
    )  # fmt: skip
    r = Render("custom", "", objects)
    pod = _pod_labels(r)
    assert admitted(r, pod, namespace="observability", labels={**AM_LABELS, "app": "am"}, port=9095)
    assert not admitted(r, pod, namespace="monitoring", labels=AM_LABELS, port=9095)
    assert not [s for s in r.of_kind("Secret") if s["metadata"]["name"] == RECEIVER]
    env = {
        e["name"]: e
        for e in r.one("Deployment", RECEIVER)["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["CHURNOPS_ALERTS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "my-receiver-secret"
    assert env["CHURNOPS_DATA_URI"]["value"] == "s3://bucket/churn.parquet"
    assert r.one("NetworkPolicy", RECEIVER)["spec"]["egress"][0]["ports"][0]["port"] == 443


def test_alertmanager_config_routes_retrain_alerts_with_the_token() -> None:
    objects = load_objects(
        helm_template(
            [CHART / "ci" / "kind-values.yaml"],
            ["--set", "alertReceiver.alertmanagerConfig.enabled=true",
             "--set", "alertReceiver.alertmanagerConfig.labels.alertmanagerConfig=churnops"],
        )
    )  # fmt: skip
    (amc,) = [o for o in objects if o["kind"] == "AlertmanagerConfig"]
    assert amc["apiVersion"] == "monitoring.coreos.com/v1alpha1"
    assert amc["metadata"]["labels"]["alertmanagerConfig"] == "churnops"
    route = amc["spec"]["route"]
    assert route["matchers"] == [{"name": "action", "value": "retrain", "matchType": "="}]
    (receiver,) = amc["spec"]["receivers"]
    (hook,) = receiver["webhookConfigs"]
    assert hook["url"] == f"http://{RECEIVER}.{NAMESPACE}.svc:9095/alerts"
    assert hook["sendResolved"] is False
    assert hook["httpConfig"]["authorization"]["credentials"] == {
        "name": RECEIVER,
        "key": "webhook-token",
    }


def test_schedule_job_submits_a_recurring_run_after_install(renders: dict[str, Render]) -> None:
    r = renders["kind+rollout"]  # renders pipelines.schedule.enabled=true
    job = r.one("Job", "churnops-pipeline-schedule")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    script = pod["containers"][0]["args"][0]
    assert 'churnops pipeline submit --host "$KFP_HOST"' in script
    assert '--schedule "0 0 3 * * 1" --schedule-name "churn-training-weekly"' in script
    assert not [o for o in renders["kind"].of_kind("Job") if "schedule" in o["metadata"]["name"]]


def test_receiver_off_and_missing_data_uri() -> None:
    off = load_objects(
        helm_template([CHART / "ci" / "kind-values.yaml"], ["--set", "alertReceiver.enabled=false"])
    )
    assert not [o for o in off if RECEIVER in o["metadata"]["name"]]
    proc = subprocess.run(
        [tool("helm"), "template", "churnops", CHART, "--set", "pipelines.dataUri="],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "alertReceiver.enabled needs pipelines.dataUri" in proc.stderr
