"""The MLflow run a pipeline run logs into: opened once (found again on retry by its run
key), finalized by the exit handler whatever the outcome."""

from __future__ import annotations

from typing import Any

from churnops import registry, tracking
from churnops.progress import log

RUN_KEY_TAG = "churnops.run_key"


def find_run(run_key: str) -> Any | None:
    from mlflow import MlflowClient

    runs = MlflowClient().search_runs(
        [e.experiment_id for e in MlflowClient().search_experiments()],
        filter_string=f"tags.`{RUN_KEY_TAG}` = '{run_key}'",
        max_results=1,
    )
    return runs[0] if runs else None


def registered_outcome(run_key: str) -> tuple[str, bool]:
    """(registered version, promoted) that the register step recorded on the MLflow run of
    ``run_key``; ("", False) when it registered nothing."""
    run = find_run(run_key)
    tags = run.data.tags if run is not None else {}
    return tags.get("registered_version", ""), tags.get("promoted") == "true"


def open_run(
    *, tracking_uri: str, experiment: str, model_name: str, run_key: str, params: dict[str, Any]
) -> str:
    """Create (or, on retry, find) the MLflow run that the whole pipeline run logs into,
    in experiment ``experiment`` (empty: the model's name, one experiment per model)."""
    import mlflow
    from mlflow import MlflowClient

    tracking.connect(tracking_uri)
    if (existing := find_run(run_key)) is not None:
        return str(existing.info.run_id)
    experiment_id = mlflow.set_experiment(experiment or model_name).experiment_id
    client = MlflowClient()
    data_uri = str(params.get("data_uri", ""))
    run = client.create_run(
        experiment_id,
        run_name=f"pipeline-{model_name}",
        tags={
            RUN_KEY_TAG: run_key,
            "churnops.data_uri": data_uri,
            "churnops.git_commit": tracking.git_commit(),
            "churnops.orchestrator": "kfp",
            "mlflow.source.type": "JOB",
            "mlflow.source.name": f"kfp:churn-training ({run_key})",
            "mlflow.note.content": f"KFP pipeline run of model {model_name} on {data_uri}",
        },
    )
    registry.drop_resent_runs(experiment_id, RUN_KEY_TAG, run_key, keep=run.info.run_id)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    return str(run.info.run_id)


def finalize(*, tracking_uri: str, run_key: str, state: str, model_name: str) -> dict[str, Any]:
    """Record the pipeline's final state on its MLflow run; undo half-registrations.

    A version created by this run that never got a gate decision (the run failed between
    registering and gating) is deleted, so a failed run never leaves a half-registered
    model. Runs as the pipeline's exit handler, also when earlier steps failed.
    """
    from mlflow import MlflowClient

    tracking.connect(tracking_uri)
    run = find_run(run_key)
    if run is None:
        log(f"finalize: no MLflow run for {run_key} (the pipeline failed before opening one)")
        return {"run_id": None, "state": state, "removed_versions": []}
    client = MlflowClient()
    succeeded = state.upper() == "SUCCEEDED"
    removed = [] if succeeded else registry.discard_ungated(model_name, run.info.run_id)
    client.set_tag(run.info.run_id, "churnops.pipeline_state", state)
    client.set_terminated(run.info.run_id, "FINISHED" if succeeded else "FAILED")
    return {"run_id": run.info.run_id, "state": state, "removed_versions": removed}
