"""Drift-triggered retraining: an Alertmanager webhook receiver that starts pipeline runs.

Alertmanager routes alerts labelled ``action="retrain"`` (ChurnPredictionDrift,
ChurnFeatureDrift; see monitoring/alertmanager/) to ``POST /alerts``. For a firing alert
the receiver submits the training pipeline, at most once per ``cooldown`` seconds so a
flapping alert cannot start a run storm. Resolved alerts and other actions are ignored.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from churnops.progress import log

Submit = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class RetrainTrigger:
    """Decides which alert notifications start a run, and starts it through ``submit``.

    Attributes:
        submit: Starts one pipeline run; receives the triggering alert names as context.
        cooldown_seconds: Minimum time between two triggered runs.
    """

    submit: Submit
    cooldown_seconds: float = 6 * 3600
    clock: Callable[[], float] = time.monotonic
    last_run: float | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, notification: dict[str, Any]) -> dict[str, Any]:
        """Handle one Alertmanager webhook notification (version 4 payload)."""
        firing = [
            a
            for a in notification.get("alerts", [])
            if a.get("status") == "firing" and a.get("labels", {}).get("action") == "retrain"
        ]
        if not firing:
            return {"triggered": False, "reason": "no firing alert with action=retrain"}
        names = sorted({a["labels"].get("alertname", "?") for a in firing})
        with self._lock:
            now = self.clock()
            if self.last_run is not None and now - self.last_run < self.cooldown_seconds:
                wait = self.cooldown_seconds - (now - self.last_run)
                return {
                    "triggered": False,
                    "reason": f"cooldown: next run allowed in {wait:.0f}s",
                    "alerts": names,
                }
            result = self.submit({"alerts": names})
            self.last_run = now
            self.runs.append(result)
        log(f"alerts: {', '.join(names)} firing → started pipeline run {result}")
        return {"triggered": True, "alerts": names, "run": result}


def make_server(
    trigger: RetrainTrigger, *, host: str = "0.0.0.0", port: int = 9095
) -> ThreadingHTTPServer:
    """The HTTP server: ``POST /alerts`` (Alertmanager webhook), ``GET /healthz``."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply(200, {"ok": True}) if self.path == "/healthz" else self._reply(
                404, {"error": "not found"}
            )

        def do_POST(self) -> None:
            if self.path != "/alerts":
                return self._reply(404, {"error": "not found"})
            try:
                length = int(self.headers.get("Content-Length", "0"))
                notification = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(notification, dict):
                    raise ValueError("the body must be an Alertmanager webhook JSON object")
            except ValueError as err:
                return self._reply(400, {"error": f"malformed webhook payload: {err}"})
            try:
                self._reply(200, trigger.handle(notification))
            except Exception as err:  # KFP unreachable: Alertmanager retries on 5xx
                log(f"alerts: could not start a pipeline run: {err}")
                self._reply(502, {"error": f"could not start a pipeline run: {err}"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)
