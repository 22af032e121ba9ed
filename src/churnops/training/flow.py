"""The whole training flow in-process (``churnops train``): every stage, one MLflow run.

``publish`` is the only stage that writes to the registry, and it runs last, so a failure
anywhere before it registers nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from churnops import registry, tracking
from churnops.data import ValidationConfig, contract
from churnops.model.train import TrainConfig, select, split
from churnops.progress import log
from churnops.training.fit import train_candidates
from churnops.training.ingest import ingest, log_validation
from churnops.training.publish import log_candidates, publish
from churnops.training.selection import compare, evaluate_candidate


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
