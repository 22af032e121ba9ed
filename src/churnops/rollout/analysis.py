"""Metric-gated canary analysis against Prometheus.

At each traffic step the canary (model version V) is compared with the stable version
over the last interval: error ratio, p99 latency, a minimum request count, and the PSI
between their churn-probability histograms. Pass → next step, and after the last step
promote (serving target and MLflow aliases). Fail → roll back at once. Too little
traffic or no answer from Prometheus → hold; still undecided at the deadline → roll
back. Prometheus being unreachable can never lead to a promotion.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from churnops.monitoring.drift import psi
from churnops.progress import log
from churnops.rollout.adapter import ServingTarget

REGISTRY = CollectorRegistry()
ROLLOUT_STEP = Gauge("churnops_rollout_step", "Current canary traffic percent.",
                     ["model_name", "canary_version"], registry=REGISTRY)
ROLLOUT_DECISIONS = Counter("churnops_rollout_decisions_total", "Canary analysis decisions.",
                            ["model_name", "decision"], registry=REGISTRY)


@dataclass(frozen=True)
class AnalysisConfig:
    """Canary settings.

    Attributes:
        steps: Canary traffic percentages, in order; the last one should be 100.
        interval_seconds: Wait at each step before measuring; also the PromQL window.
        min_requests: Canary requests needed in the window for a verdict.
        max_error_ratio: Absolute ceiling of the canary's 5xx ratio.
        max_error_ratio_increase: Allowed 5xx ratio above stable.
        max_latency_ratio: Allowed canary p99 / stable p99 ...
        latency_slack_seconds: ... plus this absolute slack (sub-ms noise is not a regression).
        max_prediction_psi: Allowed PSI between canary and stable churn-probability histograms.
        deadline_seconds: Undecided (no traffic, no Prometheus) for this long → roll back.
        selector: Extra PromQL label matchers, e.g. ``namespace="churnops"``.
    """

    steps: tuple[int, ...] = (10, 25, 50, 100)
    interval_seconds: float = 120.0
    min_requests: int = 50
    max_error_ratio: float = 0.05
    max_error_ratio_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_seconds: float = 0.005
    max_prediction_psi: float = 0.25
    deadline_seconds: float = 900.0
    selector: str = ""

    @property
    def window(self) -> str:
        return f"{max(int(math.ceil(self.interval_seconds)), 5)}s"


@dataclass
class Decision:
    step: int
    percent: int
    decision: str  # advance | promote | rollback | hold
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass
class RolloutResult:
    model_name: str
    canary_version: str
    stable_version: str | None
    outcome: str  # promoted | rolled_back
    decisions: list[Decision]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer or answered with an error; the analysis holds."""


class Prometheus:
    """A minimal instant-query client for the Prometheus HTTP API."""

    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url, self.timeout = url.rstrip("/"), timeout

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Result vector of an instant query.

        Raises:
            PrometheusUnavailable: Connection failure or a non-success status.
        """
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310
                body = json.load(response)
        except Exception as err:
            raise PrometheusUnavailable(f"{self.url}: {err}") from err
        if body.get("status") != "success":
            raise PrometheusUnavailable(f"{self.url}: {body.get('error', body)}")
        return body["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) else value


def _matchers(model_name: str, version: str, selector: str) -> str:
    extra = f",{selector}" if selector else ""
    return f'model_name="{model_name}",model_version="{version}"{extra}'


def measure(prom: Prometheus, model_name: str, version: str, config: AnalysisConfig) -> dict[str, Any]:
    """Requests, error ratio, p99 latency and churn-probability histogram of one version."""
    m, w = _matchers(model_name, version, config.selector), config.window
    requests = prom.scalar(f"sum(increase(churnops_requests_total{{{m}}}[{w}]))") or 0.0
    errors = prom.scalar(f'sum(increase(churnops_requests_total{{{m},code=~"5.."}}[{w}]))') or 0.0
    p99 = prom.scalar(
        f"histogram_quantile(0.99, sum by (le) (rate(churnops_request_duration_seconds_bucket{{{m}}}[{w}])))"
    )
    buckets = prom.query(f"sum by (le) (increase(churnops_churn_probability_bucket{{{m}}}[{w}]))")
    cumulative = sorted((float(b["metric"]["le"]), float(b["value"][1])) for b in buckets)
    counts = [c - p for (_, c), (_, p) in zip(cumulative, [(0.0, 0.0), *cumulative[:-1]], strict=True)]
    return {"requests": requests, "errors": errors, "error_ratio": errors / requests if requests else 0.0,
            "p99_seconds": p99, "histogram": counts}


def judge(canary: dict[str, Any], stable: dict[str, Any] | None, config: AnalysisConfig) -> tuple[str, str, dict]:
    """Verdict of one step: ``pass``, ``fail`` or ``inconclusive``, the reason and the numbers."""
    numbers: dict[str, Any] = {"canary_requests": canary["requests"], "canary_error_ratio": canary["error_ratio"],
                               "canary_p99_seconds": canary["p99_seconds"]}
    if canary["requests"] < config.min_requests:
        return "inconclusive", f"canary got {canary['requests']:.0f} requests, {config.min_requests} needed", numbers
    stable_ratio = stable["error_ratio"] if stable else 0.0
    numbers["stable_error_ratio"] = stable_ratio
    if canary["error_ratio"] > min(config.max_error_ratio, stable_ratio + config.max_error_ratio_increase):
        return "fail", (f"canary error ratio {canary['error_ratio']:.3%} vs stable {stable_ratio:.3%}"), numbers
    if stable and stable["requests"] >= config.min_requests / 4:
        sp99, cp99 = stable["p99_seconds"], canary["p99_seconds"]
        numbers["stable_p99_seconds"] = sp99
        if sp99 is not None and cp99 is not None:
            limit = sp99 * config.max_latency_ratio + config.latency_slack_seconds
            numbers["p99_limit_seconds"] = limit
            if cp99 > limit:
                return "fail", f"canary p99 {cp99 * 1000:.1f} ms above limit {limit * 1000:.1f} ms", numbers
        if sum(stable["histogram"]) and sum(canary["histogram"]):
            distance = psi(stable["histogram"], canary["histogram"])
            numbers["prediction_psi"] = distance
            if distance > config.max_prediction_psi:
                return "fail", f"churn-probability PSI {distance:.3f} > {config.max_prediction_psi}", numbers
    return "pass", "canary within limits", numbers


def run(
    target: ServingTarget,
    prom: Prometheus,
    *,
    model_name: str,
    canary_version: str,
    stable_version: str | None,
    config: AnalysisConfig = AnalysisConfig(),
    on_promote: Callable[[], None] | None = None,
    on_rollback: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RolloutResult:
    """Drive the canary through ``config.steps``; the canary must already be started
    (``target.start_canary``) at ``config.steps[0]``.

    ``on_promote``/``on_rollback`` move the MLflow aliases and tag the version; they run
    after the serving target changed.
    """
    start = clock()
    decisions: list[Decision] = []
    undecided_since: float | None = None

    def decide(step: int, percent: int, decision: str, reason: str, numbers: dict) -> None:
        d = Decision(step, percent, decision, reason, numbers)
        decisions.append(d)
        ROLLOUT_DECISIONS.labels(model_name, decision).inc()
        log(f"rollout: step {step} ({percent}%): {decision.upper()} - {reason} {json.dumps(numbers, default=str)}")

    def finish(outcome: str, reason: str) -> RolloutResult:
        if outcome == "promoted":
            target.promote()
            if on_promote:
                on_promote()
        else:
            target.rollback()
            if on_rollback:
                on_rollback(reason)
        ROLLOUT_STEP.labels(model_name, canary_version).set(100 if outcome == "promoted" else 0)
        return RolloutResult(model_name, canary_version, stable_version, outcome, decisions, clock() - start)

    step = 0
    while step < len(config.steps):
        percent = config.steps[step]
        if step > 0 and decisions and decisions[-1].decision == "advance":
            target.set_canary_percent(percent)
        ROLLOUT_STEP.labels(model_name, canary_version).set(percent)
        sleep(config.interval_seconds)
        try:
            canary = measure(prom, model_name, canary_version, config)
            stable = measure(prom, model_name, stable_version, config) if stable_version else None
            verdict, reason, numbers = judge(canary, stable, config)
        except PrometheusUnavailable as err:
            verdict, reason, numbers = "inconclusive", f"Prometheus unavailable: {err}", {}
        if verdict == "fail":
            decide(step, percent, "rollback", reason, numbers)
            return finish("rolled_back", reason)
        if verdict == "inconclusive":
            undecided_since = undecided_since if undecided_since is not None else clock()
            if clock() - undecided_since >= config.deadline_seconds:
                reason = f"no verdict within {config.deadline_seconds:.0f}s: {reason}"
                decide(step, percent, "rollback", reason, numbers)
                return finish("rolled_back", reason)
            decide(step, percent, "hold", reason, numbers)
            continue
        undecided_since = None
        if step == len(config.steps) - 1:
            decide(step, percent, "promote", reason, numbers)
            return finish("promoted", reason)
        decide(step, percent, "advance", reason, numbers)
        step += 1
    raise ValueError("AnalysisConfig.steps is empty")
