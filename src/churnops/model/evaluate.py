"""Evaluation on the held-out test split: metrics, curves, pictures and the model card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

METRIC_NAMES = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "brier", "log_loss")


@dataclass
class Evaluation:
    """Scores of one model on one labelled set, at the model's threshold."""

    y_true: np.ndarray
    probabilities: np.ndarray
    threshold: float
    metrics: dict[str, float]

    @property
    def predictions(self) -> np.ndarray:
        return (self.probabilities >= self.threshold).astype(int)

    def confusion(self) -> list[list[int]]:
        """``[[tn, fp], [fn, tp]]`` (rows: actual No, Yes; columns: predicted No, Yes)."""
        return confusion_matrix(self.y_true, self.predictions, labels=[0, 1]).tolist()

    def roc_points(self, max_points: int = 200) -> list[tuple[float, float, float]]:
        """(fpr, tpr, threshold) down-sampled to at most ``max_points``, for KFP's UI."""
        fpr, tpr, thr = roc_curve(self.y_true, self.probabilities)
        thr = np.clip(thr, 0.0, 1.0)  # sklearn puts +inf first
        idx = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).astype(int))
        return [(float(fpr[i]), float(tpr[i]), float(thr[i])) for i in idx]


def score(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """The metric set of the output contract at ``threshold``."""
    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(probabilities, dtype=float), 0.0, 1.0)
    pred = (p >= threshold).astype(int)
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "accuracy": float(accuracy_score(y, pred)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
    }


def evaluate(y_true: np.ndarray, probabilities: np.ndarray, threshold: float) -> Evaluation:
    return Evaluation(
        np.asarray(y_true).astype(int),
        np.asarray(probabilities, dtype=float),
        threshold,
        score(y_true, probabilities, threshold),
    )


def plots(
    evaluation: Evaluation, out_dir: str | Path, *, title: str = "churn model"
) -> dict[str, Path]:
    """ROC curve, PR curve, confusion matrix and calibration plot as PNG files.

    Returns:
        name → path of each picture.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ev, m = evaluation, evaluation.metrics
    paths: dict[str, Path] = {}

    def save(fig, name: str) -> None:  # type: ignore[no-untyped-def]
        fig.tight_layout()
        paths[name] = out / f"{name}.png"
        fig.savefig(paths[name], dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(ev.y_true, ev.probabilities)
    ax.plot(fpr, tpr, label=f"ROC AUC {m['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    tn, fp, fn, tp = np.ravel(ev.confusion())
    ax.scatter(
        [fp / max(fp + tn, 1)],
        [tp / max(tp + fn, 1)],
        color="red",
        zorder=3,
        label=f"threshold {ev.threshold:.2f}",
    )
    ax.set(
        xlabel="false positive rate", ylabel="true positive rate (recall)", title=f"ROC — {title}"
    )
    ax.legend(loc="lower right")
    save(fig, "roc_curve")

    fig, ax = plt.subplots(figsize=(5, 5))
    precision, recall, _ = precision_recall_curve(ev.y_true, ev.probabilities)
    # sklearn ends the curve with (recall 0, precision 1), a point no threshold reaches.
    precision, recall = precision[:-1], recall[:-1]
    ax.plot(recall, precision, label=f"PR AUC {m['pr_auc']:.3f}")
    ax.axhline(ev.y_true.mean(), ls="--", color="grey", label=f"base rate {ev.y_true.mean():.2f}")
    ax.scatter(
        [m["recall"]],
        [m["precision"]],
        color="red",
        zorder=3,
        label=f"threshold {ev.threshold:.2f}",
    )
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision–recall — {title}", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    save(fig, "pr_curve")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    cm = np.asarray(ev.confusion())
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j, i, f"{v:,}", ha="center", va="center", color="white" if v > cm.max() / 2 else "black"
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["stays", "churns"],
        yticklabels=["stays", "churns"],
        xlabel="predicted",
        ylabel="actual",
        title=f"Confusion matrix @ {ev.threshold:.2f}",
    )
    save(fig, "confusion_matrix")

    fig, ax = plt.subplots(figsize=(5, 5))
    frac_pos, mean_pred = calibration_curve(
        ev.y_true, ev.probabilities, n_bins=10, strategy="quantile"
    )
    ax.plot(mean_pred, frac_pos, "o-", label=f"model (Brier {m['brier']:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.set(
        xlabel="mean predicted churn probability",
        ylabel="observed churn rate",
        title=f"Calibration — {title}",
    )
    ax.legend(loc="upper left")
    save(fig, "calibration")
    return paths


def model_card(
    *,
    model_name: str,
    candidate: str,
    params: dict,
    threshold: float,
    metrics: dict[str, float],
    comparison: dict[str, dict],
    data_source: str,
    data_digest: str,
    rows: dict[str, int],
    label_rate: float | None,
    run_id: str | None = None,
) -> str:
    """A Markdown model card: what the model is, how it was chosen, how well it does."""
    lines = [
        f"# Model card: {model_name} ({candidate})",
        "",
        "Predicts the probability that a customer churns, from the Telco Customer Churn record",
        f"layout. A customer is flagged as churning when the probability is >= **{threshold:.3f}**,",
        "the threshold that maximized F1 on out-of-fold predictions of the training split.",
        "",
        "## Data",
        f"- source: `{data_source}` (sha256 `{data_digest[:16]}…`)",
        f"- rows: train {rows.get('train', 0):,}, test {rows.get('test', 0):,}"
        + (f"; churn rate {label_rate:.1%}" if label_rate is not None else ""),
        "",
        "## Chosen model",
        f"- family: `{candidate}`; hyper-parameters: `{params}`",
        *([f"- MLflow run: `{run_id}`"] if run_id else []),
        "",
        "## Test-split metrics (held out, never used for fitting, threshold or selection)",
        "",
        "| metric | value |",
        "|---|---:|",
        *[f"| {k} | {v:.4f} |" for k, v in metrics.items()],
        "",
        "## Candidates (selection by out-of-fold ROC AUC on the training split)",
        "",
        "| candidate | cv roc_auc | test roc_auc | test f1 |",
        "|---|---:|---:|---:|",
        *[
            f"| {name} | {c.get('cv_roc_auc', float('nan')):.4f} | {c.get('roc_auc', float('nan')):.4f} | {c.get('f1', float('nan')):.4f} |"
            for name, c in comparison.items()
        ],
        "",
        "## Intended use and limits",
        "- Ranking customers for retention outreach; not for decisions about individuals without review.",
        "- Trained on the contract's fields only; values outside the contract are scored as unknown",
        "  (all-zero encoding) or rejected, depending on the server's setting.",
        "- Watch the drift dashboard: PSI above 0.2 on a feature means the population moved and the",
        "  scores may no longer be calibrated.",
    ]
    return "\n".join(lines) + "\n"
