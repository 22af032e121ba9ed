"""MLflow tracking: connecting with retries, and logging a churn model as ONE MLflow model.

A churn model is a scikit-learn ``FixedThresholdClassifier`` (preprocessing + classifier
+ threshold) saved with skops, never pickle, trusting only
``churnops.model.serialize.TRUSTED_TYPES``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd

from churnops.errors import DataSourceError, RegistryUnavailable
from churnops.model.serialize import TRUSTED_TYPES, check_trusted
from churnops.progress import log

__all__ = ["PROFILE_FILE", "TRUSTED_TYPES", "connect", "content_digest", "log_model"]

PROFILE_FILE = "reference_profile.json"


def connect(tracking_uri: str, *, attempts: int = 5, backoff: float = 1.0) -> None:
    """Point MLflow at ``tracking_uri`` and wait until a tracking server answers.

    HTTP servers are polled on ``/health`` with exponential backoff. MLflow's own
    per-request retries are shortened (unless set by the user) so that an outage fails
    within seconds rather than minutes.

    Raises:
        RegistryUnavailable: No answer after ``attempts`` tries.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    if urllib.parse.urlparse(tracking_uri).scheme not in ("http", "https"):
        return
    url = tracking_uri.rstrip("/") + "/health"
    error: Exception | None = None
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except Exception as err:
            error = err
        if attempt < attempts - 1:
            delay = backoff * 2**attempt
            log(f"mlflow: {tracking_uri} not answering ({error}); retrying in {delay:.0f}s")
            time.sleep(delay)
    raise RegistryUnavailable(
        f"MLflow at {tracking_uri} is unreachable after {attempts} attempts: {error}"
    )


def content_digest(uri: str) -> str:
    """sha256 of the bytes at ``uri`` (streamed), to tie a model to its exact data."""
    from churnops.data.io import _open

    digest = hashlib.sha256()
    stream = _open(str(uri))
    try:
        while block := stream.read(1 << 20):
            digest.update(block)
    except OSError as err:
        raise DataSourceError(f"cannot read {uri}: {err}") from err
    finally:
        stream.close()
    return digest.hexdigest()


def git_commit() -> str:
    """The code version: ``CHURNOPS_GIT_COMMIT`` (set in images) or ``git rev-parse``."""
    if commit := os.environ.get("CHURNOPS_GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def signature() -> Any:
    """The model signature, from the record contract (``churnops.model.pyfunc.signature``)."""
    from churnops.model.pyfunc import signature as pyfunc_signature

    return pyfunc_signature()


def log_model(
    model: Any,
    *,
    input_example: pd.DataFrame,
    profile: dict,
    metadata: dict[str, Any],
    name: str = "model",
) -> str:
    """Log ``model`` to the active run as one MLflow model; return its ``models:/`` URI.

    One skops file, two flavors: ``sklearn`` (the estimator) and ``python_function``
    served by ``churnops.model.pyfunc`` (raw records in, ``churn_probability`` /
    ``churn`` / ``model_version`` out, like the model server). The input example is
    ``input_example``'s features in the signature's types. The reference profile
    (training distribution, test-split score distribution) rides along as an extra file
    so the server can compute drift for exactly this version.
    """
    from mlflow.models import Model

    from churnops.model import pyfunc

    check_trusted(model)
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(tmp) / PROFILE_FILE
        profile_path.write_text(json.dumps(profile))
        info = Model.log(
            artifact_path=None,
            name=name,
            flavor=pyfunc,
            sk_model=model,
            trusted_types=list(TRUSTED_TYPES),
            input_example=pyfunc.example_records(input_example),
            metadata=metadata,
            extra_files=[str(profile_path)],
        )
    return info.model_uri
