"""Helpers for the MLflow-consumer, batch-scoring and Spark tests: an export laid out like
the real Telco CSV, and a churn model saved as an MLflow model directory (no tracking
server needed: every consumer also loads a directory)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from churnops.data.generate import GeneratorConfig, generate


def export_bytes(rows: int = 400, seed: int = 31) -> bytes:
    """Customers laid out like the real Telco export: integer columns, a single space for
    blank TotalCharges, CRLF line ends, customerID and Churn columns."""
    frame = generate(GeneratorConfig(rows=rows, seed=seed))
    frame["TotalCharges"] = frame["TotalCharges"].map(lambda v: " " if pd.isna(v) else f"{v:.2f}")
    return frame.to_csv(index=False, lineterminator="\r\n").encode()


def export_frame(rows: int = 400, seed: int = 31) -> pd.DataFrame:
    """``pd.read_csv`` of ``export_bytes``: what a user holds."""
    return pd.read_csv(io.BytesIO(export_bytes(rows, seed)))


def save_model_dir(
    path: Path, *, candidate: str = "logreg", rows: int = 3000, seed: int = 5
) -> Path:
    """Train one candidate on generated customers and save it as churnops logs it (skops,
    sklearn + churnops python_function flavors, signature, input example)."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    from churnops.data.validate import validate_frame
    from churnops.model import pyfunc
    from churnops.model.candidates import spec
    from churnops.model.serialize import TRUSTED_TYPES
    from churnops.model.train import xy

    typed, report = validate_frame(generate(GeneratorConfig(rows=rows, seed=seed)))
    assert report.ok
    x, y = xy(typed)
    fitted = spec(candidate).build(seed, 1, rows).fit(x, y)  # no search: a test model
    model = FixedThresholdClassifier(
        FrozenEstimator(fitted), threshold=0.3, response_method="predict_proba"
    ).fit(x, y)
    pyfunc.save_model(
        model,
        str(path),
        trusted_types=list(TRUSTED_TYPES),
        input_example=pyfunc.example_records(x.head(5)),
        metadata={"candidate": candidate},
    )
    return path
