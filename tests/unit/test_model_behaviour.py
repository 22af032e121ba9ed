"""Model behaviour tests: directional expectations and invariances a user relies on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnops.data.generate import GeneratorConfig, generate
from churnops.data.validate import validate_frame
from churnops.model.features import model_input
from churnops.model.train import TrainConfig, split, train_candidate


@pytest.fixture(scope="module", params=["logreg", "xgboost"])
def fitted(request):
    frame, report = validate_frame(generate(GeneratorConfig(rows=3000, seed=21)))
    assert report.ok
    parts = split(frame, seed=1)
    return train_candidate(
        request.param, parts.train, config=TrainConfig(search_folds=2, threshold_folds=3)
    ), parts


def _score(candidate, frame: pd.DataFrame) -> np.ndarray:
    return candidate.model.predict_proba(model_input(frame))[:, 1]


def test_longer_contract_lowers_churn_risk(fitted):
    candidate, parts = fitted
    base = parts.test.head(300).copy()
    m2m = _score(candidate, base.assign(Contract="Month-to-month"))
    two = _score(candidate, base.assign(Contract="Two year"))
    assert (two <= m2m + 1e-9).mean() > 0.95


def test_longer_tenure_lowers_churn_risk_on_average(fitted):
    candidate, parts = fitted
    base = parts.test.head(300).copy()
    assert (
        _score(candidate, base.assign(tenure=60.0)).mean()
        < _score(candidate, base.assign(tenure=2.0)).mean()
    )


def test_customer_id_does_not_change_the_score(fitted):
    candidate, parts = fitted
    base = parts.test.head(50).copy()
    np.testing.assert_allclose(
        _score(candidate, base), _score(candidate, base.assign(customerID="X"))
    )


def test_unknown_and_missing_values_are_scored_not_fatal(fitted):
    candidate, parts = fitted
    odd = parts.test.head(5).copy().astype({"PaymentMethod": object})
    odd["PaymentMethod"] = ["Crypto", None, "Electronic check", None, "Cash"]
    odd["TotalCharges"] = np.nan
    scores = _score(candidate, odd)
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()


def test_threshold_comes_from_training_folds_and_is_applied(fitted):
    candidate, parts = fitted
    x = model_input(parts.test)
    p = candidate.model.predict_proba(x)[:, 1]
    np.testing.assert_array_equal(
        candidate.model.predict(x), (p >= candidate.threshold).astype(int)
    )
    assert 0.05 < candidate.threshold < 0.7
