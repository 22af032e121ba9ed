"""Data-contract tests: the generator and the validator agree with the contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnops.data import contract
from churnops.data.generate import GeneratorConfig, generate, write
from churnops.data.validate import load, validate


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate(GeneratorConfig(rows=20_000, seed=5))


def test_generated_columns_and_values_follow_the_contract(customers):
    assert list(customers.columns) == list(contract.COLUMNS)
    for f in (*contract.FEATURES, contract.LABEL):
        col = customers[f.name]
        if f.allowed:
            assert set(col.unique()) <= set(f.allowed), f.name
        if f.is_numeric:
            values = col.dropna()
            assert values.min() >= f.minimum and values.max() <= f.maximum, f.name
    assert customers["customerID"].is_unique


def test_generation_is_deterministic_per_seed():
    a = generate(GeneratorConfig(rows=3000, seed=9, chunk_rows=1000))
    b = generate(GeneratorConfig(rows=3000, seed=9, chunk_rows=1000))
    c = generate(GeneratorConfig(rows=3000, seed=10, chunk_rows=1000))
    pd.testing.assert_frame_equal(a, b)
    assert not a.drop(columns="customerID").equals(c.drop(columns="customerID"))


def test_joint_structure_is_realistic(customers):
    churn = customers["Churn"].eq("Yes")
    assert 0.2 < churn.mean() < 0.32
    by_contract = churn.groupby(customers["Contract"]).mean()
    assert by_contract["Month-to-month"] > 2 * by_contract["One year"] > by_contract["Two year"]
    assert customers.groupby("Contract")["tenure"].mean().is_monotonic_increasing
    no_net = customers["InternetService"] == "No"
    assert (customers.loc[no_net, "OnlineSecurity"] == "No internet service").all()
    assert (
        customers.loc[no_net, "MonthlyCharges"].mean()
        < customers.loc[~no_net, "MonthlyCharges"].mean()
    )
    new = customers["tenure"] == 0
    assert customers.loc[new, "TotalCharges"].isna().all()
    ratio = customers.loc[~new, "TotalCharges"] / (
        customers.loc[~new, "MonthlyCharges"] * customers.loc[~new, "tenure"]
    )
    assert ratio.between(0.9, 1.06).mean() > 0.99


def test_drift_shifts_the_distributions(customers):
    drifted = generate(GeneratorConfig(rows=20_000, seed=5, drift=1.0))
    assert (
        drifted["Contract"].eq("Month-to-month").mean()
        > customers["Contract"].eq("Month-to-month").mean() + 0.15
    )
    assert drifted["tenure"].mean() < customers["tenure"].mean() * 0.8
    assert drifted["MonthlyCharges"].mean() > customers["MonthlyCharges"].mean() * 1.1


def test_csv_and_parquet_hold_the_same_records(tmp_path):
    config = GeneratorConfig(rows=2500, seed=3, chunk_rows=1000)
    csv, parquet = write(config, tmp_path / "c.csv"), write(config, tmp_path / "c.parquet")
    assert b"\r\n" not in csv.read_bytes()[:200]
    blank_lines = [
        line
        for line in csv.read_text().splitlines()
        if ", ," in line or line.endswith(", ,No") or ", ,Yes" in line
    ]
    assert blank_lines, "blank TotalCharges is written as a space, like the public export"
    from_csv, _ = load(csv)
    from_parquet, _ = load(parquet)
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)
    assert len(from_csv) == 2500


def test_large_generation_streams_in_chunks(tmp_path):
    out = write(
        GeneratorConfig(rows=250_000, seed=1, chunk_rows=50_000),
        tmp_path / "big.parquet",
        show_progress=False,
    )
    report = validate(out)
    assert report.ok and report.rows == 250_000


def test_longer_contracts_have_lower_generated_churn_at_equal_tenure(customers):
    band = customers[customers["tenure"].between(20, 40)]
    rate = band["Churn"].eq("Yes").groupby(band["Contract"]).mean()
    assert rate["Month-to-month"] > rate["Two year"]
    assert np.isfinite(rate).all()
