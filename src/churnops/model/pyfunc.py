"""The churn model's MLflow ``python_function`` flavor: churnops' own loader and predict.

A churn model is logged once, with two flavors over the same skops file:

- ``sklearn``: the ``FixedThresholdClassifier`` for those who want the estimator;
- ``python_function`` with ``loader_module: churnops.model.pyfunc``: what every MLflow
  consumer (``mlflow.pyfunc.load_model``, ``mlflow models serve``, ``mlflow.models.predict``,
  ``spark_udf``, MLServer's ``mlserver-mlflow``) loads. Loading runs this module from the
  installed churnops (never code or pickles from the artifact) and reads the skops file
  with churnops' own trusted types. ``predict`` takes raw records as a user reads them
  (``pd.read_csv`` of an export: integers, blank ``TotalCharges``, ``customerID``),
  coerces them with ``churnops.data.coerce`` (the routine training validation and the
  server use) and answers like the model server: ``churn_probability``, ``churn`` (the
  model's threshold applied) and ``model_version``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnops.data import contract
from churnops.data.coerce import coerce_frame
from churnops.errors import ChurnopsError, ModelLoadError

OUTPUT_COLUMNS = ("churn_probability", "churn", "model_version")
LOCAL_VERSION = "local"
"""``model_version`` of a model loaded from a directory with no registry record (as the
model server labels it)."""


def signature() -> Any:
    """The model signature, from the record contract.

    Inputs: ``customerID`` (optional text, ignored), categories as text, ``integer``
    fields as long, ``number`` fields as double. A nullable number (``TotalCharges``) is
    declared ``Any``: MLflow's ``double`` refuses the blank text of real exports
    (``pd.read_csv`` reads ``" "`` as text), and this model's coercion turns blanks into
    missing values and numeric text into numbers, naming field and row for anything else.
    Outputs: ``churn_probability`` (double), ``churn`` (boolean), ``model_version`` (text).
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    def spec(f: contract.Field) -> ColSpec:
        if f.kind == "integer":
            return ColSpec("long", f.name)
        if f.is_numeric:
            return ColSpec(AnyType(), f.name) if f.nullable else ColSpec("double", f.name)
        return ColSpec("string", f.name)

    inputs = Schema(
        [ColSpec("string", contract.ID.name, required=False), *map(spec, contract.FEATURES)]
    )
    outputs = Schema(
        [
            ColSpec("double", "churn_probability"),
            ColSpec("boolean", "churn"),
            ColSpec("string", "model_version"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def example_records(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s features in the signature's types (integers as int64, categories as
    text), for the logged input example."""
    coerced = coerce_frame(frame)
    out = coerced.model_frame()
    for f in contract.FEATURES:
        if f.kind == "integer":
            out[f.name] = out[f.name].fillna(0).astype("int64")
    return out


def save_model(
    sk_model: Any,
    path: str,
    *,
    mlflow_model: Any = None,
    trusted_types: list[str],
    input_example: pd.DataFrame | None = None,
    metadata: dict[str, Any] | None = None,
    extra_files: list[str] | None = None,
    **kwargs: Any,
) -> None:
    """MLflow's flavor hook (``mlflow.models.Model.log(flavor=churnops.model.pyfunc)``):
    the sklearn flavor saved as skops, then its ``python_function`` flavor pointed at
    this module."""
    import mlflow.sklearn
    from mlflow.models import Model
    from mlflow.models.model import MLMODEL_FILE_NAME

    if mlflow_model is None:
        mlflow_model = Model()
    kwargs.setdefault("pip_requirements", requirements())
    mlflow.sklearn.save_model(
        sk_model,
        path,
        mlflow_model=mlflow_model,
        serialization_format="skops",
        skops_trusted_types=trusted_types,
        signature=signature(),
        input_example=input_example,
        metadata=metadata,
        extra_files=extra_files,
        **kwargs,
    )
    conf = mlflow_model.flavors["python_function"]
    conf["loader_module"] = __name__
    conf.pop("predict_fn", None)
    mlflow_model.save(os.path.join(path, MLMODEL_FILE_NAME))
    _save_compiled(sk_model, path, input_example, metadata)


def _save_compiled(
    sk_model: Any, path: str, input_example: Any, metadata: dict[str, Any] | None
) -> None:
    """The compiled scorer beside the skops file, checked against the model first, so
    batch scoring can start without scikit-learn (``churnops.serving.scoring.save_compiled``).
    A model that does not compile simply has none."""
    import hashlib

    from churnops.model import serialize
    from churnops.serving.scoring import (
        COMPILED_FILE,
        checked_scorer,
        save_compiled,
        self_check_columns,
    )

    try:
        scorer, diff = checked_scorer(sk_model, self_check_columns(input_example), "new")
    except ModelLoadError:
        return
    digest = hashlib.sha256(serialize.skops_file(path).read_bytes()).hexdigest()
    threshold = threshold_of(sk_model, metadata)
    save_compiled(scorer, threshold, digest, Path(path) / COMPILED_FILE, check_diff=diff)


REQUIREMENTS = ("mlflow", "scikit-learn", "skops", "xgboost", "numpy", "pandas", "scipy")


def requirements() -> list[str]:
    """The model's pip requirements: the installed versions of what loading and scoring
    it imports (churnops itself must be installed where it is loaded: the flavor's
    loader is ``churnops.model.pyfunc``). Declared rather than inferred: MLflow's
    inference loads the model once more in a subprocess."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return out


def model_version_of(model_dir: str | Path) -> str:
    """The registry version of a downloaded model (MLflow writes ``registered_model_meta``
    when it downloads a ``models:/`` URI), else ``local``."""
    meta = Path(model_dir) / "registered_model_meta"
    if meta.is_file():
        import yaml

        version = (yaml.safe_load(meta.read_text()) or {}).get("model_version")
        if version is not None:
            return str(version)
    return LOCAL_VERSION


class ChurnPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: the estimator, its threshold, its version."""

    def __init__(self, model: Any, *, threshold: float, version: str):
        self.model = model
        self.threshold = threshold
        self.version = version

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Raw records → ``churn_probability``, ``churn``, ``model_version`` (one row each,
        same index).

        Raises:
            MlflowException: A record breaks the contract (field and row named; HTTP 400
                under ``mlflow models serve``).
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        try:
            coerced = coerce_frame(frame)
            error = coerced.first_error()
            if error is not None:
                raise error
        except ChurnopsError as err:
            raise MlflowException(str(err), error_code=INVALID_PARAMETER_VALUE) from err
        proba = np.asarray(self.model.predict_proba(coerced.model_frame())[:, 1], dtype=np.float64)
        return pd.DataFrame(
            {
                "churn_probability": proba,
                "churn": proba >= self.threshold,
                "model_version": self.version,
            },
            index=frame.index,
        )


def threshold_of(model: Any, metadata: dict[str, Any] | None = None) -> float:
    """The decision threshold the model carries (``FixedThresholdClassifier``), else the
    one in the MLmodel metadata, else 0.5."""
    if type(model).__name__ == "FixedThresholdClassifier":
        return float(model.threshold)
    return float((metadata or {}).get("threshold", 0.5))


def load(model_dir: str | Path, *, version: str | None = None) -> ChurnPyfunc:
    """Load a churn model directory with churnops' safe loader
    (``churnops.model.serialize.load_model_dir``: the skops file only, churnops' trusted
    types, pickle refused)."""
    from churnops.model import serialize

    artifact = serialize.load_model_dir(model_dir)
    return ChurnPyfunc(
        artifact.model,
        threshold=threshold_of(artifact.model, artifact.metadata),
        version=version or model_version_of(model_dir),
    )


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> ChurnPyfunc:
    """MLflow's loader hook: ``data_path`` is the model directory (or a file in it).
    ``model_config={"model_version": "3"}`` labels the answers when MLflow cannot tell."""
    path = Path(data_path)
    model_dir = path if path.is_dir() else path.parent
    return load(model_dir, version=(model_config or {}).get("model_version"))
