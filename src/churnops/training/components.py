"""KFP v2 components: one per pipeline task, each a thin wrapper over a stage function.

Lightweight Python components with ``base_image`` set to the project's own image
(``churnops/components:<version>``, built by components/Dockerfile with churnops and kfp
preinstalled): ``install_kfp_package=False``, so no task pip-installs anything at run
time, on a cluster or under kfp.local. Under ``kfp.local.SubprocessRunner`` the same
functions run in the current environment, which has churnops installed. See
components/README.md for why not ``target_image`` or container components.

Component bodies import inside the function: KFP ships the function's source, not
this module.
"""

from functools import partial
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from churnops import __version__

IMAGE_NAME = "churnops/components"
IMAGE = f"{IMAGE_NAME}:{__version__}"

component = partial(dsl.component, base_image=IMAGE, install_kfp_package=False)


@component
def ingest_validate(
    data_uri: str,
    tracking_uri: str,
    experiment: str,
    model_name: str,
    run_key: str,
    job_id: str,
    candidates: list,
    test_size: float,
    seed: int,
    train: Output[Dataset],
    test: Output[Dataset],
    report: Output[Markdown],
    summary: Output[Metrics],
) -> NamedTuple("Ingested", run_id=str, digest=str, label_rate=float):  # type: ignore[valid-type]  # KFP reads this form
    """Read and validate the customer table, open the MLflow run this pipeline run logs
    into (found again on retry), fail the run on contract violations, and split the table
    stratified and seeded."""
    import os
    from collections import namedtuple

    from churnops.errors import ContractViolation
    from churnops.training.ingest import ingest_to_files

    try:
        result = ingest_to_files(
            data_uri=data_uri,
            train_path=train.path,
            test_path=test.path,
            test_size=test_size,
            seed=seed,
            tracking_uri=tracking_uri or os.environ["MLFLOW_TRACKING_URI"],
            experiment=experiment,
            model_name=model_name,
            run_key=run_key or job_id,
            params={
                "data_uri": data_uri,
                "candidates": ",".join(candidates),
                "kfp_job_id": job_id,
            },
        )
    except ContractViolation as err:
        with open(report.path, "w") as f:
            f.write(f"# Data validation: FAILED\n\n{err}\n")
        raise
    with open(report.path, "w") as f:
        f.write(result["markdown"])
    for key in ("rows", "label_rate", "violations", "warnings"):
        summary.log_metric(key, result[key])
    for part, rows in ((train, result["train_rows"]), (test, result["test_rows"])):
        part.metadata.update({"rows": rows, "sha256": result["digest"], "source": data_uri})
    return namedtuple("Ingested", ["run_id", "digest", "label_rate"])(  # type: ignore[call-arg]
        result["run_id"], result["digest"], result["label_rate"]
    )


@component
def train_candidate(
    train: Input[Dataset],
    candidate: str,
    seed: int,
    search_rows: int,
    n_jobs: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """Grid search, out-of-fold threshold and final fit of one candidate family.

    Returns the model's path and metadata as JSON: local runs hand models over this way
    (see components/README.md); on a cluster the Model artifact carries them.
    """
    import json

    from churnops.model.train import TrainConfig
    from churnops.training.fit import train_to_file

    meta = train_to_file(
        train_path=train.path,
        candidate=candidate,
        model_path=model.path,
        config=TrainConfig(seed=seed, search_rows=search_rows, n_jobs=n_jobs),
    )
    model.metadata.update(meta)
    for key in ("cv_roc_auc", "cv_f1", "threshold", "fit_seconds"):
        metrics.log_metric(key, meta[key])
    return json.dumps({"path": model.path, "meta": meta})


@component
def evaluate_select(
    models: Input[list[Model]],
    test: Input[Dataset],
    winner: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> str:
    """Evaluate every candidate on the test split, pick the winner, show the comparison."""
    import json

    from churnops.training.selection import evaluate_select_files

    meta = evaluate_select_files(
        candidates=[(m.path, dict(m.metadata)) for m in models],
        test_path=test.path,
        winner_path=winner.path,
        metrics=metrics,
        classification=classification,
    )
    winner.metadata.update({k: v for k, v in meta.items() if k != "comparison"})
    return json.dumps(meta)


@component
def evaluate_select_local(
    models: list,
    test: Input[Dataset],
    winner: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> str:
    """``evaluate_select`` for kfp.local, which cannot pass a list of artifacts: the
    candidates arrive as the (path, metadata) JSON their train tasks returned."""
    import json

    from churnops.training.selection import evaluate_select_files

    entries = [json.loads(m) for m in models]
    meta = evaluate_select_files(
        candidates=[(e["path"], e["meta"]) for e in entries],
        test_path=test.path,
        winner_path=winner.path,
        metrics=metrics,
        classification=classification,
    )
    winner.metadata.update({k: v for k, v in meta.items() if k != "comparison"})
    return json.dumps(meta)


@component
def register_gate(
    winner: Input[Model],
    train: Input[Dataset],
    test: Input[Dataset],
    selection: str,
    tracking_uri: str,
    run_id: str,
    model_name: str,
    data_uri: str,
    digest: str,
    label_rate: float,
    min_roc_auc: float,
    min_f1: float,
    tolerance: float,
    model_card: Output[Markdown],
) -> NamedTuple("Registered", version=str, promoted=bool, aliases=str):  # type: ignore[valid-type]  # KFP reads this form
    """Log to MLflow, register as challenger, and promote to champion if the gate passes;
    the model card MLflow keeps is also the KFP UI's."""
    import json
    import os
    from collections import namedtuple

    from churnops.registry import GateConfig
    from churnops.training.publish import register_files

    meta = json.loads(selection)
    comparison = meta.pop("comparison")
    summary = register_files(
        winner_path=winner.path,
        winner_meta=meta,
        comparison=comparison,
        train_path=train.path,
        test_path=test.path,
        tracking_uri=tracking_uri or os.environ["MLFLOW_TRACKING_URI"],
        run_id=run_id,
        model_name=model_name,
        data_uri=data_uri,
        digest=digest,
        label_rate=label_rate,
        gate_config=GateConfig(min_roc_auc=min_roc_auc, min_f1=min_f1, tolerance=tolerance),
        card_path=model_card.path,
    )
    print(json.dumps(summary, default=str))
    return namedtuple("Registered", ["version", "promoted", "aliases"])(  # type: ignore[call-arg]
        summary["version"], summary["promoted"], json.dumps(summary["aliases"])
    )


@component
def deploy_canary(
    model_name: str,
    version: str,
    promoted: bool,
    tracking_uri: str,
    target: str,
    namespace: str,
    inference_service: str,
    canary_percent: int,
    steps_percent: list,
    interval_seconds: int,
    prometheus_url: str,
    local_port: int,
) -> str:
    """Start the canary rollout of the new champion candidate (cluster: the InferenceService;
    local runs: a local model server). Returns the rollout's JSON result."""
    import os

    from churnops.rollout import deploy

    return deploy.pipeline_task(  # promoted: a dsl.If gates it; kept for the component alone
        version=version,
        promoted=promoted,
        model_name=model_name,
        target=target,
        namespace=namespace,
        inference_service=inference_service,
        canary_percent=canary_percent,
        steps_percent=[int(s) for s in steps_percent],
        interval_seconds=interval_seconds,
        prometheus_url=prometheus_url,
        local_port=local_port,
        tracking_uri=tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", ""),
    )


@component
def deploy_canary_local(
    model_name: str,
    run_key: str,
    tracking_uri: str,
    target: str,
    namespace: str,
    inference_service: str,
    canary_percent: int,
    steps_percent: list,
    interval_seconds: int,
    prometheus_url: str,
    local_port: int,
) -> str:
    """``deploy_canary`` for kfp.local. kfp.local gives a task inside a loop the loop item in
    place of every upstream task output it takes (kfp 2.16
    ``enhanced_dag_orchestrator._create_loop_iteration_task_spec``), so the version arrived
    as "deploy". The version and the gate's decision are read from this run's MLflow run
    (``run_key``) instead, where the register step recorded them."""
    import json
    import os

    if target == "none":  # before the imports: a local run that deploys nothing pays ~0.1 s
        return json.dumps({"outcome": "skipped", "reason": "deploy target none"})

    from churnops import tracking
    from churnops.rollout import deploy
    from churnops.training.runs import registered_outcome

    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    tracking.connect(tracking_uri)
    version, promoted = registered_outcome(run_key)
    return deploy.pipeline_task(
        version=version,
        promoted=promoted,
        model_name=model_name,
        target=target,
        namespace=namespace,
        inference_service=inference_service,
        canary_percent=canary_percent,
        steps_percent=[int(s) for s in steps_percent],
        interval_seconds=interval_seconds,
        prometheus_url=prometheus_url,
        local_port=local_port,
        tracking_uri=tracking_uri,
    )


@component
def finalize_run(
    tracking_uri: str,
    run_key: str,
    job_id: str,
    model_name: str,
    status: dsl.PipelineTaskFinalStatus,
):
    """Exit handler: mark the MLflow run FINISHED/FAILED and undo half-registrations."""
    import json
    import os

    from churnops.training.runs import finalize

    result = finalize(
        tracking_uri=tracking_uri or os.environ["MLFLOW_TRACKING_URI"],
        run_key=run_key or job_id,
        state=status.state,
        model_name=model_name,
    )
    print(json.dumps(result))
