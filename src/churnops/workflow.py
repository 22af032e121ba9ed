"""The training flow, step by step: ingest → split → train candidates → evaluate → publish.

``run_training`` runs every step in-process (``churnops train``); the KFP components
call the same step functions one per container. ``publish`` is the only step that
writes to the registry, and it runs last, so a failure anywhere before it registers
nothing.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnops import registry, tracking
from churnops.data import ValidationConfig, ValidationReport, contract
from churnops.data.io import describe_source, dvc_lineage, is_dvc, iter_raw
from churnops.data.validate import _run as _validate_chunks
from churnops.errors import ContractViolation, ModelLoadError
from churnops.model.evaluate import Evaluation, evaluate, model_card, plots, score
from churnops.model.train import Candidate, Split, TrainConfig, select, split, train_candidate, xy
from churnops.monitoring.drift import build_profile
from churnops.progress import Progress, log


@dataclass(frozen=True)
class Ingested:
    frame: pd.DataFrame
    report: ValidationReport
    digest: str


def ingest(data_uri: str, *, config: ValidationConfig = ValidationConfig()) -> Ingested:
    """Read and validate; the report is returned even when it fails (callers log it).

    Raises:
        DataSourceError: The data cannot be read.
    """
    digest = tracking.content_digest(data_uri)
    report, frame = _validate_chunks(
        iter_raw(data_uri), data_uri, config, keep=True, progress=Progress("ingest")
    )
    return Ingested(frame if frame is not None else pd.DataFrame(), report, digest)


def log_validation(report: ValidationReport, run_id: str) -> None:
    """Attach the validation report (Markdown + JSON) to MLflow run ``run_id``."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.log_text(run_id, report.to_markdown(), "validation/report.md")
    client.log_text(run_id, report.to_json(), "validation/report.json")
    client.set_tag(run_id, "validation", "passed" if report.ok else "failed")


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


def log_candidates(comparison: dict[str, dict[str, Any]]) -> None:
    """One nested MLflow run per candidate under the active run."""
    import mlflow

    # The parent's experiment, explicitly: a pipeline step resumes the parent run by id
    # and has no active experiment of its own.
    experiment_id = mlflow.active_run().info.experiment_id  # type: ignore[union-attr]
    for name, entry in comparison.items():
        with mlflow.start_run(run_name=name, nested=True, experiment_id=experiment_id):
            mlflow.log_params({"candidate": name, **entry["params"]})
            mlflow.log_metrics({k: v for k, v in entry.items() if isinstance(v, int | float)})


def train_candidates(train: pd.DataFrame, *, config: TrainConfig) -> list[Candidate]:
    progress = Progress("train", len(config.candidates), unit="candidates", every=0)
    out = []
    for name in config.candidates:
        out.append(train_candidate(name, train, config=config))
        progress.update(1)
    return out


def evaluate_candidate(candidate: Candidate, test: pd.DataFrame) -> Evaluation:
    x, y = xy(test)
    return evaluate(y, candidate.model.predict_proba(x)[:, 1], candidate.threshold)


def publish(
    winner: Candidate,
    evaluation: Evaluation,
    *,
    split_: Split,
    comparison: dict[str, dict[str, Any]],
    label_rate: float | None,
    data_uri: str,
    data_digest: str,
    model_name: str,
    gate_config: registry.GateConfig,
) -> dict[str, Any]:
    """Log the winner to the active MLflow run, register it as ``challenger`` and gate it.

    Returns:
        The output contract's JSON summary.
    """
    import mlflow

    run_id = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    metrics = evaluation.metrics
    mlflow.log_params(
        {
            "candidate": winner.name,
            "threshold": round(winner.threshold, 6),
            **{f"best.{k}": v for k, v in winner.params.items()},
        }
    )
    mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
    mlflow.log_metrics({"cv_roc_auc": winner.cv_roc_auc, "cv_f1": winner.cv_f1})
    with tempfile.TemporaryDirectory() as tmp:
        plots(evaluation, tmp, title=f"{model_name} ({winner.name})")
        mlflow.log_artifacts(tmp, "plots")
    card = model_card(
        model_name=model_name,
        candidate=winner.name,
        params=winner.params,
        threshold=winner.threshold,
        metrics=metrics,
        comparison=comparison,
        data_source=describe_source(data_uri),
        data_digest=data_digest,
        rows={"train": len(split_.train), "test": len(split_.test)},
        label_rate=label_rate,
        run_id=run_id,
    )
    mlflow.log_text(card, "model_card.md")
    mlflow.log_text(json.dumps(comparison, indent=2), "candidates.json")

    x_train, _ = xy(split_.train)
    x_test, y_test = xy(split_.test)
    model_uri = tracking.log_model(
        winner.model,
        input_example=x_test.head(5),
        profile=build_profile(x_train, evaluation.probabilities),
        metadata={
            "threshold": winner.threshold,
            "candidate": winner.name,
            "data_digest": data_digest,
        },
    )
    tags = {
        "candidate": winner.name,
        "threshold": f"{winner.threshold:.6f}",
        "data_digest": data_digest,
        "git_commit": tracking.git_commit(),
        **{f"metric.{k}": f"{v:.6f}" for k, v in metrics.items()},
    }
    version = registry.register(model_uri, name=model_name, run_id=run_id, tags=tags)
    decision = _gate(model_name, version, x_test, y_test, metrics, gate_config)
    registry.tag_version(
        model_name,
        version,
        {
            "gate": "passed" if decision.promote else "rejected",
            "gate_reasons": "; ".join(decision.reasons)[:4000],
        },
    )
    if decision.promote:
        registry.promote(model_name, version)
        log(f"publish: {model_name} v{version} promoted to champion")
    else:
        log(f"publish: {model_name} v{version} stays challenger: {'; '.join(decision.reasons)}")
    mlflow.set_tags({"registered_version": version, "promoted": str(decision.promote).lower()})
    return {
        "run_id": run_id,
        "model_name": model_name,
        "version": version,
        "model_uri": f"models:/{model_name}/{version}",
        "candidate": winner.name,
        "metrics": metrics,
        "threshold": winner.threshold,
        "aliases": registry.aliases(model_name),
        "promoted": decision.promote,
        "gate": decision.to_dict(),
        "data_digest": data_digest,
        "experiment_id": mlflow.active_run().info.experiment_id,  # type: ignore[union-attr]
    }


def _gate(
    name: str,
    version: str,
    x_test: pd.DataFrame,
    y_test: np.ndarray,
    metrics: dict[str, float],
    config: registry.GateConfig,
) -> registry.GateDecision:
    try:
        current = registry.champion_scores(name, x_test)
    except ModelLoadError as err:
        # A broken champion is no reason to keep it: the challenger only has to meet the floors.
        log(f"publish: {err}; gating on absolute minimums only")
        current = None
    if current is None or current[0] == version:
        return registry.gate(metrics, None, config=config)
    champion_version, proba = current
    threshold = float(registry.version_tags(name, champion_version).get("threshold", 0.5))
    return registry.gate(
        metrics, score(y_test, proba, threshold), champion_version=champion_version, config=config
    )


def run_training(
    data_uri: str,
    *,
    tracking_uri: str,
    model_name: str = "churn",
    experiment: str = "churn",
    train_config: TrainConfig = TrainConfig(),
    gate_config: registry.GateConfig = registry.GateConfig(),
    validation_config: ValidationConfig = ValidationConfig(),
) -> dict[str, Any]:
    """The whole flow in-process; returns the JSON summary of the output contract.

    Raises:
        ContractViolation: The data breaks the contract (the MLflow run is marked FAILED
            with the report attached; nothing is registered).
        RegistryUnavailable: MLflow cannot be reached.
    """
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    tracking.connect(tracking_uri)
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"train-{model_name}") as run:
        mlflow.set_tags(
            {"churnops.data_uri": data_uri, "churnops.git_commit": tracking.git_commit()}
        )
        if is_dvc(data_uri):  # DVC lineage beside the sha256: repo, rev, commit, md5
            mlflow.set_tags({f"churnops.dvc.{k}": v for k, v in dvc_lineage(data_uri).items()})
        mlflow.log_params(
            {
                k: (",".join(v) if isinstance(v, tuple) else v)
                for k, v in asdict(train_config).items()
            }
        )
        mlflow.log_params({f"gate.{k}": v for k, v in asdict(gate_config).items()})
        data = ingest(data_uri, config=validation_config)
        log_validation(data.report, run.info.run_id)
        data.report.raise_for_violations()
        log(
            f"ingest: {data.report.rows:,} rows, churn rate {data.report.label_rate:.1%}, "
            f"{len(data.report.warnings)} warning(s)"
        )
        mlflow.log_input(
            from_pandas(
                data.frame.head(0),
                source=data_uri,
                targets=contract.LABEL.name,
                name=Path(data_uri).name,
                digest=data.digest[:32],
            ),
            context="training",
        )
        parts = split(data.frame, test_size=train_config.test_size, seed=train_config.seed)
        candidates = train_candidates(parts.train, config=train_config)
        evaluations = {c.name: evaluate_candidate(c, parts.test) for c in candidates}
        comparison = compare(candidates, evaluations)
        log_candidates(comparison)
        winner = select(candidates)
        log(f"select: {winner.name} (out-of-fold ROC AUC {winner.cv_roc_auc:.4f})")
        summary = publish(
            winner,
            evaluations[winner.name],
            split_=parts,
            comparison=comparison,
            label_rate=data.report.label_rate,
            data_uri=data_uri,
            data_digest=data.digest,
            model_name=model_name,
            gate_config=gate_config,
        )
        assert summary["run_id"] == run.info.run_id
        return summary


__all__ = ["ContractViolation", "ingest", "publish", "run_training"]
