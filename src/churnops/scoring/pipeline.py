"""Batch scoring as a KFP v2 component and a one-task pipeline (``churn-batch-scoring``).

The component is a thin wrapper over ``churnops.scoring.batch.score``, in the project's
components image (``install_kfp_package=False``: nothing is pip-installed at run time).
Its outputs are the run's summary as KFP Metrics (rows, scored, rejected, reject rate,
rows per second) and Markdown (the JSON line a user of ``churnops score`` reads); the
scores and rejects go to the URIs given, as with the command.
"""

from functools import partial
from pathlib import Path

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output

from churnops import __version__

IMAGE = f"churnops/components:{__version__}"
PIPELINE_NAME = "churn-batch-scoring"

component = partial(dsl.component, base_image=IMAGE, install_kfp_package=False)


@component
def batch_score(
    model_uri: str,
    data_uri: str,
    out_uri: str,
    rejects_uri: str,
    max_reject_rate: float,
    engine: str,
    tracking_uri: str,
    metrics: Output[Metrics],
    summary: Output[Markdown],
) -> str:
    """Score the table at ``data_uri`` with ``model_uri``; return the model version."""
    import json
    import os

    from churnops.errors import ContractViolation
    from churnops.scoring.batch import ScoreConfig, score

    if tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"):
        from churnops import tracking

        tracking.connect(tracking_uri or os.environ["MLFLOW_TRACKING_URI"])
    try:
        result = score(
            model_uri,
            data_uri,
            out_uri,
            rejects_uri=rejects_uri or None,
            config=ScoreConfig(max_reject_rate=max_reject_rate, engine=engine),
        )
    except ContractViolation as err:
        with open(summary.path, "w") as f:
            f.write(f"# Batch scoring: FAILED\n\n{err}\n\n```json\n{json.dumps(err.result)}\n```\n")
        raise
    for key in ("rows", "scored", "rejected", "reject_rate", "rows_per_second"):
        if result.get(key) is not None:
            metrics.log_metric(key, float(result[key]))
    with open(summary.path, "w") as f:
        f.write(
            f"# Batch scoring: {result['scored']:,} rows scored\n\n"
            f"Model `{result['model_uri']}` (version {result['model_version']}), "
            f"{result['rejected']:,} rejected ({result['reject_rate']:.2%}).\n\n"
            f"```json\n{json.dumps(result, indent=2)}\n```\n"
        )
    return str(result["model_version"])


@dsl.pipeline(name=PIPELINE_NAME, description="Score a customer table with a churn model.")
def batch_scoring_pipeline(
    data_uri: str,
    out_uri: str,
    model_uri: str = "models:/churn@champion",
    rejects_uri: str = "",
    max_reject_rate: float = 0.01,
    engine: str = "local",
    tracking_uri: str = "",
) -> None:
    batch_score(
        model_uri=model_uri,
        data_uri=data_uri,
        out_uri=out_uri,
        rejects_uri=rejects_uri,
        max_reject_rate=max_reject_rate,
        engine=engine,
        tracking_uri=tracking_uri,
    ).set_caching_options(False)


def compile_pipeline(path: str | Path) -> Path:
    """Write the pipeline spec (YAML) to ``path``."""
    from kfp import compiler

    compiler.Compiler().compile(batch_scoring_pipeline, str(path))
    return Path(path)
