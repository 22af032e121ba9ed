"""Helpers shared by the model-server integration tests."""

from __future__ import annotations

import json

from churnops.testing import sample_records

RELOAD_MODEL = "serving-reload"

__all__ = ["RELOAD_MODEL", "dumps", "metric_value", "sample_records"]


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
