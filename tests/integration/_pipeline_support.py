"""What a local pipeline run (subprocess or docker runner) leaves for the KFP UI, checked
once for both runners' tests."""

from __future__ import annotations

import json
from pathlib import Path


def task_outputs(pipeline_root: Path, task: str) -> dict:
    """The output artifacts of the last run of ``task`` under ``pipeline_root``, by name."""
    [path] = sorted(pipeline_root.glob(f"churn-training-*/**/{task}/executor_output.json"))[-1:]
    return {
        name: spec["artifacts"][0]
        for name, spec in json.loads(path.read_text())["artifacts"].items()
    }


def check_kfp_ui_artifacts(result: dict, root: Path) -> list[Path]:
    """Metrics, classification, model card and validation report as the KFP UI shows them;
    returns the three candidates' executor outputs."""
    selected = task_outputs(root, "evaluate-select-local")
    metrics = selected["metrics"]["metadata"]
    for name in ("logreg", "random_forest", "xgboost"):
        assert 0.7 < metrics[f"{name}.roc_auc"] <= 1.0
        assert 0 < metrics[f"{name}.threshold"] < 1
    classification = selected["classification"]["metadata"]
    [matrix] = [classification["confusionMatrix"]]
    assert [c["displayName"] for c in matrix["annotationSpecs"]] == ["stays", "churns"]
    assert sum(sum(row["row"]) for row in matrix["rows"]) == 800  # the 20% test split of 4,000
    curve = classification["confidenceMetrics"]
    assert curve[0]["recall"] == 0 and curve[-1]["recall"] == 1
    # One card, built by the register step: the KFP UI shows the one MLflow keeps.
    card = Path(task_outputs(root, "register-gate")["model_card"]["uri"]).read_text()
    assert card.startswith("# Model card") and "| roc_auc |" in card
    assert result["run_id"] in card
    report = Path(task_outputs(root, "ingest-validate")["report"]["uri"]).read_text()
    assert "# Data validation: PASSED" in report
    trained = sorted(
        root.glob("churn-training-*/train-candidates-local/*/train-candidate/executor_output.json")
    )
    assert len(trained) == 3
    return trained
