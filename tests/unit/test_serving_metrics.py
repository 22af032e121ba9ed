"""The drift window agrees with churnops.monitoring.drift, and wraps around correctly."""

from __future__ import annotations

import numpy as np

from churnops.data import contract
from churnops.data.generate import GeneratorConfig, generate
from churnops.model.features import model_input
from churnops.monitoring.drift import bin_probabilities, build_profile, feature_psi, psi
from churnops.serving.metrics import DriftWindow, ServingCollector
from churnops.serving.validation import columns_from_frame


def test_window_psi_equals_monitoring_psi() -> None:
    reference = model_input(generate(GeneratorConfig(rows=3000, seed=1)))
    rng = np.random.default_rng(0)
    profile = build_profile(reference, rng.random(3000))
    serving = model_input(generate(GeneratorConfig(rows=700, seed=2, drift=0.8)))
    serving.loc[:5, "Contract"] = "Weekly"  # unknown category: the "missing/unknown" bin
    cols = columns_from_frame(serving)
    proba = rng.random(700) ** 2
    window = DriftWindow(profile, size=500)
    for start in range(0, 700, 150):  # wraps around the 500-row ring
        window.add(
            cols.numeric[start : start + 150],
            cols.codes[start : start + 150],
            proba[start : start + 150],
        )
    per_feature, pred = window.drift(min_rows=1)
    tail = serving.iloc[-500:]
    expected = feature_psi(profile, {c: tail[c].tolist() for c in contract.FEATURE_NAMES})
    assert set(per_feature) == set(contract.FEATURE_NAMES)
    for name, value in expected.items():
        assert abs(per_feature[name] - value) < 1e-12, name
    assert (
        abs(pred - psi(profile["prediction"]["fractions"], bin_probabilities(proba[-500:]))) < 1e-12
    )
    assert per_feature["Contract"] > 0.1  # drifted


def test_window_reports_nothing_below_minimum() -> None:
    window = DriftWindow({"features": {}, "prediction": None}, size=10)
    assert window.drift(min_rows=5) == ({}, None)


def test_probability_histogram_buckets() -> None:
    collector = ServingCollector()
    collector.observe_probabilities("churn", "7", np.array([0.01, 0.05, 0.051, 0.5, 1.0]))
    hist = next(iter(collector.collect()))
    buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
    assert buckets["0.05"] == 2 and buckets["0.1"] == 3 and buckets["0.5"] == 4
    assert buckets["0.95"] == 4 and buckets["1.0"] == 5 and buckets["+Inf"] == 5
