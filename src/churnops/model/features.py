"""Feature encoding: the preprocessing half of every churn model.

Categories are fixed to the record contract's values, so a value the contract does not
know (or a missing one) encodes as all-zeros instead of failing, identically in
training, in MLflow's pyfunc and in the model server's compiled path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churnops.data import contract


def preprocessor(*, scale: bool) -> ColumnTransformer:
    """Numeric: median imputation with a missing indicator (blank ``TotalCharges`` means a
    new customer, which is informative), optionally standardized (linear models).
    Categorical: one-hot over the contract's values; unknown or missing → all zeros."""
    numeric_steps: list = [("impute", SimpleImputer(strategy="median", add_indicator=True))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    categories = [list(contract.BY_NAME[name].allowed) for name in contract.CATEGORICAL]
    return ColumnTransformer(
        [
            ("num", Pipeline(numeric_steps), list(contract.NUMERIC)),
            (
                "cat",
                OneHotEncoder(
                    categories=categories,
                    handle_unknown="ignore",
                    sparse_output=False,
                    dtype=np.float64,
                ),
                list(contract.CATEGORICAL),
            ),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The feature columns as the model signature declares them: text for categories
    (``None`` for missing), float64 for numbers (NaN for missing)."""
    out = {}
    for f in contract.FEATURES:
        col = (
            frame[f.name] if f.name in frame else pd.Series([None] * len(frame), index=frame.index)
        )
        if f.is_numeric:
            out[f.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            out[f.name] = col.astype(object).where(col.notna(), None)
    return pd.DataFrame(out, index=frame.index)
