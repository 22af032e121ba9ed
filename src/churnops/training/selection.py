"""Stage 4: evaluate every candidate on the held-out split and choose the winner."""

from __future__ import annotations

import shutil
from typing import Any

import pandas as pd

from churnops.model.evaluate import Evaluation, evaluate
from churnops.model.train import Candidate, select, xy
from churnops.training.fit import load_candidate


def evaluate_candidate(candidate: Candidate, test: pd.DataFrame) -> Evaluation:
    """Test-split metrics of one candidate at its own threshold."""
    x, y = xy(test)
    return evaluate(y, candidate.model.predict_proba(x)[:, 1], candidate.threshold)


def compare(
    candidates: list[Candidate], evaluations: dict[str, Evaluation]
) -> dict[str, dict[str, Any]]:
    """candidate → its hyper-parameters, cross-validation scores, threshold, fit time and
    test metrics (for the model card, the KFP UI and one MLflow child run each)."""
    return {
        c.name: {
            "params": c.params,
            "cv_roc_auc": c.cv_roc_auc,
            "cv_f1": c.cv_f1,
            "threshold": c.threshold,
            "fit_seconds": c.fit_seconds,
            **evaluations[c.name].metrics,
        }
        for c in candidates
    }


def evaluate_select_files(
    *,
    candidates: list[tuple[str, dict[str, Any]]],
    test_path: str,
    winner_path: str,
    metrics: Any,
    classification: Any,
) -> dict[str, Any]:
    """Pipeline step: evaluate every candidate on the test split, pick the winner (best CV
    ROC AUC), copy it to ``winner_path`` and write the KFP UI's evidence.

    Args:
        candidates: (model path, metadata) of each trained candidate.
        metrics: KFP ``Metrics`` artifact: per-candidate scores.
        classification: KFP ``ClassificationMetrics`` artifact: winner's ROC curve and
            confusion matrix.

    The model card is the register step's (``publish``): the one MLflow keeps.

    Returns:
        The winner's metadata with ``comparison`` (all candidates) added.
    """
    loaded = [load_candidate(path, meta) for path, meta in candidates]
    test = pd.read_parquet(test_path)
    evaluations = {c.name: evaluate_candidate(c, test) for c in loaded}
    winner = select(loaded)
    index = loaded.index(winner)
    shutil.copyfile(candidates[index][0], winner_path)
    comparison = compare(loaded, evaluations)
    for name, scores in comparison.items():
        for key, value in scores.items():
            if isinstance(value, int | float):
                metrics.log_metric(f"{name}.{key}", value)
    ev = evaluations[winner.name]
    roc = ev.roc_points()
    classification.log_roc_curve([p[0] for p in roc], [p[1] for p in roc], [p[2] for p in roc])
    classification.log_confusion_matrix(["stays", "churns"], ev.confusion())
    return {**candidates[index][1], "comparison": comparison}
