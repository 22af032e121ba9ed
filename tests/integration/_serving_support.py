"""Helpers shared by the model-server integration tests."""

from __future__ import annotations

import json
import math

from churnops.data.generate import GeneratorConfig, generate

RELOAD_MODEL = "serving-reload"


def sample_records(rows: int, *, seed: int = 7, drift: float = 0.0) -> list[dict]:
    """Generated customers as JSON-ready records (missing TotalCharges → null)."""
    frame = generate(GeneratorConfig(rows=rows, seed=seed, drift=drift)).drop(columns=["Churn"])
    records = frame.to_dict(orient="records")
    for r in records:
        for k, v in r.items():
            if isinstance(v, float) and math.isnan(v):
                r[k] = None
            elif hasattr(v, "item"):
                r[k] = v.item()
    return records


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def dumps(obj: object) -> bytes:
    return json.dumps(obj).encode()
