"""Training settings, apart from the training code: the CLI reads their defaults without
importing scikit-learn (every ``churnops`` command builds the whole parser)."""

from __future__ import annotations

from dataclasses import dataclass

from churnops.model.candidates import DEFAULT_CANDIDATES


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        seed: Seeds the split, the folds, subsampling and the models.
        test_size: Share of rows held out for evaluation, stratified on the label.
        candidates: Candidate names (see ``churnops.model.candidates``).
        search_folds: Folds of the grid search.
        threshold_folds: Folds of the out-of-fold predictions that choose the threshold
            and rank candidates.
        search_rows: At most this many training rows go into search and threshold CV.
        n_jobs: Parallel workers (-1: all cores).
    """

    seed: int = 42
    test_size: float = 0.2
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    search_folds: int = 3
    threshold_folds: int = 5
    search_rows: int = 50_000
    n_jobs: int = -1
