"""The compiled scoring path: the loaded sklearn model turned into numpy arrays.

A churn model is ``FixedThresholdClassifier(FrozenEstimator(Pipeline([pre, clf])))``.
Running it per request costs milliseconds (pandas, ColumnTransformer, joblib). Here the
fitted objects are read once into plain arrays:

- the ColumnTransformer → imputation values, scaler moments and one-hot positions, so a
  batch's feature matrix is built with a few vectorized assignments;
- LogisticRegression → a dot product and the logistic function;
- XGBClassifier → ``Booster.inplace_predict`` on the same float64 matrix, one thread;
- RandomForestClassifier → all trees' nodes in flat arrays, traversed for every row and
  tree at once (float32 inputs, as sklearn's trees compare them).

Anything the compiler does not recognize falls back to the sklearn object itself
(``SklearnScorer``, correct but slower) with a log line, and the model loader checks
every compiled scorer against the sklearn object before it serves (``verify``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from churnops.data import contract
from churnops.errors import ModelLoadError
from churnops.serving.validation import CATEGORICAL_FIELDS, Columns

logger = logging.getLogger("churnops.serving")

_NUM_INDEX = {name: i for i, name in enumerate(contract.NUMERIC)}
_CAT_INDEX = {name: i for i, name in enumerate(contract.CATEGORICAL)}


class NotCompilable(Exception):
    """The model's structure is not one the compiler knows (reason in the message)."""


class Scorer(Protocol):
    kind: str

    def predict(self, columns: Columns) -> np.ndarray:
        """Churn probabilities, float64 of shape ``(n,)``."""
        ...


class SklearnScorer:
    """The fallback: the sklearn object on a DataFrame in the signature's types."""

    kind = "sklearn"

    def __init__(self, model: Any):
        self.model = model

    def predict(self, columns: Columns) -> np.ndarray:
        return np.asarray(
            self.model.predict_proba(columns_to_frame(columns))[:, 1], dtype=np.float64
        )


def columns_to_frame(columns: Columns) -> Any:
    """``Columns`` → the pandas frame MLflow's pyfunc would pass (text; None for unknown)."""
    import pandas as pd

    data: dict[str, Any] = {}
    for name in contract.FEATURE_NAMES:
        if name in _NUM_INDEX:
            data[name] = columns.numeric[:, _NUM_INDEX[name]]
        else:
            allowed = np.array([*contract.BY_NAME[name].allowed, None], dtype=object)
            data[name] = allowed[columns.codes[:, _CAT_INDEX[name]]]
    return pd.DataFrame(data)


class Encoder:
    """The compiled ColumnTransformer: ``Columns`` → the dense float64 feature matrix."""

    def __init__(self, transformer: Any):
        from sklearn.compose import ColumnTransformer

        if not isinstance(transformer, ColumnTransformer):
            raise NotCompilable(
                f"preprocessing is {type(transformer).__name__}, not a ColumnTransformer"
            )
        if getattr(transformer, "sparse_output_", False):
            raise NotCompilable("sparse ColumnTransformer output")
        self.width = 0
        self._numeric: list[
            tuple
        ] = []  # (offset, source idx, impute values, indicator idx, mean, scale, width)
        self._onehot: list[tuple[int, np.ndarray]] = []  # (field index, code → output column or -1)
        for name, step, cols in transformer.transformers_:
            if step == "drop" or (name == "remainder" and step == "drop"):
                continue
            if isinstance(cols, slice) or not all(isinstance(c, str) for c in cols):
                raise NotCompilable(f"transformer {name!r} selects columns by position")
            cols = list(cols)
            if not cols:
                continue
            if all(c in _NUM_INDEX for c in cols):
                self._add_numeric(name, step, cols)
            elif all(c in _CAT_INDEX for c in cols):
                self._add_onehot(name, step, cols)
            else:
                raise NotCompilable(f"transformer {name!r} mixes or uses unknown columns {cols}")
        if self.width != len(transformer.get_feature_names_out()):
            raise NotCompilable("output width does not match the transformer's feature names")
        table_len = max((len(f.allowed) for f in CATEGORICAL_FIELDS), default=0) + 1
        self._cat_fields = np.array([i for i, _ in self._onehot], dtype=np.intp)
        self._cat_table = np.full((len(self._onehot), table_len), -1, dtype=np.intp)
        for k, (_, mapping) in enumerate(self._onehot):
            self._cat_table[k, : len(mapping)] = mapping
            self._cat_table[k, -1] = -1  # code -1 (unknown) indexes the last slot

    def _add_numeric(self, name: str, step: Any, cols: list[str]) -> None:
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        steps = [s for _, s in step.steps] if isinstance(step, Pipeline) else [step]
        steps = [s for s in steps if s != "passthrough" and s is not None]
        imputer = scaler = None
        for s in steps:
            if isinstance(s, SimpleImputer) and imputer is None and scaler is None:
                imputer = s
            elif isinstance(s, StandardScaler) and scaler is None:
                scaler = s
            else:
                raise NotCompilable(f"numeric step {type(s).__name__} in {name!r}")
        source = np.array([_NUM_INDEX[c] for c in cols], dtype=np.intp)
        fill = np.full(len(cols), np.nan)
        keep = np.arange(len(cols))
        indicator = np.empty(0, dtype=np.intp)
        if imputer is not None:
            if not (
                isinstance(imputer.missing_values, float) and math.isnan(imputer.missing_values)
            ):
                raise NotCompilable("imputer with a non-NaN missing-value marker")
            fill = np.asarray(imputer.statistics_, dtype=np.float64)
            if not getattr(imputer, "keep_empty_features", False):
                keep = np.flatnonzero(~np.isnan(fill))
            if imputer.indicator_ is not None:
                indicator = np.asarray(imputer.indicator_.features_, dtype=np.intp)
        width = len(keep) + len(indicator)
        mean = scale = None
        if scaler is not None:
            if scaler.n_features_in_ != width:
                raise NotCompilable("scaler width differs from the imputer output")
            mean = (
                None if scaler.mean_ is None or not scaler.with_mean else np.asarray(scaler.mean_)
            )
            scale = (
                None if scaler.scale_ is None or not scaler.with_std else np.asarray(scaler.scale_)
            )
        self._numeric.append((self.width, source, fill, keep, indicator, mean, scale, width))
        self.width += width

    def _add_onehot(self, name: str, step: Any, cols: list[str]) -> None:
        from sklearn.preprocessing import OneHotEncoder

        if not isinstance(step, OneHotEncoder):
            raise NotCompilable(f"categorical step {type(step).__name__} in {name!r}")
        if step.drop is not None or getattr(step, "_infrequent_enabled", False):
            raise NotCompilable("one-hot encoder with drop or infrequent categories")
        if step.handle_unknown not in ("ignore", "infrequent_if_exist"):
            raise NotCompilable(f"one-hot encoder with handle_unknown={step.handle_unknown!r}")
        if getattr(step, "sparse_output_", step.sparse_output):
            raise NotCompilable("sparse one-hot output")
        for col, cats in zip(cols, step.categories_, strict=True):
            position = {c: i for i, c in enumerate(cats.tolist())}
            allowed = contract.BY_NAME[col].allowed
            if set(position) - set(allowed):
                # A learned category the contract does not know would score differently
                # from "unknown" here: leave such models to sklearn.
                raise NotCompilable(f"one-hot categories of {col} outside the contract")
            mapping = np.array(
                [self.width + position[v] if v in position else -1 for v in allowed], dtype=np.intp
            )
            self._onehot.append((_CAT_INDEX[col], mapping))
            self.width += len(cats)

    def numeric_blocks(self, columns: Columns) -> Iterator[tuple[int, np.ndarray]]:
        """(first output column, imputed and scaled block) per numeric transformer."""
        for offset, source, fill, keep, indicator, mean, scale, _ in self._numeric:
            raw = columns.numeric[:, source]
            missing = np.isnan(raw)
            block = np.where(missing, fill, raw)[:, keep]
            if indicator.size:
                block = np.concatenate([block, missing[:, indicator].astype(np.float64)], axis=1)
            if mean is not None:
                block -= mean
            if scale is not None:
                block /= scale
            yield offset, block

    def onehot_weights(self, coef: np.ndarray) -> np.ndarray:
        """Per one-hot field (rows) and category code (columns; the last is "unknown"),
        the coefficient of the output column that code sets, 0 where it sets none."""
        weights = np.zeros(self._cat_table.shape, dtype=np.float64)
        sets = self._cat_table >= 0
        weights[sets] = coef[self._cat_table[sets]]
        return weights

    def onehot_codes(self, columns: Columns) -> np.ndarray:
        """The batch's codes of the one-hot fields, ``(n, fields)``, -1 for unknown."""
        return columns.codes[:, self._cat_fields]

    def transform(self, columns: Columns) -> np.ndarray:
        n = len(columns)
        out = np.zeros((n, self.width), dtype=np.float64)
        for offset, block in self.numeric_blocks(columns):
            out[:, offset : offset + block.shape[1]] = block
        if self._onehot:
            cols = self._cat_table[np.arange(len(self._onehot)), columns.codes[:, self._cat_fields]]
            rows, which = np.nonzero(cols >= 0)
            out[rows, cols[rows, which]] = 1.0
        return out


class LinearScorer:
    kind = "logistic-regression"

    def __init__(self, encoder: Encoder, clf: Any):
        if clf.coef_.shape[0] != 1:
            raise NotCompilable("multiclass logistic regression")
        self.encoder = encoder
        self.coef = np.ascontiguousarray(clf.coef_[0], dtype=np.float64)
        self.intercept = float(clf.intercept_[0])
        # A one-hot column is 1 for exactly one code of its field: its share of the dot
        # product is a table lookup, so the one-hot matrix is never built.
        self.onehot = encoder.onehot_weights(self.coef)
        self._fields = np.arange(self.onehot.shape[0])

    def predict(self, columns: Columns) -> np.ndarray:
        z = np.full(len(columns), self.intercept)
        for offset, block in self.encoder.numeric_blocks(columns):
            z += block @ self.coef[offset : offset + block.shape[1]]
        if self._fields.size:
            z += self.onehot[self._fields, self.encoder.onehot_codes(columns)].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-z))


class XGBoostScorer:
    kind = "xgboost"
    parallel_rows = 256

    def __init__(self, encoder: Encoder, clf: Any):
        if (
            getattr(clf, "objective", None) != "binary:logistic"
            or getattr(clf, "booster", None) == "gblinear"
        ):
            raise NotCompilable(f"XGBoost objective {clf.objective!r} / booster {clf.booster!r}")
        self.encoder = encoder
        # One thread for small requests (thread start-up costs more than the work); all
        # cores for large batches. Two boosters, because set_param is not thread-safe.
        self.booster = clf.get_booster().copy()
        self.booster.set_param({"nthread": 1})
        self.parallel = clf.get_booster().copy()
        self.parallel.set_param({"nthread": os.cpu_count() or 1})
        self.missing = clf.missing
        try:
            self.iteration_range = (0, clf.best_iteration + 1)
        except AttributeError:
            self.iteration_range = (0, 0)

    def predict(self, columns: Columns) -> np.ndarray:
        x = self.encoder.transform(columns)
        booster = self.booster if x.shape[0] < self.parallel_rows else self.parallel
        out = booster.inplace_predict(
            x,
            iteration_range=self.iteration_range,
            predict_type="value",
            missing=self.missing,
            validate_features=False,
        )
        return np.asarray(out, dtype=np.float64).reshape(-1)


class ForestScorer:
    """All trees in flat arrays; leaves loop onto themselves so every row walks the same
    number of steps (the deepest tree's depth)."""

    kind = "random-forest"
    per_tree_rows = 16

    def __init__(self, encoder: Encoder, clf: Any):
        from sklearn.tree import DecisionTreeClassifier

        if clf.n_outputs_ != 1 or len(clf.classes_) != 2:
            raise NotCompilable("random forest with several outputs or classes")
        left, right, feature, threshold, prob, roots = [], [], [], [], [], []
        self._trees: list[tuple[Any, int]] = []
        offset, depth = 0, 0
        for est in clf.estimators_:
            if not isinstance(est, DecisionTreeClassifier):
                raise NotCompilable(f"forest member {type(est).__name__}")
            t = est.tree_
            n = t.node_count
            is_leaf = t.children_left < 0
            idx = np.arange(n)
            left.append(np.where(is_leaf, idx, t.children_left) + offset)
            right.append(np.where(is_leaf, idx, t.children_right) + offset)
            feature.append(np.where(is_leaf, 0, t.feature))
            threshold.append(np.where(is_leaf, 0.0, t.threshold))
            value = t.value[:, 0, :2].astype(np.float64)
            total = value.sum(axis=1)
            total[total == 0.0] = 1.0
            prob.append(value[:, 1] / total)
            roots.append(offset)
            self._trees.append((t, offset))
            offset += n
            depth = max(depth, t.max_depth)
        self.encoder = encoder
        self.left = np.concatenate(left)
        self.right = np.concatenate(right)
        self.feature = np.concatenate(feature)
        self.threshold = np.concatenate(threshold)
        self.prob = np.concatenate(prob)
        self.roots = np.array(roots, dtype=np.intp)
        self.depth = depth
        self.n_trees = len(roots)

    def predict(self, columns: Columns) -> np.ndarray:
        # sklearn's trees compare float32 inputs against float64 thresholds.
        x = np.ascontiguousarray(self.encoder.transform(columns), dtype=np.float32)
        n = x.shape[0]
        if n >= self.per_tree_rows:
            # Large batches: sklearn's compiled per-tree traversal, without its joblib overhead.
            total = np.zeros(n)
            for tree, offset in self._trees:
                total += self.prob[offset + tree.apply(x)]
            return total / self.n_trees
        # Small batches: every tree at once, one vectorized step per level.
        node = np.broadcast_to(self.roots, (n, self.n_trees))
        rows = np.arange(n)[:, None]
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        return self.prob[node].sum(axis=1) / self.n_trees


def unwrap(model: Any) -> tuple[Any, Any, float | None]:
    """(ColumnTransformer, classifier, threshold) of a churn model.

    Raises:
        NotCompilable: Another structure.
    """
    from sklearn.pipeline import Pipeline

    threshold = None
    inner = model
    if type(model).__name__ == "FixedThresholdClassifier":
        if model.response_method not in ("predict_proba", "auto"):
            raise NotCompilable(f"threshold on {model.response_method}")
        threshold = float(model.threshold)
        inner = getattr(model, "estimator_", model.estimator)
    if type(inner).__name__ == "FrozenEstimator":
        inner = inner.estimator
    if not isinstance(inner, Pipeline) or len(inner.steps) != 2:
        raise NotCompilable(f"expected Pipeline([pre, clf]), got {type(inner).__name__}")
    pre, clf = inner.steps[0][1], inner.steps[1][1]
    classes = list(getattr(clf, "classes_", []))
    if [int(c) for c in classes] != [0, 1]:
        raise NotCompilable(f"classes {classes}")
    return pre, clf, threshold


def compile_model(model: Any) -> Scorer:
    """The fastest exact scorer for ``model``; ``SklearnScorer`` if it is not recognized."""
    try:
        pre, clf, _ = unwrap(model)
        encoder = Encoder(pre)
        kind = type(clf).__name__
        if kind == "LogisticRegression":
            return LinearScorer(encoder, clf)
        if kind == "XGBClassifier":
            return XGBoostScorer(encoder, clf)
        if kind == "RandomForestClassifier":
            return ForestScorer(encoder, clf)
        raise NotCompilable(f"classifier {kind}")
    except NotCompilable as err:
        logger.warning(
            "scoring: cannot compile the model (%s); serving through sklearn (slower)", err
        )
        return SklearnScorer(model)


def verify(scorer: Scorer, model: Any, columns: Columns, *, tolerance: float = 1e-9) -> float:
    """Max absolute difference between ``scorer`` and the sklearn object on ``columns``.

    Raises:
        ValueError: The difference exceeds ``tolerance`` or scores are not probabilities.
    """
    expected = SklearnScorer(model).predict(columns)
    got = scorer.predict(columns)
    if got.shape != expected.shape or not np.isfinite(got).all():
        raise ValueError(f"{scorer.kind} scorer returned shape {got.shape} or non-finite scores")
    if ((got < 0) | (got > 1)).any():
        raise ValueError(f"{scorer.kind} scorer returned scores outside [0, 1]")
    diff = float(np.max(np.abs(got - expected))) if len(got) else 0.0
    if diff > tolerance:
        raise ValueError(f"{scorer.kind} scorer differs from sklearn by {diff:.3g}")
    return diff


def self_check_columns(example: Any = None, *, rows: int = 200, seed: int = 0) -> Columns:
    """Records the self-check scores: the model's input example, generated customers, and
    the same customers with unknown categories and missing numbers."""
    import pandas as pd

    from churnops.data.generate import generate_chunk
    from churnops.model.features import model_input
    from churnops.serving.validation import columns_from_frame

    frame = model_input(generate_chunk(np.random.default_rng(seed), rows, start=0, drift=0.0))
    if example is not None:
        frame = pd.concat([model_input(example), frame], ignore_index=True)
    cols = columns_from_frame(frame)
    rng = np.random.default_rng(seed + 1)
    odd = Columns(cols.numeric.copy(), cols.codes.copy())
    odd.numeric[rng.random(odd.numeric.shape) < 0.2] = np.nan
    odd.codes[rng.random(odd.codes.shape) < 0.2] = -1
    return Columns(np.vstack([cols.numeric, odd.numeric]), np.vstack([cols.codes, odd.codes]))


def checked_scorer(model: Any, columns: Columns, version: str) -> tuple[Scorer, float]:
    """The compiled scorer of ``model``, checked against it on ``columns`` (the model
    server and batch scoring load through this); a compiled scorer that disagrees is
    replaced by the sklearn object, loudly; the max difference comes with it.

    Raises:
        ModelLoadError: Even the sklearn object fails the check.
    """
    scorer = compile_model(model)
    try:
        return scorer, verify(scorer, model, columns)
    except ValueError as err:
        if isinstance(scorer, SklearnScorer):
            raise ModelLoadError(f"model {version} fails its self-check: {err}") from err
        logger.error(
            "model %s: compiled %s scorer rejected (%s); scoring through sklearn",
            version,
            scorer.kind,
            err,
        )
    fallback = SklearnScorer(model)
    try:
        return fallback, verify(fallback, model, columns)
    except Exception as err:
        raise ModelLoadError(f"model {version} fails its self-check: {err}") from err


# The compiled scorer as plain arrays beside the model (``save_compiled``), for a batch job
# that would otherwise spend most of its start importing scikit-learn to rebuild it.
COMPILED_FILE = "churnops_scorer.npz"
_COMPILED_FORMAT = 1


def save_compiled(
    scorer: Scorer, threshold: float, skops_sha256: str, path: str | Path, check_diff: float = 0.0
) -> bool:
    """Write ``scorer`` (checked against its model by the caller, ``check_diff`` its max
    difference) as arrays to ``path``, bound to the skops file it was compiled from by
    ``skops_sha256``. Only the linear scorer is written (the other families need their
    libraries to score anyway).

    Returns:
        Whether a file was written.
    """
    if not isinstance(scorer, LinearScorer):
        return False
    enc = scorer.encoder
    arrays: dict[str, np.ndarray] = {
        "format": np.array(_COMPILED_FORMAT),
        "kind": np.array(scorer.kind),
        "skops_sha256": np.array(skops_sha256),
        "threshold": np.array(float(threshold)),
        "check_diff": np.array(float(check_diff)),
        "width": np.array(enc.width),
        "coef": scorer.coef,
        "intercept": np.array(scorer.intercept),
        "cat_fields": enc._cat_fields,
        "cat_table": enc._cat_table,
        "numeric_blocks": np.array(len(enc._numeric)),
    }
    for i, (offset, source, fill, keep, indicator, mean, scale, width) in enumerate(enc._numeric):
        block = {"offset": np.array(offset), "source": source, "fill": fill, "keep": keep}
        block |= {"indicator": indicator, "width": np.array(width)}
        block |= {k: v for k, v in (("mean", mean), ("scale", scale)) if v is not None}
        arrays |= {f"num{i}_{k}": np.asarray(v) for k, v in block.items()}
    with open(path, "wb") as out:
        np.savez(out, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    return True


def saved_scorer(model_dir: str | Path) -> tuple[Scorer, float, float] | None:
    """(scorer, threshold, check diff) saved beside the skops file of the model in
    ``model_dir`` for that very file, or None (then load the estimator and compile it).
    The model server and batch scoring start this way without scikit-learn.

    Raises:
        UnsafeModel: The directory's sklearn flavor is not a skops file (refused first).
    """
    import hashlib

    from churnops.model.serialize import skops_file

    skops = skops_file(model_dir)
    return load_compiled(
        Path(model_dir) / COMPILED_FILE, hashlib.sha256(skops.read_bytes()).hexdigest()
    )


def load_compiled(path: str | Path, skops_sha256: str) -> tuple[Scorer, float, float] | None:
    """(scorer, threshold, check diff) from a ``save_compiled`` file, or None when it is absent, of
    another format, compiled from another skops file than ``skops_sha256``, or malformed.
    Read as arrays only (no pickle); the scorer is rebuilt without scikit-learn."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != _COMPILED_FORMAT or str(z["kind"]) != LinearScorer.kind:
                return None
            if str(z["skops_sha256"]) != skops_sha256:
                logger.warning("scoring: %s was compiled from another model file; ignored", path)
                return None
            enc = Encoder.__new__(Encoder)
            enc.width = int(z["width"])
            enc._cat_fields = z["cat_fields"].astype(np.intp)
            enc._cat_table = z["cat_table"].astype(np.intp)
            enc._onehot = [(int(f), enc._cat_table[k]) for k, f in enumerate(enc._cat_fields)]
            enc._numeric = []
            for i in range(int(z["numeric_blocks"])):
                b = {k[len(f"num{i}_") :]: z[k] for k in z.files if k.startswith(f"num{i}_")}
                enc._numeric.append(
                    (
                        int(b["offset"]),
                        b["source"].astype(np.intp),
                        b["fill"].astype(np.float64),
                        b["keep"].astype(np.intp),
                        b["indicator"].astype(np.intp),
                        b["mean"].astype(np.float64) if "mean" in b else None,
                        b["scale"].astype(np.float64) if "scale" in b else None,
                        int(b["width"]),
                    )
                )
            scorer = LinearScorer.__new__(LinearScorer)
            scorer.encoder = enc
            scorer.coef = np.ascontiguousarray(z["coef"], dtype=np.float64)
            scorer.intercept = float(z["intercept"])
            threshold = float(z["threshold"])
            check_diff = float(z["check_diff"])
    except FileNotFoundError:
        return None
    except Exception as err:  # anything malformed in a file from the artifact store
        logger.warning("scoring: %s unreadable (%s); ignored", path, err)
        return None
    if not _consistent(enc, scorer, threshold) or not 0.0 <= check_diff <= 1e-9:
        logger.warning("scoring: %s is inconsistent; ignored", path)
        return None
    scorer.onehot = enc.onehot_weights(scorer.coef)
    scorer._fields = np.arange(scorer.onehot.shape[0])
    return scorer, threshold, check_diff


def _consistent(enc: Encoder, scorer: LinearScorer, threshold: float) -> bool:
    """Indices in range and numbers finite: a scorer that cannot index out of its arrays."""
    n_num, n_cat = len(contract.NUMERIC), len(contract.CATEGORICAL)
    blocks_ok = all(
        off >= 0
        and off + width <= enc.width
        and ((src >= 0) & (src < n_num)).all()
        and len(fill) == len(src)
        and ((keep >= 0) & (keep < len(src))).all()
        and ((ind >= 0) & (ind < len(src))).all()
        and width == len(keep) + len(ind)
        and all(v is None or v.shape == (width,) for v in (mean, scale))
        for off, src, fill, keep, ind, mean, scale, width in enc._numeric
    )
    table_len = max((len(f.allowed) for f in CATEGORICAL_FIELDS), default=0) + 1
    return bool(
        blocks_ok
        and scorer.coef.shape == (enc.width,)
        and np.isfinite(scorer.coef).all()
        and math.isfinite(scorer.intercept)
        and 0.0 <= threshold <= 1.0
        and enc._cat_table.shape == (len(enc._cat_fields), table_len)
        and ((enc._cat_fields >= 0) & (enc._cat_fields < n_cat)).all()
        and ((enc._cat_table >= -1) & (enc._cat_table < enc.width)).all()
    )
