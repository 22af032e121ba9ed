"""Request validation against the record contract, in-process."""

from __future__ import annotations

import math

import numpy as np
import pytest

from churnops.data import contract
from churnops.errors import InvalidRecord
from churnops.serving.errors import BatchTooLarge, MalformedRequest, status_of, to_response
from churnops.serving.validation import CODES, Tensor, closest_field, parse_instances, parse_tensors

GOOD = {
    "customerID": "7590-VHVEG",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": None,
}


def rec(**changes: object) -> dict:
    out = dict(GOOD)
    out.update(changes)
    return out


def test_good_batch_becomes_arrays() -> None:
    no_id = {k: v for k, v in GOOD.items() if k != "customerID"}
    cols = parse_instances([GOOD, rec(TotalCharges=100.5, tenure=3), no_id], max_rows=10)
    assert cols.numeric.shape == (3, len(contract.NUMERIC)) and cols.codes.shape == (
        3,
        len(contract.CATEGORICAL),
    )
    total = cols.numeric[:, contract.NUMERIC.index("TotalCharges")]
    assert math.isnan(total[0]) and total[1] == 100.5
    assert (
        cols.codes[0, contract.CATEGORICAL.index("Contract")] == CODES["Contract"]["Month-to-month"]
    )
    assert (cols.codes >= 0).all()


BAD_RECORDS = [  # (record, field named, message fragment)
    ({k: v for k, v in GOOD.items() if k != "tenure"}, "tenure", "missing field 'tenure'"),
    (
        {**{k: v for k, v in GOOD.items() if k != "Contract"}, "contract": "One year"},
        "Contract",
        "did you mean 'Contract'",
    ),
    (rec(PaymentMethd="Mailed check"), "PaymentMethod", "did you mean 'PaymentMethod'"),
    (rec(shoeSize=42), "_request", "unknown field 'shoeSize'"),
    (rec(tenure="twelve"), "tenure", "must be a number, got string"),
    (rec(MonthlyCharges=[1]), "MonthlyCharges", "must be a number, got array"),
    (rec(tenure=-1), "tenure", "outside [0, 120]"),
    (rec(tenure=121), "tenure", "outside [0, 120]"),
    (rec(SeniorCitizen=0.5), "SeniorCitizen", "must be an integer"),
    (rec(MonthlyCharges=float("nan")), "MonthlyCharges", "finite"),
    (rec(TotalCharges=float("inf")), "TotalCharges", "finite"),
    (rec(TotalCharges=float("nan")), "TotalCharges", "finite"),
    (rec(MonthlyCharges=None), "MonthlyCharges", "must not be null"),
    (rec(gender=None), "gender", "must not be null"),
    (rec(gender=1), "gender", "must be a string"),
    (rec(gender={"a": 1}), "gender", "must be a string, got object"),
    (rec(Contract="Lifetime"), "Contract", "not an allowed value"),
    (rec(MonthlyCharges=10**400), "MonthlyCharges", "out of range"),
]


@pytest.mark.parametrize(("record", "field", "fragment"), BAD_RECORDS)
def test_bad_record_names_field_and_row(record: dict, field: str, fragment: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        parse_instances([GOOD, GOOD, record], max_rows=10)
    assert err.value.field == field and err.value.row == 2 and fragment in str(err.value)
    assert status_of(err.value) == 422


def test_request_level_errors() -> None:
    with pytest.raises(MalformedRequest, match="empty batch"):
        parse_instances([], max_rows=10)
    with pytest.raises(BatchTooLarge) as err:
        parse_instances([GOOD] * 11, max_rows=10)
    assert status_of(err.value) == 413
    with pytest.raises(MalformedRequest, match="must be a list"):
        parse_instances({"a": 1}, max_rows=10)
    status, body = to_response(MalformedRequest("x"))
    assert status == 400 and body == {"error": "x", "field": "_request", "row": None}


def test_unknown_categories_scored_and_counted() -> None:
    cols = parse_instances(
        [rec(Contract="Lifetime"), rec(Contract="Weekly", gender="X"), GOOD],
        max_rows=10,
        unknown="score",
    )
    assert cols.unknown == {"Contract": 2, "gender": 1}
    assert list(cols.codes[:, contract.CATEGORICAL.index("Contract")]) == [-1, -1, 0]


def test_status_of_unknown_exception_is_500() -> None:
    status, body = to_response(RuntimeError("boom"))
    assert status == 500 and "boom" not in body["error"]


def test_closest_field() -> None:
    assert closest_field("Tenure") == "tenure"
    assert closest_field("MonthlyCharge") == "MonthlyCharges"
    assert closest_field("zzz") is None


def _tensors(n: int = 2) -> list[Tensor]:
    out = []
    for f in contract.FEATURES:
        value = GOOD[f.name]
        datatype = "BYTES" if not f.is_numeric else "FP64"
        out.append(Tensor(f.name, datatype, [n], [value] * n))
    return out


def test_v2_tensors() -> None:
    tensors = _tensors()
    tensors[0] = Tensor("gender", "BYTES", [2], [b"Male", "Female"])
    tensors[-1] = Tensor("TotalCharges", "FP64", [2, 1], [[float("nan")], [5.0]])
    cols = parse_tensors(tensors, max_rows=5)
    assert list(cols.codes[:, 0]) == [CODES["gender"]["Male"], CODES["gender"]["Female"]]
    assert (
        math.isnan(cols.numeric[0, -1]) and cols.numeric[1, -1] == 5.0
    )  # NaN = missing in tensors


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        (lambda t: t.pop(0), InvalidRecord, "gender"),
        (lambda t: t.append(Tensor("tenure", "FP64", [2], [1, 2])), InvalidRecord, "tenure"),
        (
            lambda t: t.__setitem__(4, Tensor("tenure", "BYTES", [2], ["1", "2"])),
            InvalidRecord,
            "tenure",
        ),
        (
            lambda t: t.__setitem__(4, Tensor("tenure", "FP64", [3], [1, 2, 3])),
            MalformedRequest,
            "tenure",
        ),
        (
            lambda t: t.__setitem__(4, Tensor("tenure", "FP64", [2], [1])),
            MalformedRequest,
            "tenure",
        ),
        (
            lambda t: t.__setitem__(4, Tensor("tenure", "FP64", [2], [1, float("nan")])),
            InvalidRecord,
            "tenure",
        ),
        (lambda t: t.__setitem__(4, Tensor("tenur", "FP64", [2], [1, 2])), InvalidRecord, "tenure"),
    ],
)
def test_v2_bad_tensors(change, error: type, field: str) -> None:
    tensors = _tensors()
    change(tensors)
    with pytest.raises(error) as err:
        parse_tensors(tensors, max_rows=5)
    assert err.value.field == field


def test_codes_follow_contract_order() -> None:
    for f in contract.FEATURES:
        if f.kind == "category":
            assert list(CODES[f.name]) == list(f.allowed)
    assert np.array_equal(
        parse_instances([GOOD], max_rows=1).codes.shape, (1, len(contract.CATEGORICAL))
    )
