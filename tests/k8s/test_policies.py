"""Security and operability policy of everything the chart renders, written as tests.

Restricted Pod Security (runAsNonRoot, no privilege escalation, all capabilities dropped,
seccomp RuntimeDefault) plus a read-only root filesystem, probes on long-running containers,
requests and limits everywhere, pinned images, standard labels, no credentials in values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import CHART, SCENARIOS, VARIANTS, Render, helm_template, load_objects, object_id

ALL_RENDERS = (*SCENARIOS, *VARIANTS)
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet", "InferenceService"}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def pod_specs(o: dict[str, Any]) -> Iterator[dict[str, Any]]:
    kind = o["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        yield o["spec"]["template"]["spec"]
    elif kind == "CronJob":
        yield o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in o["spec"]:
                yield o["spec"][component]


def containers(o: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for spec in pod_specs(o):
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            yield spec, c


def workloads(r: Render) -> list[dict[str, Any]]:
    return [o for o in r.objects if any(True for _ in pod_specs(o))]


@pytest.fixture(params=ALL_RENDERS)
def render(request: pytest.FixtureRequest, renders: dict[str, Render]) -> Render:
    return renders[request.param]


def test_every_pod_runs_restricted(render: Render) -> None:
    problems = []
    for o in workloads(render):
        for spec in pod_specs(o):
            psc = spec.get("securityContext", {})
            if psc.get("runAsNonRoot") is not True:
                problems.append(f"{object_id(o)}: pod runAsNonRoot")
            if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
                problems.append(f"{object_id(o)}: pod seccompProfile RuntimeDefault")
            for field in ("hostNetwork", "hostPID", "hostIPC"):
                if spec.get(field):
                    problems.append(f"{object_id(o)}: {field}")
            for v in spec.get("volumes", []):
                if "hostPath" in v:
                    problems.append(f"{object_id(o)}: hostPath volume {v['name']}")
        for spec, c in containers(o):
            sc = c.get("securityContext", {})
            where = f"{object_id(o)} container {c['name']}"
            uid = sc.get("runAsUser", spec.get("securityContext", {}).get("runAsUser"))
            if not isinstance(uid, int) or uid == 0:
                problems.append(f"{where}: numeric non-root runAsUser")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation must be false")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get(
                "add"
            ):
                problems.append(f"{where}: capabilities must drop ALL and add none")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: readOnlyRootFilesystem")
            if sc.get("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot")
            if sc.get("seccompProfile", {}).get("type") not in (None, "RuntimeDefault"):
                problems.append(f"{where}: seccompProfile")
    assert not problems, "\n".join(problems)


def test_read_only_root_has_a_writable_tmp(render: Render) -> None:
    for o in workloads(render):
        for spec, c in containers(o):
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{object_id(o)} {c['name']}: no writable /tmp"
            vol = next(v for v in spec["volumes"] if v["name"] == mounts["/tmp"])
            assert "emptyDir" in vol


def test_requests_and_limits_everywhere(render: Render) -> None:
    for o in workloads(render):
        for _, c in containers(o):
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    assert res.get(part, {}).get(r), f"{object_id(o)} {c['name']}: {part}.{r}"


def test_long_running_containers_have_probes(render: Render) -> None:
    for o in workloads(render):
        if o["kind"] not in LONG_RUNNING:
            continue
        for spec, c in containers(o):
            if c in spec.get("initContainers", []):
                continue  # run to completion before the pod starts; Kubernetes forbids probes
            assert "readinessProbe" in c, f"{object_id(o)} {c['name']}: readinessProbe"
            assert "livenessProbe" in c, f"{object_id(o)} {c['name']}: livenessProbe"


def test_images_are_pinned(render: Render) -> None:
    for o in workloads(render):
        for _, c in containers(o):
            image = c["image"]
            name, _, tag = image.rpartition(":")
            assert name and "/" not in tag, f"{object_id(o)}: untagged image {image}"
            assert tag != "latest", f"{object_id(o)}: latest tag {image}"


def test_churnops_images_use_the_app_version(renders: dict[str, Render]) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    images = {c["image"] for o in renders["kind"].objects for _, c in containers(o)}
    assert f"churnops/components:{app_version}" in images
    assert f"churnops/serving:{app_version}" in images
    cloud = {c["image"] for o in renders["cloud"].objects for _, c in containers(o)}
    assert f"registry.example.com/churnops/churnops/serving:{app_version}" in cloud


def test_only_the_rollout_job_gets_an_api_token(render: Render) -> None:
    for o in workloads(render):
        for spec in pod_specs(o):
            assert spec.get("automountServiceAccountToken") is False, (
                f"{object_id(o)} automounts a token"
            )
            projected = [
                v
                for v in spec.get("volumes", [])
                if "projected" in v
                and any("serviceAccountToken" in s for s in v["projected"]["sources"])
            ]
            is_rollout = o["metadata"]["labels"].get("app.kubernetes.io/component") == "rollout"
            assert bool(projected) == is_rollout, (
                f"{object_id(o)}: API token only for the rollout Job"
            )


def test_standard_labels_on_every_object(render: Render) -> None:
    for o in render.objects:
        labels = o["metadata"].get("labels", {})
        missing = [k for k in STANDARD_LABELS if k not in labels]
        assert not missing, f"{object_id(o)}: missing {missing}"
        assert labels["app.kubernetes.io/part-of"] == "churnops"


def test_every_namespaced_object_names_its_namespace(render: Render) -> None:
    for o in render.objects:
        assert o["metadata"].get("namespace"), f"{object_id(o)} has no namespace"


def test_pod_disruption_budgets_select_real_pods(render: Render) -> None:
    pod_labels = []
    for o in workloads(render):
        if o["kind"] == "InferenceService":
            pod_labels.append({"serving.kserve.io/inferenceservice": o["metadata"]["name"]})
        elif o["kind"] == "CronJob":
            pod_labels.append(o["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"])
        else:
            pod_labels.append(o["spec"]["template"]["metadata"]["labels"])
    for pdb in render.of_kind("PodDisruptionBudget"):
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert any(sel.items() <= labels.items() for labels in pod_labels), object_id(pdb)


def test_network_policies_default_deny_then_allow(render: Render) -> None:
    nps = render.of_kind("NetworkPolicy")
    deny = [
        n
        for n in nps
        if n["spec"]["podSelector"] == {}
        and not n["spec"].get("ingress")
        and not n["spec"].get("egress")
    ]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    # Each long-running workload has a policy that admits its traffic.
    selected = [n["spec"]["podSelector"].get("matchLabels", {}) for n in nps]
    for o in workloads(render):
        if o["kind"] in ("Deployment", "StatefulSet"):
            labels = o["spec"]["template"]["metadata"]["labels"]
            assert any(s and s.items() <= labels.items() for s in selected), object_id(o)


SECRET_KEY = re.compile(r"(password|passwd|secret_?key|token|access_?key|private_?key|dsn)$", re.I)


@pytest.mark.parametrize(
    "values_file",
    sorted([CHART / "values.yaml", *(CHART / "ci").glob("*.yaml")]),
    ids=lambda p: p.name,
)
def test_no_plaintext_secrets_in_values(values_file: Any) -> None:
    def walk(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                p = f"{path}.{k}"
                if SECRET_KEY.search(str(k)) and isinstance(v, str | int) and v not in ("", None):
                    yield p
                yield from walk(v, p)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{path}[{i}]")
        elif isinstance(node, str) and re.search(r"://[^/\s:@]+:[^/\s@]+@", node):
            yield f"{path} (credentials in a URI)"

    found = list(walk(yaml.safe_load(values_file.read_text()), ""))
    assert not found, f"{values_file.name}: plaintext credentials at {found}"


def test_generated_postgres_password_stays_out_of_values_and_env(
    renders: dict[str, Render],
) -> None:
    sts = renders["kind"].one("StatefulSet")
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "POSTGRES_PASSWORD" not in env and "POSTGRES_PASSWORD_FILE" in env
    secret = renders["kind"].one("Secret", "churnops-postgresql")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def _selects(policy: dict, labels: dict) -> bool:
    want = policy["spec"]["podSelector"].get("matchLabels", {})
    return bool(want) and want.items() <= labels.items()


MLFLOW_LABELS = {"app.kubernetes.io/name": "churnops", "app.kubernetes.io/component": "mlflow"}
PREDICTOR_LABELS = {"serving.kserve.io/inferenceservice": "churn"}


def test_no_network_policy_admits_a_whole_namespace_to_mlflow_or_the_predictor(
    render: Render,
) -> None:
    """Every peer allowed into MLflow or the predictor names its pods: no bare
    namespaceSelector (all of kubeflow, all of monitoring) and no ``podSelector: {}`` (every
    pod of the release namespace)."""
    nps = render.of_kind("NetworkPolicy")
    guarded = [
        n
        for n in nps
        if n["spec"]["podSelector"]
        and (
            _selects(n, {**MLFLOW_LABELS, "app.kubernetes.io/instance": "churnops"})
            or _selects(n, PREDICTOR_LABELS)
        )
    ]
    assert guarded, "no policy guards MLflow or the predictor"
    for n in guarded:
        for rule in n["spec"].get("ingress", []):
            assert rule.get("from"), f"{n['metadata']['name']}: a rule admits every source"
            assert rule.get("ports"), f"{n['metadata']['name']}: a rule admits every port"
            for peer in rule["from"]:
                pods = peer.get("podSelector")
                assert pods is not None and pods.get("matchLabels"), (
                    f"{render.name}/{n['metadata']['name']}: peer {peer} admits a whole namespace"
                )
                assert "ipBlock" not in peer


def test_monitoring_reaches_only_metrics_ports(render: Render) -> None:
    metrics_ports = {8080, 9091, 5000, 9096}  # model server, queue-proxy, MLflow, alert receiver
    for n in render.of_kind("NetworkPolicy"):
        for rule in n["spec"].get("ingress", []):
            monitoring = [
                p
                for p in rule.get("from", [])
                if p.get("namespaceSelector", {})
                .get("matchLabels", {})
                .get("kubernetes.io/metadata.name")
                == "monitoring"
            ]
            if not monitoring:
                continue
            ports = {p["port"] for p in rule["ports"]}
            if all(
                p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                == "alertmanager"
                for p in monitoring
            ):
                # Alertmanager (and only it) posts alerts to the receiver's webhook port.
                assert n["metadata"]["name"] == "churnops-alert-receiver", n["metadata"]["name"]
                assert ports == {9095}, ports
                continue
            assert ports <= metrics_ports, (n["metadata"]["name"], ports)
            if _selects(n, PREDICTOR_LABELS):
                assert 8012 not in ports
    mlflow_np = next(
        n for n in render.of_kind("NetworkPolicy") if n["metadata"]["name"] == "churnops-mlflow"
    )
    mlflow_metrics = render.name == "kind+rollout"  # the variant with mlflow.metrics.enabled
    scrapes = [
        p
        for rule in mlflow_np["spec"]["ingress"]
        for p in rule["from"]
        if p.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "monitoring"
    ]
    assert bool(scrapes) == mlflow_metrics, render.name


def test_predictor_callers_are_listed_once(render: Render) -> None:
    """kind used to list kourier-system twice (as Knative namespace and as ingress)."""
    for n in render.of_kind("NetworkPolicy"):
        peers = [
            yaml.safe_dump(p, sort_keys=True)
            for rule in n["spec"].get("ingress", [])
            for p in rule.get("from", [])
        ]
        assert len(peers) == len(set(peers)), n["metadata"]["name"]


def test_rollout_egress_to_the_api_server_narrows_to_given_cidrs() -> None:
    text = helm_template(
        [CHART / "ci" / "kind-values.yaml"],
        ["--set", "networkPolicy.apiServerCIDRs={172.18.0.2/32}"],
    )
    np = next(
        o
        for o in load_objects(text)
        if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "churnops-rollout"
    )
    api = next(r for r in np["spec"]["egress"] if {p["port"] for p in r["ports"]} == {443, 6443})
    assert api["to"] == [{"ipBlock": {"cidr": "172.18.0.2/32"}}]
