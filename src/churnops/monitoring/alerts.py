"""Drift-triggered retraining: the Alertmanager webhook receiver that starts pipeline runs.

Alertmanager routes alerts labelled ``action="retrain"`` (ChurnPredictionDrift,
ChurnFeatureDrift; see monitoring/alertmanager/) to ``POST /alerts``. The receiver starts
at most one training run per alert group (Alertmanager's ``groupKey``) within the
cooldown, however often the group is re-sent (``repeat_interval``), by how many
Alertmanager replicas, or how often the receiver restarts:

- the run's name is derived from the group key (``churn-retrain-<hash>``), so the record
  of what was started lives in KFP, not in this process; before starting a run the
  receiver asks KFP for the latest run of that name and starts nothing while it is younger
  than the cooldown;
- resolved notifications, and alerts without ``action="retrain"``, start nothing;
- every decision is one log line (JSON, on stderr) and one increment of
  ``churnops_retrain_triggers_total{outcome}`` on the metrics port.

KFP is reached only through :class:`churnops.kfp_client.KfpClient` (any object with its
``latest_run`` / ``start_run`` methods will do).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, start_http_server

from churnops.kfp_client import KfpUnavailable, RunRef

OUTCOMES = ("started", "cooldown", "resolved", "ignored", "failed", "invalid", "unauthorized")
"""``outcome`` label values: a run started; a run of this group is younger than the
cooldown; a resolved notification; no ``action="retrain"`` alert in it; KFP unreachable
(502, Alertmanager retries); a malformed payload (400); a missing or wrong token (401)."""

REGISTRY = CollectorRegistry()
TRIGGERS = Counter(
    "churnops_retrain_triggers_total",
    "Alertmanager notifications handled by the retraining receiver, by decision.",
    ["outcome"],
    registry=REGISTRY,
)
for _outcome in OUTCOMES:
    TRIGGERS.labels(_outcome)

MAX_BODY_BYTES = 1 << 20
RUN_PREFIX = "churn-retrain-"


class Runs(Protocol):
    """What the receiver needs from KFP (:class:`churnops.kfp_client.KfpClient`)."""

    def latest_run(self, name: str, *, experiment: str) -> RunRef | None: ...

    def start_run(
        self, *, package: str | Path, name: str, experiment: str, params: dict[str, Any]
    ) -> RunRef: ...


def group_key(notification: dict[str, Any]) -> str:
    """Alertmanager's ``groupKey``; for a sender without one, the group labels (or the
    alert names) stand in, so the same group still maps to the same run name."""
    if key := notification.get("groupKey"):
        return str(key)
    labels = notification.get("groupLabels") or {
        "alertname": ",".join(
            sorted({a.get("labels", {}).get("alertname", "?") for a in _alerts(notification)})
        )
    }
    return json.dumps(labels, sort_keys=True)


def run_name(key: str) -> str:
    """The KFP run name for an alert group: stable across receiver restarts and replicas."""
    return RUN_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


def _alerts(notification: dict[str, Any]) -> list[dict[str, Any]]:
    alerts = notification.get("alerts")
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise ValueError("`alerts` must be a list of alert objects (Alertmanager webhook v4)")
    return alerts


def record(outcome: str, **fields: Any) -> dict[str, Any]:
    """Count one decision and log it as one JSON line on stderr; returns the decision."""
    TRIGGERS.labels(outcome).inc()
    decision = {"outcome": outcome, **fields}
    print(json.dumps({"event": "retrain_decision", **decision}, default=str), file=sys.stderr)
    sys.stderr.flush()
    return decision


@dataclass
class RetrainTrigger:
    """Decides which notifications start a run and starts it through ``runs``.

    Attributes:
        runs: The KFP adapter.
        package: Compiled pipeline spec the runs are started from.
        params: Pipeline parameters of every run (``data_uri`` at least).
        experiment: KFP experiment the runs go to (and are looked up in).
        cooldown_seconds: One run per alert group within this time.
        clock: Wall-clock seconds (KFP reports run creation times as timestamps).
    """

    runs: Runs
    package: str | Path
    params: dict[str, Any]
    experiment: str = "retraining"
    cooldown_seconds: float = 6 * 3600
    clock: Callable[[], float] = time.time
    _started: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, notification: dict[str, Any]) -> dict[str, Any]:
        """Handle one Alertmanager webhook notification (version 4 payload).

        Raises:
            ValueError: The payload is not an Alertmanager notification.
            KfpUnavailable: KFP could not be asked or could not start the run.
        """
        alerts = _alerts(notification)
        key = group_key(notification)
        retrain = [a for a in alerts if a.get("labels", {}).get("action") == "retrain"]
        names = sorted({a.get("labels", {}).get("alertname", "?") for a in retrain or alerts})
        about = {"group_key": key, "alerts": names}
        if not retrain:
            return record("ignored", reason="no alert with action=retrain", **about)
        if not any(a.get("status") == "firing" for a in retrain):
            return record("resolved", reason="resolved alerts start nothing", **about)
        name = run_name(key)
        with self._lock:  # one decision per group at a time: concurrent repeats wait
            now = self.clock()
            last, seen = self._started.get(name), "this receiver"
            if last is None or now - last >= self.cooldown_seconds:
                try:
                    latest = self.runs.latest_run(name, experiment=self.experiment)
                except KfpUnavailable as err:
                    record("failed", reason=str(err), run_name=name, **about)
                    raise
                if latest is not None:
                    last, seen = latest.created_at, f"KFP run {latest.run_id} ({latest.state})"
            if last is not None and now - last < self.cooldown_seconds:
                return record(
                    "cooldown",
                    reason=(
                        f"{seen} started {name} {now - last:.0f}s ago; next run for this "
                        f"alert group allowed in {self.cooldown_seconds - (now - last):.0f}s"
                    ),
                    run_name=name,
                    **about,
                )
            try:
                run = self.runs.start_run(
                    package=self.package, name=name, experiment=self.experiment, params=self.params
                )
            except KfpUnavailable as err:
                record("failed", reason=str(err), run_name=name, **about)
                raise
            self._started[name] = run.created_at or now
        return record(
            "started", reason="firing drift alert", run_name=name, run_id=run.run_id, **about
        )


def make_server(
    trigger: RetrainTrigger, *, host: str = "0.0.0.0", port: int = 9095, token: str | None = None
) -> ThreadingHTTPServer:
    """The webhook server: ``POST /alerts`` (bearer ``token`` when set), ``GET /healthz``."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                return self._reply(200, {"ok": True})
            self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path != "/alerts":
                return self._reply(404, {"error": "not found"})
            if token and not hmac.compare_digest(
                self.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
            ):
                record("unauthorized", reason="missing or wrong bearer token")
                return self._reply(401, {"error": "missing or wrong bearer token"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                if length > MAX_BODY_BYTES:
                    raise ValueError(f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
                notification = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(notification, dict):
                    raise ValueError("the body must be an Alertmanager webhook JSON object")
                decision = trigger.handle(notification)
            except ValueError as err:
                record("invalid", reason=str(err))
                return self._reply(400, {"error": f"malformed webhook payload: {err}"})
            except KfpUnavailable as err:  # Alertmanager retries on 5xx
                return self._reply(502, {"error": f"could not start a pipeline run: {err}"})
            self._reply(200, decision)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # every decision is already logged once, by record()

    return ThreadingHTTPServer((host, port), Handler)


def serve(
    trigger: RetrainTrigger,
    *,
    host: str = "0.0.0.0",
    port: int = 9095,
    metrics_port: int = 9096,
    token: str | None = None,
) -> dict[str, Any]:
    """Run the receiver until SIGTERM or SIGINT; ``/metrics`` on ``metrics_port``.

    Returns:
        The decisions counted while it ran, by outcome.
    """
    server = make_server(trigger, host=host, port=port, token=token)
    metrics, _ = start_http_server(metrics_port, addr=host, registry=REGISTRY)

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound, mport = server.server_address[1], metrics.server_address[1]
    print(
        f"alerts: POST http://{host}:{bound}/alerts, metrics on :{mport}/metrics; "
        f"runs of {trigger.package} go to KFP experiment {trigger.experiment!r}, "
        f"one per alert group per {trigger.cooldown_seconds:.0f}s; "
        + ("bearer token required" if token else "no webhook token set: any caller is accepted"),
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        metrics.shutdown()
    counts = {o: int(TRIGGERS.labels(o)._value.get()) for o in OUTCOMES}
    return {"stopped": True, "decisions": counts}
