"""Coercion of raw values to the record contract's types: ONE routine, derived from the
contract, for training validation, the model server, the MLflow pyfunc and batch scoring.

Real exports are messy, and every reader meets the same mess: numbers as text
(``"518.10"``), blank or whitespace ``TotalCharges`` for new customers, padded category
values. The rules, everywhere:

- numeric field: text is stripped and parsed as a number; a blank is a missing value; any
  other text is "not a number"; an ``integer`` field must hold whole numbers; values
  outside the field's range (and infinities) are invalid;
- category field: text is stripped; a value outside ``allowed`` is invalid (``code -1``);
- missing: allowed where the field is ``nullable``; elsewhere the strict readers (server,
  pyfunc, batch scoring) reject the row, while training validation counts the rate.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churnops.data import contract
from churnops.data.contract import Field
from churnops.errors import ContractViolation, InvalidRecord

NOT_A_NUMBER = "not a number ({kind} expected)"
NOT_WHOLE = "not a whole number"
OUT_OF_RANGE = "outside the allowed range [{minimum:g}, {maximum:g}]"
NOT_ALLOWED = "value not allowed (allowed: {allowed})"
MISSING = "missing value (the field is required)"

NUMERIC_FIELDS: tuple[Field, ...] = tuple(contract.BY_NAME[n] for n in contract.NUMERIC)
CATEGORICAL_FIELDS: tuple[Field, ...] = tuple(contract.BY_NAME[n] for n in contract.CATEGORICAL)


def _series(values: Any) -> pd.Series:
    if isinstance(values, pd.Series):
        return values
    return pd.Series(values, dtype=object if isinstance(values, list | tuple) else None)


def strip_blank(raw: Any) -> tuple[pd.Series, np.ndarray]:
    """Strip text and return (stripped values with blanks as NA, missing mask).
    Non-text columns (Parquet numbers, already typed frames) pass through."""
    raw = _series(raw)
    if _is_text(raw):
        text = raw.astype("string").str.strip()
        missing = (text.isna() | (text == "")).to_numpy(dtype=bool)
        return text.mask(missing), missing
    if isinstance(raw.dtype, pd.CategoricalDtype):
        return raw.astype(object).where(raw.notna(), None), raw.isna().to_numpy()
    return raw, raw.isna().to_numpy()


def _is_text(raw: pd.Series) -> bool:
    return raw.dtype == object or pd.api.types.is_string_dtype(raw)


def _blank_of(values: np.ndarray) -> np.ndarray:
    """Missing mask of a few raw values: None/NaN, or text that is blank once stripped."""
    return np.array(
        [v is None or (isinstance(v, str) and not v.strip()) or _is_missing(v) for v in values],
        dtype=bool,
    )


def _fast_floats(obj: np.ndarray) -> np.ndarray | None:
    """Clean numeric text (the common case: numbers, exports' single-space blanks) parsed
    by numpy in one pass; None when anything else is there (the careful path decides)."""
    blank = (obj == " ") | (obj == "")
    try:
        if blank.any():
            obj = obj.copy()
            obj[blank] = "nan"
        return obj.astype(np.float64)
    except (ValueError, TypeError):
        return None


def parse_numbers(raw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw values of a numeric field → (float64 values, missing mask, not-a-number mask).

    Text is parsed in one vectorized pass; only the values that pass fails (blanks,
    padding, junk) are looked at one by one. Invalid and missing values are NaN.
    """
    raw = _series(raw)
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(object)
    if not _is_text(raw):
        arr = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(arr)
        return arr, missing, np.zeros(len(arr), dtype=bool)
    obj = raw.to_numpy(dtype=object)
    arr = _fast_floats(obj)
    if arr is None:
        arr = pd.to_numeric(obj, errors="coerce").astype(np.float64)
    failed = np.flatnonzero(np.isnan(arr))
    missing = np.zeros(len(arr), dtype=bool)
    bad = np.zeros(len(arr), dtype=bool)
    if failed.size:
        values = obj[failed]
        blank = _blank_of(values)
        missing[failed[blank]] = True
        rest = failed[~blank]
        if rest.size:
            stripped = [str(v).strip() for v in obj[rest]]
            again = pd.to_numeric(pd.Series(stripped, dtype=object), errors="coerce")
            again = again.to_numpy(dtype=np.float64, na_value=np.nan)
            arr[rest] = again
            bad[rest] = np.isnan(again)
    return arr, missing, bad


def numeric_problems(f: Field, arr: np.ndarray, bad: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The contract's checks of one numeric field's parsed values: (problem, row mask)."""
    problems = [(NOT_A_NUMBER.format(kind=f.kind), bad)]
    with np.errstate(invalid="ignore"):
        if f.kind == "integer":
            problems.append((NOT_WHOLE, (arr % 1 != 0) & np.isfinite(arr)))
        out = np.isinf(arr)
        if f.minimum is not None:
            out |= arr < f.minimum
        if f.maximum is not None:
            out |= arr > f.maximum
    problems.append((OUT_OF_RANGE.format(minimum=f.minimum, maximum=f.maximum), out))
    return problems


_INDEX: dict[str, pd.Index] = {}


def parse_categories(f: Field, raw: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw values of a category field → (codes into ``f.allowed`` with -1 for unknown or
    missing, missing mask, not-allowed mask). Exact values are looked up in one hashed
    pass; only the misses are stripped and looked up again."""
    raw = _series(raw)
    index = _INDEX.get(f.name)
    if index is None or list(index) != list(f.allowed):
        index = _INDEX[f.name] = pd.Index(list(f.allowed), dtype=object)
    obj = raw.to_numpy(dtype=object)
    codes = np.asarray(index.get_indexer(obj), dtype=np.int64)
    missing = np.zeros(len(codes), dtype=bool)
    miss = np.flatnonzero(codes < 0)
    if miss.size:
        values = obj[miss]
        blank = _blank_of(values)
        missing[miss[blank]] = True
        rest = miss[~blank]
        if rest.size:
            stripped = np.array([str(v).strip() for v in obj[rest]], dtype=object)
            codes[rest] = index.get_indexer(stripped)
    unknown = (codes < 0) & ~missing
    return codes, missing, unknown


def text_numbers(values: Sequence[Any]) -> list[Any]:
    """JSON values of a numeric field: text entries parsed as ``parse_numbers`` does (a
    number, ``None`` when blank); anything else, and text that is not a number, unchanged
    for the caller's type checks to name."""
    positions = [i for i, v in enumerate(values) if isinstance(v, str)]
    if not positions:
        return list(values)
    arr, missing, bad = parse_numbers([values[i] for i in positions])
    out = list(values)
    for k, i in enumerate(positions):
        if missing[k]:
            out[i] = None
        elif not bad[k]:
            number = float(arr[k])
            out[i] = int(number) if number.is_integer() and abs(number) < 2**53 else number
    return out


@dataclass(frozen=True)
class Problem:
    """One contract check that some rows fail."""

    field: str
    problem: str
    mask: np.ndarray


@dataclass
class Coerced:
    """A frame coerced to the contract for scoring.

    Attributes:
        numeric: ``(n, len(contract.NUMERIC))`` float64 in ``contract.NUMERIC`` order (NaN
            missing).
        codes: ``(n, len(contract.CATEGORICAL))`` int64 codes into each field's allowed
            values (-1 unknown or missing).
        problems: Failed checks; a row failing any of them is invalid.
        raw: The input frame (for the values named in rejects).
    """

    numeric: np.ndarray
    codes: np.ndarray
    problems: list[Problem] = field(default_factory=list)
    raw: Any = None

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    @property
    def invalid(self) -> np.ndarray:
        mask = np.zeros(len(self), dtype=bool)
        for p in self.problems:
            mask |= p.mask
        return mask

    def rejects(self) -> Iterator[tuple[int, str, str, str]]:
        """(row position, field, problem, raw value) for every failed check of every row,
        in row order."""
        found: list[tuple[int, int, str, str]] = []
        for order, p in enumerate(self.problems):
            for failed in np.flatnonzero(p.mask):
                found.append((int(failed), order, p.field, p.problem))
        for row, _, name, problem in sorted(found):
            if isinstance(self.raw, ArrowRaw):
                value = self.raw.value(name, row) if name in self.raw else ""
            else:
                value = (
                    self.raw[name].iloc[row] if self.raw is not None and name in self.raw else ""
                )
            yield row, name, problem, "" if _is_missing(value) else str(value)

    def first_error(self, *, offset: int = 0) -> InvalidRecord | None:
        """The first invalid row's error (field and row named), or None if all are valid."""
        for row, name, problem, value in self.rejects():
            shown = f" (value {value!r:.60})" if value else ""
            return InvalidRecord(
                f"row {row + offset}: {name}: {problem}{shown}", field=name, row=row + offset
            )
        return None

    def take(self, rows: np.ndarray) -> Coerced:
        return Coerced(self.numeric[rows], self.codes[rows])

    def model_frame(self) -> pd.DataFrame:
        """The frame the sklearn model was trained on: float64 numbers (NaN missing) and
        text categories (None for unknown), in the contract's feature order."""
        data: dict[str, Any] = {}
        num = {name: i for i, name in enumerate(contract.NUMERIC)}
        cat = {name: i for i, name in enumerate(contract.CATEGORICAL)}
        for name in contract.FEATURE_NAMES:
            if name in num:
                data[name] = self.numeric[:, num[name]]
            else:
                allowed = np.array([*contract.BY_NAME[name].allowed, None], dtype=object)
                data[name] = allowed[self.codes[:, cat[name]]]
        return pd.DataFrame(data)


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def coerce_frame(frame: pd.DataFrame) -> Coerced:
    """Coerce a frame of raw records (text from a CSV, typed Parquet or JSON values) to the
    contract, strictly: a missing required value, a non-number, a fraction in an integer
    field, a value out of range or a category outside the contract makes a row invalid.
    Extra columns (``customerID``, ``Churn``, anything else) are ignored.

    Raises:
        ContractViolation: A feature column is absent (naming it).
    """
    absent = [name for name in contract.FEATURE_NAMES if name not in frame.columns]
    if absent:
        raise ContractViolation(
            f"required column {absent[0]!r} missing"
            + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
        )
    n = len(frame)
    problems: list[Problem] = []
    numeric = np.empty((n, len(NUMERIC_FIELDS)), dtype=np.float64)
    for j, f in enumerate(NUMERIC_FIELDS):
        arr, missing, bad = parse_numbers(frame[f.name])
        if not f.nullable:
            problems.append(Problem(f.name, MISSING, missing))
        for problem, mask in numeric_problems(f, arr, bad):
            problems.append(Problem(f.name, problem, mask))
        numeric[:, j] = arr
    codes = np.empty((n, len(CATEGORICAL_FIELDS)), dtype=np.int64)
    for j, f in enumerate(CATEGORICAL_FIELDS):
        c, missing, unknown = parse_categories(f, frame[f.name])
        if not f.nullable:
            problems.append(Problem(f.name, MISSING, missing))
        problems.append(Problem(f.name, NOT_ALLOWED.format(allowed=", ".join(f.allowed)), unknown))
        codes[:, j] = c
    return Coerced(numeric, codes, [p for p in problems if p.mask.any()], frame)


def _arrow_numbers(column: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parse_numbers`` for an Arrow column: numbers as they are; text trimmed, blanks
    made null and cast in one pass; any other text through ``parse_numbers`` itself."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        arr = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        arr = np.where(column.is_null().to_numpy(zero_copy_only=False), np.nan, arr)
        return arr, np.isnan(arr), np.zeros(len(arr), dtype=bool)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        trimmed = pc.utf8_trim_whitespace(column)
        blank = pc.fill_null(pc.equal(trimmed, ""), True)
        try:
            numbers = pc.cast(pc.if_else(blank, None, trimmed), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # junk somewhere: the careful path names it
        else:
            arr = numbers.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            missing = blank.to_numpy(zero_copy_only=False)
            bad = np.isnan(arr) & ~missing  # "nan" text is not a number
            return arr, missing, bad
    return parse_numbers(column.to_pandas())


_DICTIONARY_CODES: dict[tuple[str, tuple], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _dictionary_codes(f: Field, dictionary: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parse_categories`` of a column's distinct values; remembered per value set (a
    table's batches share a handful), so a batch costs a lookup, not a pandas pass."""
    values = tuple(dictionary.to_pylist())
    key = (f.name, values)
    found = _DICTIONARY_CODES.get(key)
    if found is None:
        if len(_DICTIONARY_CODES) > 4096:  # a column of free text: keep memory bounded
            _DICTIONARY_CODES.clear()
        found = _DICTIONARY_CODES[key] = parse_categories(f, pd.Series(values, dtype=object))
    return found


def _arrow_categories(f: Field, column: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``parse_categories`` for an Arrow column: applied to the distinct values only, then
    spread to the rows through the dictionary indices (the reader dictionary-encodes
    category columns as it parses them)."""
    import pyarrow as pa

    encoded = column.dictionary_encode() if not pa.types.is_dictionary(column.type) else column
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks() if encoded.num_chunks != 1 else encoded.chunk(0)
    indices = encoded.indices
    n = len(indices)
    if len(encoded.dictionary) == 0:
        return np.full(n, -1, np.int64), np.ones(n, bool), np.zeros(n, bool)
    codes_d, missing_d, unknown_d = _dictionary_codes(f, encoded.dictionary)
    if indices.null_count == 0:
        idx = indices.to_numpy(zero_copy_only=False)
        codes = codes_d[idx]
        if not (missing_d.any() or unknown_d.any()):  # the common case: all allowed
            none = np.zeros(n, dtype=bool)
            return codes, none, none
        return codes, missing_d[idx], unknown_d[idx]
    null = indices.is_null().to_numpy(zero_copy_only=False)
    idx = indices.fill_null(0).to_numpy(zero_copy_only=False)
    codes = np.where(null, -1, codes_d[idx])
    return codes, null | missing_d[idx], unknown_d[idx] & ~null


@dataclass
class ArrowRaw:
    """The raw Arrow batch behind a ``Coerced``, for the values named in rejects."""

    table: Any

    def __contains__(self, name: str) -> bool:
        return name in self.table.column_names

    def value(self, name: str, row: int) -> Any:
        return self.table.column(name)[row].as_py()


def coerce_arrow(table: Any) -> Coerced:
    """``coerce_frame`` for an Arrow table or record batch (the batch scorer's reader):
    the same rules through the same functions, without a Python object per value.

    Raises:
        ContractViolation: A feature column is absent (naming it).
    """
    import pyarrow as pa

    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    absent = [name for name in contract.FEATURE_NAMES if name not in table.column_names]
    if absent:
        raise ContractViolation(
            f"required column {absent[0]!r} missing"
            + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else "")
        )
    n = table.num_rows
    problems: list[Problem] = []
    numeric = np.empty((n, len(NUMERIC_FIELDS)), dtype=np.float64)
    for j, f in enumerate(NUMERIC_FIELDS):
        arr, missing, bad = _arrow_numbers(table.column(f.name))
        if not f.nullable:
            problems.append(Problem(f.name, MISSING, missing))
        for problem, mask in numeric_problems(f, arr, bad):
            problems.append(Problem(f.name, problem, mask))
        numeric[:, j] = arr
    codes = np.empty((n, len(CATEGORICAL_FIELDS)), dtype=np.int64)
    for j, f in enumerate(CATEGORICAL_FIELDS):
        c, missing, unknown = _arrow_categories(f, table.column(f.name))
        if not f.nullable:
            problems.append(Problem(f.name, MISSING, missing))
        problems.append(Problem(f.name, NOT_ALLOWED.format(allowed=", ".join(f.allowed)), unknown))
        codes[:, j] = c
    return Coerced(numeric, codes, [p for p in problems if p.mask.any()], ArrowRaw(table))
