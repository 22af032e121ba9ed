"""The drift → retraining webhook receiver, over real HTTP (KFP's API is the fake)."""

from __future__ import annotations

import threading

import pytest
import requests

from churnops.monitoring.alerts import RetrainTrigger, make_server


def _notification(
    status: str = "firing", action: str = "retrain", name: str = "ChurnPredictionDrift"
) -> dict:
    return {
        "version": "4",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": name, "action": action, "severity": "ticket"},
            }
        ],
    }


@pytest.fixture
def receiver():
    now = [1000.0]
    submitted: list[dict] = []
    trigger = RetrainTrigger(
        lambda ctx: submitted.append(ctx) or {"run_id": f"r{len(submitted)}"},
        cooldown_seconds=600,
        clock=lambda: now[0],
    )
    server = make_server(trigger, host="127.0.0.1", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", submitted, now
    server.shutdown()


def test_firing_drift_alert_starts_one_run_then_cools_down(receiver):
    url, submitted, now = receiver
    first = requests.post(f"{url}/alerts", json=_notification()).json()
    assert first["triggered"] is True and first["run"] == {"run_id": "r1"}
    assert submitted == [{"alerts": ["ChurnPredictionDrift"]}]
    again = requests.post(f"{url}/alerts", json=_notification()).json()
    assert again["triggered"] is False and "cooldown" in again["reason"]
    now[0] += 601
    assert requests.post(f"{url}/alerts", json=_notification()).json()["triggered"] is True
    assert len(submitted) == 2


def test_resolved_and_other_alerts_do_not_retrain(receiver):
    url, submitted, _ = receiver
    assert (
        requests.post(f"{url}/alerts", json=_notification(status="resolved")).json()["triggered"]
        is False
    )
    assert (
        requests.post(
            f"{url}/alerts", json=_notification(action="page", name="ChurnNoTraffic")
        ).json()["triggered"]
        is False
    )
    assert submitted == []


def test_malformed_payload_is_a_400(receiver):
    url, _, _ = receiver
    response = requests.post(
        f"{url}/alerts", data=b"not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "malformed" in response.json()["error"]
    assert requests.get(f"{url}/healthz").json() == {"ok": True}
