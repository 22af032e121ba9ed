"""Defaults live once, in the frozen config dataclasses: the CLI flags and the Helm values
that repeat them must say the same (this test fails when one drifts)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.model.train import TrainConfig
from churnops.monitoring.alerts import RetrainTrigger
from churnops.registry import GateConfig
from churnops.rollout.analysis import AnalysisConfig
from churnops.scoring.batch import ScoreConfig
from churnops.serving.model import ServeConfig

VALUES = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "charts" / "churnops" / "values.yaml").read_text()
)


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch):
    """The parsed defaults of one command, with no environment overriding them."""
    import os

    for name in list(os.environ):
        if name.startswith(("CHURNOPS_", "MLFLOW_", "KFP_")):
            monkeypatch.delenv(name)

    def parse(*argv: str) -> argparse.Namespace:
        from churnops.cli import _load_extensions, build_parser

        _load_extensions()
        return build_parser().parse_args(list(argv))

    return parse


def _same(args: argparse.Namespace, config: Any, flags: dict[str, str]) -> None:
    got = {dest: getattr(args, dest) for dest in flags}
    want = {dest: getattr(config, field) for dest, field in flags.items()}
    assert got == want


def test_serve(defaults) -> None:
    flags = {d: d for d in ("model_uri", "max_batch_rows", "reload_interval", "unknown_categories")}
    _same(defaults("serve"), ServeConfig(), flags)


def test_train_and_its_gate(defaults) -> None:
    args = defaults("train", "--data", "x.csv")
    assert tuple(args.candidates.split(",")) == TrainConfig().candidates
    _same(args, TrainConfig(), {"seed": "seed", "search_rows": "search_rows"})
    _same(args, GateConfig(), {d: d for d in ("tolerance", "min_roc_auc", "min_f1")})


def test_rollout(defaults) -> None:
    args = defaults("rollout", "run", "--version", "1")
    config = AnalysisConfig()
    assert tuple(int(s) for s in args.steps.split(",")) == config.steps
    _same(args, config, {"interval": "interval_seconds", "min_requests": "min_requests"})
    _same(args, config, {"deadline": "deadline_seconds"})


def test_batch_scoring(defaults) -> None:
    args = defaults("score", "--data", "x.csv", "--out", "y.csv")
    _same(args, ScoreConfig(), {d: d for d in ("max_reject_rate", "batch_rows", "block_bytes")})
    assert args.engine == ScoreConfig().engine


def test_alert_receiver(defaults) -> None:
    (cooldown,) = [f.default for f in RetrainTrigger.__dataclass_fields__.values()
                   if f.name == "cooldown_seconds"]  # fmt: skip
    assert defaults("alerts", "serve").cooldown == cooldown
    assert VALUES["alertReceiver"]["cooldownSeconds"] == cooldown


def test_chart_predictor() -> None:
    predictor, config = VALUES["predictor"], ServeConfig()
    assert predictor["reloadInterval"] == config.reload_interval
    assert predictor["maxBatchRows"] == config.max_batch_rows
