"""Decision-threshold selection on out-of-fold training predictions (never the test split)."""

from __future__ import annotations

import numpy as np


def best_f1_threshold(y_true: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """The probability threshold that maximizes F1 on ``(y_true, probabilities)``.

    Every distinct score is a candidate; a record is positive when its probability is
    >= the threshold. Ties prefer the higher threshold (fewer false alarms).

    Returns:
        ``(threshold, f1)``.

    Raises:
        ValueError: ``y_true`` has no positive example.
    """
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(probabilities, dtype=float)
    positives = int(y.sum())
    if positives == 0:
        raise ValueError("cannot choose a threshold: no positive example")
    order = np.argsort(-p, kind="mergesort")
    p_sorted, y_sorted = p[order], y[order]
    tp = np.cumsum(y_sorted)
    predicted = np.arange(1, len(p) + 1)
    # Only the last index of each run of equal scores is a reachable cut.
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    f1 = 2 * tp[last] / (predicted[last] + positives)
    best = int(np.argmax(f1))  # first maximum = highest threshold among ties
    return float(p_sorted[last][best]), float(f1[best])
