"""Candidate model families and their small search spaces.

The grids are deliberately small and centred on settings that work on the public Telco
export (shallow boosted trees with shrinkage, moderately regularized logistic
regression, random forests with leaves large enough to give calibrated-ish scores).
Class imbalance (about 1 churner in 4) is handled by the decision threshold, which is
tuned for F1 on out-of-fold predictions; re-weighting classes would only distort the
probabilities that the server reports and the drift monitor compares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the families' libraries load when one is built, not with the names
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class CandidateSpec:
    """A model family: how to build it and which hyper-parameters to search.

    Attributes:
        name: Short name used in params, run names and the pipeline's candidate list.
        build: ``build(seed, n_jobs, rows)`` → an unfitted preprocessing+classifier Pipeline.
        grid: Parameter grid over the Pipeline (``clf__…`` keys).
    """

    name: str
    build: Callable[[int, int, int], BaseEstimator]
    grid: dict[str, list]


def _logreg(seed: int, n_jobs: int, rows: int) -> Pipeline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from churnops.model.features import preprocessor

    return Pipeline(
        [
            ("pre", preprocessor(scale=True)),
            ("clf", LogisticRegression(max_iter=2000, random_state=seed)),
        ]
    )


def _random_forest(seed: int, n_jobs: int, rows: int) -> Pipeline:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline

    from churnops.model.features import preprocessor

    # Bootstrap samples are capped so very large tables cost time linear in trees, not rows.
    max_samples = None if rows <= 200_000 else 200_000 / rows
    clf = RandomForestClassifier(
        n_estimators=300,
        max_features="sqrt",
        max_samples=max_samples,
        n_jobs=n_jobs,
        random_state=seed,
    )
    return Pipeline([("pre", preprocessor(scale=False)), ("clf", clf)])


def _xgboost(seed: int, n_jobs: int, rows: int) -> Pipeline:
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier

    from churnops.model.features import preprocessor

    clf = XGBClassifier(
        n_estimators=400,
        learning_rate=0.03,
        subsample=0.8,
        colsample_bytree=0.8,
        tree_method="hist",
        eval_metric="logloss",
        n_jobs=n_jobs,
        random_state=seed,
    )
    return Pipeline([("pre", preprocessor(scale=False)), ("clf", clf)])


CANDIDATES: dict[str, CandidateSpec] = {
    spec.name: spec
    for spec in (
        CandidateSpec("logreg", _logreg, {"clf__C": [0.03, 0.1, 0.3, 1.0]}),
        CandidateSpec(
            "random_forest",
            _random_forest,
            {"clf__min_samples_leaf": [10, 25], "clf__max_depth": [8, None]},
        ),
        CandidateSpec(
            "xgboost",
            _xgboost,
            {"clf__max_depth": [2, 3, 4], "clf__min_child_weight": [1, 5]},
        ),
    )
}

DEFAULT_CANDIDATES: tuple[str, ...] = tuple(CANDIDATES)


def spec(name: str) -> CandidateSpec:
    """The candidate called ``name``.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    try:
        return CANDIDATES[name]
    except KeyError:
        raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}") from None
