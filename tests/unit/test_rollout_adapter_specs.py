"""The InferenceService specs KServeTarget writes (pure functions; the live API server and
KServe controller check the same paths in tests/cluster)."""

from __future__ import annotations

import pytest

from churnops.rollout.adapter import (
    KServeTarget,
    canary_name,
    model_uri_of,
    with_model_uri,
)


def spec(*env: tuple[str, str]) -> dict:
    return {
        "predictor": {
            "containers": [
                {"name": "kserve-container", "env": [{"name": k, "value": v} for k, v in env]}
            ]
        }
    }


def test_model_uri_without_storage_replaces_the_server_uri() -> None:
    new = with_model_uri(spec(("CHURNOPS_MODEL_URI", "models:/churn/1")), "models:/churn/2")
    assert model_uri_of(new) == "models:/churn/2"


def test_model_uri_with_storage_moves_the_download_and_keeps_the_local_dir() -> None:
    old = spec(
        ("CHURNOPS_MODEL_URI", "/mnt/models"),
        ("STORAGE_URI", "pvc://a/1"),
        ("CHURNOPS_SOURCE_MODEL_URI", "models:/churn/1"),
    )
    new = with_model_uri(old, "models:/churn/2", "pvc://a/2")
    env = {e["name"]: e["value"] for e in new["predictor"]["containers"][0]["env"]}
    assert env == {
        "CHURNOPS_MODEL_URI": "/mnt/models",
        "STORAGE_URI": "pvc://a/2",
        "CHURNOPS_SOURCE_MODEL_URI": "models:/churn/2",
    }
    assert model_uri_of(new) == "models:/churn/2"
    with pytest.raises(ValueError, match="storage URI"):
        with_model_uri(old, "models:/churn/2")


def test_canary_names_are_dns_labels_distinct_from_the_stable_name() -> None:
    assert canary_name("models:/churn/7", None) == "v7"
    assert canary_name("models:/churn/7", "v7") == "v7-canary"
    assert canary_name("models:/churn@champion", None) == "vchampion"


@pytest.mark.parametrize(
    ("annotation", "status", "mode"),
    [
        ("Standard", None, "Standard"),
        ("RawDeployment", None, "Standard"),
        ("Serverless", None, "Serverless"),
        ("Knative", None, "Serverless"),
        (None, "Standard", "Standard"),
        (None, None, "Serverless"),
    ],
)
def test_deployment_mode_as_kserve_names_it(annotation, status, mode) -> None:
    obj: dict = {"metadata": {"annotations": {}}, "status": {}}
    if annotation:
        obj["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = annotation
    if status:
        obj["status"]["deploymentMode"] = status
    assert KServeTarget.mode_of(obj) == mode


def test_standard_mode_canary_has_fixed_replicas_kserve_rescales() -> None:
    # KServe v0.20.0 rescales an existing Deployment only under autoscalerClass "none";
    # the stable predictor's own autoscaling is not the canary's business.
    stable = spec(
        ("CHURNOPS_MODEL_URI", "/mnt/models"),
        ("STORAGE_URI", "pvc://a/1"),
        ("CHURNOPS_SOURCE_MODEL_URI", "models:/churn/1"),
    )
    stable["predictor"].update(minReplicas=2, maxReplicas=4)
    target = KServeTarget("churn", "ns", api=object(), storage_uri_of=lambda u: f"pvc://a/{u[-1]}")
    canary = target._canary_predictor(stable, "models:/churn/2")
    assert canary["name"] == "v2"
    assert canary["annotations"] == {"serving.kserve.io/autoscalerClass": "none"}
    assert not {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric"} & canary.keys()
    assert model_uri_of({"predictor": canary}) == "models:/churn/2"
    assert "annotations" not in stable["predictor"]


def test_kserve_target_reads_kubeconfig_as_set_now(tmp_path, monkeypatch) -> None:
    """The Kubernetes client reads $KUBECONFIG once, when it is imported; a KServeTarget
    made after KUBECONFIG was set (a pipeline step, a test session) still uses it."""
    import kubernetes.config  # noqa: F401  (imported first, as in a long-lived process)

    from churnops.rollout.adapter import KServeTarget

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]\n'
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    target = KServeTarget("churn", "churnops")
    assert target.api.api_client.configuration.host == "https://127.0.0.1:6443"
