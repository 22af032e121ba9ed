"""One coercion routine (churnops.data.coerce) for training validation, the server's
request validation and the pyfunc: the same raw values mean the same thing everywhere."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from churnops.data import contract
from churnops.data.coerce import coerce_arrow, coerce_frame, parse_numbers, text_numbers
from churnops.data.generate import GeneratorConfig, generate
from churnops.data.validate import validate_frame
from churnops.errors import ContractViolation, InvalidRecord
from churnops.serving.validation import parse_instances

NUM = {name: i for i, name in enumerate(contract.NUMERIC)}


def export_csv(rows: int = 300, seed: int = 3) -> bytes:
    """Generated customers written like the real Telco export: integers, a single space
    for blank TotalCharges, CRLF line ends, customerID and Churn columns."""
    frame = generate(GeneratorConfig(rows=rows, seed=seed))
    frame["TotalCharges"] = frame["TotalCharges"].map(lambda v: " " if pd.isna(v) else f"{v:.2f}")
    return frame.to_csv(index=False, lineterminator="\r\n").encode()


def test_numbers_blanks_and_junk() -> None:
    values, missing, bad = parse_numbers(["29.85", " 518.10 ", "", " ", None, "x", 3, "1e3"])
    assert values[0] == 29.85 and values[1] == 518.10 and values[6] == 3 and values[7] == 1000
    assert missing.tolist() == [False, False, True, True, True, False, False, False]
    assert bad.tolist() == [False, False, False, False, False, True, False, False]


def test_plain_read_csv_of_an_export_coerces_like_text() -> None:
    data = export_csv()
    typed = pd.read_csv(io.BytesIO(data))  # what a user does: ints, TotalCharges as text
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)  # what churnops reads
    assert typed["tenure"].dtype == np.int64 and typed["TotalCharges"].dtype == object
    a, b = coerce_frame(typed), coerce_frame(text)
    assert not a.invalid.any() and not b.invalid.any()
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_allclose(a.numeric, b.numeric, equal_nan=True)
    blanks = typed["TotalCharges"].str.strip() == ""
    assert blanks.any() and np.isnan(a.numeric[blanks.to_numpy(), NUM["TotalCharges"]]).all()


def test_training_validation_reads_the_same_values() -> None:
    text = pd.read_csv(io.BytesIO(export_csv()), dtype=str, keep_default_na=False)
    typed, report = validate_frame(text)
    assert report.ok
    coerced = coerce_frame(text)
    for name, j in NUM.items():
        np.testing.assert_allclose(typed[name].to_numpy(), coerced.numeric[:, j], equal_nan=True)


def test_rejects_name_field_row_and_value() -> None:
    text = pd.read_csv(io.BytesIO(export_csv(rows=10)), dtype=str, keep_default_na=False)
    text.loc[2, "tenure"] = "-3"
    text.loc[5, "MonthlyCharges"] = "seventy"
    text.loc[5, "Contract"] = "Three year"
    text.loc[7, "SeniorCitizen"] = "0.5"
    text.loc[8, "gender"] = " "
    coerced = coerce_frame(text)
    assert np.flatnonzero(coerced.invalid).tolist() == [2, 5, 7, 8]
    rejects = list(coerced.rejects())
    assert (2, "tenure", "outside the allowed range [0, 120]", "-3") in rejects
    assert any(r[:2] == (5, "MonthlyCharges") and "not a number" in r[2] for r in rejects)
    assert any(r[:2] == (5, "Contract") and "not allowed" in r[2] for r in rejects)
    assert (7, "SeniorCitizen", "not a whole number", "0.5") in rejects
    assert any(r[:2] == (8, "gender") and "missing" in r[2] for r in rejects)
    error = coerced.first_error(offset=100)
    assert isinstance(error, InvalidRecord) and error.field == "tenure" and error.row == 102


def test_absent_column_is_named() -> None:
    text = pd.read_csv(io.BytesIO(export_csv(rows=5)), dtype=str).drop(columns="tenure")
    with pytest.raises(ContractViolation, match="tenure"):
        coerce_frame(text)


def test_server_accepts_numeric_text_as_training_does() -> None:
    record = generate(GeneratorConfig(rows=1, seed=1)).drop(columns="Churn").iloc[0].to_dict()
    record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
    as_text = {**record, "TotalCharges": "518.10", "tenure": " 12 "}
    blank = {**record, "TotalCharges": " "}
    cols = parse_instances([record, as_text, blank], max_rows=10)
    assert cols.numeric[1, NUM["TotalCharges"]] == 518.10
    assert cols.numeric[1, NUM["tenure"]] == 12
    assert np.isnan(cols.numeric[2, NUM["TotalCharges"]])
    with pytest.raises(InvalidRecord, match="must be a number") as err:
        parse_instances([{**record, "TotalCharges": "n/a"}], max_rows=10)
    assert err.value.field == "TotalCharges"
    with pytest.raises(InvalidRecord, match="must not be null"):
        parse_instances([{**record, "tenure": " "}], max_rows=10)


def test_text_numbers_leaves_non_text_alone() -> None:
    assert text_numbers([1, 2.5, None, True, "3", " ", "x"]) == [1, 2.5, None, True, 3, None, "x"]


def test_arrow_path_is_the_same_routine() -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    text = pd.read_csv(io.BytesIO(export_csv(rows=400)), dtype=str, keep_default_na=False)
    text.loc[2, "tenure"] = "-3"
    text.loc[4, "tenure"] = " 7 "
    text.loc[5, "MonthlyCharges"] = "seventy"
    text.loc[6, "Contract"] = " One year "
    text.loc[7, "Contract"] = "Three year"
    text.loc[8, "TotalCharges"] = "nan"
    text.loc[9, "gender"] = ""
    data = text.to_csv(index=False, lineterminator="\r\n").encode()
    table = pacsv.read_csv(
        io.BytesIO(data),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in text.columns}, strings_can_be_null=False
        ),
    )
    a, b = coerce_frame(text), coerce_arrow(table)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_allclose(a.numeric, b.numeric, equal_nan=True)
    np.testing.assert_array_equal(a.invalid, b.invalid)
    assert list(a.rejects()) == list(b.rejects())
    typed = pa.Table.from_pandas(pd.read_csv(io.BytesIO(export_csv(rows=50))))
    c = coerce_arrow(typed)
    assert not c.invalid.any()
    np.testing.assert_allclose(c.numeric, coerce_frame(typed.to_pandas()).numeric, equal_nan=True)
