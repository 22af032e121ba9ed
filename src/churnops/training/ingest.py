"""Stage 1: read and validate the customer table (and, in the pipeline, split it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from churnops import registry, tracking
from churnops.data import ValidationConfig, ValidationReport, load
from churnops.model.train import split


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
    frame, report = load(data_uri, config=config, show_progress=True, check=False)
    return Ingested(frame, report, digest)


def log_validation(report: ValidationReport, run_id: str) -> None:
    """Attach the validation report (Markdown + JSON) to MLflow run ``run_id``."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.log_text(run_id, report.to_markdown(), "validation/report.md")
    client.log_text(run_id, report.to_json(), "validation/report.json")
    client.set_tag(run_id, "validation", "passed" if report.ok else "failed")


def _dvc_source(uri: str) -> Any:
    """An MLflow dataset source for a ``dvc://<repo>#<path>@<rev>`` URI (source type "dvc")."""
    from mlflow.data.dataset_source import DatasetSource

    class DvcDatasetSource(DatasetSource):
        def __init__(self, uri: str) -> None:
            self.uri = uri

        @staticmethod
        def _get_source_type() -> str:
            return "dvc"

        def load(self, **kwargs: Any) -> str:
            return self.uri

        @staticmethod
        def _can_resolve(raw_source: Any) -> bool:
            return isinstance(raw_source, str) and raw_source.startswith("dvc://")

        @classmethod
        def _resolve(cls, raw_source: Any) -> DvcDatasetSource:
            return cls(raw_source)

        def to_dict(self) -> dict[str, Any]:
            return {"uri": self.uri}

        @classmethod
        def from_dict(cls, source_dict: dict[Any, Any]) -> DvcDatasetSource:
            return cls(source_dict["uri"])

    return DvcDatasetSource(uri)


def log_dataset(run_id: str, data: Ingested, data_uri: str) -> None:
    """The training table as the run's MLflow dataset input (source, digest, schema)."""
    from pathlib import Path

    from mlflow import MlflowClient
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    from churnops.data import contract
    from churnops.data.io import dvc_lineage, is_dvc

    dataset = from_pandas(
        data.frame.head(0),
        # MLflow has no resolver for dvc:// (from_pandas would refuse the string).
        source=_dvc_source(data_uri) if is_dvc(data_uri) else data_uri,
        targets=contract.LABEL.name,
        name=Path(data_uri).name,
        digest=data.digest[:32],
    )
    tags = [InputTag("mlflow.data.context", "training")]
    client = MlflowClient()
    if is_dvc(data_uri):  # DVC lineage beside the sha256: repo, path, rev, commit, md5
        for key, value in dvc_lineage(data_uri).items():
            tags.append(InputTag(f"churnops.dvc.{key}", value))
            client.set_tag(run_id, f"churnops.dvc.{key}", value)
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=tags)])


def ingest_to_files(
    *,
    data_uri: str,
    train_path: str,
    test_path: str,
    test_size: float,
    seed: int,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    run_key: str,
    params: dict[str, Any],
    config: ValidationConfig = ValidationConfig(),
) -> dict[str, Any]:
    """Pipeline step: read + validate, open the pipeline run's MLflow run, and write the
    seeded stratified split as Parquet. The data is read before the run is opened (a
    missing file leaves no FAILED run); the report goes to MLflow either way.

    Raises:
        ContractViolation: After the report is logged, so the failed run shows why.
    """
    from churnops.training.runs import open_run

    data = ingest(data_uri, config=config)
    run_id = registry.retry(
        lambda: open_run(
            tracking_uri=tracking_uri,
            experiment=experiment,
            model_name=model_name,
            run_key=run_key,
            params=params,
        ),
        what="open the pipeline's MLflow run",
    )
    registry.retry(lambda: log_validation(data.report, run_id), what="log validation report")
    result = {
        "run_id": run_id,
        "rows": data.report.rows,
        "label_rate": data.report.label_rate,
        "digest": data.digest,
        "ok": data.report.ok,
        "violations": len(data.report.violations),
        "warnings": len(data.report.warnings),
        "markdown": data.report.to_markdown(),
    }
    data.report.raise_for_violations()
    registry.retry(lambda: log_dataset(run_id, data, data_uri), what="log dataset")
    parts = split(data.frame, test_size=test_size, seed=seed)
    parts.train.to_parquet(train_path, index=False)
    parts.test.to_parquet(test_path, index=False)
    return result | {"train_rows": len(parts.train), "test_rows": len(parts.test)}
