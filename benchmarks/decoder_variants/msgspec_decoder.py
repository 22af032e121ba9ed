"""The best pure-library request decoder, for `make bench-serve`'s decoder decision.

Issue 15 item 6: the compiled decoder (``churnops.serving._jsoncols``) stays only if it wins
≥ 1.5x batch throughput end to end over this path: msgspec Structs generated from the
record contract (categories as ``Literal`` of the allowed values, integers and numbers
with the contract's bounds as ``msgspec.Meta``), decoded in one typed pass, then gathered
into the same ``Columns`` arrays with C-level iteration (``astuple``, ``zip``, ``map``).

Same contract as ``churnops.serving.decode``: a valid batch → ``Columns``; anything else →
``None`` and the server's reference path names the field and row. bench_serve.py checks
that both decoders give the same arrays before it measures, and runs ``churnops serve``
with this one in place (``sitecustomize.py`` beside this file) as its own server.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

import msgspec
import numpy as np
from msgspec.structs import astuple

from churnops.data import contract
from churnops.serving import decode
from churnops.serving.validation import NUMERIC_DATATYPES, Columns

_ID = contract.ID.name


def _value_type(f: contract.Field) -> Any:
    if f.kind == "category":
        return Literal[f.allowed]
    base = int if f.kind == "integer" else float
    bounded = Annotated[base, msgspec.Meta(ge=f.minimum, le=f.maximum)]
    return Optional[bounded] if f.nullable else bounded  # noqa: UP045


def _record_fields() -> list[tuple]:
    fields: list[tuple] = []
    for f in contract.FEATURES:
        if f.nullable:
            fields.append((f.name, _value_type(f), None))
        else:
            fields.append((f.name, _value_type(f)))
    # customerID is accepted and ignored; it must come after the required fields.
    fields.append((_ID, Union[str, int, None], None))  # noqa: UP007
    return sorted(fields, key=len)  # required (2-tuples) before defaulted (3-tuples)


_Record = msgspec.defstruct("Record", _record_fields(), forbid_unknown_fields=True, gc=False)
_V1 = msgspec.defstruct("V1Request", [("instances", list[_Record])], gc=False)  # type: ignore[valid-type]
_V1_DECODER = msgspec.json.Decoder(_V1)

# astuple order: the Struct's field order, which sorted() above may have changed.
_ORDER = _Record.__struct_fields__
_NUMERIC_AT = [_ORDER.index(name) for name in contract.NUMERIC]
_CATEGORY_AT = [_ORDER.index(name) for name in contract.CATEGORICAL]
_CODE_OF = [
    {v: i for i, v in enumerate(contract.BY_NAME[name].allowed)}.__getitem__
    for name in contract.CATEGORICAL
]


def _columns(numeric: list, categorical: list, n: int) -> Columns:
    """Column tuples (values already checked by msgspec) → the server's arrays."""
    num = np.empty((n, len(numeric)), dtype=np.float64)
    for j, column in enumerate(numeric):
        num[:, j] = column  # None (a nullable field's missing value) becomes NaN
    codes = np.empty((n, len(categorical)), dtype=np.int64)
    for j, (column, code_of) in enumerate(zip(categorical, _CODE_OF, strict=True)):
        codes[:, j] = list(map(code_of, column))
    return Columns(numeric=num, codes=codes)


def v1(body: bytes, *, max_rows: int) -> Columns | None:
    """A V1 body → ``Columns``, or ``None`` when the reference path must judge it."""
    try:
        records = _V1_DECODER.decode(body).instances
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    n = len(records)
    if not 0 < n <= max_rows:
        return None
    by_column = list(zip(*map(astuple, records), strict=True))
    return _columns([by_column[i] for i in _NUMERIC_AT], [by_column[i] for i in _CATEGORY_AT], n)


def _tensor_type(f: contract.Field) -> type:
    datatype = Literal[tuple(sorted(NUMERIC_DATATYPES))] if f.is_numeric else Literal["BYTES"]
    return msgspec.defstruct(
        f"Tensor_{f.name}",
        [
            ("datatype", datatype),
            ("shape", list[int]),
            ("data", list[_value_type(f)]),  # type: ignore[misc]
            ("parameters", Optional[dict], None),  # noqa: UP045
        ],
        tag_field="name",
        tag=f.name,
        gc=False,
    )


# customerID is accepted and ignored exactly as the server's decoder does: its own struct.
_IdTensor = decode._IdTensor
_V2 = msgspec.defstruct(
    "V2Request",
    [
        ("inputs", list[Union[(*(_tensor_type(f) for f in contract.FEATURES), _IdTensor)]]),  # type: ignore[misc]
        ("outputs", Optional[list[dict]], None),  # noqa: UP045
        ("id", Union[str, int, float, None], None),  # noqa: UP007
        ("parameters", Optional[dict], None),  # noqa: UP045
    ],
)
_V2_DECODER = msgspec.json.Decoder(_V2)
_OUTPUTS = frozenset({"churn_probability", "churn"})


def v2(body: bytes, *, max_rows: int) -> Any:
    """A V2 JSON body → ``churnops.serving.decode.V2Request``, or ``None``."""
    from churnops.serving.decode import V2Request

    try:
        request = _V2_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError):
        return None
    by_name = {type(t).__struct_config__.tag: t for t in request.inputs}
    tensors = [by_name.get(name) for name in contract.FEATURE_NAMES]
    if len(by_name) != len(request.inputs) or any(t is None for t in tensors):
        return None
    n = len(tensors[0].data)
    if not 0 < n <= max_rows or any(t.shape not in ([n], [n, 1]) for t in tensors):
        return None
    if any(len(t.data) != n for t in tensors):
        return None
    outputs = None
    if request.outputs is not None:
        outputs = [(o.get("name"), o.get("parameters") or {}) for o in request.outputs]
        if any(name not in _OUTPUTS or not isinstance(p, dict) for name, p in outputs):
            return None
    by = dict(zip(contract.FEATURE_NAMES, tensors, strict=True))
    return V2Request(
        columns=_columns(
            [by[name].data for name in contract.NUMERIC],
            [by[name].data for name in contract.CATEGORICAL],
            n,
        ),
        id=None if request.id is None else str(request.id),
        parameters=request.parameters,
        outputs=outputs,
    )
