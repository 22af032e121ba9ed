"""Threshold selection, the promotion gate and drift statistics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from churnops.model.threshold import best_f1_threshold
from churnops.monitoring.drift import bin_probabilities, psi
from churnops.registry import GateConfig, gate


def test_threshold_maximizes_f1_against_brute_force():
    rng = np.random.default_rng(0)
    y = rng.random(600) < 0.3
    p = np.clip(y * 0.3 + rng.random(600) * 0.7, 0, 1).round(3)
    threshold, best = best_f1_threshold(y, p)
    brute = max(f1_score(y, p >= t) for t in np.unique(p))
    assert best == pytest.approx(brute)
    assert f1_score(y, p >= threshold) == pytest.approx(brute)


def test_threshold_separable_and_degenerate_cases():
    assert best_f1_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == (0.8, 1.0)
    with pytest.raises(ValueError, match="no positive"):
        best_f1_threshold(np.zeros(4), np.linspace(0, 1, 4))


GOOD = {"roc_auc": 0.85, "f1": 0.63}


def test_gate_first_model_needs_only_the_floors():
    assert gate(GOOD, None).promote
    decision = gate({"roc_auc": 0.7, "f1": 0.4}, None)
    assert not decision.promote and len(decision.reasons) == 2


def test_gate_compares_with_the_champion_within_tolerance():
    config = GateConfig(tolerance=0.005)
    assert gate(GOOD, {"roc_auc": 0.854, "f1": 0.7}, champion_version="3", config=config).promote
    worse = gate(GOOD, {"roc_auc": 0.86, "f1": 0.6}, champion_version="3", config=config)
    assert not worse.promote
    assert "worse than champion v3" in worse.reasons[0]


def test_psi_is_zero_for_equal_and_large_for_shifted_distributions():
    ref = bin_probabilities(np.random.default_rng(1).beta(2, 5, 5000))
    same = bin_probabilities(np.random.default_rng(2).beta(2, 5, 5000))
    shifted = bin_probabilities(np.random.default_rng(3).beta(5, 2, 5000))
    assert psi(ref, same) < 0.02
    assert psi(ref, shifted) > 1.0
