"""Every caller of MLflow the chart renders gets through: it has credentials that exist, and
MLflow's NetworkPolicy admits what the caller's own egress policy sends to MLflow."""

from __future__ import annotations

import subprocess
from base64 import b64decode
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    SCENARIOS,
    VARIANTS,
    Render,
    helm_template,
    load_objects,
    object_id,
    tool,
)

ALL_RENDERS = (*SCENARIOS, *VARIANTS)
MLFLOW_PORT = 5000
MLFLOW_SELECTOR = {
    "app.kubernetes.io/name": "churnops",
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/component": "mlflow",
}


@pytest.fixture(params=ALL_RENDERS)
def render(request: pytest.FixtureRequest, renders: dict[str, Render]) -> Render:
    return renders[request.param]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def _user_given(name: str) -> set[str]:
    """Every string the render's values files and --set flags hold: the names of Secrets the
    user brings (existingSecret, credentialsSecret, ...)."""
    base, extra = VARIANTS.get(name, (name, []))
    found: set[str] = set()
    for f in (CHART / "values.yaml", CHART / "ci" / f"{base}-values.yaml"):
        found |= set(_strings(yaml.safe_load(f.read_text())))
    for flag in extra[1::2]:
        found.add(flag.partition("=")[2])
    return found


def _pod_templates(o: dict[str, Any]) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    """(pod labels, pod spec) of every pod the object creates."""
    kind = o["kind"]
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        t = o["spec"]["template"]
        yield t["metadata"].get("labels", {}), t["spec"]
    elif kind == "CronJob":
        t = o["spec"]["jobTemplate"]["spec"]["template"]
        yield t["metadata"].get("labels", {}), t["spec"]
    elif kind == "InferenceService":
        labels = {"serving.kserve.io/inferenceservice": o["metadata"]["name"]}
        for component in ("predictor", "transformer", "explainer"):
            if component in o["spec"]:
                yield labels, o["spec"][component]


def _secret_refs(o: dict[str, Any]) -> Iterator[tuple[str, str | None, str]]:
    """(Secret name, key or None, where) for every Secret the object reads."""
    for _, spec in _pod_templates(o):
        for c in spec.get("initContainers", []) + spec.get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref is not None:
                    yield ref.get("name", ""), ref["key"], f"{c['name']} env {e['name']}"
            for src in c.get("envFrom", []):
                if "secretRef" in src:
                    yield src["secretRef"].get("name", ""), None, f"{c['name']} envFrom"
    if o["kind"] == "PodMonitor":
        for i, ep in enumerate(o["spec"]["podMetricsEndpoints"]):
            for part, ref in ep.get("basicAuth", {}).items():
                yield ref.get("name", ""), ref["key"], f"endpoint {i} basicAuth.{part}"


def test_every_secret_a_pod_or_monitor_reads_exists(render: Render) -> None:
    """No empty Secret name, and a Secret the chart is meant to generate is in the render
    (same namespace, with the key): a dangling reference leaves a pod in
    CreateContainerConfigError or a scrape target at 401."""
    rendered = {
        (s["metadata"]["namespace"], s["metadata"]["name"]): s for s in render.of_kind("Secret")
    }
    given = _user_given(render.name)
    problems = []
    for o in render.objects:
        ns = o["metadata"].get("namespace")
        for name, key, where in _secret_refs(o):
            if not name:
                problems.append(f"{object_id(o)} {where}: empty Secret name")
            elif (ns, name) in rendered:
                data = rendered[(ns, name)].get("data", {}) | rendered[(ns, name)].get(
                    "stringData", {}
                )
                if key is not None and key not in data:
                    problems.append(f"{object_id(o)} {where}: Secret {name} has no key {key}")
            elif name not in given:
                problems.append(
                    f"{object_id(o)} {where}: Secret {name} is neither rendered nor given"
                )
    assert not problems, "\n".join(problems)


def test_batch_scoring_reads_the_model_as_the_read_only_predictor(
    renders: dict[str, Render],
) -> None:
    """`churnops score` only resolves an alias and downloads the model: the predictor's
    identity (READ by default, no grants) is all it needs."""
    r = renders["kind+batch-scoring"]
    cron = r.one("CronJob", f"{RELEASE}-batch-scoring")
    (c,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in c["env"]}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {
            "name": f"{RELEASE}-mlflow-predictor",
            "key": key,
        }
    secret = r.one("Secret", f"{RELEASE}-mlflow-predictor")
    assert b64decode(secret["data"]["MLFLOW_TRACKING_USERNAME"]) == b"churnops-predictor"
    script = r.one("Job", f"{RELEASE}-mlflow-users")["spec"]["template"]["spec"]["containers"][0]
    # the predictor identity is granted READ only (tests/integration/test_mlflow_identities.py
    # runs this script against a real MLflow)
    grants = [
        line
        for line in script["command"][-1].splitlines()
        if line.strip().startswith('("predictor", ')
    ]
    assert grants and all('"READ")' in line for line in grants), grants


def test_batch_scoring_without_the_chart_identities_is_refused() -> None:
    """With auth on but no tracking server of this release, no identity Secret is generated:
    the chart fails instead of rendering a reference to nothing."""
    proc = subprocess.run(
        [
            str(tool("helm")),
            "template",
            RELEASE,
            str(CHART),
            "-f",
            str(CHART / "ci" / "kind-values.yaml"),
            "--set",
            "mlflow.enabled=false,batchScoring.enabled=true,batchScoring.inputUri=a.csv,"
            "batchScoring.outputUri=b.csv",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "mlflow.auth.enabled needs mlflow.enabled" in proc.stderr, proc.stderr


def _admits(peer: dict[str, Any], labels: dict[str, str], ns: str, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        return False
    want_ns = peer.get("namespaceSelector")
    if want_ns is None:
        if ns != policy_ns:
            return False
    elif not want_ns.get("matchLabels", {}).items() <= {"kubernetes.io/metadata.name": ns}.items():
        return False
    return peer.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items()


def _port_in(rule: dict[str, Any], port: int) -> bool:
    ports = rule.get("ports")
    return not ports or any(p.get("port") == port for p in ports)


def _selected(policy: dict[str, Any], labels: dict[str, str], ns: str) -> bool:
    if policy["metadata"]["namespace"] != ns:
        return False
    return policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()


def test_every_pod_allowed_out_to_mlflow_is_let_in(render: Render) -> None:
    """For each pod template whose egress policy allows MLflow's pods on MLflow's port,
    MLflow's ingress policy admits that pod's labels on that port."""
    nps = render.of_kind("NetworkPolicy")
    render.one("Deployment", f"{RELEASE}-mlflow")
    mlflow_ns = NAMESPACE
    ingress_rules = [
        (p["metadata"]["namespace"], rule)
        for p in nps
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selected(p, MLFLOW_SELECTOR, mlflow_ns)
        for rule in p["spec"].get("ingress", [])
        if _port_in(rule, MLFLOW_PORT)
    ]
    callers = 0
    problems = []
    for o in render.objects:
        ns = o["metadata"].get("namespace", NAMESPACE)
        for labels, _ in _pod_templates(o):
            if MLFLOW_SELECTOR.items() <= labels.items():
                continue
            calls = any(
                _port_in(rule, MLFLOW_PORT)
                and any(
                    _admits(peer, MLFLOW_SELECTOR, mlflow_ns, p["metadata"]["namespace"])
                    for peer in rule.get("to", [])
                )
                for p in nps
                if _selected(p, labels, ns) and p["spec"]["podSelector"]
                for rule in p["spec"].get("egress", [])
            )
            if not calls:
                continue
            callers += 1
            if not any(
                _admits(peer, labels, ns, pns)
                for pns, rule in ingress_rules
                for peer in rule["from"]
            ):
                problems.append(f"{object_id(o)} ({labels.get('app.kubernetes.io/component')})")
    assert callers, f"{render.name}: no pod's egress reaches MLflow"
    assert not problems, "MLflow's ingress does not admit: " + ", ".join(problems)


def test_mlflow_admits_batch_scoring_only_when_enabled(renders: dict[str, Render]) -> None:
    def peers(r: Render) -> list[dict[str, Any]]:
        np = r.one("NetworkPolicy", f"{RELEASE}-mlflow")
        return [p for rule in np["spec"]["ingress"] for p in rule["from"]]

    batch = {"app.kubernetes.io/component": "batch-scoring"}
    on = [
        p
        for p in peers(renders["kind+batch-scoring"])
        if batch.items() <= p["podSelector"]["matchLabels"].items()
    ]
    assert len(on) == 1 and "namespaceSelector" not in on[0]
    assert not [
        p
        for p in peers(renders["kind"])
        if batch.items() <= p["podSelector"]["matchLabels"].items()
    ]


def test_mlflow_podmonitor_authenticates_as_the_predictor(renders: dict[str, Render]) -> None:
    """MLflow's basic auth covers /metrics (401 without credentials): the PodMonitor sends
    the read-only predictor identity, from a Secret in its own namespace (the operator reads
    it there)."""
    r = renders["kind+rollout"]  # mlflow.metrics.enabled, auth on
    pm = r.one("PodMonitor", f"{RELEASE}-mlflow")
    (ep,) = pm["spec"]["podMetricsEndpoints"]
    assert ep["basicAuth"] == {
        "username": {"name": f"{RELEASE}-mlflow-predictor", "key": "MLFLOW_TRACKING_USERNAME"},
        "password": {"name": f"{RELEASE}-mlflow-predictor", "key": "MLFLOW_TRACKING_PASSWORD"},
    }
    secret = r.one("Secret", f"{RELEASE}-mlflow-predictor")
    assert secret["metadata"]["namespace"] == pm["metadata"]["namespace"]

    text = helm_template(
        [CHART / "ci" / "kind-values.yaml"],
        ["--set", "mlflow.metrics.enabled=true,mlflow.auth.enabled=false"],
    )
    (off,) = [
        o
        for o in load_objects(text)
        if o["kind"] == "PodMonitor" and o["metadata"]["name"] == f"{RELEASE}-mlflow"
    ]
    assert "basicAuth" not in off["spec"]["podMetricsEndpoints"][0]
