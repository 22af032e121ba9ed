"""skops (de)serialization of churn models with an explicit list of trusted types.

skops refuses to load types it does not trust by default; pickle would load anything.
``TRUSTED_TYPES`` names the few types beyond skops' defaults that the candidates
contain, and both saving and loading fail loudly if a model ever holds anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRUSTED_TYPES: tuple[str, ...] = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
)


def _check(untrusted: list[str]) -> None:
    extra = set(untrusted) - set(TRUSTED_TYPES)
    if extra:
        raise ValueError(f"model contains types not declared trusted for skops: {sorted(extra)}")


def check_trusted(model: Any) -> None:
    """Raises ValueError if skops would need a type outside ``TRUSTED_TYPES``."""
    import skops.io as sio

    _check(sio.get_untrusted_types(data=sio.dumps(model)))


def dump(model: Any, path: str | Path) -> None:
    import skops.io as sio

    check_trusted(model)
    sio.dump(model, path)


def load(path: str | Path) -> Any:
    """Load a model saved by ``dump``; refuses files with undeclared types."""
    import skops.io as sio

    _check(sio.get_untrusted_types(file=path))
    return sio.load(path, trusted=list(TRUSTED_TYPES))
