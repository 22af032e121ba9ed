"""The batch-scoring KFP pipeline: compiled, and run with kfp.local on a real table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from _consumers_support import export_bytes, save_model_dir

pytestmark = pytest.mark.integration


def test_pipeline_compiles_with_the_components_image(tmp_path: Path) -> None:
    from churnops.scoring.pipeline import IMAGE, PIPELINE_NAME, compile_pipeline

    spec = yaml.safe_load(compile_pipeline(tmp_path / "scoring.yaml").read_text())
    assert spec["pipelineInfo"]["name"] == PIPELINE_NAME
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert {"data_uri", "out_uri", "model_uri", "max_reject_rate", "engine"} <= set(params)
    (executor,) = spec["deploymentSpec"]["executors"].values()
    assert executor["container"]["image"] == IMAGE


def test_pipeline_runs_locally(tmp_path: Path) -> None:
    from kfp import local

    from churnops.scoring.pipeline import batch_scoring_pipeline

    model = save_model_dir(tmp_path / "model")
    data = tmp_path / "customers.csv"
    data.write_bytes(export_bytes(800, seed=12))
    out = tmp_path / "out" / "scores.csv"
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp"),
        raise_on_error=True,
    )
    batch_scoring_pipeline(data_uri=str(data), out_uri=str(out), model_uri=str(model))
    scores = pd.read_csv(out)
    assert len(scores) == 800 and scores["churn_probability"].between(0, 1).all()
    assert (scores["model_version"] == "local").all()
    summaries = list((tmp_path / "kfp").rglob("summary"))
    assert summaries and "800 rows scored" in summaries[0].read_text()
