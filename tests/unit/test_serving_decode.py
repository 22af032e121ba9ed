"""The fast decoding path accepts only what the reference path accepts, and agrees with it.

``churnops.serving.decode`` turns a valid JSON body into ``Columns`` in one typed pass;
everything else must come back as ``None`` so the reference path (``server.loads`` +
``parse_instances``/``parse_tensors``) answers with the field and row it names.
"""

from __future__ import annotations

import json
import math
import os

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
        json.dumps(v2_body([GOOD, GOOD])).encode().replace(b'"Female"', b'"F\xf4male"', 1),
    ],
)
def test_v2_bodies_left_to_the_reference_path(body: bytes) -> None:
    assert decode.v2(body, max_rows=10) is None


# --- the compiled decoder: JSON grammar, exact numbers, anything odd left to the reference


def _reference_v1(body: bytes, max_rows: int = 10) -> Columns | None:
    """What the server's reference path makes of a V1 body (None: it answers a 4xx)."""
    try:
        payload = loads(body)
        if not isinstance(payload, dict) or "instances" not in payload:
            return None
        return parse_instances(payload["instances"], max_rows=max_rows)
    except ValueError:  # MalformedRequest, InvalidRecord, BatchTooLarge
        return None


def _with_token(field: str, token: str) -> bytes:
    """GOOD with ``field``'s JSON value spelled exactly as ``token``."""
    marker = "__TOKEN__"
    return (
        json.dumps({"instances": [GOOD, rec(**{field: marker})]})
        .encode()
        .replace(f'"{marker}"'.encode(), token.encode())
    )


NUMBER_TOKENS = [
    # (token, a valid MonthlyCharges the fast path must take)
    ("0", True),
    ("-0", True),
    ("0.0", True),
    ("-0.0", True),
    ("70", True),
    ("70.52", True),
    ("29.850000000000001", True),  # more digits than a double holds: CPython's parser
    ("0.1234567890123456789", True),
    ("999.9999999999999999", True),
    ("7.052e1", True),
    ("7052E-2", True),
    ("1e+2", True),
    ("1000", True),
    ("1000.0000000000001", False),  # above the maximum
    ("1e400", False),
    ("-1", False),
    ("-1e-400", True),  # underflows to -0.0, which is in range
    ("01", False),  # not JSON
    ("1.", False),
    (".5", False),
    ("+1", False),
    ("-", False),
    ("1e", False),
    ("1e+", False),
    ("NaN", False),
    ("Infinity", False),
    ("-Infinity", False),
    ("0x10", False),
    ("1_0", False),
    ("true", False),
    ("null", False),  # MonthlyCharges is not nullable
    ('"70"', False),
    ("[70]", False),
]


@pytest.mark.parametrize(("token", "fast"), NUMBER_TOKENS)
def test_number_tokens_decode_as_python_floats(token: str, fast: bool) -> None:
    body = _with_token("MonthlyCharges", token)
    got = decode.v1(body, max_rows=10)
    if fast:
        reference = _reference_v1(body)
        assert reference is not None
        assert_same(got, reference)
        column = got.numeric[:, contract.NUMERIC.index("MonthlyCharges")]
        assert math.copysign(1, column[1]) == math.copysign(1, reference.numeric[1, 2])
    else:
        assert got is None


@pytest.mark.parametrize(
    ("token", "fast"),
    [("12", True), ("12.0", True), ("1.2e1", True), ("-0", True), ("12.5", False), ("121", False)],
)
def test_integer_fields_take_integral_numbers(token: str, fast: bool) -> None:
    body = _with_token("tenure", token)
    got = decode.v1(body, max_rows=10)
    assert (got is not None) == fast
    if fast:
        assert_same(got, _reference_v1(body))


@pytest.mark.parametrize(
    "token",
    ["null", "12345", "-1.5e3", "true", "false", '"plain-id 42"', '""'],
)
def test_customer_id_values_the_fast_path_skips(token: str) -> None:
    body = _with_token("customerID", token)
    assert_same(decode.v1(body, max_rows=10), _reference_v1(body))


@pytest.mark.parametrize(
    ("field", "token"),
    [
        ("customerID", '"caf\\u00e9"'),  # escapes: the reference path decodes them
        ("customerID", '"café"'),
        ("customerID", '{"a": 1}'),
        ("customerID", "[1]"),
        ("gender", '"Ma\\u006ce"'),  # "Male", spelled with an escape
        ("gender", '"Male\\""'),
        ("gender", '"Male '),  # unterminated
        ("gender", '"male"'),
    ],
)
def test_escaped_and_odd_strings_take_the_reference_path(field: str, token: str) -> None:
    assert decode.v1(_with_token(field, token), max_rows=10) is None


def test_whitespace_key_order_and_layout_do_not_matter() -> None:
    records = generated_records(50, 7)
    rng = np.random.default_rng(0)
    shuffled = [dict(sorted(r.items(), key=lambda _: rng.random())) for r in records]
    reference = parse_instances(records, max_rows=100)
    for body in (
        json.dumps({"instances": shuffled}, indent=2).encode(),
        json.dumps({"instances": shuffled}, separators=(",", ":")).encode(),
        json.dumps({"instances": records}, indent="\t").encode().replace(b"\n", b"\r\n"),
        b" \n" + json.dumps({"instances": records}).encode() + b"\n\n",
    ):
        assert_same(decode.v1(body, max_rows=100), reference)


@pytest.mark.parametrize(
    "body",
    [
        _with_token("gender", '"Male", "gender": "Female"'),  # a key twice
        _with_token("gender", '"Male", "Gender": "Female"'),  # an unknown key
        json.dumps({"instances": [GOOD], "parameters": {}}).encode(),  # another top-level key
        json.dumps({"instances": [GOOD]}).encode() + b" x",  # trailing bytes
        json.dumps({"instances": [GOOD]}).encode()[:-1],  # truncated
        json.dumps({"instances": [GOOD, None]}).encode(),
        json.dumps({"instances": [GOOD]}).encode().replace(b"}]}", b"},]}"),  # trailing comma
    ],
)
def test_structural_oddities_take_the_reference_path(body: bytes) -> None:
    assert decode.v1(body, max_rows=10) is None


_JSONISH = b' \t\r\n{}[]:,"\\0123456789.-+eEnultrfasYNMD'
FUZZ_ITERATIONS = int(os.environ.get("CHURNOPS_FUZZ_ITERATIONS", "2000"))
"""Mutations per seed; ``make fuzz-decoder`` raises it and runs under ASan + UBSan."""


def _mutate(body: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(body)
    for _ in range(int(rng.integers(1, 5))):
        at = int(rng.integers(0, len(out) + 1))
        action = int(rng.integers(0, 5))
        if action == 0 and at < len(out):  # a JSON-ish byte instead
            out[at] = _JSONISH[int(rng.integers(0, len(_JSONISH)))]
        elif action == 1:  # a few bytes gone
            del out[at : at + int(rng.integers(1, 8))]
        elif action == 2:  # a JSON-ish byte more
            out[at:at] = bytes([_JSONISH[int(rng.integers(0, len(_JSONISH)))]])
        elif action == 3 and at < len(out):  # any byte (invalid UTF-8 included)
            out[at] = int(rng.integers(0, 256))
        else:  # a slice of the body repeated elsewhere (keys twice, nested values)
            src = int(rng.integers(0, len(out) + 1))
            out[at:at] = out[src : src + int(rng.integers(1, 40))]
    return bytes(out)


def _check_against_reference(body: bytes, max_rows: int) -> int:
    taken = 0
    fast = decode.v1(body, max_rows=max_rows)
    if fast is not None:
        taken += 1
        reference = _reference_v1(body, max_rows)
        assert reference is not None, body
        assert_same(fast, reference)
    fast2 = decode.v2(body, max_rows=max_rows)
    if fast2 is not None:
        taken += 1
        payload = loads(body)
        tensors = [
            Tensor(i["name"], i["datatype"], i["shape"], i["data"]) for i in payload["inputs"]
        ]
        assert_same(fast2.columns, parse_tensors(tensors, max_rows=max_rows))
    return taken


@pytest.mark.parametrize("seed", range(4))
def test_mutated_bodies_never_decode_to_something_the_reference_rejects(seed: int) -> None:
    """Random edits of valid bodies: the fast path either declines or agrees exactly."""
    rng = np.random.default_rng(seed)
    records = generated_records(int(rng.integers(1, 5)), seed)
    bases = [
        json.dumps({"instances": records}).encode(),
        json.dumps({"instances": records}, indent=1).encode(),
        json.dumps(v2_body(records)).encode(),
    ]
    for k in range(len(bases[0])):  # every truncation: the end-of-body checks
        assert decode.v1(bases[0][:k], max_rows=10) is None
        assert decode.v2(bases[2][:k], max_rows=10) is None
    taken = 0
    for _ in range(FUZZ_ITERATIONS):
        body = _mutate(bases[int(rng.integers(0, len(bases)))], rng)
        taken += _check_against_reference(body, max_rows=int(rng.choice([1, 3, 10])))
    assert taken > 0  # some edits (in ids, whitespace, digits) keep a body valid


def test_decoder_refuses_arrays_it_cannot_fill() -> None:
    body = json.dumps({"instances": [GOOD]}).encode()
    cols = decode._empty(1)
    with pytest.raises(TypeError):
        decode._DECODER.records(body, cols.numeric.astype(np.float32), cols.codes)
    with pytest.raises((TypeError, BufferError, ValueError)):
        decode._DECODER.records(body, decode._empty(2).numeric[:, :2], cols.codes)  # strided
    # capacity comes from the arrays: more records than rows is "not mine", not an overflow
    two = json.dumps({"instances": [GOOD] * 2}).encode()
    assert decode._DECODER.records(two, cols.numeric, cols.codes) == -1


# --- V1 responses ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_v1_response_is_byte_for_byte_what_orjson_makes_of_the_dicts(n: int) -> None:
    import orjson

    from churnops.serving.encode import v1_predictions

    rng = np.random.default_rng(n)
    proba = rng.random(n) ** 3
    proba[: min(n, 3)] = [0.0, 1.0, 1e-7][: min(n, 3)]
    churn = proba >= 0.3
    expected = orjson.dumps(
        {
            "predictions": [
                {"churn_probability": p, "churn": c, "model_version": "12"}
                for p, c in zip(proba.tolist(), churn.tolist(), strict=True)
            ]
        }
    )
    got = v1_predictions(proba, churn, "12")
    assert got == expected
    assert [p["churn_probability"] for p in json.loads(got)["predictions"]] == proba.tolist()
