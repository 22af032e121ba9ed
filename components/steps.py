"""KFP v2 components: one per pipeline step, each a thin wrapper over ``churnops.steps``.

Lightweight Python components (``@dsl.component``) with ``base_image`` set to the
project's own image: on a cluster each step runs in ``churnops/components`` (built by
components/Dockerfile, churnops preinstalled, so nothing is pip-installed at run time);
under ``kfp.local.SubprocessRunner`` the same function runs in the local environment,
which also has churnops installed. See components/README.md for why not
``target_image`` or container components.

Component bodies import inside the function: KFP ships the function's source, not
this module.
"""

import os
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

IMAGE = os.environ.get("CHURNOPS_COMPONENT_IMAGE", "churnops/components:0.1.0")


@dsl.component(base_image=IMAGE)
def open_run(
    tracking_uri: str,
    experiment: str,
    model_name: str,
    run_key: str,
    job_id: str,
    data_uri: str,
    candidates: list,
) -> str:
    """Open the MLflow run that this pipeline run logs into; return its id."""
    import os

    from churnops import steps

    return steps.open_run(
        tracking_uri=tracking_uri or os.environ["MLFLOW_TRACKING_URI"],
        experiment=experiment,
        model_name=model_name,
        run_key=run_key or job_id,
        params={"data_uri": data_uri, "candidates": ",".join(candidates), "kfp_job_id": job_id},
    )


@dsl.component(base_image=IMAGE)
def ingest_validate(
    data_uri: str,
    tracking_uri: str,
    run_id: str,
    dataset: Output[Dataset],
    report: Output[Markdown],
    summary: Output[Metrics],
) -> NamedTuple("Ingested", digest=str, label_rate=float):
    """Read and validate the customer table; fail the run on contract violations."""
    import os
    from collections import namedtuple

    from churnops import steps
    from churnops.errors import ContractViolation

    try:
        result = steps.ingest(
            data_uri=data_uri,
            dataset_path=dataset.path,
            run_id=run_id,
            tracking_uri=tracking_uri or os.environ["MLFLOW_TRACKING_URI"],
        )
    except ContractViolation as err:
        with open(report.path, "w") as f:
            f.write(f"# Data validation: FAILED\n\n{err}\n")
        raise
    with open(report.path, "w") as f:
        f.write(result["markdown"])
    for key in ("rows", "label_rate", "violations", "warnings"):
        summary.log_metric(key, result[key])
    dataset.metadata.update(
        {"rows": result["rows"], "sha256": result["digest"], "source": data_uri}
    )
    return namedtuple("Ingested", ["digest", "label_rate"])(result["digest"], result["label_rate"])


@dsl.component(base_image=IMAGE)
def split_data(
    dataset: Input[Dataset],
    test_size: float,
    seed: int,
    train: Output[Dataset],
    test: Output[Dataset],
):
    """Stratified, seeded train/test split."""
    from churnops import steps

    rows = steps.split_data(
        dataset_path=dataset.path,
        train_path=train.path,
        test_path=test.path,
        test_size=test_size,
        seed=seed,
    )
    train.metadata["rows"], test.metadata["rows"] = rows["train_rows"], rows["test_rows"]


@dsl.component(base_image=IMAGE)
def train_candidate(
    train: Input[Dataset],
    candidate: str,
    seed: int,
    search_rows: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> str:
    """Grid search, out-of-fold threshold and final fit of one candidate family.

    Returns the model's path and metadata as JSON: local runs hand models over this way
    (see components/README.md); on a cluster the Model artifact carries them.
    """
    import json

    from churnops import steps
    from churnops.model.train import TrainConfig

    meta = steps.train(
        train_path=train.path,
        candidate=candidate,
        model_path=model.path,
        config=TrainConfig(seed=seed, search_rows=search_rows),
    )
    model.metadata.update(meta)
    for key in ("cv_roc_auc", "cv_f1", "threshold", "fit_seconds"):
        metrics.log_metric(key, meta[key])
    return json.dumps({"path": model.path, "meta": meta})


@dsl.component(base_image=IMAGE)
def evaluate_select(
    models: Input[list[Model]],
    test: Input[Dataset],
    model_name: str,
    data_uri: str,
    digest: str,
    label_rate: float,
    winner: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    model_card: Output[Markdown],
) -> str:
    """Evaluate every candidate on the test split, pick the winner, publish its evidence."""
    import json

    from churnops import steps

    meta = steps.evaluate_select(
        candidates=[(m.path, dict(m.metadata)) for m in models],
        test_path=test.path,
        winner_path=winner.path,
        model_name=model_name,
        data_uri=data_uri,
        digest=digest,
        label_rate=label_rate,
        metrics=metrics,
        classification=classification,
        card_path=model_card.path,
    )
    winner.metadata.update({k: v for k, v in meta.items() if k != "comparison"})
    return json.dumps(meta)


@dsl.component(base_image=IMAGE)
def evaluate_select_local(
    models: list,
    test: Input[Dataset],
    model_name: str,
    data_uri: str,
    digest: str,
    label_rate: float,
    winner: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    model_card: Output[Markdown],
) -> str:
    """``evaluate_select`` for kfp.local, which cannot pass a list of artifacts: the
    candidates arrive as the (path, metadata) JSON their train tasks returned."""
    import json

    from churnops import steps

    entries = [json.loads(m) for m in models]
    meta = steps.evaluate_select(
        candidates=[(e["path"], e["meta"]) for e in entries],
        test_path=test.path,
        winner_path=winner.path,
        model_name=model_name,
        data_uri=data_uri,
        digest=digest,
        label_rate=label_rate,
        metrics=metrics,
        classification=classification,
        card_path=model_card.path,
    )
    winner.metadata.update({k: v for k, v in meta.items() if k != "comparison"})
    return json.dumps(meta)


@dsl.component(base_image=IMAGE)
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
) -> NamedTuple("Registered", version=str, promoted=bool, aliases=str):
    """Log to MLflow, register as challenger, and promote to champion if the gate passes."""
    import json
    import os
    from collections import namedtuple

    from churnops import steps
    from churnops.registry import GateConfig

    meta = json.loads(selection)
    comparison = meta.pop("comparison")
    summary = steps.register(
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
    )
    print(json.dumps(summary, default=str))
    return namedtuple("Registered", ["version", "promoted", "aliases"])(
        summary["version"], summary["promoted"], json.dumps(summary["aliases"])
    )


@dsl.component(base_image=IMAGE)
def deploy_canary(
    model_name: str,
    version: str,
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
    import json
    import os

    from churnops.rollout import deploy

    result = deploy.start(
        model_name=model_name,
        version=version,
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
    print(json.dumps(result, default=str))
    return json.dumps(result, default=str)


@dsl.component(base_image=IMAGE)
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

    from churnops import steps

    result = steps.finalize(
        tracking_uri=tracking_uri or os.environ["MLFLOW_TRACKING_URI"],
        run_key=run_key or job_id,
        state=status.state,
        model_name=model_name,
    )
    print(json.dumps(result))
