"""Population stability index (PSI) against a reference profile stored with each model.

A profile describes the training distribution of every feature (numeric: decile bins;
categorical: the contract's values plus "missing/unknown") and the distribution of the
model's churn probabilities on the test split. The model server keeps a sliding window
of recent requests and reports PSI per feature; the rollout analysis uses the same
function to compare canary and stable prediction histograms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from churnops.data import contract

PROBABILITY_EDGES: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""Upper bucket bounds of the churn-probability histogram (0.05 … 0.95; +Inf implied)."""

_EPS = 1e-4


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins, on fractions (counts are normalized).

    Empty bins get a small floor so one unseen bin does not make PSI infinite.
    0.1 is commonly read as "moderate shift", 0.2 as "significant".
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.sum() <= 0 or a.sum() <= 0:
        return 0.0
    e = np.clip(e / e.sum(), _EPS, None)
    a = np.clip(a / a.sum(), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_edges(values: pd.Series, bins: int = 10) -> list[float]:
    finite = values.dropna().to_numpy(dtype=float)
    if finite.size == 0:
        return []
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    return [float(x) for x in edges]


def bin_numeric(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Counts per bin: ``len(edges) + 1`` value bins plus one bin for missing."""
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    idx = np.searchsorted(np.asarray(edges, dtype=float), values[~missing], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return np.append(counts, missing.sum())


def bin_categorical(values: Sequence[object], categories: Sequence[str]) -> np.ndarray:
    """Counts per contract category plus one bin for missing or unknown values."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories) + 1)
    for v in values:
        counts[index.get(v, len(categories))] += 1  # type: ignore[call-overload]
    return counts


def bin_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Counts per churn-probability bucket (same edges as the Prometheus histogram)."""
    idx = np.searchsorted(
        np.asarray(PROBABILITY_EDGES), np.asarray(probabilities, dtype=float), side="left"
    )
    return np.bincount(idx, minlength=len(PROBABILITY_EDGES) + 1).astype(float)


def build_profile(features: pd.DataFrame, test_probabilities: np.ndarray) -> dict:
    """The reference profile stored with a model (JSON-serialisable)."""
    profile: dict = {"features": {}, "prediction": {}}
    for f in contract.FEATURES:
        col = features[f.name]
        if f.is_numeric:
            edges = _numeric_edges(col)
            counts = bin_numeric(col.to_numpy(dtype=float), edges)
            profile["features"][f.name] = {
                "kind": "numeric",
                "edges": edges,
                "fractions": _fractions(counts),
            }
        else:
            counts = np.append(
                col.value_counts().reindex(list(f.allowed), fill_value=0).to_numpy(),
                col.isna().sum(),
            )
            profile["features"][f.name] = {
                "kind": "categorical",
                "categories": list(f.allowed),
                "fractions": _fractions(counts),
            }
    profile["prediction"] = {
        "edges": list(PROBABILITY_EDGES),
        "fractions": _fractions(bin_probabilities(test_probabilities)),
    }
    return profile


def feature_psi(profile: Mapping, columns: Mapping[str, Sequence[object]]) -> dict[str, float]:
    """PSI per feature of a window of records (column name → values) against ``profile``."""
    out = {}
    for name, ref in profile["features"].items():
        if name not in columns or len(columns[name]) == 0:
            continue
        if ref["kind"] == "numeric":
            counts = bin_numeric(np.asarray(columns[name], dtype=float), ref["edges"])
        else:
            counts = bin_categorical(columns[name], ref["categories"])
        out[name] = psi(ref["fractions"], counts)
    return out


def _fractions(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]
