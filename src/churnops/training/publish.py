"""Stage 5: log the winner to MLflow, register it as ``challenger``, gate it against the
champion on the same test split, and promote it when it passes."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnops import registry, tracking
from churnops.data.io import describe_source
from churnops.errors import ChampionChanged, ModelLoadError
from churnops.model.evaluate import Evaluation, model_card, plots, score
from churnops.model.train import Candidate, Split, xy
from churnops.monitoring.drift import build_profile
from churnops.progress import log
from churnops.training.fit import load_candidate
from churnops.training.selection import evaluate_candidate

_REGATES = 5  # a promotion race lost this often means something is wrong


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
    card_path: str | None = None,
) -> dict[str, Any]:
    """Log the winner to the active MLflow run, register it as ``challenger`` and gate it.

    Args:
        card_path: Also write the model card here (the pipeline's KFP Markdown artifact:
            the same card MLflow keeps, built once).

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
    if card_path:
        Path(card_path).write_text(card)
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
    registry.repair(model_name, keep_run_id=run_id)
    version = registry.register(model_uri, name=model_name, run_id=run_id, tags=tags)
    registry.describe_version(model_name, version, card)
    for _ in range(_REGATES):
        decision, seen = _gate(model_name, version, x_test, y_test, metrics, gate_config)
        registry.tag_version(
            model_name,
            version,
            {
                "gate": "passed" if decision.promote else "rejected",
                "gate_reasons": "; ".join(decision.reasons)[:4000],
            },
        )
        if not decision.promote:
            log(f"publish: {model_name} v{version} stays challenger: {'; '.join(decision.reasons)}")
            break
        try:
            registry.promote(model_name, version, expect_champion=seen)
        except ChampionChanged as moved:
            log(f"publish: {moved}; gating again")
            continue
        log(f"publish: {model_name} v{version} promoted to champion")
        break
    else:
        raise ChampionChanged(
            f"champion of {model_name} kept moving; v{version} stays challenger ({_REGATES} tries)"
        )
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
) -> tuple[registry.GateDecision, str | None]:
    """The gate decision, and the champion version it was decided against (``None``: no
    champion), which ``promote`` checks is still the champion."""
    seen = registry.aliases(name).get(registry.CHAMPION)
    try:
        current = registry.champion_scores(name, x_test)
    except ModelLoadError as err:
        # A broken champion is no reason to keep it: the challenger only has to meet the floors.
        log(f"publish: {err}; gating on absolute minimums only")
        return registry.gate(metrics, None, config=config), seen
    if current is None or current[0] == version:
        return registry.gate(metrics, None, config=config), seen if current is None else current[0]
    champion_version, proba = current
    threshold = float(registry.version_tags(name, champion_version).get("threshold", 0.5))
    decision = registry.gate(
        metrics, score(y_test, proba, threshold), champion_version=champion_version, config=config
    )
    return decision, champion_version


def register_files(
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
    card_path: str | None = None,
) -> dict[str, Any]:
    """Pipeline step: log candidates and winner into the pipeline's MLflow run, register,
    gate, promote; the model card also goes to ``card_path`` (the KFP UI's)."""
    import mlflow

    tracking.connect(tracking_uri)
    winner = load_candidate(winner_path, winner_meta)
    parts = Split(pd.read_parquet(train_path), pd.read_parquet(test_path))
    evaluation = evaluate_candidate(winner, parts.test)
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(run_id).info.experiment_id
    with mlflow.start_run(run_id=run_id):
        # A retried step must not log the candidates twice.
        if not client.search_runs(
            [experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'", max_results=1
        ):
            log_candidates(comparison)
        return publish(
            winner,
            evaluation,
            split_=parts,
            comparison=comparison,
            label_rate=label_rate,
            data_uri=data_uri,
            data_digest=digest,
            model_name=model_name,
            gate_config=gate_config,
            card_path=card_path,
        )
