"""Metric-gated canary analysis against Prometheus.

At each traffic step the canary (model version V) is compared with the stable version
over the last interval: error ratio, p99 latency, a minimum request count, and the PSI
between their churn-probability histograms. Pass → next step, and after the last step
promote (serving target and MLflow aliases). Fail → roll back at once. Too little
traffic or no answer from Prometheus → hold; still undecided at the deadline → roll
back. Prometheus being unreachable can never lead to a promotion.

Outcomes: ``promoted``; ``rolled_back`` (a failed check, or no answer from Prometheus by
the deadline); ``no_traffic`` (the canary never got the requests a verdict needs before
the deadline, as on a fresh install nobody calls yet: rolled back too, never promoted,
but reported apart because the fix is warm-up traffic, not a better model).
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

from churnops.monitoring.drift import psi
from churnops.progress import log
from churnops.rollout.adapter import ServingTarget

REGISTRY = CollectorRegistry()
ROLLOUT_STEP = Gauge(
    "churnops_rollout_step",
    "Current canary traffic percent.",
    ["model_name", "canary_version"],
    registry=REGISTRY,
)
ROLLOUT_DECISIONS = Counter(
    "churnops_rollout_decisions_total",
    "Canary analysis decisions.",
    ["model_name", "decision"],
    registry=REGISTRY,
)


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
        max_prediction_shift: Allowed Kolmogorov–Smirnov distance between canary and stable
            churn-probability distributions (from their Prometheus histograms). A larger
            distance fails only when it is also significant at ``shift_alpha`` for the
            request counts at hand, so a 25-request canary is not failed on noise.
        shift_alpha: Significance level of that two-sample test.
        deadline_seconds: Undecided (no traffic, no Prometheus) for this long → roll back.
        selector: Extra PromQL label matchers, e.g. ``namespace="churnops"``.
        served_model: The model name the server serves under (``model_name`` label of the
            server's metrics), whatever the registered model is called.
    """

    steps: tuple[int, ...] = (10, 25, 50, 100)
    interval_seconds: float = 120.0
    min_requests: int = 50
    max_error_ratio: float = 0.05
    max_error_ratio_increase: float = 0.01
    max_latency_ratio: float = 1.5
    latency_slack_seconds: float = 0.005
    max_prediction_shift: float = 0.2
    shift_alpha: float = 0.001
    deadline_seconds: float = 900.0
    selector: str = ""
    served_model: str = "churn"

    @property
    def window(self) -> str:
        return f"{max(math.ceil(self.interval_seconds), 5)}s"


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
    outcome: str  # promoted | rolled_back | no_traffic
    decisions: list[Decision]
    seconds: float
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def push_metrics() -> None:
    """Push the rollout metrics to ``CHURNOPS_PUSHGATEWAY_URL`` when set (a rollout Job is
    too short-lived to be scraped). Failing to push never changes a decision."""
    url = os.environ.get("CHURNOPS_PUSHGATEWAY_URL")
    if not url:
        return
    try:
        push_to_gateway(url, job="churnops-rollout", registry=REGISTRY)
    except Exception as err:
        log(f"rollout: could not push metrics to {url}: {err}")


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
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
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


def measure(
    prom: Prometheus, version: str, config: AnalysisConfig, *, since_seconds: float
) -> dict[str, Any]:
    """Requests, error ratio and p99 latency of one version over the last interval, and its
    churn-probability histogram since the canary started (``since_seconds`` ago): the
    distribution test needs every sample it can get, and per-bucket ``increase()`` over a
    few scrapes extrapolates each bucket differently."""
    m, w = _matchers(config.served_model, version, config.selector), config.window
    since = f"{max(int(since_seconds), int(w[:-1]))}s"
    requests = prom.scalar(f"sum(increase(churnops_requests_total{{{m}}}[{w}]))") or 0.0
    errors = prom.scalar(f'sum(increase(churnops_requests_total{{{m},code=~"5.."}}[{w}]))') or 0.0
    p99 = prom.scalar(
        f"histogram_quantile(0.99, sum by (le) (rate(churnops_request_duration_seconds_bucket{{{m}}}[{w}])))"
    )
    buckets = prom.query(
        f"sum by (le) (increase(churnops_churn_probability_bucket{{{m}}}[{since}]))"
    )
    cumulative = [
        count
        for _, count in sorted((float(b["metric"]["le"]), float(b["value"][1])) for b in buckets)
    ]
    counts = [float(c) for c in np.diff([0.0, *cumulative])]  # Prometheus buckets are cumulative
    return {
        "requests": requests,
        "errors": errors,
        "error_ratio": errors / requests if requests else 0.0,
        "p99_seconds": p99,
        "histogram": counts,
    }


def distribution_shift(
    stable: list[float], canary: list[float], alpha: float
) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov distance of two binned distributions, and its critical
    value at ``alpha`` for the sample sizes (binning makes the test conservative)."""
    a, b = np.asarray(stable, dtype=float), np.asarray(canary, dtype=float)
    n, m = a.sum(), b.sum()
    distance = float(np.max(np.abs(np.cumsum(a) / n - np.cumsum(b) / m)))
    critical = float(np.sqrt(-np.log(alpha / 2) / 2) * np.sqrt((n + m) / (n * m)))
    return distance, critical


def judge(
    canary: dict[str, Any], stable: dict[str, Any] | None, config: AnalysisConfig
) -> tuple[str, str, dict]:
    """Verdict of one step: ``pass``, ``fail`` or ``inconclusive``, the reason and the numbers."""
    numbers: dict[str, Any] = {
        "canary_requests": canary["requests"],
        "canary_error_ratio": canary["error_ratio"],
        "canary_p99_seconds": canary["p99_seconds"],
    }
    if canary["requests"] < config.min_requests:
        return (
            "inconclusive",
            f"canary got {canary['requests']:.0f} requests, {config.min_requests} needed",
            numbers,
        )
    stable_ratio = stable["error_ratio"] if stable else 0.0
    numbers["stable_error_ratio"] = stable_ratio
    if canary["error_ratio"] > min(
        config.max_error_ratio, stable_ratio + config.max_error_ratio_increase
    ):
        return (
            "fail",
            (f"canary error ratio {canary['error_ratio']:.3%} vs stable {stable_ratio:.3%}"),
            numbers,
        )
    if stable and stable["requests"] >= config.min_requests / 4:
        sp99, cp99 = stable["p99_seconds"], canary["p99_seconds"]
        numbers["stable_p99_seconds"] = sp99
        if sp99 is not None and cp99 is not None:
            limit = sp99 * config.max_latency_ratio + config.latency_slack_seconds
            numbers["p99_limit_seconds"] = limit
            if cp99 > limit:
                return (
                    "fail",
                    f"canary p99 {cp99 * 1000:.1f} ms above limit {limit * 1000:.1f} ms",
                    numbers,
                )
        if sum(stable["histogram"]) and sum(canary["histogram"]):
            distance, critical = distribution_shift(
                stable["histogram"], canary["histogram"], config.shift_alpha
            )
            numbers.update(
                prediction_ks=distance,
                prediction_ks_critical=critical,
                prediction_psi=psi(stable["histogram"], canary["histogram"]),
                stable_histogram=[round(c, 1) for c in stable["histogram"]],
                canary_histogram=[round(c, 1) for c in canary["histogram"]],
            )
            if distance > max(config.max_prediction_shift, critical):
                return (
                    "fail",
                    (
                        f"churn-probability distribution shift: KS distance {distance:.3f} > "
                        f"{max(config.max_prediction_shift, critical):.3f}"
                    ),
                    numbers,
                )
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
        push_metrics()
        log(
            f"rollout: step {step} ({percent}%): {decision.upper()} - {reason} {json.dumps(numbers, default=str)}"
        )

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
        push_metrics()
        return RolloutResult(
            model_name, canary_version, stable_version, outcome, decisions, clock() - start, reason
        )

    step = 0
    while step < len(config.steps):
        percent = config.steps[step]
        if step > 0 and decisions and decisions[-1].decision == "advance":
            target.set_canary_percent(percent)
        ROLLOUT_STEP.labels(model_name, canary_version).set(percent)
        sleep(config.interval_seconds)
        try:
            since = clock() - start
            canary = measure(prom, canary_version, config, since_seconds=since)
            stable = (
                measure(prom, stable_version, config, since_seconds=since)
                if stable_version
                else None
            )
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
                starved = numbers.get("canary_requests", config.min_requests) < config.min_requests
                if starved:
                    reason = f"no traffic: {reason}; send warm-up traffic (docs/deploy.md)"
                decide(step, percent, "rollback", reason, numbers)
                return finish("no_traffic" if starved else "rolled_back", reason)
            decide(step, percent, "hold", reason, numbers)
            continue
        undecided_since = None
        if step == len(config.steps) - 1:
            decide(step, percent, "promote", reason, numbers)
            return finish("promoted", reason)
        decide(step, percent, "advance", reason, numbers)
        step += 1
    raise ValueError("AnalysisConfig.steps is empty")
