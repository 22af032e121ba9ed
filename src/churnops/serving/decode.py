"""The fast request path: JSON bytes → ``Columns`` in one typed pass, for valid batches.

The record contract is compiled once into msgspec types (numbers with their ranges,
categories as literals, no unknown fields), so decoding a body also validates it, in C,
without building a dict per record. A 1000-record batch then costs about a third of
decoding it into Python objects and checking them column by column.

The fast path accepts a strict subset of what the reference path
(``validation.parse_instances`` / ``parse_tensors`` after ``server.loads``) accepts and
yields the same ``Columns`` (tests hold it to that). Anything else — a contract violation,
an unknown category (also under ``unknown="score"``, which the reference path counts),
NaN, nested tensor shapes, an empty or oversized batch — returns ``None``, and the caller
runs the reference path, which names the field and row. Errors are therefore reported the
same way whichever path a body would have taken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional, Union

import msgspec
import numpy as np

from churnops.data import contract
from churnops.serving.validation import CODES, NUMERIC_DATATYPES, Columns

_N_FEATURES = len(contract.FEATURE_NAMES)
_N_NUMERIC = len(contract.NUMERIC)
_N_CATEGORICAL = len(contract.CATEGORICAL)
_NUMERIC_POS = [contract.FEATURE_NAMES.index(n) for n in contract.NUMERIC]
_CATEGORICAL_POS = [contract.FEATURE_NAMES.index(n) for n in contract.CATEGORICAL]
_CODE_OF: list[Callable[[str], int]] = [CODES[n].__getitem__ for n in contract.CATEGORICAL]
if any(len(CODES[n]) > 256 for n in contract.CATEGORICAL):  # codes travel as bytes below
    raise RuntimeError("the fast path needs at most 256 allowed values per categorical field")


def _value_type(f: contract.Field) -> Any:
    """The msgspec type of one contract field's value."""
    if not f.is_numeric:
        return Literal[f.allowed]  # type: ignore[valid-type]
    base = int if f.kind == "integer" else float
    typ = Annotated[base, msgspec.Meta(ge=f.minimum, le=f.maximum)]  # type: ignore[valid-type]
    return Optional[typ] if f.nullable else typ  # noqa: UP045 (a runtime type expression)


# --- V1: {"instances": [record, ...]} --------------------------------------------------

_Record = msgspec.defstruct(
    "Record",
    [(f.name, _value_type(f)) for f in contract.FEATURES] + [(contract.ID.name, Any, None)],
    forbid_unknown_fields=True,
    gc=False,
)
_V1 = msgspec.defstruct("V1Request", [("instances", list[_Record])])  # type: ignore[valid-type]
_V1_DECODER = msgspec.json.Decoder(_V1)


def _columns(by_field: list[Any], n: int) -> Columns:
    """Per-field value sequences (``contract.FEATURE_NAMES`` order), already valid."""
    numeric = np.empty((n, _N_NUMERIC), dtype=np.float64)
    for j, pos in enumerate(_NUMERIC_POS):
        numeric[:, j] = by_field[pos]  # None (a nullable field's missing value) → NaN
    codes = np.empty((n, _N_CATEGORICAL), dtype=np.int64)
    for j, pos in enumerate(_CATEGORICAL_POS):  # valid values: codes 0..len(allowed)-1
        codes[:, j] = np.frombuffer(bytes(map(_CODE_OF[j], by_field[pos])), dtype=np.uint8)
    return Columns(numeric=numeric, codes=codes)


def v1(body: bytes, *, max_rows: int) -> Columns | None:
    """A V1 body → ``Columns``, or ``None`` when the reference path must judge it."""
    try:
        request: Any = _V1_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    records = request.instances
    n = len(records)
    if not 0 < n <= max_rows:
        return None
    rows = list(map(msgspec.structs.astuple, records))
    return _columns(list(zip(*rows, strict=True))[:_N_FEATURES], n)


# --- V2: {"inputs": [tensor, ...], "outputs": [...], "id": ..., "parameters": {...}} ----


def _tensor_type(f: contract.Field) -> type:
    datatype = Literal[tuple(sorted(NUMERIC_DATATYPES))] if f.is_numeric else Literal["BYTES"]  # type: ignore[valid-type]
    return msgspec.defstruct(
        f"Tensor_{f.name}",
        [
            ("datatype", datatype),
            ("shape", list[int]),
            ("data", list[_value_type(f)]),  # type: ignore[misc]
            ("parameters", Any, None),
        ],
        tag_field="name",
        tag=f.name,
        gc=False,
    )


_IdTensor = msgspec.defstruct(
    "Tensor_customerID",
    [("datatype", Any, None), ("shape", Any, None), ("data", Any, None), ("parameters", Any, None)],
    tag_field="name",
    tag=contract.ID.name,
)
_TENSORS = (*(_tensor_type(f) for f in contract.FEATURES), _IdTensor)
_Output = msgspec.defstruct(
    "Output",
    [("name", Literal["churn_probability", "churn"]), ("parameters", Optional[dict], None)],  # noqa: UP045
)
_V2 = msgspec.defstruct(
    "V2Request",
    [
        ("inputs", list[Union[_TENSORS]]),  # type: ignore[valid-type]  # noqa: UP007
        ("outputs", Optional[list[_Output]], None),  # type: ignore[valid-type]  # noqa: UP045
        ("id", Any, None),
        ("parameters", Optional[dict], None),  # noqa: UP045
    ],
)
_V2_DECODER = msgspec.json.Decoder(_V2)


@dataclass(frozen=True)
class V2Request:
    """A decoded V2 body: the batch and what the response needs from the request."""

    columns: Columns
    id: str | None
    parameters: dict | None
    outputs: list[tuple[str, dict]] | None


def v2(body: bytes, *, max_rows: int) -> V2Request | None:
    """A V2 JSON body → ``V2Request``, or ``None`` when the reference path must judge it."""
    try:
        request: Any = _V2_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    by_name = {type(t).__struct_config__.tag: t for t in request.inputs}
    if len(by_name) != len(request.inputs):
        return None  # an input named twice
    n = None
    data = []
    for name in contract.FEATURE_NAMES:
        t = by_name.get(name)
        if t is None:
            return None
        if n is None:
            n = len(t.data)
            if not 0 < n <= max_rows:
                return None
        if len(t.data) != n or t.shape not in ([n], [n, 1]):
            return None
        data.append(t.data)
    assert n is not None
    return V2Request(
        columns=_columns(data, n),
        id=None if request.id is None else str(request.id),
        parameters=request.parameters,
        outputs=None
        if request.outputs is None
        else [(o.name, o.parameters or {}) for o in request.outputs],
    )
