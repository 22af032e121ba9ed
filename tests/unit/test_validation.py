"""Validation of real-export quirks and contract violations."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pandas as pd
import pytest

from churnops.data import ValidationConfig, load, validate
from churnops.data.generate import GeneratorConfig, generate
from churnops.errors import ContractViolation, DataSourceError


def _export(
    tmp_path: Path, frame: pd.DataFrame, name: str = "export.csv", crlf: bool = True
) -> Path:
    path = tmp_path / name
    text = frame.to_csv(index=False, lineterminator="\r\n" if crlf else "\n")
    path.write_bytes(text.encode())
    return path


@pytest.fixture
def raw() -> pd.DataFrame:
    frame = generate(GeneratorConfig(rows=500, seed=2)).astype(object)
    frame["TotalCharges"] = frame["TotalCharges"].map(lambda v: " " if pd.isna(v) else f"{v:.2f}")
    return frame


def test_real_export_quirks_pass(tmp_path, raw):
    raw.loc[3, "TotalCharges"] = "   "
    raw.loc[4, "MonthlyCharges"] = " 70.35 "
    raw["tenure"] = raw["tenure"].astype(str)
    path = _export(tmp_path, raw.drop(columns="customerID"))
    frame, report = load(path)
    assert report.ok, report.violations
    assert frame["TotalCharges"].isna().sum() >= 1
    assert frame.loc[4, "MonthlyCharges"] == pytest.approx(70.35)
    assert frame["tenure"].dtype == "float64"
    assert any(w.column == "customerID" for w in report.warnings)
    assert any(w.column == "TotalCharges" and "missing" in w.problem for w in report.warnings)


@pytest.mark.parametrize(
    ("column", "row", "value", "expected"),
    [
        ("tenure", 17, "-3", "outside the allowed range"),
        ("MonthlyCharges", 5, "seventy", "not a number"),
        ("Contract", 42, "Three year", "value not allowed"),
        ("SeniorCitizen", 8, "0.5", "not a whole number"),
        ("Churn", 9, "Maybe", "value not allowed"),
    ],
)
def test_violations_name_the_column_and_an_example_row(tmp_path, raw, column, row, value, expected):
    raw.loc[row, column] = value
    path = _export(tmp_path, raw)
    report = validate(path)
    assert not report.ok
    issue = next(i for i in report.violations if i.column == column)
    assert expected in issue.problem
    assert issue.example_row == row and issue.example_value == value
    with pytest.raises(ContractViolation, match=rf"column '{column}'.*row {row}"):
        load(path)


def test_missing_column_is_a_violation_with_a_hint(tmp_path, raw):
    path = _export(tmp_path, raw.rename(columns={"tenure": "Tenure"}))
    report = validate(path)
    [issue] = [i for i in report.violations if i.column == "tenure"]
    assert "found 'Tenure'" in issue.problem


def test_soft_issues_are_warnings(tmp_path, raw):
    raw.loc[10, "customerID"] = raw.loc[11, "customerID"]
    raw.loc[12, "PaymentMethod"] = ""
    raw["region"] = "north"
    report = validate(_export(tmp_path, raw))
    assert report.ok
    assert report.duplicate_ids == 1
    columns = {w.column for w in report.warnings}
    assert {"customerID", "PaymentMethod", "region"} <= columns


def test_too_many_missing_values_is_a_violation(tmp_path, raw):
    raw.loc[:100, "Contract"] = ""
    report = validate(_export(tmp_path, raw), config=ValidationConfig(max_missing_rate=0.05))
    assert any(i.column == "Contract" and "missing" in i.problem for i in report.violations)


def test_label_balance_and_empty_tables(tmp_path, raw):
    raw["Churn"] = "No"
    assert any(i.column == "Churn" for i in validate(_export(tmp_path, raw)).violations)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(raw.columns) + "\n")
    assert not validate(empty).ok


def test_scoring_data_without_label(tmp_path, raw):
    path = _export(tmp_path, raw.drop(columns="Churn"))
    assert not validate(path).ok
    assert validate(path, config=ValidationConfig(require_label=False)).ok


def test_reads_file_and_http_urls(tmp_path, raw):
    path = _export(tmp_path, raw)
    assert validate(f"file://{path}").rows == len(raw)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{path.name}"
        assert validate(url).ok
        with pytest.raises(DataSourceError, match="cannot read"):
            validate(url.replace(path.name, "missing.csv"))
    finally:
        server.shutdown()


def test_missing_file_is_a_data_source_error(tmp_path):
    with pytest.raises(DataSourceError, match="not found"):
        validate(tmp_path / "nope.csv")
