"""Start the rollout of a registered version: the pipeline's deploy step and ``churnops rollout run``.

Targets: ``kserve`` (the cluster InferenceService, analysed against Prometheus),
``local`` (a local model server process on this machine, for ``kfp.local`` runs and the
demo), ``none`` (register only).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from churnops import registry, tracking
from churnops.progress import log
from churnops.rollout import analysis
from churnops.rollout.adapter import KServeTarget, ServingTarget


def version_of(model_uri: str | None, model_name: str) -> str | None:
    """``models:/churn/7`` → ``"7"``; aliases are resolved through the registry."""
    if not model_uri:
        return None
    if match := re.fullmatch(rf"models:/{re.escape(model_name)}/(\d+)", model_uri):
        return match.group(1)
    if match := re.fullmatch(rf"models:/{re.escape(model_name)}@([\w-]+)", model_uri):
        return registry.aliases(model_name).get(match.group(1))
    return None


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
    target.start_canary(f"models:/{model_name}/{version}", config.steps[0])
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
    prometheus_url: str = "",
    local_port: int = 0,
) -> dict[str, Any]:
    """The pipeline's deploy step.

    Raises:
        ValueError: Unknown target.
    """
    if tracking_uri:
        tracking.connect(tracking_uri)
    if target == "none":
        return {"outcome": "skipped", "version": version}
    if target == "local":
        return _local(model_name, version, tracking_uri, local_port)
    if target != "kserve":
        raise ValueError(f"unknown deploy target {target!r}: use kserve, local or none")
    steps = [canary_percent, *[s for s in (steps_percent or []) if s > canary_percent]]
    if steps[-1] != 100:
        steps.append(100)
    config = analysis.AnalysisConfig(
        steps=tuple(steps), interval_seconds=interval_seconds, selector=f'namespace="{namespace}"'
    )
    return canary(
        KServeTarget(inference_service, namespace),
        model_name=model_name,
        version=version,
        prometheus_url=prometheus_url,
        config=config,
    )


def _local(model_name: str, version: str, tracking_uri: str, port: int) -> dict[str, Any]:
    """Serve ``version`` from a detached local model server; replace the previous one."""
    from churnops.serving.local import start_model_server

    home = Path(os.environ.get("CHURNOPS_HOME", ".churnops")).resolve()
    state_file = home / f"serve-{model_name}.json"
    server = start_model_server(
        f"models:/{model_name}/{version}",
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
        "url": server.url,
        "pid": server.popen.pid,
        "log": str(server.log_path),
    }
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(info))
    return info
