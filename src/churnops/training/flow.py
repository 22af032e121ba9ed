"""The whole training flow in-process (``churnops train``): every stage, one MLflow run.

``publish`` is the only stage that writes to the registry, and it runs last, so a failure
anywhere before it registers nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from dataclasses import asdict
from typing import Any

from churnops import registry, tracking
from churnops.data import ValidationConfig
from churnops.errors import UsageError
from churnops.model.train import TrainConfig, select, split
from churnops.progress import log
from churnops.training.fit import train_candidates
from churnops.training.ingest import ingest, log_dataset, log_validation
from churnops.training.publish import log_candidates, publish
from churnops.training.selection import compare, evaluate_candidate

# Unique to one `churnops train`: its run is found by it when MLflow created it twice.
START_TAG = "churnops.start_token"


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

    check_candidates(train_config.candidates)
    # Read before anything is created in MLflow: a missing file leaves no FAILED run.
    data = ingest(data_uri, config=validation_config)
    tracking.connect(tracking_uri)
    experiment_id = registry.retry(
        lambda: mlflow.set_experiment(experiment).experiment_id, what="set experiment"
    )
    start = {
        START_TAG: uuid.uuid4().hex,
        registry.HOST_TAG: socket.gethostname(),
        registry.PID_TAG: str(os.getpid()),
    }
    run = registry.retry(
        lambda: mlflow.start_run(
            run_name=f"train-{model_name}", experiment_id=experiment_id, tags=start
        ),
        what="start run",
    )
    run_id = run.info.run_id
    try:
        registry.drop_resent_runs(experiment_id, START_TAG, start[START_TAG], keep=run_id)
        mlflow.set_tags(
            {
                "churnops.data_uri": data_uri,
                "churnops.git_commit": tracking.git_commit(),
                "mlflow.note.content": f"`churnops train` of model {model_name} on {data_uri}",
            }
        )
        mlflow.log_params(
            {
                k: (",".join(v) if isinstance(v, tuple) else v)
                for k, v in asdict(train_config).items()
            }
        )
        mlflow.log_params({f"gate.{k}": v for k, v in asdict(gate_config).items()})
        log_validation(data.report, run_id)
        data.report.raise_for_violations()
        log(
            f"ingest: {data.report.rows:,} rows, churn rate {data.report.label_rate:.1%}, "
            f"{len(data.report.warnings)} warning(s)"
        )
        log_dataset(run_id, data, data_uri)
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
    except BaseException:
        _discard_ungated(model_name, run_id)
        _end(run_id, "FAILED")
        raise
    _end(run_id, "FINISHED")
    return summary


def check_candidates(names: tuple[str, ...] | list[str]) -> None:
    """Raises:
    UsageError: A name is not a known model family (before anything is trained)."""
    from churnops.model.candidates import CANDIDATES

    if not names:
        raise UsageError("--candidates: name at least one model family")
    if unknown := [n for n in names if n not in CANDIDATES]:
        raise UsageError(
            f"--candidates: unknown model famil{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(unknown)}; known: {', '.join(CANDIDATES)}"
        )


def _discard_ungated(model_name: str, run_id: str) -> None:
    """A failed run leaves no version behind that never got a gate decision."""
    try:
        for version in registry.discard_ungated(model_name, run_id):
            log(f"train: removed {model_name} v{version}, registered by this failed run")
    except Exception as err:  # the run's own error matters more; `registry repair` is left
        log(f"train: could not check {model_name} for half-registered versions: {err}")


def _end(run_id: str, status: str) -> None:
    """End the run with ``status``, retrying for the registry's budget (an MLflow restart
    must not leave it RUNNING); the fluent active run is cleared either way."""
    import mlflow
    from mlflow import MlflowClient

    try:
        registry.retry(
            lambda: MlflowClient().set_terminated(run_id, status), what=f"mark run {status}"
        )
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
