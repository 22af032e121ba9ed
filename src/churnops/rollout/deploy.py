"""Start the rollout of a registered version: the pipeline's deploy step and ``churnops rollout run``.

Targets: ``kserve`` (the cluster InferenceService, analysed against Prometheus),
``local`` (local model-server processes on this machine, for ``kfp.local`` runs and the
demo: with a Prometheus on loopback and a stable server already running, the new version
is a canary analysed like on the cluster; otherwise it simply replaces the served version),
``none`` (register only).

The deploy step fails (:class:`~churnops.errors.PromotionRejected`) when the canary is
rolled back or got no traffic before its deadline, so KFP shows the run as failed, with
the reason as the task's error and the rollout's JSON in its log.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

from churnops import processes, registry, tracking
from churnops.errors import PromotionRejected
from churnops.model import uri as registry_uri
from churnops.progress import log
from churnops.rollout import analysis
from churnops.rollout.adapter import KServeTarget, ServingState, ServingTarget

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
FAILED_OUTCOMES = ("rolled_back", "no_traffic")
"""Rollout outcomes after which the new version does not serve: the deploy step fails."""


def version_of(model_uri: str | None, model_name: str) -> str | None:
    """``models:/churn/7`` → ``"7"``; aliases are resolved through the registry."""
    parsed = registry_uri.parse(model_uri) if model_uri else None
    if parsed is None or parsed.name != model_name or parsed.rest:
        return None
    if parsed.alias:
        return registry.aliases(model_name).get(parsed.alias)
    return parsed.version


def mlflow_hooks(model_name: str, version: str) -> tuple[Any, Any]:
    """(on_promote, on_rollback) that move the MLflow aliases to follow the rollout."""

    def on_promote() -> None:
        registry.promote(model_name, version)
        registry.tag_version(model_name, version, {"rollout": "promoted"})

    def on_rollback(reason: str) -> None:
        registry.tag_version(
            model_name, version, {"rollout": "rolled_back", "rollout_reason": reason[:4000]}
        )
        state = registry.aliases(model_name)
        if state.get(registry.CHAMPION) == version and registry.PREVIOUS in state:
            registry.rollback(model_name)

    return on_promote, on_rollback


def canary(
    target: ServingTarget,
    *,
    model_name: str,
    version: str,
    prometheus_url: str,
    config: analysis.AnalysisConfig,
    stable_version: str | None = None,
) -> dict[str, Any]:
    """Put ``version`` on ``target`` as canary at the first step and run the analysis."""
    state = target.state()
    stable_version = stable_version or version_of(state.stable_model_uri, model_name)
    if stable_version == version and "@" in (state.stable_model_uri or ""):
        # The gate already moved the alias the stable revision was created from; that
        # revision still serves what was champion before it: previous-champion.
        stable_version = registry.aliases(model_name).get(registry.PREVIOUS)
    if stable_version == version:
        log(f"rollout: {model_name} v{version} already serves as stable; nothing to roll out")
        return {"outcome": "unchanged", "canary_version": version, "stable_version": stable_version}
    target.start_canary(registry_uri.version_uri(model_name, version), config.steps[0])
    on_promote, on_rollback = mlflow_hooks(model_name, version)
    result = analysis.run(
        target,
        analysis.Prometheus(prometheus_url),
        model_name=model_name,
        canary_version=version,
        stable_version=stable_version,
        config=config,
        on_promote=on_promote,
        on_rollback=on_rollback,
    )
    return result.to_dict()


def pipeline_task(*, version: str, promoted: bool, **kwargs: Any) -> str:
    """The body of the pipeline's "canary rollout" task (cluster and kfp.local alike):
    nothing unless the gate promoted ``version``, else :func:`start` with ``kwargs``. The
    result is printed (the task log) and returned as JSON (the task output)."""
    if not promoted:
        return json.dumps({"outcome": "skipped", "version": version, "reason": "not promoted"})
    text = json.dumps(start(version=version, **kwargs), default=str)
    print(text)
    return text


def start(
    *,
    model_name: str,
    version: str,
    target: str,
    tracking_uri: str,
    namespace: str = "churnops",
    inference_service: str = "churn",
    canary_percent: int = 10,
    steps_percent: list[int] | None = None,
    interval_seconds: int = 120,
    deadline_seconds: float = analysis.AnalysisConfig.deadline_seconds,
    prometheus_url: str = "",
    local_port: int = 0,
) -> dict[str, Any]:
    """The pipeline's deploy step.

    Returns:
        The rollout result (``outcome`` ``promoted`` or ``unchanged``; ``serving`` or
        ``skipped`` without a canary).

    Raises:
        ValueError: Unknown target.
        PromotionRejected: The canary was rolled back or got no traffic by the deadline
            (``outcome`` ``rolled_back`` / ``no_traffic``); the result is attached.
    """
    if tracking_uri:
        tracking.connect(tracking_uri)
    if target == "none":
        return {"outcome": "skipped", "version": version}
    if target not in ("kserve", "local"):
        raise ValueError(f"unknown deploy target {target!r}: use kserve, local or none")
    serving: ServingTarget
    if target == "local":
        servers = LocalServers(model_name, tracking_uri, port=local_port)
        # A canary needs a Prometheus on this machine scraping both servers; the pipeline's
        # default URL is the cluster's, which a local run cannot reach.
        local_prometheus = urllib.parse.urlsplit(prometheus_url).hostname in _LOOPBACK
        if not local_prometheus or not servers.running():
            return _local(model_name, version, tracking_uri, local_port)
        serving = servers
    else:
        serving = KServeTarget(inference_service, namespace)
    steps = [canary_percent, *[s for s in (steps_percent or []) if s > canary_percent]]
    if steps[-1] != 100:
        steps.append(100)
    config = analysis.AnalysisConfig(
        steps=tuple(steps),
        interval_seconds=interval_seconds,
        deadline_seconds=deadline_seconds,
        # Scraped pods carry their namespace; local servers are scraped as plain targets.
        selector=f'namespace="{namespace}"' if target == "kserve" else "",
        # The predictor serves under the InferenceService's name; a local server (as
        # `--deploy local` starts it) under the registered model's.
        served_model=inference_service if target == "kserve" else model_name,
    )
    result = canary(
        serving,
        model_name=model_name,
        version=version,
        prometheus_url=prometheus_url,
        config=config,
    )
    return require_served(result)


def require_served(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` if the canary now serves (or already did); otherwise log it and raise.

    Raises:
        PromotionRejected: ``outcome`` is one of :data:`FAILED_OUTCOMES`.
    """
    outcome = result.get("outcome")
    if outcome not in FAILED_OUTCOMES:
        return result
    reason = result.get("reason") or (result.get("decisions") or [{}])[-1].get("reason", "")
    log(f"rollout: result {json.dumps(result, default=str)}")
    what = "got no traffic and was rolled back" if outcome == "no_traffic" else "was rolled back"
    err = PromotionRejected(
        f"canary {result.get('model_name')} v{result.get('canary_version')} {what} "
        f"({outcome}): {reason}"
    )
    err.result = result
    raise err


def _kill(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)


class LocalServers:
    """A :class:`ServingTarget` made of local model-server processes.

    Their record is ``$CHURNOPS_HOME/serve-<model>.json``: the stable server at the top
    level (what ``--deploy local`` wrote) and, during a rollout, ``canary`` with its URL
    and traffic ``percent``. Whatever sends traffic on this machine reads the split there,
    as Knative's router reads the revision weights.
    """

    def __init__(self, model_name: str, tracking_uri: str, *, port: int = 0):
        self.model_name, self.tracking_uri, self.port = model_name, tracking_uri, port
        self.home = Path(os.environ.get("CHURNOPS_HOME", ".churnops")).resolve()
        self.path = self.home / f"serve-{model_name}.json"

    def read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def _write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record))

    def running(self) -> bool:
        """A stable server is recorded and its process is alive."""
        return processes.pid_alive(self.read().get("pid"))

    def state(self) -> ServingState:
        record = self.read()
        stable = record.get("model_uri") or (
            registry_uri.version_uri(self.model_name, record["version"])
            if record.get("version")
            else None
        )
        canary = record.get("canary") or {}
        return ServingState(stable, canary.get("model_uri"), canary.get("percent", 0), True)

    def start_canary(self, model_uri: str, percent: int) -> None:
        from churnops.serving.process import start_model_server

        version = model_uri.rsplit("/", 1)[-1]
        server = start_model_server(
            model_uri,
            self.tracking_uri,
            port=self.port or None,
            log_path=self.home / "logs" / f"serve-{self.model_name}-v{version}.log",
            model_name=self.model_name,
        )
        record = self.read()
        record["canary"] = {
            "version": version,
            "model_uri": model_uri,
            "url": server.url,
            "pid": server.popen.pid,
            "log": str(server.log_path),
            "percent": percent,
        }
        self._write(record)

    def set_canary_percent(self, percent: int) -> None:
        record = self.read()
        record["canary"]["percent"] = percent
        self._write(record)

    def promote(self) -> None:
        record = self.read()
        canary = record.pop("canary")
        _kill(record.get("pid"))
        canary.pop("percent", None)
        self._write({"outcome": "serving", **canary})

    def rollback(self) -> None:
        record = self.read()
        canary = record.pop("canary", None) or {}
        _kill(canary.get("pid"))
        self._write(record)


def _local(model_name: str, version: str, tracking_uri: str, port: int) -> dict[str, Any]:
    """Serve ``version`` from a detached local model server; replace the previous one."""
    from churnops.serving.process import start_model_server

    home = Path(os.environ.get("CHURNOPS_HOME", ".churnops")).resolve()
    state_file = home / f"serve-{model_name}.json"
    server = start_model_server(
        registry_uri.version_uri(model_name, version),
        tracking_uri,
        port=port or None,
        log_path=home / "logs" / f"serve-{model_name}-v{version}.log",
        model_name=model_name,
    )
    previous = json.loads(state_file.read_text()) if state_file.exists() else None
    if previous and previous.get("pid") and previous["pid"] != server.popen.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(previous["pid"], 15)
    info = {
        "outcome": "serving",
        "version": version,
        "model_uri": registry_uri.version_uri(model_name, version),
        "url": server.url,
        "pid": server.popen.pid,
        "log": str(server.log_path),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(info))
    return info
