"""The fast decoding path accepts only what the reference path accepts, and agrees with it.

``churnops.serving.decode`` turns a valid JSON body into ``Columns`` in one typed pass;
everything else must come back as ``None`` so the reference path (``server.loads`` +
``parse_instances``/``parse_tensors``) answers with the field and row it names.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_serving_validation import BAD_RECORDS, GOOD, rec

from churnops.data import contract
from churnops.data.generate import generate_chunk
from churnops.serving import decode
from churnops.serving.server import loads
from churnops.serving.validation import Columns, Tensor, parse_instances, parse_tensors


def generated_records(n: int, seed: int) -> list[dict]:
    frame = generate_chunk(np.random.default_rng(seed), n, start=0, drift=0.3)
    out = []
    for r in frame.drop(columns=[contract.LABEL.name]).to_dict(orient="records"):
        record = {}
        for k, v in r.items():
            v = v.item() if hasattr(v, "item") else v
            record[k] = None if isinstance(v, float) and math.isnan(v) else v
        out.append(record)
    return out


def v2_body(records: list[dict], **extra: object) -> dict:
    inputs = [
        {
            "name": f.name,
            "datatype": "FP64" if f.is_numeric else "BYTES",
            "shape": [len(records)],
            "data": [r[f.name] for r in records],
        }
        for f in contract.FEATURES
    ]
    return {"inputs": inputs, **extra}


def assert_same(fast: Columns | None, reference: Columns) -> None:
    assert fast is not None, "a valid batch must take the fast path"
    np.testing.assert_array_equal(fast.numeric, reference.numeric)  # NaN == NaN here
    np.testing.assert_array_equal(fast.codes, reference.codes)
    assert fast.numeric.dtype == reference.numeric.dtype and fast.codes.dtype == np.int64
    assert fast.unknown == reference.unknown == {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_v1_fast_path_equals_reference(seed: int) -> None:
    records = generated_records(700, seed)
    records[0]["TotalCharges"] = None  # a new customer
    records[1]["MonthlyCharges"] = 70  # an integer in a float field
    del records[2]["customerID"]  # the id is optional
    body = json.dumps({"instances": records}).encode()
    reference = parse_instances(loads(body)["instances"], max_rows=1000)
    assert_same(decode.v1(body, max_rows=1000), reference)


@pytest.mark.parametrize("seed", [4, 5])
def test_v2_fast_path_equals_reference(seed: int) -> None:
    records = generated_records(500, seed)
    records[0]["TotalCharges"] = None
    body = v2_body(records, id="req-1", parameters={"a": 1}, outputs=[{"name": "churn"}])
    fast = decode.v2(json.dumps(body).encode(), max_rows=1000)
    tensors = [Tensor(i["name"], i["datatype"], i["shape"], i["data"]) for i in body["inputs"]]
    assert fast is not None
    assert_same(fast.columns, parse_tensors(tensors, max_rows=1000))
    assert fast.id == "req-1" and fast.parameters == {"a": 1}
    assert fast.outputs == [("churn", {})]


@pytest.mark.parametrize(("record", "field", "fragment"), BAD_RECORDS)
def test_bad_records_take_the_reference_path(record: dict, field: str, fragment: str) -> None:
    body = json.dumps({"instances": [GOOD, record]}).encode()
    assert decode.v1(body, max_rows=10) is None
    if record.keys() == GOOD.keys():  # a bad value, expressible as V2 tensors
        assert decode.v2(json.dumps(v2_body([GOOD, record])).encode(), max_rows=10) is None


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"instances": []}',
        json.dumps({"instances": [GOOD] * 11}).encode(),  # over max_rows
        json.dumps({"instances": {"a": 1}}).encode(),
        json.dumps([GOOD]).encode(),
        json.dumps({"instances": [rec(SeniorCitizen=1.0)]}).encode(),  # reference accepts it
        json.dumps({"instances": [rec(Contract="Lifetime")]}).encode(),  # unknown category
    ],
)
def test_v1_bodies_left_to_the_reference_path(body: bytes) -> None:
    assert decode.v1(body, max_rows=10) is None


def _v2(change) -> bytes:
    body = v2_body([GOOD, GOOD])
    change(body)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "body",
    [
        _v2(lambda b: b["inputs"].pop(0)),  # a missing input
        _v2(lambda b: b["inputs"].append(dict(b["inputs"][4]))),  # an input twice
        _v2(lambda b: b["inputs"][4].update(shape=[3])),  # shape disagrees with the data
        _v2(lambda b: b["inputs"][4].update(shape=[2, 2])),
        _v2(lambda b: b["inputs"][4].update(datatype="BYTES")),
        _v2(lambda b: b["inputs"][4].update(data=[[1], [2]], shape=[2, 1])),  # nested data
        _v2(lambda b: b["inputs"][0].update(name="gendr")),
        _v2(lambda b: b.update(outputs=[{"name": "score"}])),
        _v2(lambda b: b.update(outputs=[{"name": "churn", "parameters": 1}])),
        _v2(lambda b: [i.update(shape=[0], data=[]) for i in b["inputs"]]),  # empty batch
        json.dumps({"instances": [GOOD]}).encode(),
    ],
)
def test_v2_bodies_left_to_the_reference_path(body: bytes) -> None:
    assert decode.v2(body, max_rows=10) is None
