"""`make deploy` (scripts/deploy.sh, CLUSTER=local) on the live control plane: first install
with no champion model, upgrade, rollback: the commands a new user runs, as they run them."""

from __future__ import annotations

import json
import subprocess

import pytest
from _cluster_support import NAMESPACE, ROOT, env, eventually, get, helm


def deploy(**extra: str) -> dict:
    proc = subprocess.run(
        ["bash", "scripts/deploy.sh"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**env(), "CLUSTER": "local", "DEPLOY_TIMEOUT": "5m", **extra},
        timeout=900,
    )
    if proc.returncode != 0:
        pytest.fail(f"deploy.sh failed:\n{proc.stderr[-3000:]}{proc.stdout}", pytrace=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_first_install_upgrade_and_rollback(cluster) -> None:
    helm("uninstall", "churnops", "-n", NAMESPACE, "--wait", check=False)
    try:
        first = deploy()
        # No champion exists: the release still succeeds; the InferenceService is reconciled.
        assert first["ok"] and first["revision"] == 1
        assert get("inferenceservice", "churn") is not None
        ns = get("namespace", NAMESPACE, namespace="")
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

        second = deploy(CHURNOPS_SET="predictor.maxReplicas=5")
        assert second["revision"] == 2
        eventually(
            lambda: (get("hpa", "churn-predictor") or {}).get("spec", {}).get("maxReplicas") == 5,
            "KServe carried the upgrade to the HPA",
        )
        isvc = get("inferenceservice", "churn")
        assert isvc["spec"]["predictor"]["maxReplicas"] == 5

        # --wait=legacy as deploy.sh waits: Helm 4's default watcher compares the
        # InferenceService's generation with status.observedGeneration, which KServe's Standard
        # mode copies from the predictor Deployment; a rollback that changes only the HPA
        # leaves the Deployment (and so observedGeneration) alone, and the watcher never ends.
        helm("rollback", "churnops", "1", "-n", NAMESPACE, "--wait=legacy", "--timeout", "5m")
        history = json.loads(helm("history", "churnops", "-n", NAMESPACE, "-o", "json").stdout)
        assert [h["status"] for h in history][-1] == "deployed" and len(history) == 3
        assert get("inferenceservice", "churn")["spec"]["predictor"]["maxReplicas"] == 4
    finally:
        helm("uninstall", "churnops", "-n", NAMESPACE, "--wait", check=False)
