"""Splitting, candidate training and selection.

Each candidate gets a small cross-validated grid search, then out-of-fold probabilities
on the training split choose its decision threshold (F1), then one final fit on the
whole training split. The test split is never seen here. On large tables the search
and the threshold cross-validation run on a stratified subsample (``search_rows``) and
only the final fit sees every row, so cost grows with the final fit alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import (
    FixedThresholdClassifier,
    GridSearchCV,
    StratifiedKFold,
    cross_val_predict,
    train_test_split,
)

from churnops.data import contract
from churnops.model.candidates import spec
from churnops.model.config import TrainConfig
from churnops.model.features import model_input
from churnops.model.threshold import best_f1_threshold
from churnops.progress import log


@dataclass
class Split:
    train: pd.DataFrame
    test: pd.DataFrame


@dataclass
class Candidate:
    """A trained candidate: one model = preprocessing + classifier + threshold.

    Attributes:
        model: ``FixedThresholdClassifier`` around the fitted Pipeline; ``predict_proba``
            gives probabilities, ``predict`` applies ``threshold``.
        cv_roc_auc: Out-of-fold ROC AUC on the training split (used for selection).
        cv_f1: Out-of-fold F1 at the chosen threshold.
    """

    name: str
    model: FixedThresholdClassifier
    params: dict
    threshold: float
    cv_roc_auc: float
    cv_f1: float
    fit_seconds: float
    search_rows: int
    cv_scores: dict = field(default_factory=dict)


def split(frame: pd.DataFrame, *, test_size: float = 0.2, seed: int = 42) -> Split:
    """Stratified, seeded train/test split of a typed frame that has the label."""
    train, test = train_test_split(
        frame, test_size=test_size, random_state=seed, stratify=frame[contract.LABEL.name]
    )
    return Split(train.reset_index(drop=True), test.reset_index(drop=True))


def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Model input and 0/1 label of a typed frame."""
    return model_input(frame), frame[contract.LABEL.name].to_numpy(dtype=np.int64)


def _subsample(
    x: pd.DataFrame, y: np.ndarray, rows: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    if len(y) <= rows:
        return x, y
    keep, _ = train_test_split(np.arange(len(y)), train_size=rows, random_state=seed, stratify=y)
    keep = np.sort(keep)
    return x.iloc[keep], y[keep]


def train_candidate(
    name: str, train: pd.DataFrame, *, config: TrainConfig = TrainConfig()
) -> Candidate:
    """Search, choose the threshold and fit one candidate on the training split.

    Raises:
        ValueError: Unknown candidate name.
    """
    family = spec(name)
    x, y = xy(train)
    xs, ys = _subsample(x, y, config.search_rows, config.seed)
    # Workers parallelize across folds; each estimator stays single-threaded meanwhile.
    base = family.build(config.seed, 1, len(ys))
    search = GridSearchCV(
        base,
        family.grid,
        scoring="roc_auc",
        cv=StratifiedKFold(config.search_folds, shuffle=True, random_state=config.seed),
        n_jobs=config.n_jobs,
        refit=False,
    )
    log(
        f"train[{name}]: grid search over {len(_grid_points(family.grid))} settings on {len(ys):,} rows"
    )
    search.fit(xs, ys)
    params = dict(search.best_params_)
    oof = cross_val_predict(
        clone(base).set_params(**params),
        xs,
        ys,
        cv=StratifiedKFold(config.threshold_folds, shuffle=True, random_state=config.seed + 1),
        method="predict_proba",
        n_jobs=config.n_jobs,
    )[:, 1]
    threshold, cv_f1 = best_f1_threshold(ys, oof)
    cv_roc_auc = float(roc_auc_score(ys, oof))
    log(
        f"train[{name}]: best {params}, out-of-fold ROC AUC {cv_roc_auc:.4f}, threshold {threshold:.3f}"
    )

    final = family.build(config.seed, config.n_jobs, len(y)).set_params(**params)
    start = time.perf_counter()
    final.fit(x, y)
    fit_seconds = time.perf_counter() - start
    log(f"train[{name}]: final fit on {len(y):,} rows in {fit_seconds:.1f}s")
    model = FixedThresholdClassifier(
        FrozenEstimator(final), threshold=threshold, response_method="predict_proba"
    )
    model.fit(x, y)  # the estimator is frozen: this records classes, it does not refit
    return Candidate(
        name=name,
        model=model,
        params=params,
        threshold=threshold,
        cv_roc_auc=cv_roc_auc,
        cv_f1=cv_f1,
        fit_seconds=fit_seconds,
        search_rows=len(ys),
        cv_scores={
            str(p): float(s)
            for p, s in zip(
                search.cv_results_["params"], search.cv_results_["mean_test_score"], strict=True
            )
        },
    )


def _grid_points(grid: dict[str, list]) -> list[dict]:
    from sklearn.model_selection import ParameterGrid

    return list(ParameterGrid(grid))


def select(candidates: list[Candidate]) -> Candidate:
    """The candidate with the best out-of-fold ROC AUC on the training split.

    Ranking on training-split cross-validation keeps the test split an unbiased estimate
    of the winner's performance.
    """
    if not candidates:
        raise ValueError("no candidate to select from")
    return max(candidates, key=lambda c: c.cv_roc_auc)
