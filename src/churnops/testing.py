"""Helpers for tests and benchmarks (and the sample traffic of ``churnops demo``); no
other library module imports this one.

- ``sample_records`` / ``records_to_columns``: generated customers as JSON request
  records (V1 instances) or V2 columns;
- ``LocalTarget`` + ``Traffic``: a ``ServingTarget`` made of two local model-server
  processes and a traffic generator, standing in for the InferenceService where no
  cluster runs (the canary share lives in memory and the generator routes requests by
  it, the way Knative's router splits traffic between revisions);
- ``REHEARSAL`` + ``rehearsal_versions``: fast canary settings and three registered
  versions to rehearse rollouts with.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from churnops.rollout.adapter import ServingState
from churnops.rollout.analysis import AnalysisConfig


@dataclass
class LocalTarget:
    """Stable and canary model servers on loopback; remembers the canary share."""

    stable_uri: str
    stable_url: str
    canary_url: str
    canary_uri: str | None = None
    percent: int = 0
    calls: list[str] = field(default_factory=list)

    def state(self) -> ServingState:
        return ServingState(self.stable_uri, self.canary_uri, self.percent, True)

    def start_canary(self, model_uri: str, percent: int) -> None:
        self.canary_uri, self.percent = model_uri, percent
        self.calls.append(f"start {model_uri} {percent}")

    def set_canary_percent(self, percent: int) -> None:
        self.percent = percent
        self.calls.append(f"percent {percent}")

    def promote(self) -> None:
        assert self.canary_uri is not None
        self.stable_uri, self.stable_url, self.canary_uri, self.percent = (
            self.canary_uri,
            self.canary_url,
            None,
            0,
        )
        self.calls.append("promote")

    def rollback(self) -> None:
        self.canary_uri, self.percent = None, 0
        self.calls.append("rollback")


class Traffic:
    """Single-record V1 requests from concurrent clients, split by the target's canary share.

    ``workers`` clients each send ``rate / workers`` requests per second, so one slow side
    does not throttle the other. ``model`` is the name both servers serve under (the
    InferenceService's, or the registered model's for ``--deploy local``). Use as a context
    manager; ``sent`` counts requests per side.
    """

    def __init__(
        self,
        target: LocalTarget,
        records: list[dict],
        *,
        rate: float = 80.0,
        workers: int = 16,
        seed: int = 0,
        model: str = "churn",
    ):
        self.target, self.records, self.rate, self.workers = target, records, rate, workers
        self.model = model
        self.sent = {"stable": 0, "canary": 0}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._run, args=(np.random.default_rng([seed, w]), w), daemon=True
            )
            for w in range(workers)
        ]

    def _run(self, rng: np.random.Generator, offset: int) -> None:
        import requests

        session = requests.Session()
        i = offset
        while not self._stop.is_set():
            target = self.target
            to_canary = target.canary_uri is not None and rng.random() * 100 < target.percent
            url = target.canary_url if to_canary else target.stable_url
            record = self.records[i % len(self.records)]
            with contextlib.suppress(requests.RequestException):
                session.post(
                    f"{url}/v1/models/{self.model}:predict", json={"instances": [record]}, timeout=5
                )
            self.sent["canary" if to_canary else "stable"] += 1
            i += self.workers
            time.sleep(self.workers / self.rate)

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def sample_records(rows: int = 500, *, seed: int = 77, drift: float = 0.0) -> list[dict]:
    """Generated customers as JSON-ready request records: no label, plain Python values,
    missing numbers (``TotalCharges``) as None (JSON null)."""
    from churnops.data import contract
    from churnops.data.generate import GeneratorConfig, generate

    frame = generate(GeneratorConfig(rows=rows, seed=seed, drift=drift))
    records = frame.drop(columns=[contract.LABEL.name]).to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            value = value.item() if hasattr(value, "item") else value
            record[key] = None if isinstance(value, float) and math.isnan(value) else value
    return records


def records_to_columns(records: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Records → one list per contract feature (the columns of a V2 request)."""
    from churnops.data import contract

    return {name: [r.get(name) for r in records] for name in contract.FEATURE_NAMES}


REHEARSAL = AnalysisConfig(
    steps=(25, 50, 100),
    interval_seconds=5,
    min_requests=15,
    deadline_seconds=15,
    latency_slack_seconds=0.05,
)
"""Analysis settings for rehearsals on loopback (5 s steps, Prometheus scraping every 1 s).
With 15 requests a step, p99 is the slowest request: on a shared 2-core machine one request
held up by the scheduler reached 24 ms against a stable p99 of 9 ms, so the slack is 50 ms
(a canary slowed by 250 ms still fails at its first step)."""


def rehearsal_versions(
    tracking_uri: str, model_name: str, workdir: Path, *, experiment: str = "rollout-rehearsal"
) -> dict[str, str]:
    """Register three versions to rehearse rollouts with: ``stable``, ``healthy`` (a retrain
    on fresh data from the same distribution) and ``shifted`` (trained where churn looks far
    more common, so its churn probabilities move up). Returns key → version."""
    from churnops import registry
    from churnops.data.generate import GeneratorConfig, generate, write
    from churnops.model.train import TrainConfig
    from churnops.training.flow import run_training

    config = TrainConfig(candidates=("logreg",), search_folds=2, threshold_folds=3)
    paths = {
        key: write(
            GeneratorConfig(rows=3000, seed=seed), workdir / f"{key}.csv", show_progress=False
        )
        for key, seed in (("stable", 31), ("healthy", 32))
    }
    shifted = generate(GeneratorConfig(rows=3000, seed=33))
    flip = (shifted["Churn"] == "No") & (np.random.default_rng(1).random(len(shifted)) < 0.7)
    shifted.loc[flip, "Churn"] = "Yes"
    paths["shifted"] = workdir / "shifted.csv"
    shifted.to_csv(paths["shifted"], index=False)
    # The shifted version must register whatever its quality: it plays a bad candidate.
    lenient = registry.GateConfig(min_roc_auc=0.0, min_f1=0.0, tolerance=1.0)
    return {
        key: run_training(
            str(path),
            tracking_uri=tracking_uri,
            model_name=model_name,
            experiment=experiment,
            train_config=config,
            gate_config=lenient if key == "shifted" else registry.GateConfig(),
        )["version"]
        for key, path in paths.items()
    }
