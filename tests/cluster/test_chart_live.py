"""The chart and the overlays against a live API server: admission, KServe, RBAC.

What the offline checks (tests/k8s) cannot see: the API server's own validation and defaults,
PodSecurity admission (`warn`/`enforce` labels of the overlays), KServe's webhooks and its
controller turning the InferenceService into the objects it documents, and RBAC as the
authorizer decides it (SelfSubjectAccessReview with impersonation, i.e. `kubectl auth can-i --as`).
"""

from __future__ import annotations

import json

import pytest
import yaml
from _cluster_support import (
    CHART,
    NAMESPACE,
    eventually,
    get,
    helm,
    kubectl,
    scenarios,
    values_file,
    warnings_of,
)

RELEASE = "churnops"
ISVC = "churn"


def install(scenario: str, *extra: str) -> str:
    proc = helm(
        "upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "-f", str(values_file(scenario)), "--server-side=true",
        "--wait=legacy", "--wait-for-jobs", "--timeout", "5m", *extra,
    )  # fmt: skip
    return proc.stderr


def uninstall() -> None:
    helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "3m")


KEEP = "helm.sh/resource-policy"

# What `helm uninstall` leaves on purpose, and why: the
# generated credentials and the artifacts claim carry helm.sh/resource-policy=keep, so a
# reinstall finds the same passwords and data; the bundled PostgreSQL's data claim comes from
# the StatefulSet's volumeClaimTemplates, which Kubernetes retains when the StatefulSet is
# deleted (persistentVolumeClaimRetentionPolicy whenDeleted: Retain, the default).
EXPECTED_LEFTOVERS = {
    "Secret/churnops-mlflow-identities": "keep",
    "Secret/churnops-postgresql": "keep",
    "PersistentVolumeClaim/churnops-mlflow-artifacts": "keep",
    "PersistentVolumeClaim/data-churnops-postgresql-0": "StatefulSet claim, retained",
}


def release_objects() -> dict[str, str]:
    """Objects still labelled as the release's, each with why it is there: "keep" (the
    resource-policy annotation), "StatefulSet claim, retained", or "" (nothing keeps it)."""
    proc = kubectl(
        "get", "deploy,sts,svc,cm,secret,sa,role,rolebinding,networkpolicy,pdb,job,cronjob,pod,"
        "pvc,inferenceservice,podmonitor,servicemonitor,prometheusrule,ingress,hpa",
        "-A", "-l", f"app.kubernetes.io/instance={RELEASE}", "-o", "json",
    )  # fmt: skip
    out = {}
    for o in json.loads(proc.stdout)["items"]:
        meta = o["metadata"]
        why = ""
        if (meta.get("annotations") or {}).get(KEEP) == "keep":
            why = "keep"
        elif o["kind"] == "PersistentVolumeClaim" and meta["name"].startswith("data-"):
            why = "StatefulSet claim, retained"
        out[f"{o['kind']}/{meta['name']}"] = why
    return out


def leftovers_beyond_expected() -> dict[str, str]:
    return {k: v for k, v in release_objects().items() if EXPECTED_LEFTOVERS.get(k) != v}


def forget_kept() -> None:
    """Delete what a previous scenario kept, and the StatefulSet's claims: a fresh install."""
    kubectl("delete", "pvc,secret", "-n", NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}",
            "--wait", "--timeout=60s", check=False)  # fmt: skip
    kubectl("delete", "pvc", "-n", NAMESPACE, "--all", "--wait", "--timeout=60s", check=False)


@pytest.fixture(scope="module")
def overlays(cluster) -> dict[str, str]:
    """Both overlays applied for real (kind's needs the namespace Knative would have made)."""
    kubectl("create", "namespace", "knative-serving", check=False)
    out = {}
    for overlay in ("kind", "cloud", "local"):
        proc = kubectl(
            "apply", "--server-side", "--force-conflicts", "-k", f"manifests/overlays/{overlay}"
        )
        out[overlay] = proc.stderr
    return out


def test_overlays_apply_without_warnings(overlays: dict[str, str]) -> None:
    assert {k: warnings_of(v) for k, v in overlays.items()} == {k: [] for k in overlays}
    ns = get("namespace", NAMESPACE, namespace="")
    # the last applied (local) enforces restricted, as cloud does
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("scenario", scenarios())
def test_scenario_installs_and_uninstalls_cleanly(cluster, overlays, scenario: str) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-k", "manifests/overlays/local")
    forget_kept()
    stderr = install(scenario)
    try:
        assert warnings_of(stderr) == [], f"{scenario}: the API server warned"

        # Every pod the controllers made passed PodSecurity `restricted` (else the ReplicaSet
        # or StatefulSet would report FailedCreate instead of pods).
        def pods_created():
            bad = [
                e["message"]
                for e in get("events") or []
                if e.get("reason") == "FailedCreate" and RELEASE in e["involvedObject"]["name"]
            ]
            assert not bad, f"{scenario}: pods refused: {bad[:2]}"
            owners = [d for d in get("deploy") + get("sts") if d["spec"].get("replicas", 1) > 0]
            return all(o.get("status", {}).get("readyReplicas", 0) >= 1 for o in owners)

        eventually(pods_created, f"{scenario}: every Deployment/StatefulSet has a Ready pod")
        routes = alertmanager_webhooks()
        values = yaml.safe_load(values_file(scenario).read_text())
        if values.get("alertReceiver", {}).get("alertmanagerConfig", {}).get("enabled"):
            assert routes, f"{scenario}: no AlertmanagerConfig routes drift alerts to the receiver"
        for route in routes:
            eventually(
                lambda route=route: webhook_has_a_ready_endpoint(*route),
                f"{scenario}: AlertmanagerConfig webhook {route} reaches a Ready receiver pod",
            )
    finally:
        uninstall()
    # Nothing of the release is left but what it keeps on purpose (EXPECTED_LEFTOVERS): no
    # hook Job, no hook ServiceAccount, no object KServe derived from the InferenceService.
    eventually(
        lambda: not leftovers_beyond_expected(),
        f"{scenario}: release objects gone except {sorted(EXPECTED_LEFTOVERS)}",
        describe=leftovers_beyond_expected,
    )


def test_mlflow_artifacts_move_between_object_store_and_bundled_volume(cluster, overlays) -> None:
    """An upgrade that switches MLflow's artifact store flips its Deployment strategy
    (RollingUpdate for an object store, Recreate for the ReadWriteOnce volume), both ways;
    the API server refuses Recreate while a rollingUpdate nobody owns is left over."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", "manifests/overlays/local")
    forget_kept()
    s3 = ("--set", "mlflow.artifacts.destination=s3://churn-artifacts/mlflow")
    try:
        strategies = []
        for extra in (s3, (), s3):
            install("local", *extra)
            strategies.append(get("deploy", "churnops-mlflow")["spec"]["strategy"])
    finally:
        uninstall()
    assert [s["type"] for s in strategies] == ["RollingUpdate", "Recreate", "RollingUpdate"]
    assert "rollingUpdate" not in strategies[1]


def alertmanager_webhooks() -> list[tuple[str, str, int]]:
    """(service, namespace, port) of every webhook URL in the release's AlertmanagerConfigs,
    as the API server stored them (the prometheus-operator CRD's schema admitted them)."""
    out = []
    for amc in get("alertmanagerconfigs.monitoring.coreos.com"):
        for receiver in amc["spec"].get("receivers", []):
            for hook in receiver.get("webhookConfigs", []):
                host, _, rest = hook["url"].removeprefix("http://").partition(":")
                service, namespace = host.split(".")[:2]
                out.append((service, namespace, int(rest.split("/")[0])))
    return out


def webhook_has_a_ready_endpoint(service: str, namespace: str, port: int) -> bool:
    """The Service exists with that port and its EndpointSlices list a Ready pod on it: the
    address Alertmanager will post drift alerts to leads to the receiver."""
    svc = get("service", service, namespace=namespace)
    if svc is None or port not in [p["port"] for p in svc["spec"]["ports"]]:
        return False
    slices = get("endpointslices", namespace=namespace) or []
    return any(
        (e.get("conditions") or {}).get("ready")
        for es in slices
        if es["metadata"].get("labels", {}).get("kubernetes.io/service-name") == service
        for e in es.get("endpoints") or []
    )


@pytest.fixture(scope="module")
def local_release(cluster, overlays):
    kubectl("apply", "--server-side", "--force-conflicts", "-k", "manifests/overlays/local")
    forget_kept()
    install("local")
    yield
    uninstall()


def test_kserve_reconciles_standard_mode(local_release) -> None:
    """Standard mode: the Deployment, Service and HPA KServe documents, owned by the ISVC."""
    values = {"min": 2, "max": 4, "cpu": 70}  # ci/local-values.yaml
    deploy = eventually(lambda: get("deploy", f"{ISVC}-predictor"), "predictor Deployment")
    owner = deploy["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("InferenceService", ISVC)
    container = next(
        c
        for c in deploy["spec"]["template"]["spec"]["containers"]
        if c["name"] == "kserve-container"
    )
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    svc = eventually(lambda: get("svc", f"{ISVC}-predictor"), "predictor Service")
    assert (
        svc["spec"]["selector"]
        == deploy["spec"]["selector"]["matchLabels"] | svc["spec"]["selector"]
    )
    hpa = eventually(lambda: get("hpa", f"{ISVC}-predictor"), "predictor HPA")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        values["min"],
        values["max"],
    )
    metric = hpa["spec"]["metrics"][0]["resource"]
    assert (metric["name"], metric["target"]["averageUtilization"]) == ("cpu", values["cpu"])
    assert hpa["spec"]["scaleTargetRef"]["name"] == f"{ISVC}-predictor"
    # kwok reports the pods Ready, so KServe marks the InferenceService Ready.
    isvc = eventually(
        lambda: (
            (o := get("inferenceservice", ISVC))
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in o["status"].get("conditions", [])
            )
            and o
        ),
        "InferenceService Ready",
        timeout=120,
    )
    assert isvc["status"]["deploymentMode"] == "Standard"


INVALID = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {
        "name": "refused",
        "namespace": NAMESPACE,
        "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
    },
    "spec": {
        "predictor": {
            "minReplicas": 3,
            "maxReplicas": 1,
            "containers": [{"name": "kserve-container", "image": "churnops/serving:x"}],
        }
    },
}


def test_webhook_refuses_an_invalid_inferenceservice_with_the_reason(local_release) -> None:
    proc = kubectl("apply", "-f", "-", input=json.dumps(INVALID), check=False)
    assert proc.returncode != 0
    assert (
        'admission webhook "inferenceservice.kserve-webhook-server.validator" denied' in proc.stderr
    )
    assert "'MinReplicas' cannot be greater than MaxReplicas" in proc.stderr
    assert get("inferenceservice", "refused") is None


def test_webhook_refuses_a_standard_mode_canary_without_storage_uri(local_release) -> None:
    """KServe's rule the Standard-mode canary path is built around (adapter.py)."""
    patch = {"spec": {"canary": [{"predictor": {"name": "v2"}, "trafficPercent": 10}]}}
    proc = kubectl(
        "patch", "inferenceservice", ISVC, "-n", NAMESPACE, "--type", "merge",
        "-p", json.dumps(patch), check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "canary requires a stable predictor with a model" in proc.stderr


def test_webhook_defaults_the_inferenceservice(local_release) -> None:
    """KServe's defaulter, as the live server applies it: the legacy mode names are rewritten
    (RawDeployment -> Standard), so churnops reads either (adapter.STANDARD_MODES)."""
    legacy = json.loads(json.dumps(INVALID))
    legacy["metadata"].update(
        name="defaulted", annotations={"serving.kserve.io/deploymentMode": "RawDeployment"}
    )
    legacy["spec"]["predictor"].update(minReplicas=1, maxReplicas=2)
    proc = kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(legacy))
    defaulted = json.loads(proc.stdout)
    assert defaulted["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


def can_i(sa: str, verb: str, resource: str, namespace: str = NAMESPACE, name: str = "") -> bool:
    target = f"{resource}/{name}" if name else resource
    proc = kubectl(
        "auth", "can-i", verb, target, "-n", namespace, f"--as=system:serviceaccount:{sa}",
        check=False,
    )  # fmt: skip
    assert proc.stdout.strip() in ("yes", "no"), proc.stderr
    return proc.stdout.strip() == "yes"


def test_rbac_each_service_account_can_do_its_job_and_nothing_more(local_release) -> None:
    runner = f"{NAMESPACE}:churnops-pipeline-runner"
    isvc = "inferenceservices.serving.kserve.io"
    # The rollout Job and the KFP deploy step: read and patch the InferenceService.
    needs = {verb: can_i(runner, verb, isvc, name=ISVC) for verb in ("get", "patch")}
    assert needs == {"get": True, "patch": True}
    denied = {
        "delete isvc": can_i(runner, "delete", isvc, name=ISVC),
        "create isvc": can_i(runner, "create", isvc),
        "read secrets": can_i(runner, "get", "secrets"),
        "create pods": can_i(runner, "create", "pods"),
        "patch deployments": can_i(runner, "patch", "deployments.apps"),
        "patch isvc elsewhere": can_i(runner, "patch", isvc, namespace="default"),
        "escalate roles": can_i(runner, "create", "rolebindings.rbac.authorization.k8s.io"),
    }
    assert denied == dict.fromkeys(denied, False)
    # Every other service account of the release: no Kubernetes API rights at all.
    others = [
        sa["metadata"]["name"]
        for sa in get("serviceaccount")
        if sa["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == RELEASE
        and sa["metadata"]["name"] != "churnops-pipeline-runner"
    ]
    assert others, "the release has service accounts besides the pipeline runner"
    rights = {
        sa: [
            f"{verb} {res}"
            for verb, res in (("get", "secrets"), ("list", "pods"), ("get", isvc), ("patch", isvc))
            if can_i(f"{NAMESPACE}:{sa}", verb, res)
        ]
        for sa in others
    }
    assert rights == {sa: [] for sa in others}
