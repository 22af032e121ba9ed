"""The pipeline steps as plain functions: file paths and plain values in, dicts out.

Each KFP component in ``components/`` is a few lines around one of these, so the
pipeline runs the same code as ``churnops train`` and is tested in-process. Steps that
touch MLflow are idempotent (a KFP retry finds the run or version it created before).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from churnops import registry, tracking, workflow
from churnops.data import ValidationConfig
from churnops.model import serialize
from churnops.model.train import Candidate, TrainConfig, select, split, train_candidate
from churnops.progress import log

RUN_KEY_TAG = "churnops.run_key"


def _find_run(run_key: str) -> Any | None:
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
        max_results=1,
    )
    return runs[0] if runs else None


def open_run(
    *, tracking_uri: str, experiment: str, model_name: str, run_key: str, params: dict[str, Any]
) -> str:
    """Create (or, on retry, find) the MLflow run that the whole pipeline run logs into."""
    import mlflow
    from mlflow import MlflowClient

    tracking.connect(tracking_uri)
    if (existing := _find_run(run_key)) is not None:
        return str(existing.info.run_id)
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    client = MlflowClient()
    run = client.create_run(
        experiment_id,
        run_name=f"pipeline-{model_name}",
        tags={
            RUN_KEY_TAG: run_key,
            "churnops.data_uri": str(params.get("data_uri", "")),
            "churnops.git_commit": tracking.git_commit(),
            "churnops.orchestrator": "kfp",
        },
    )
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    return str(run.info.run_id)


def ingest(
    *,
    data_uri: str,
    dataset_path: str,
    tracking_uri: str,
    run_id: str,
    config: ValidationConfig = ValidationConfig(),
) -> dict[str, Any]:
    """Read + validate; write the typed table as Parquet. The report goes to MLflow either way.

    Raises:
        ContractViolation: After the report is logged, so the failed run shows why.
    """
    data = workflow.ingest(data_uri, config=config)
    tracking.connect(tracking_uri)
    registry.retry(
        lambda: workflow.log_validation(data.report, run_id), what="log validation report"
    )
    result = {
        "rows": data.report.rows,
        "label_rate": data.report.label_rate,
        "digest": data.digest,
        "ok": data.report.ok,
        "violations": len(data.report.violations),
        "warnings": len(data.report.warnings),
        "markdown": data.report.to_markdown(),
    }
    data.report.raise_for_violations()
    data.frame.to_parquet(dataset_path, index=False)
    return result


def split_data(
    *, dataset_path: str, train_path: str, test_path: str, test_size: float, seed: int
) -> dict[str, int]:
    parts = split(pd.read_parquet(dataset_path), test_size=test_size, seed=seed)
    parts.train.to_parquet(train_path, index=False)
    parts.test.to_parquet(test_path, index=False)
    return {"train_rows": len(parts.train), "test_rows": len(parts.test)}


def train(
    *, train_path: str, candidate: str, model_path: str, config: TrainConfig
) -> dict[str, Any]:
    """Train one candidate; save it with skops; return its metadata."""
    trained = train_candidate(candidate, pd.read_parquet(train_path), config=config)
    serialize.dump(trained.model, model_path)
    meta = asdict(trained)
    meta.pop("model")
    return meta


def _candidate(model_path: str, meta: dict[str, Any]) -> Candidate:
    fields = {
        k: meta[k] for k in ("name", "params", "threshold", "cv_roc_auc", "cv_f1", "fit_seconds")
    }
    return Candidate(
        model=serialize.load(model_path),
        search_rows=int(meta["search_rows"]),
        cv_scores=dict(meta.get("cv_scores") or {}),
        **fields,
    )


def evaluate_select(
    *,
    candidates: list[tuple[str, dict[str, Any]]],
    test_path: str,
    winner_path: str,
    model_name: str,
    data_uri: str,
    digest: str,
    label_rate: float | None,
    metrics: Any,
    classification: Any,
    card_path: str,
) -> dict[str, Any]:
    """Evaluate every candidate on the test split, pick the winner (best CV ROC AUC),
    copy it to ``winner_path`` and write the KFP UI's evidence.

    Args:
        candidates: (model path, metadata) of each trained candidate.
        metrics: KFP ``Metrics`` artifact: per-candidate scores.
        classification: KFP ``ClassificationMetrics`` artifact: winner's ROC curve and
            confusion matrix.
        card_path: Where the Markdown model card goes.

    Returns:
        The winner's metadata with ``comparison`` (all candidates) added.
    """
    import shutil

    from churnops.model.evaluate import model_card

    loaded = [_candidate(path, meta) for path, meta in candidates]
    test = pd.read_parquet(test_path)
    evaluations = {c.name: workflow.evaluate_candidate(c, test) for c in loaded}
    winner = select(loaded)
    index = loaded.index(winner)
    shutil.copyfile(candidates[index][0], winner_path)
    comparison = workflow.compare(loaded, evaluations)
    for name, scores in comparison.items():
        for key, value in scores.items():
            if isinstance(value, int | float):
                metrics.log_metric(f"{name}.{key}", value)
    ev = evaluations[winner.name]
    roc = ev.roc_points()
    classification.log_roc_curve([p[0] for p in roc], [p[1] for p in roc], [p[2] for p in roc])
    classification.log_confusion_matrix(["stays", "churns"], ev.confusion())
    Path(card_path).write_text(
        model_card(
            model_name=model_name,
            candidate=winner.name,
            params=winner.params,
            threshold=winner.threshold,
            metrics=ev.metrics,
            comparison=comparison,
            data_source=data_uri,
            data_digest=digest,
            rows={"test": len(test)},
            label_rate=label_rate,
        )
    )
    return {**candidates[index][1], "comparison": comparison}


def register(
    *,
    winner_path: str,
    winner_meta: dict[str, Any],
    comparison: dict[str, dict[str, Any]],
    train_path: str,
    test_path: str,
    tracking_uri: str,
    run_id: str,
    model_name: str,
    data_uri: str,
    digest: str,
    label_rate: float | None,
    gate_config: registry.GateConfig,
) -> dict[str, Any]:
    """Log candidates and winner into the pipeline's MLflow run, register, gate, promote."""
    import mlflow

    tracking.connect(tracking_uri)
    winner = _candidate(winner_path, winner_meta)
    parts = workflow.Split(pd.read_parquet(train_path), pd.read_parquet(test_path))
    evaluation = workflow.evaluate_candidate(winner, parts.test)
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    with mlflow.start_run(run_id=run_id):
        # A retried step must not log the candidates twice.
        if not client.search_runs(
            [experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1
        ):
            workflow.log_candidates(comparison)
        return workflow.publish(
            winner,
            evaluation,
            split_=parts,
            comparison=comparison,
            label_rate=label_rate,
            data_uri=data_uri,
            data_digest=digest,
            model_name=model_name,
            gate_config=gate_config,
        )


def finalize(*, tracking_uri: str, run_key: str, state: str, model_name: str) -> dict[str, Any]:
    """Record the pipeline's final state on its MLflow run; undo half-registrations.

    A version created by this run that never got a gate decision (the run failed between
    registering and gating) is deleted, so a failed run never leaves a half-registered
    model. Runs as the pipeline's exit handler, also when earlier steps failed.
    """
    from mlflow import MlflowClient

    tracking.connect(tracking_uri)
    run = _find_run(run_key)
    if run is None:
        log(f"finalize: no MLflow run for {run_key} (the pipeline failed before opening one)")
        return {"run_id": None, "state": state, "removed_versions": []}
    client = MlflowClient()
    succeeded = state.upper() == "SUCCEEDED"
    removed = []
    if not succeeded:
        for mv in client.search_model_versions(
            f"name='{model_name}' and run_id='{run.info.run_id}'"
        ):
            if "gate" not in (mv.tags or {}):
                client.delete_model_version(model_name, mv.version)
                removed.append(str(mv.version))
    client.set_tag(run.info.run_id, "churnops.pipeline_state", state)
    client.set_terminated(run.info.run_id, "FINISHED" if succeeded else "FAILED")
    return {"run_id": run.info.run_id, "state": state, "removed_versions": removed}


def write_json(path: str | Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, default=str))
