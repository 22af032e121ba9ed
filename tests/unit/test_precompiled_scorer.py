"""The compiled scorer saved beside a model: read back without scikit-learn, it scores
exactly like the estimator, and a file that is stale, tampered or not arrays is ignored
(the estimator is loaded instead), never trusted."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

# tests/ is on sys.path (its conftest).
from integration._consumers_support import save_model_dir

from churnops.model import serialize
from churnops.serving.scoring import (
    COMPILED_FILE,
    LinearScorer,
    SklearnScorer,
    load_compiled,
    self_check_columns,
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("pre") / "model", candidate="logreg")


def _digest(model_dir: Path) -> str:
    return hashlib.sha256(serialize.skops_file(model_dir).read_bytes()).hexdigest()


def test_logging_a_linear_model_saves_a_scorer_equal_to_the_estimator(model_dir):
    loaded = load_compiled(model_dir / COMPILED_FILE, _digest(model_dir))
    assert loaded is not None
    scorer, threshold, _ = loaded
    assert isinstance(scorer, LinearScorer)
    model = serialize.load_model_dir(model_dir).model
    assert threshold == pytest.approx(float(model.threshold))
    columns = self_check_columns(rows=3000, seed=11)  # unseen categories, missing numbers
    expected = SklearnScorer(model).predict(columns)
    assert np.abs(scorer.predict(columns) - expected).max() <= 1e-12


def test_other_families_save_none(tmp_path):
    assert not (save_model_dir(tmp_path / "m", candidate="xgboost") / COMPILED_FILE).exists()


def test_reading_it_back_imports_no_scikit_learn(model_dir):
    code = textwrap.dedent(
        f"""
        import sys
        from churnops.scoring.batch import load_model
        model = load_model({str(model_dir)!r})
        assert model.precompiled, "the estimator was loaded"
        assert "sklearn" not in sys.modules, "scikit-learn was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_file_from_another_model_is_ignored(model_dir):
    assert load_compiled(model_dir / COMPILED_FILE, "0" * 64) is None


def _tampered(model_dir: Path, tmp_path: Path, **changes: object) -> Path:
    with np.load(model_dir / COMPILED_FILE, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for key, value in changes.items():
        arrays[key] = value(arrays[key]) if callable(value) else np.asarray(value)
    path = tmp_path / COMPILED_FILE
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    return path


@pytest.mark.parametrize(
    "change",
    [
        {"cat_table": lambda t: np.full_like(t, 10_000)},  # indexes past the coefficients
        {"cat_table": lambda t: t[:1]},  # fewer rows than one-hot fields
        {"num0_source": np.array([99])},  # a numeric field that does not exist
        {"coef": np.array([np.nan])},
        {"threshold": np.array(7.0)},
        {"check_diff": np.array(0.5)},  # it never passed the check against the estimator
        {"format": np.array(2)},
        {"kind": np.array("xgboost")},
    ],
    ids=[
        "one-hot index",
        "one-hot rows",
        "numeric field",
        "coefficients",
        "threshold",
        "check",
        "format",
        "kind",
    ],
)
def test_a_tampered_file_is_ignored(model_dir, tmp_path, change):
    path = _tampered(model_dir, tmp_path, **change)
    assert load_compiled(path, _digest(model_dir)) is None


def test_a_file_holding_objects_is_not_unpickled(model_dir, tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = _tampered(model_dir, tmp_path, coef=np.array([Payload()], dtype=object))
    assert load_compiled(path, _digest(model_dir)) is None
    assert not marker.exists()


def test_an_absent_or_garbage_file_is_ignored(model_dir, tmp_path):
    assert load_compiled(tmp_path / "none.npz", _digest(model_dir)) is None
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert load_compiled(tmp_path / "junk.npz", _digest(model_dir)) is None
