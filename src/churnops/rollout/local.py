"""A ``ServingTarget`` made of two local model-server processes, and a traffic generator.

Stands in for the InferenceService where no cluster runs (tests, benchmarks): the
canary share lives in memory and the traffic generator routes requests by it, the way
Knative's router splits traffic between revisions.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from churnops.rollout.adapter import ServingState


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
    """Single-record V1 requests at a steady rate, split by the target's canary share.

    Use as a context manager; ``sent`` counts requests per side, ``started`` is the
    monotonic time the first request went out.
    """

    def __init__(
        self, target: LocalTarget, records: list[dict], *, rate: float = 40.0, seed: int = 0
    ):
        self.target, self.records, self.rate = target, records, rate
        self.sent = {"stable": 0, "canary": 0}
        self.started: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(seed)

    def _run(self) -> None:
        import requests

        session = requests.Session()
        self.started = time.monotonic()
        i = 0
        while not self._stop.is_set():
            target = self.target
            to_canary = target.canary_uri is not None and self._rng.random() * 100 < target.percent
            url = target.canary_url if to_canary else target.stable_url
            record = self.records[i % len(self.records)]
            with contextlib.suppress(requests.RequestException):
                session.post(
                    f"{url}/v1/models/churn:predict", json={"instances": [record]}, timeout=5
                )
            self.sent["canary" if to_canary else "stable"] += 1
            i += 1
            time.sleep(1 / self.rate)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def sample_records(rows: int = 500, seed: int = 77) -> list[dict]:
    """Synthetic request records (no label; NaN → None, i.e. JSON null)."""
    from churnops.data import contract
    from churnops.data.generate import GeneratorConfig, generate

    frame = generate(GeneratorConfig(rows=rows, seed=seed)).drop(columns=[contract.LABEL.name])
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict(orient="records")
    ]
