"""skops (de)serialization of churn models, and THE one way churnops loads a model.

Every place churnops loads a churn model (the model server and its alias reload, the
promotion gate, the rollout, batch scoring) calls ``load_model_dir`` or
``load_model_uri`` here. Never ``mlflow.sklearn.load_model`` or ``mlflow.pyfunc.load_model``:
those follow the artifact's own ``MLmodel``, so a model directory could ask for
``serialization_format: pickle`` (a ``model.pkl`` that reduces to ``os.system``) or list
``os.system`` among its ``skops_trusted_types``, and loading it would run that code.

The rules, which no environment variable relaxes (``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``
included):

- ``MLmodel`` is read (as plain YAML) only to find the skops file of the ``sklearn``
  flavor; its ``skops_trusted_types`` list is ignored.
- The flavor must say ``serialization_format: skops`` and name a ``.skops`` file inside
  the model directory; pickle, cloudpickle or any other file is refused.
- The skops file is checked against ``TRUSTED_TYPES`` (this module's list, beside the
  candidates it covers) before anything is constructed; a type outside it is refused.

A refusal is ``UnsafeModel`` (a ``ModelLoadError``): CLI exit 5 with one line, and the
model server stays unready (first load) or keeps the previous version (reload).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnops.errors import ModelLoadError

TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
)
"""Types beyond skops' defaults that churnops' candidates contain; the only extra types
any churnops loader trusts (never the artifact's own list)."""


class UnsafeModel(ModelLoadError, ValueError):
    """A model artifact churnops refuses to deserialize (pickle, a non-skops flavor file,
    types outside ``TRUSTED_TYPES``). Nothing from the artifact was executed. CLI: exit 5;
    model server: the version never serves (unready, or the previous version stays).
    Also a ValueError, which ``check_trusted`` raised before."""


def _check(untrusted: list[str], where: str = "model") -> None:
    extra = set(untrusted) - set(TRUSTED_TYPES)
    if extra:
        raise UnsafeModel(
            f"{where} contains types not in churnops' trusted list (refused, nothing was "
            f"loaded): {sorted(extra)}"
        )


ESTIMATOR_NAMES = Path(__file__).with_name("skops_estimator_names.json")
_SKOPS_IMPORT = threading.Lock()


def skops_io() -> Any:
    """``skops.io``, imported without the walk over every scikit-learn module it makes
    for its default trusted list (``all_estimators()``: about a second, the larger part of
    a batch job's start).

    The names that walk finds are shipped in ``ESTIMATOR_NAMES`` for the pinned
    scikit-learn and skops; skops gets exactly those names, so it trusts exactly what it
    would have (checked after the import, and by a test against a real walk). Any other
    version pair takes skops' own walk.
    """
    with _SKOPS_IMPORT:
        if "skops.io" in sys.modules:
            return sys.modules["skops.io"]
        import sklearn
        import sklearn.utils

        shipped = json.loads(ESTIMATOR_NAMES.read_text())
        if shipped["versions"] != _skops_versions(sklearn.__version__):
            import skops.io

            return skops.io
        names = shipped["names"]
        walk = sklearn.utils.all_estimators
        sklearn.utils.all_estimators = lambda: [(n, _named(n)) for n in names]
        try:
            import skops.io
            from skops.io import _trusted_types
        finally:
            sklearn.utils.all_estimators = walk
        if names != _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES:
            raise RuntimeError("skops' trusted estimator list differs from the shipped one")
        return skops.io


def _skops_versions(sklearn_version: str) -> dict[str, str]:
    from importlib.metadata import version

    return {"scikit-learn": sklearn_version, "skops": version("skops")}


def _named(qualified: str) -> type:
    """A stand-in class that skops names ``qualified`` (module and class name)."""
    module, _, name = qualified.rpartition(".")
    return type(name, (), {"__module__": module})


def estimator_names() -> dict[str, Any]:
    """What ``ESTIMATOR_NAMES`` holds, computed by skops' own walk (in a fresh process:
    ``python -m churnops.model.serialize > src/churnops/model/skops_estimator_names.json``)."""
    import sklearn
    from skops.io import _trusted_types

    return {
        "versions": _skops_versions(sklearn.__version__),
        "names": _trusted_types.SKLEARN_ESTIMATOR_TYPE_NAMES,
    }


def check_trusted(model: Any) -> None:
    """Raises UnsafeModel if skops would need a type outside ``TRUSTED_TYPES`` to load
    ``model`` again (checked before saving, so every saved model loads)."""
    sio = skops_io()

    _check(sio.get_untrusted_types(data=sio.dumps(model)))


def dump(model: Any, path: str | Path) -> None:
    sio = skops_io()

    check_trusted(model)
    sio.dump(model, path)


def load(path: str | Path) -> Any:
    """Load a skops file saved by ``dump``; refuses files with types outside
    ``TRUSTED_TYPES`` before constructing anything.

    Raises:
        UnsafeModel: The file needs a type churnops does not trust, or is not skops.
    """
    sio = skops_io()

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # not a skops zip, or a schema skops cannot read
        raise UnsafeModel(
            f"{path} is not a readable skops file: {type(err).__name__}: {err}"
        ) from err
    _check(untrusted, where=str(path))
    return sio.load(path, trusted=list(TRUSTED_TYPES))


@dataclass(frozen=True)
class ModelArtifact:
    """A churn model loaded safely from an MLflow model directory.

    Attributes:
        model: The sklearn pipeline (preprocessing + classifier; ``predict_proba``).
        run_id: The MLflow run that logged it ("" if the MLmodel does not say).
        metadata: The MLmodel ``metadata`` (threshold, candidate, ...).
        input_example: The logged input example as a DataFrame, or None.
        profile: The reference profile (``churnops.tracking.PROFILE_FILE``), or None.
    """

    model: Any
    run_id: str = ""
    metadata: dict = field(default_factory=dict)
    input_example: Any = None
    profile: dict | None = None


def skops_file(model_dir: str | Path) -> Path:
    """The skops file of the ``sklearn`` flavor of the MLflow model in ``model_dir``.

    Only ``MLmodel``'s ``flavors.sklearn`` (``serialization_format``, ``pickled_model``)
    is consulted, and only to find the file.

    Raises:
        UnsafeModel: Not skops (pickle, cloudpickle, another flavor's file), or a path
            outside the directory.
        ModelLoadError: No ``MLmodel`` or no ``sklearn`` flavor.
    """
    import yaml

    root = Path(model_dir).resolve()
    mlmodel = root / "MLmodel"
    if not mlmodel.is_file():
        raise ModelLoadError(f"{model_dir} is not an MLflow model directory (no MLmodel file)")
    try:
        meta = yaml.safe_load(mlmodel.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ModelLoadError(f"{mlmodel}: unreadable MLmodel: {err}") from err
    flavors = meta.get("flavors") if isinstance(meta, dict) else None
    if not isinstance(flavors, dict) or not isinstance(flavors.get("sklearn"), dict):
        names = sorted(flavors) if isinstance(flavors, dict) else []
        raise ModelLoadError(f"{model_dir} has no sklearn flavor (flavors: {names})")
    flavor = flavors["sklearn"]
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise UnsafeModel(
            f"{model_dir}: serialization_format {fmt!r} refused; churnops loads only skops "
            "models (pickle and cloudpickle run code from the file)"
        )
    name = flavor.get("pickled_model")
    path = (root / name).resolve() if isinstance(name, str) else None
    if path is None or path.suffix != ".skops" or path.parent != root:
        raise UnsafeModel(
            f"{model_dir}: the sklearn flavor names {name!r}; churnops loads only a .skops "
            "file in the model directory"
        )
    pyfunc = flavors.get("python_function")
    if isinstance(pyfunc, dict) and pyfunc.get("model_path") not in (None, name):
        raise UnsafeModel(
            f"{model_dir}: python_function loads {pyfunc.get('model_path')!r}, not the skops "
            f"file {name!r}; refused"
        )
    if not path.is_file():
        raise ModelLoadError(f"{model_dir}: {name} is missing")
    return path


def input_example(root: Path, meta: dict[str, Any]) -> Any:
    """The model's input example (the frame MLflow saved beside it: JSON, never code), or
    None. Read here rather than through ``mlflow.models``, whose import costs seconds of
    every model server's start and batch job."""
    import pandas as pd

    info = meta.get("saved_input_example_info") if isinstance(meta, dict) else None
    if not isinstance(info, dict) or info.get("type") != "dataframe":
        return None
    try:
        data = json.loads((root / str(info.get("artifact_path"))).read_text())
        if info.get("pandas_orient") == "split":
            return pd.DataFrame(data["data"], columns=data["columns"])
        if info.get("pandas_orient") == "records":
            return pd.DataFrame.from_records(data)
    except (OSError, ValueError, KeyError, TypeError):  # an example is optional
        return None
    return None


def load_model_dir(model_dir: str | Path, *, estimator: bool = True) -> ModelArtifact:
    """Load the churn model in a local MLflow model directory, safely (module docstring).

    The one loader for a model directory (what KServe's storage initializer leaves, or
    ``mlflow.artifacts.download_artifacts`` returns). Refuses pickle and any type outside
    ``TRUSTED_TYPES`` before anything from the artifact is constructed, whatever
    ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` says. With ``estimator=False`` all but the
    estimator is read (``model`` is None), for a caller that has its saved scorer.

    Raises:
        UnsafeModel: The artifact asks for something churnops does not trust.
        ModelLoadError: Not a loadable churn model directory.
    """
    import yaml

    from churnops.tracking import PROFILE_FILE  # tracking imports this module

    root = Path(model_dir)
    skops = skops_file(root)
    model = load(skops) if estimator else None
    meta = yaml.safe_load((root / "MLmodel").read_text())
    example = input_example(root, meta)
    profile = None
    profile_path = root / "extra_files" / PROFILE_FILE
    if profile_path.is_file():
        try:
            profile = json.loads(profile_path.read_text())
        except (OSError, ValueError) as err:
            raise ModelLoadError(f"{profile_path}: unreadable profile: {err}") from err
    metadata = meta.get("metadata")
    return ModelArtifact(
        model=model,
        run_id=str(meta.get("run_id") or ""),
        metadata=metadata if isinstance(metadata, dict) else {},
        input_example=example,
        profile=profile,
    )


def load_model_uri(uri: str, *, download_dir: str | Path | None = None) -> ModelArtifact:
    """Load the churn model at ``uri`` safely: a local directory, ``models:/name/version``,
    ``models:/name@alias``, ``runs:/…`` or any artifact URI MLflow can download.

    The artifacts are downloaded (MLflow's tracking URI as configured) into a temporary
    directory under ``download_dir`` (default: the temp dir), loaded with
    ``load_model_dir`` and removed.

    Raises:
        UnsafeModel: The artifact asks for something churnops does not trust.
        ModelLoadError: Download failed or not a loadable churn model.
    """
    with local_model_dir(uri, download_dir=download_dir) as root:
        return load_model_dir(root)


@contextlib.contextmanager
def local_model_dir(uri: str, *, download_dir: str | Path | None = None) -> Iterator[Path]:
    """The model directory at ``uri`` on local disk: ``uri`` itself when it is one, else
    downloaded into a temporary directory that is removed afterwards. Nothing is loaded.

    Raises:
        ModelLoadError: The download failed.
    """
    local = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if local.is_dir():
        yield local
        return
    root = Path(download_dir or tempfile.gettempdir()) / "churnops-models"
    root.mkdir(parents=True, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="download-", dir=root)
    try:
        import mlflow.artifacts

        try:
            path = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=workdir)
        except Exception as err:
            raise ModelLoadError(f"cannot download {uri}: {type(err).__name__}: {err}") from err
        yield Path(path)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(estimator_names(), indent=1))
