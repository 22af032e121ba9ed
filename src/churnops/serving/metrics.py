"""The model server's Prometheus metrics (names and labels: ``docs/metrics.md``).

They live in prometheus_client's default registry, which KServe's own ``/metrics``
route exposes, so one scrape of the HTTP port returns KServe's histograms and these.
Per-request cost stays small: counters and the latency histogram are cached label
children; the churn-probability histogram is updated in bulk per batch (numpy bucket
counts); feature drift (PSI of a sliding window) is computed only when scraped.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import numpy as np
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from churnops.data import contract
from churnops.monitoring.drift import PROBABILITY_EDGES, bin_numeric, bin_probabilities, psi

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
PROBABILITY_BUCKETS: tuple[float, ...] = (*PROBABILITY_EDGES, 1.0)
WINDOW_ROWS = 2000
"""Records in the sliding drift window."""
MIN_DRIFT_ROWS = 100
"""PSI is exported only once the window holds this many records (fewer is noise)."""

REQUESTS = Counter(
    "churnops_requests",
    "Inference requests by HTTP status; 5xx are defects.",
    ["model_name", "model_version", "protocol", "code"],
)
REQUEST_SECONDS = Histogram(
    "churnops_request_duration_seconds",
    "End-to-end latency of inference requests.",
    ["model_name", "model_version", "protocol"],
    buckets=LATENCY_BUCKETS,
)
ROWS_SCORED = Counter("churnops_rows_scored", "Records scored.", ["model_name", "model_version"])
PREDICTED_CHURN = Counter(
    "churnops_predicted_churn",
    "Records predicted as churn (probability >= the model's threshold).",
    ["model_name", "model_version"],
)
VALIDATION_ERRORS = Counter(
    "churnops_validation_errors", "Rejected requests by offending field.", ["model_name", "field"]
)
UNKNOWN_CATEGORIES = Counter(
    "churnops_unknown_categories",
    "Category values outside the contract scored as unknown.",
    ["model_name", "field"],
)
MODEL_INFO = Gauge(
    "churnops_model_info", "The model currently serving.", ["model_name", "model_version", "run_id"]
)
MODEL_READY = Gauge(
    "churnops_model_ready", "1 once the model loaded and its self-check passed.", ["model_name"]
)
MODEL_RELOADS = Counter(
    "churnops_model_reloads",
    "Alias polls that swapped (or failed to swap) the model.",
    ["model_name", "outcome"],
)


class DriftWindow:
    """The last ``size`` scored records of one model version, against its reference profile.

    ``add`` (hot path) copies a batch into ring buffers; ``feature_psi`` and
    ``prediction_psi`` (scrape time) bin the window and call ``churnops.monitoring.drift``.
    """

    def __init__(self, profile: Mapping | None, *, size: int = WINDOW_ROWS):
        self.profile = profile
        self.size = size
        self.numeric = np.full((size, len(contract.NUMERIC)), np.nan)
        self.codes = np.full((size, len(contract.CATEGORICAL)), -1, dtype=np.int64)
        self.proba = np.zeros(size)
        self.count = 0
        self._pos = 0
        self._lock = threading.Lock()

    def add(self, numeric: np.ndarray, codes: np.ndarray, proba: np.ndarray) -> None:
        n = len(proba)
        if n > self.size:
            numeric, codes, proba, n = (
                numeric[-self.size :],
                codes[-self.size :],
                proba[-self.size :],
                self.size,
            )
        with self._lock:
            first = min(n, self.size - self._pos)
            for dst, src in ((self.numeric, numeric), (self.codes, codes), (self.proba, proba)):
                dst[self._pos : self._pos + first] = src[:first]
                if first < n:
                    dst[: n - first] = src[first:]
            self._pos = (self._pos + n) % self.size
            self.count = min(self.count + n, self.size)

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with self._lock:
            k = self.count
            return self.numeric[:k].copy(), self.codes[:k].copy(), self.proba[:k].copy()

    def drift(self, *, min_rows: int = MIN_DRIFT_ROWS) -> tuple[dict[str, float], float | None]:
        """(PSI per feature, PSI of the churn probabilities); empty below ``min_rows``."""
        if self.profile is None or self.count < min_rows:
            return {}, None
        numeric, codes, proba = self._snapshot()
        out: dict[str, float] = {}
        for name, ref in self.profile.get("features", {}).items():
            if ref.get("kind") == "numeric" and name in contract.NUMERIC:
                counts = bin_numeric(numeric[:, contract.NUMERIC.index(name)], ref["edges"])
            elif ref.get("kind") == "categorical" and name in contract.CATEGORICAL:
                allowed = contract.BY_NAME[name].allowed
                categories = list(ref["categories"])
                # contract code → the profile's bin (unknown/missing is the last bin)
                to_bin = np.array(
                    [categories.index(a) if a in categories else len(categories) for a in allowed]
                    + [len(categories)]
                )
                counts = np.bincount(
                    to_bin[codes[:, contract.CATEGORICAL.index(name)]],
                    minlength=len(categories) + 1,
                ).astype(float)
            else:
                continue
            out[name] = psi(ref["fractions"], counts)
        prediction = self.profile.get("prediction")
        pred_psi = psi(prediction["fractions"], bin_probabilities(proba)) if prediction else None
        return out, pred_psi


class ServingCollector(Collector):
    """Exposes ``churnops_churn_probability`` (bulk-updated histogram), ``churnops_feature_psi``
    and ``churnops_prediction_psi`` (computed from the current drift window on scrape)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], np.ndarray] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._windows: dict[str, tuple[str, DriftWindow]] = {}

    def observe_probabilities(self, model_name: str, model_version: str, proba: np.ndarray) -> None:
        counts = np.bincount(
            np.searchsorted(np.asarray(PROBABILITY_BUCKETS), proba, side="left"),
            minlength=len(PROBABILITY_BUCKETS) + 1,
        )
        key = (model_name, model_version)
        with self._lock:
            if key not in self._buckets:
                self._buckets[key] = np.zeros(len(PROBABILITY_BUCKETS) + 1, dtype=np.int64)
                self._sums[key] = 0.0
            self._buckets[key] += counts
            self._sums[key] += float(proba.sum())

    def set_window(self, model_name: str, model_version: str, window: DriftWindow) -> None:
        with self._lock:
            self._windows[model_name] = (model_version, window)

    def collect(self) -> Iterator:
        hist = HistogramMetricFamily(
            "churnops_churn_probability",
            "Per-record churn probability.",
            labels=["model_name", "model_version"],
        )
        with self._lock:
            items = [(k, v.copy(), self._sums[k]) for k, v in self._buckets.items()]
            windows = list(self._windows.items())
        for (name, version), counts, total in items:
            cumulative = np.cumsum(counts)
            buckets = [
                (floatToGoString(b), int(c))
                for b, c in zip(PROBABILITY_BUCKETS, cumulative, strict=False)
            ]
            buckets.append(("+Inf", int(cumulative[-1])))
            hist.add_metric([name, version], buckets, total)
        yield hist
        features = GaugeMetricFamily(
            "churnops_feature_psi",
            "PSI of the sliding request window vs the training distribution.",
            labels=["model_name", "model_version", "feature"],
        )
        prediction = GaugeMetricFamily(
            "churnops_prediction_psi",
            "PSI of the sliding window of churn probabilities vs the test split.",
            labels=["model_name", "model_version"],
        )
        for name, (version, window) in windows:
            per_feature, pred_psi = window.drift()
            for feature, value in per_feature.items():
                features.add_metric([name, version, feature], value)
            if pred_psi is not None:
                prediction.add_metric([name, version], pred_psi)
        yield features
        yield prediction


COLLECTOR = ServingCollector()
REGISTRY.register(COLLECTOR)


class RequestMetrics:
    """Label children of one (model name, version), cached so the hot path skips lookups."""

    def __init__(self, model_name: str, model_version: str):
        self.model_name = model_name
        self.model_version = model_version
        self.rows = ROWS_SCORED.labels(model_name, model_version)
        self.churn = PREDICTED_CHURN.labels(model_name, model_version)
        self._latency = {
            p: REQUEST_SECONDS.labels(model_name, model_version, p) for p in ("v1", "v2")
        }
        self._requests: dict[tuple[str, int], object] = {}

    def request(self, protocol: str, code: int, seconds: float) -> None:
        child = self._requests.get((protocol, code))
        if child is None:
            child = self._requests[(protocol, code)] = REQUESTS.labels(
                self.model_name, self.model_version, protocol, str(code)
            )
        child.inc()  # type: ignore[attr-defined]
        latency = self._latency.get(protocol)
        if latency is not None:
            latency.observe(seconds)

    def scored(self, proba: np.ndarray, churn: np.ndarray) -> None:
        self.rows.inc(len(proba))
        positives = int(churn.sum())
        if positives:
            self.churn.inc(positives)
        COLLECTOR.observe_probabilities(self.model_name, self.model_version, proba)


def validation_error(model_name: str, field: str) -> None:
    VALIDATION_ERRORS.labels(model_name, field).inc()


def unknown_categories(model_name: str, counts: Mapping[str, int]) -> None:
    for field, n in counts.items():
        UNKNOWN_CATEGORIES.labels(model_name, field).inc(n)
