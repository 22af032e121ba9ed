"""The batch-scoring CronJob the chart renders from ``batchScoring.*``."""

from __future__ import annotations

import subprocess

from conftest import CHART, NAMESPACE, RELEASE, Render, helm_template, tool


def test_cronjob_runs_churnops_score_with_the_values(renders: dict[str, Render]) -> None:
    cron = renders["kind+batch-scoring"].one("CronJob", "churnops-batch-scoring")
    assert cron["metadata"]["namespace"] == NAMESPACE
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["command"][:2] == ["churnops", "score"]
    args = dict(zip(c["command"][2::2], c["command"][3::2], strict=True))
    assert args == {
        "--model-uri": "models:/churn@champion",
        "--data": "s3://churn-data/customers/latest.parquet",
        "--out": "s3://churn-data/scores/latest.parquet",
        "--engine": "local",
        "--max-reject-rate": "0.01",
    }
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["MLFLOW_TRACKING_URI"].startswith(f"http://{RELEASE}-mlflow.")
    assert c["envFrom"] == [{"secretRef": {"name": "churn-data-s3"}}]
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    policy = renders["kind+batch-scoring"].one("NetworkPolicy", "churnops-batch-scoring")
    assert policy["spec"]["egress"][1]["ports"] == [{"protocol": "TCP", "port": 443}]


def test_off_by_default_and_uris_required(renders: dict[str, Render]) -> None:
    assert not renders["kind"].of_kind("CronJob")
    proc = subprocess.run(
        [str(tool("helm")), "template", RELEASE, str(CHART), "--set", "batchScoring.enabled=true"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and "batchScoring.inputUri is required" in proc.stderr


def test_schedule_and_engine_are_checked_by_the_schema() -> None:
    for bad in ("batchScoring.schedule=tomorrow", "batchScoring.engine=spark"):
        proc = subprocess.run(
            [str(tool("helm")), "template", RELEASE, str(CHART), "--set", bad],
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0 and "batchScoring" in proc.stderr, bad
    assert helm_template(
        [CHART / "ci" / "kind-values.yaml"], ["--set", "batchScoring.engine=local"]
    )
