"""Request validation: V1 records or V2 tensors → checked feature arrays, by the contract.

Every check is column-wise over the whole batch (one pass per field, no pandas), and only
a failing batch takes the slow path that finds the first offending row to name it. The
result, ``Columns``, is what the compiled scorer and the drift window consume: numeric
fields as float64 (NaN = missing), categorical fields as integer codes into the
contract's allowed values (-1 = unknown, scored like the model's one-hot encoder does).
"""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Literal

import numpy as np

from churnops.data import coerce, contract
from churnops.errors import InvalidRecord
from churnops.serving.errors import REQUEST_FIELD, BatchTooLarge, MalformedRequest

UnknownPolicy = Literal["reject", "score"]

NUMERIC_FIELDS: tuple[contract.Field, ...] = tuple(contract.BY_NAME[n] for n in contract.NUMERIC)
CATEGORICAL_FIELDS: tuple[contract.Field, ...] = tuple(
    contract.BY_NAME[n] for n in contract.CATEGORICAL
)
CODES: dict[str, dict[str, int]] = {
    f.name: {value: i for i, value in enumerate(f.allowed)} for f in CATEGORICAL_FIELDS
}
"""Category value → position in the contract's ``allowed`` tuple, per categorical field."""

_ID = contract.ID.name
_KNOWN = (*contract.FEATURE_NAMES, _ID)
_KEYS = frozenset(contract.FEATURE_NAMES)
_KEYS_WITH_ID = frozenset(_KNOWN)
_GET_FEATURES = itemgetter(*contract.FEATURE_NAMES)
_N_FEATURES = len(contract.FEATURE_NAMES)
_NUMBER_TYPES = frozenset({int, float})
_NUMBER_OR_NULL = frozenset({int, float, type(None)})
NUMERIC_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP32", "FP64"}
)


@dataclass
class Columns:
    """A validated batch.

    Attributes:
        numeric: ``(n, len(contract.NUMERIC))`` float64 in ``contract.NUMERIC`` order; NaN
            is a missing value.
        codes: ``(n, len(contract.CATEGORICAL))`` int64 in ``contract.CATEGORICAL`` order;
            position in the field's allowed values, -1 for unknown or missing.
        unknown: Field → number of values outside the contract that were let through as
            unknown (``unknown="score"``).
    """

    numeric: np.ndarray
    codes: np.ndarray
    unknown: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel = 2
_PREVIEW.maxstring = 40
_PREVIEW.maxother = 40
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = 4


def preview(value: object) -> str:
    """A short repr of a client's value for a message: bounded in length and in depth (a
    value nested a thousand deep must not exhaust the stack while an error is formatted)."""
    return _PREVIEW.repr(value)[:80]


def closest_field(name: str) -> str | None:
    """The contract field a misspelled key most likely meant (case-insensitive first)."""
    lowered = {k.lower(): k for k in _KNOWN}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, _KNOWN, n=1, cutoff=0.6)
    return match[0] if match else None


def _unknown_key_error(key: object, row: int | None, where: str) -> InvalidRecord:
    suggestion = closest_field(key) if isinstance(key, str) else None
    if suggestion:
        return InvalidRecord(
            f"{where}unknown field {key!r} (did you mean {suggestion!r}?)",
            field=suggestion,
            row=row,
        )
    return InvalidRecord(
        f"{where}unknown field {key!r}; expected the contract fields "
        f"{', '.join(contract.FEATURE_NAMES)}",
        field=REQUEST_FIELD,
        row=row,
    )


def _record_key_error(record: Any, row: int) -> InvalidRecord:
    where = f"row {row}: "
    if not isinstance(record, dict):
        return InvalidRecord(
            f"{where}a record must be a JSON object, got {json_type(record)}", row=row
        )
    for key in record:
        if key not in _KEYS_WITH_ID:
            return _unknown_key_error(key, row, where)
    missing = [n for n in contract.FEATURE_NAMES if n not in record]
    return InvalidRecord(f"{where}missing field {missing[0]!r}", field=missing[0], row=row)


def _check_rows(n: int, max_rows: int) -> None:
    if n == 0:
        raise MalformedRequest("empty batch: send at least one record")
    if n > max_rows:
        raise BatchTooLarge(f"batch of {n} records exceeds the maximum of {max_rows} per request")


def numeric_column(
    f: contract.Field, values: Sequence[Any], *, nan_is_missing: bool = False
) -> np.ndarray:
    """Validate one numeric column (JSON numbers; null only where the contract allows it).

    ``nan_is_missing``: NaN marks a missing value of a nullable field (binary V2 tensors
    cannot carry null); otherwise NaN and infinities are rejected.

    Raises:
        InvalidRecord: Naming the field and the first offending row.
    """
    allowed = _NUMBER_OR_NULL if f.nullable else _NUMBER_TYPES
    if str in set(map(type, values)):  # numeric text and blanks, read as training reads them
        values = coerce.text_numbers(values)
    if not set(map(type, values)) <= allowed:
        for row, v in enumerate(values):
            if type(v) not in allowed:
                if v is None:
                    raise InvalidRecord(
                        f"row {row}: {f.name} must not be null", field=f.name, row=row
                    )
                raise InvalidRecord(
                    f"row {row}: {f.name} must be a number, got {json_type(v)} {preview(v)}",
                    field=f.name,
                    row=row,
                )
    try:
        if f.nullable and None in values:
            arr = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
        else:
            arr = np.array(values, dtype=np.float64)
    except OverflowError:
        row = next(i for i, v in enumerate(values) if isinstance(v, int) and abs(v) > 1e300)
        raise InvalidRecord(f"row {row}: {f.name} is out of range", field=f.name, row=row) from None
    nan_ok = f.nullable and nan_is_missing
    if nan_ok:
        checked = arr[~np.isnan(arr)]
    elif f.nullable and None in values:
        checked = arr[np.array([v is not None for v in values])]
    else:
        checked = arr
    if not np.isfinite(checked).all():
        row = next(
            i
            for i, v in enumerate(values)
            if v is not None and not math.isfinite(v) and not (nan_ok and math.isnan(v))
        )
        raise InvalidRecord(
            f"row {row}: {f.name} must be a finite number (NaN and Infinity are not allowed; "
            f"{'send null for a missing value' if f.nullable else 'the field is required'})",
            field=f.name,
            row=row,
        )
    bad = np.zeros(arr.shape, dtype=bool)
    if f.minimum is not None:
        bad |= arr < f.minimum
    if f.maximum is not None:
        bad |= arr > f.maximum
    if bad.any():
        row = int(np.argmax(bad))
        raise InvalidRecord(
            f"row {row}: {f.name} = {values[row]!r} is outside [{f.minimum:g}, {f.maximum:g}]",
            field=f.name,
            row=row,
        )
    if f.kind == "integer":
        frac = (arr != np.floor(arr)) & ~np.isnan(arr)
        if frac.any():
            row = int(np.argmax(frac))
            raise InvalidRecord(
                f"row {row}: {f.name} must be an integer, got {values[row]!r}",
                field=f.name,
                row=row,
            )
    return arr


def categorical_column(
    f: contract.Field, values: Sequence[Any], unknown: UnknownPolicy, counts: dict[str, int]
) -> list[int]:
    """Validate one categorical column into codes (-1 for an unknown value let through).

    Raises:
        InvalidRecord: A non-string or null value, or (``unknown="reject"``) a value
            outside the contract.
    """
    table = CODES[f.name]
    try:
        codes = list(map(table.get, values))
    except TypeError:  # an unhashable value (array or object)
        codes = [table.get(v) if isinstance(v, str) else None for v in values]
    if None not in codes:
        return codes  # type: ignore[return-value]
    codes = [-1 if c is None else c for c in codes]
    for row, (code, v) in enumerate(zip(codes, values, strict=True)):
        if code != -1:
            continue
        if v is None:
            raise InvalidRecord(f"row {row}: {f.name} must not be null", field=f.name, row=row)
        if not isinstance(v, str):
            raise InvalidRecord(
                f"row {row}: {f.name} must be a string, got {json_type(v)} {preview(v)}",
                field=f.name,
                row=row,
            )
        if unknown == "reject":
            raise InvalidRecord(
                f"row {row}: {f.name} = {v[:60]!r} is not an allowed value; allowed: "
                f"{', '.join(repr(a) for a in f.allowed)}",
                field=f.name,
                row=row,
            )
        counts[f.name] = counts.get(f.name, 0) + 1
    return codes  # type: ignore[return-value]  # None was replaced or raised above


def _assemble(numeric: list[np.ndarray], codes: list[list[int]], counts: dict[str, int]) -> Columns:
    return Columns(
        numeric=np.column_stack(numeric) if numeric else np.empty((0, 0)),
        codes=np.ascontiguousarray(np.array(codes, dtype=np.int64).T),
        unknown=counts,
    )


def parse_instances(instances: Any, *, max_rows: int, unknown: UnknownPolicy = "reject") -> Columns:
    """V1 ``instances`` (a list of records) → ``Columns``.

    Raises:
        MalformedRequest: Not a list, or empty.
        BatchTooLarge: More than ``max_rows`` records.
        InvalidRecord: A record breaks the contract (field and row named).
    """
    if not isinstance(instances, list):
        raise MalformedRequest(f'"instances" must be a list of records, got {json_type(instances)}')
    _check_rows(len(instances), max_rows)
    # Fast checks over the whole batch; only a failing batch is walked record by record.
    ok = set(map(type, instances)) == {dict}
    if ok:
        sizes = set(map(len, instances))
        ok = sizes <= {_N_FEATURES, _N_FEATURES + 1}
        if ok and _N_FEATURES + 1 in sizes:
            ok = all(_ID in r for r in instances if len(r) != _N_FEATURES)
    try:
        rows = list(map(_GET_FEATURES, instances)) if ok else None
    except KeyError:
        rows = None
    if rows is None:
        for row, record in enumerate(instances):
            if type(record) is not dict or (
                record.keys() != _KEYS and record.keys() != _KEYS_WITH_ID
            ):
                raise _record_key_error(record, row)
        raise AssertionError(
            "unreachable: a batch failed the fast key check but no record is wrong"
        )
    by_field = dict(zip(contract.FEATURE_NAMES, zip(*rows, strict=True), strict=True))
    counts: dict[str, int] = {}
    numeric = [numeric_column(f, by_field[f.name]) for f in NUMERIC_FIELDS]
    codes = [categorical_column(f, by_field[f.name], unknown, counts) for f in CATEGORICAL_FIELDS]
    return _assemble(numeric, codes, counts)


@dataclass(frozen=True)
class Tensor:
    """One V2 input tensor as received (data flattened, row-major)."""

    name: str
    datatype: str
    shape: Sequence[int]
    data: Sequence[Any]


def _flatten(data: Any) -> list:
    if isinstance(data, np.ndarray):
        return data.reshape(-1).tolist()
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [v for sub in data for v in (sub if isinstance(sub, list) else [sub])]
    return list(data) if not isinstance(data, list) else data


def parse_tensors(
    tensors: Sequence[Tensor], *, max_rows: int, unknown: UnknownPolicy = "reject"
) -> Columns:
    """V2 inputs (one tensor per contract field, shape ``[n]``) → ``Columns``.

    Raises:
        MalformedRequest: Shapes disagree with each other or with the data.
        BatchTooLarge: More than ``max_rows`` rows.
        InvalidRecord: Missing, unknown or duplicate inputs, wrong datatypes, bad values.
    """
    by_name: dict[str, Tensor] = {}
    for t in tensors:
        if not isinstance(t.name, str):
            raise MalformedRequest(
                f"an input's name must be a string, got {json_type(t.name)} {preview(t.name)}"
            )
        if t.name not in _KEYS_WITH_ID:
            raise _unknown_key_error(t.name, None, "input ")
        if t.name in by_name:
            raise InvalidRecord(f"input {t.name!r} appears more than once", field=t.name)
        by_name[t.name] = t
    missing = [n for n in contract.FEATURE_NAMES if n not in by_name]
    if missing:
        raise InvalidRecord(
            f"missing input {missing[0]!r} (one tensor per contract field)", field=missing[0]
        )
    n: int | None = None
    columns: dict[str, list] = {}
    for name in contract.FEATURE_NAMES:
        t = by_name[name]
        shape = list(t.shape)
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or any(
            not isinstance(s, int) or s < 0 for s in shape
        ):
            raise MalformedRequest(
                f"input {name!r}: shape must be [n], got {preview(shape)}", field=name
            )
        if n is None:
            n = shape[0]
            _check_rows(n, max_rows)
        elif shape[0] != n:
            raise MalformedRequest(
                f"input {name!r}: shape {shape} disagrees with [{n}] of the other inputs",
                field=name,
            )
        data = _flatten(t.data)
        if len(data) != n:
            raise MalformedRequest(
                f"input {name!r}: {len(data)} values for shape {shape}", field=name
            )
        f = contract.BY_NAME[name]
        if f.is_numeric:
            if t.datatype not in NUMERIC_DATATYPES:
                raise InvalidRecord(
                    f"input {name!r} must have datatype INT64 or FP64, got {preview(t.datatype)}",
                    field=name,
                )
        else:
            if t.datatype != "BYTES":
                raise InvalidRecord(
                    f"input {name!r} must have datatype BYTES, got {preview(t.datatype)}",
                    field=name,
                )
            data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data]
        columns[name] = data
    counts: dict[str, int] = {}
    numeric = [numeric_column(f, columns[f.name], nan_is_missing=True) for f in NUMERIC_FIELDS]
    codes = [categorical_column(f, columns[f.name], unknown, counts) for f in CATEGORICAL_FIELDS]
    return _assemble(numeric, codes, counts)


def columns_from_frame(frame: Any) -> Columns:
    """A pandas frame in the contract layout → ``Columns`` without validation (missing and
    unknown values become NaN / -1, exactly as the model's encoders treat them)."""
    numeric = frame[list(contract.NUMERIC)].apply(_to_float).to_numpy(dtype=np.float64)
    codes = np.column_stack(
        [
            frame[f.name]
            .map(lambda v, t=CODES[f.name]: t.get(v, -1) if isinstance(v, str) else -1)
            .to_numpy(dtype=np.int64)
            for f in CATEGORICAL_FIELDS
        ]
    )
    return Columns(numeric=numeric, codes=codes)


def _to_float(col: Any) -> Any:
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").astype("float64")
