"""Hostile model artifacts: churnops' one loader refuses them before any of their code runs.

Each payload writes a marker file when it executes. Every test first shows the payload is
real (the loader an attacker counts on runs it) and then that
``churnops.model.serialize.load_model_dir`` refuses the same directory, names why, and
leaves no marker, also with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true``.
"""

from __future__ import annotations

import json
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

# tests/ is on sys.path (its conftest): the payload builders live once, with the server tests'.
from integration._serving_support import Shell, hostile_model_dirs, skops_calling_system

from churnops.model import serialize
from churnops.model.serialize import UnsafeModel, load_model_dir, load_model_uri


def _touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _tiny_model():
    from sklearn.linear_model import LogisticRegression

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    return LogisticRegression().fit(x, [0, 0, 1, 1])


def _save(tmp_path: Path, fmt: str = "skops", **kwargs) -> Path:
    import mlflow.sklearn

    path = tmp_path / f"model-{fmt}"
    mlflow.sklearn.save_model(
        _tiny_model(),
        str(path),
        serialization_format=fmt,
        pip_requirements=["scikit-learn"],  # no requirement inference (a subprocess)
        pyfunc_predict_fn="predict_proba",
        **kwargs,
    )
    return path


def _edit_mlmodel(model_dir: Path, edit) -> None:
    mlmodel = model_dir / "MLmodel"
    meta = yaml.safe_load(mlmodel.read_text())
    edit(meta)
    mlmodel.write_text(yaml.safe_dump(meta))


@pytest.fixture(params=["unset", "true"])
def allow_pickle_env(request, monkeypatch) -> None:
    """Both with and without MLflow's opt-in to unsafe deserialization."""
    if request.param == "true":
        monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    else:
        monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)


@pytest.mark.parametrize("kind", ["pickle", "trusted", "untrusted"])
def test_hostile_directories_are_refused(tmp_path: Path, allow_pickle_env, kind: str) -> None:
    marker = tmp_path / "pwned"
    hostile = hostile_model_dirs(_save(tmp_path), tmp_path, marker)[kind]
    with pytest.raises(UnsafeModel, match="refused"):
        load_model_dir(hostile)
    assert not marker.exists()


def test_a_good_skops_model_loads(tmp_path: Path) -> None:
    path = _save(tmp_path)
    artifact = load_model_dir(path)
    assert artifact.model.predict_proba(np.array([[3.0]]))[0, 1] > 0.5
    assert load_model_uri(str(path)).model.coef_.shape == (1, 1)


def test_pickle_model_is_refused_and_runs_nothing(tmp_path: Path, allow_pickle_env) -> None:
    path = _save(tmp_path, "pickle")
    marker = tmp_path / "pwned-pickle"
    payload = pickle.dumps(Shell(_touch(marker)))
    (path / "model.pkl").write_bytes(payload)

    with pytest.raises(UnsafeModel, match="serialization_format 'pickle' refused"):
        load_model_dir(path)
    with pytest.raises(UnsafeModel):
        load_model_uri(f"file://{path}")
    assert not marker.exists()

    pickle.loads(payload)  # the payload is real: plain unpickling runs it
    assert marker.exists()


def test_pickle_file_behind_a_skops_label_is_refused(tmp_path: Path, allow_pickle_env) -> None:
    """MLmodel claims skops but names the pickle (or a file outside the directory)."""
    path = _save(tmp_path, "pickle")
    marker = tmp_path / "pwned-label"
    (path / "model.pkl").write_bytes(pickle.dumps(Shell(_touch(marker))))

    def relabel(meta: dict) -> None:
        meta["flavors"]["sklearn"]["serialization_format"] = "skops"

    _edit_mlmodel(path, relabel)
    with pytest.raises(UnsafeModel, match=r"only a \.skops file"):
        load_model_dir(path)

    def outside(meta: dict) -> None:
        meta["flavors"]["sklearn"]["pickled_model"] = "../elsewhere.skops"

    _edit_mlmodel(path, outside)
    with pytest.raises(UnsafeModel, match=r"only a \.skops file"):
        load_model_dir(path)
    assert not marker.exists()


def test_cloudpickle_model_is_refused(tmp_path: Path, allow_pickle_env) -> None:
    path = _save(tmp_path, "cloudpickle")
    with pytest.raises(UnsafeModel, match="'cloudpickle' refused"):
        load_model_dir(path)


def test_artifact_trusted_types_are_ignored(tmp_path: Path, allow_pickle_env) -> None:
    """``skops_trusted_types: [os.system]`` in MLmodel does not make churnops trust it."""
    path = _save(tmp_path)
    marker = tmp_path / "pwned-skops"
    (path / "model.skops").write_bytes(skops_calling_system(_touch(marker)))

    def trust_system(meta: dict) -> None:
        meta["flavors"]["sklearn"]["skops_trusted_types"] = ["os.system", "posix.system"]

    _edit_mlmodel(path, trust_system)
    with pytest.raises(UnsafeModel, match=r"not in churnops' trusted list.*os\.system"):
        load_model_dir(path)
    assert not marker.exists()

    import skops.io as sio  # the payload is real: the artifact's own list runs it

    sio.load(path / "model.skops", trusted=["os.system"])
    assert marker.exists()


def test_mlflow_loader_would_run_the_artifact_trusted_types(tmp_path: Path, monkeypatch) -> None:
    """Why the server no longer uses mlflow.sklearn.load_model: with MLflow's opt-in it
    follows the artifact's list and runs the payload."""
    import mlflow.sklearn

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    path = _save(tmp_path)
    marker = tmp_path / "pwned-mlflow"
    (path / "model.skops").write_bytes(skops_calling_system(_touch(marker)))
    _edit_mlmodel(
        path,
        lambda meta: meta["flavors"]["sklearn"].__setitem__("skops_trusted_types", ["os.system"]),
    )
    mlflow.sklearn.load_model(str(path))
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UnsafeModel):
        load_model_dir(path)
    assert not marker.exists()


def test_untrusted_type_is_refused_with_its_name(tmp_path: Path, allow_pickle_env) -> None:
    import mlflow.sklearn
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(json.loads), _tiny_model())
    path = tmp_path / "model-untrusted"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        skops_trusted_types=["json.loads"],
        pip_requirements=["scikit-learn"],
    )
    with pytest.raises(UnsafeModel, match=r"json\.loads"):
        load_model_dir(path)
    with pytest.raises(UnsafeModel):
        serialize.check_trusted(model)


def test_pyfunc_pointing_elsewhere_and_missing_flavor_are_refused(tmp_path: Path) -> None:
    path = _save(tmp_path)
    _edit_mlmodel(
        path,
        lambda meta: meta["flavors"]["python_function"].__setitem__("model_path", "model.pkl"),
    )
    with pytest.raises(UnsafeModel, match=r"python_function loads .model\.pkl."):
        load_model_dir(path)
    _edit_mlmodel(path, lambda meta: meta["flavors"].pop("sklearn"))
    with pytest.raises(serialize.ModelLoadError, match="no sklearn flavor"):
        load_model_dir(path)
    with pytest.raises(serialize.ModelLoadError, match="no MLmodel"):
        load_model_dir(tmp_path)
