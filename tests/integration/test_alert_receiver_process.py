"""The drift alert receiver as it runs in its pod: the real `churnops alerts serve` process,
Alertmanager webhook payloads (v4) over loopback, KFP reached through churnops' adapter
(kfp.Client). Only KFP's API server is a stand-in (_fake_kfp), so the test can count the
runs the receiver starts, across a restart of the receiver process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from _fake_kfp import FakeKfp

from churnops import processes
from churnops.monitoring.alerts import run_name
from churnops.training.runner import packaged_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PACKAGE = packaged_spec()
TOKEN = "s3cret-webhook-token"
COOLDOWN = 3600


def notification(
    status: str = "firing",
    *,
    alertname: str = "ChurnPredictionDrift",
    model: str = "churn",
    action: str = "retrain",
) -> dict:
    """What Alertmanager 0.28 POSTs to a webhook_config (template data, version 4)."""
    group = {"alertname": alertname, "model_name": model, "namespace": "churnops"}
    labels = {**group, "action": action, "severity": "ticket", "model_version": "3"}
    starts = "2026-12-01T14:02:10.123Z"
    return {
        "receiver": "churnops/churnops-retrain/churnops-retrain",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": "Churn predictions drifted from the training distribution",
                    "runbook_url": "https://github.com/churnops/churnops/blob/main/monitoring/RUNBOOK.md",
                },
                "startsAt": starts,
                "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T15:10:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=churnops%3Aprediction_psi",
                "fingerprint": "c4a1d0f2e7b9a3c1",
            }
        ],
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.monitoring:9093",
        "version": "4",
        "groupKey": (
            '{}/{namespace="churnops"}/{action="retrain"}:'
            f'{{alertname="{alertname}", model_name="{model}", namespace="churnops"}}'
        ),
        "truncatedAlerts": 0,
    }


class Receiver:
    """One `churnops alerts serve` process; restartable on the same ports."""

    def __init__(self, kfp_url: str, workdir: Path):
        self.port, self.metrics_port = processes.free_port(), processes.free_port()
        self.kfp_url, self.workdir = kfp_url, workdir
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        self.log = self.workdir / f"receiver-{self.starts}.log"
        env = {**os.environ, "CHURNOPS_ALERTS_TOKEN": TOKEN, "HOME": str(self.workdir)}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "churnops.cli", "alerts", "serve",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--metrics-port", str(self.metrics_port),
                "--kfp-host", self.kfp_url,
                "--package", str(PACKAGE),
                "--data", "s3://churn-data/customers-2026-12.parquet",
                "--params", json.dumps({"candidates": ["logreg"]}),
                "--cooldown", str(COOLDOWN),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300  # imports take long on a loaded machine
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise AssertionError(f"receiver did not start:\n{self.log.read_text()}")

    def stop(self) -> dict:
        """SIGTERM, as the kubelet sends it; returns the JSON line the command ends with."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, self.log.read_text()
        return json.loads(out.strip().splitlines()[-1])

    def post(self, payload: dict, *, token: str | None = TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{self.url}/alerts", json=payload, headers=headers, timeout=180)

    def triggers(self) -> dict[str, float]:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        out = {}
        for line in text.splitlines():
            if line.startswith("churnops_retrain_triggers_total{"):
                labels, value = line.rsplit(" ", 1)
                out[labels.split('outcome="')[1].split('"')[0]] = float(value)
        return out

    def decisions(self) -> list[dict]:
        return [
            json.loads(line)
            for line in self.log.read_text().splitlines()
            if line.startswith('{"event": "retrain_decision"')
        ]


@pytest.fixture
def kfp() -> Iterator[FakeKfp]:
    fake = FakeKfp()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def receiver(kfp: FakeKfp, tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(kfp.url, tmp_path)
    r.start()
    yield r
    if r.proc is not None and r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait()


def test_one_run_per_alert_group_across_repeats_resolves_and_a_restart(
    receiver: Receiver, kfp: FakeKfp
) -> None:
    drift = notification()
    first = receiver.post(drift)
    assert first.status_code == 200 and first.json()["outcome"] == "started", first.text
    assert len(kfp.runs) == 1
    run = kfp.runs[0]
    assert run["display_name"] == run_name(drift["groupKey"]) == first.json()["run_name"]
    assert run["runtime_config"]["parameters"] == {
        "data_uri": "s3://churn-data/customers-2026-12.parquet",
        "candidates": ["logreg"],
    }
    spec = run["pipeline_spec"]  # with kfp-kubernetes settings: {pipeline_spec, platform_spec}
    assert spec.get("pipeline_spec", spec)["pipelineInfo"]["name"] == "churn-training", spec.keys()
    assert [e["display_name"] for e in kfp.experiments] == ["retraining"]
    assert run["service_account"] == "churnops-pipeline-runner"  # may patch the predictor

    # Alertmanager re-sends the group every repeat_interval; both replicas of an HA pair send.
    for _ in range(3):
        again = receiver.post(drift)
        assert again.json()["outcome"] == "cooldown", again.text
    assert "next run for this alert group allowed in" in again.json()["reason"]
    assert receiver.post(notification("resolved")).json()["outcome"] == "resolved"
    assert len(kfp.runs) == 1
    assert receiver.triggers() == {
        "started": 1, "cooldown": 3, "resolved": 1, "ignored": 0,
        "failed": 0, "invalid": 0, "unauthorized": 0,
    }  # fmt: skip

    ended = receiver.stop()
    assert ended["stopped"] is True and ended["decisions"]["started"] == 1

    # A new pod: no memory of the run, KFP still has it.
    receiver.start()
    after = receiver.post(drift)
    assert after.json()["outcome"] == "cooldown", after.text
    assert f"KFP run {run['run_id']}" in after.json()["reason"]
    assert len(kfp.runs) == 1

    # Another group (feature drift on the same model) gets its own run.
    other = receiver.post(notification(alertname="ChurnFeatureDrift"))
    assert other.json()["outcome"] == "started"
    assert len(kfp.runs) == 2 and kfp.runs[1]["display_name"] != run["display_name"]

    # Once the cooldown has passed, the still-firing drift alert retrains again.
    kfp.age_runs(COOLDOWN + 1)
    assert receiver.post(drift).json()["outcome"] == "started"
    assert len(kfp.runs) == 3
    assert receiver.triggers()["started"] == 2 and receiver.triggers()["cooldown"] == 1

    logged = receiver.decisions()
    assert [d["outcome"] for d in logged] == ["cooldown", "started", "started"]
    assert all(d["group_key"] and d["alerts"] for d in logged)


def test_other_alerts_bad_payloads_and_strangers_start_nothing(
    receiver: Receiver, kfp: FakeKfp
) -> None:
    page = receiver.post(notification(alertname="ChurnNoTraffic", action="page"))
    assert page.json()["outcome"] == "ignored"
    stranger = receiver.post(notification(), token=None)
    assert stranger.status_code == 401
    assert receiver.post(notification(), token="guess").status_code == 401
    bad = requests.post(
        f"{receiver.url}/alerts",
        data=b'{"alerts": "nope"}',
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert bad.status_code == 400 and "malformed webhook payload" in bad.json()["error"]
    assert kfp.runs == []
    counts = receiver.triggers()
    assert (counts["ignored"], counts["unauthorized"], counts["invalid"]) == (1, 2, 1)


def test_kfp_down_is_a_502_and_alertmanager_retry_starts_the_run(
    receiver: Receiver, kfp: FakeKfp
) -> None:
    kfp.down = True
    failed = receiver.post(notification())
    assert failed.status_code == 502 and "KFP at" in failed.json()["error"]
    assert receiver.triggers()["failed"] == 1
    kfp.down = False
    retried = receiver.post(notification())
    assert retried.json()["outcome"] == "started" and len(kfp.runs) == 1


def test_a_user_mistake_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "churnops.cli", "alerts", "serve", "--kfp-host", "http://x"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "CHURNOPS_DATA_URI"},
        timeout=300,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: alerts serve needs --data (or CHURNOPS_DATA_URI): the table a retraining run "
        "trains on"
    ]
