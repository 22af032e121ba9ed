"""A seeded request mutator for the model server: V1, V2 JSON and V2 binary bodies.

``cases(seed, n)`` yields ``(label, path, body, headers)``: the hostile shapes a review
found (``NAMED``) first, then ``n`` mutations of valid bodies (structure-level: a node
replaced, removed, or nested ~1,000 deep; byte-level: truncated, flipped, invalid UTF-8;
binary: length prefixes and header fields broken). The same seed gives the same bodies.
"""

from __future__ import annotations

import copy
import json
import random
import re
import struct
from collections.abc import Iterator
from typing import Any

from churnops.data import contract

V1 = "/v1/models/churn:predict"
V2 = "/v2/models/churn/infer"
JSON = {"Content-Type": "application/json"}
_BINARY_HEADER = "Inference-Header-Content-Length"

GOOD: dict = {
    "customerID": "0001-ABCD",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 12,
    "PhoneService": "Yes",
    "MultipleLines": "No",
    "InternetService": "Fiber optic",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "Yes",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 70.35,
    "TotalCharges": 844.2,
}


_DEEP = re.compile(rb'"__deep_(list|dict)_(\d+)__"')


def _nest(depth: int, kind: str = "list") -> str:
    """A placeholder ``_json`` expands to a value nested ``depth`` deep (built as text:
    Python's own encoder would hit its recursion limit first)."""
    return f"__deep_{kind}_{depth}__"


def _expand(m: re.Match) -> bytes:
    depth = int(m[2])
    if m[1] == b"list":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def v1_body(records: list[dict]) -> dict:
    return {"instances": records}


def v2_body(records: list[dict]) -> dict:
    inputs = []
    for f in contract.FEATURES:
        inputs.append(
            {
                "name": f.name,
                "datatype": "FP64" if f.is_numeric else "BYTES",
                "shape": [len(records)],
                "data": [r[f.name] for r in records],
            }
        )
    return {"inputs": inputs}


def binary_body(records: list[dict], *, shape2d: bool = False) -> tuple[dict, list[bytes]]:
    """The binary tensor extension: a JSON header and one raw buffer per input."""
    header_inputs, buffers = [], []
    n = len(records)
    for f in contract.FEATURES:
        values = [r[f.name] for r in records]
        if f.is_numeric:
            raw = struct.pack(f"<{n}d", *[float("nan") if v is None else v for v in values])
            datatype = "FP64"
        else:
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
            datatype = "BYTES"
        header_inputs.append(
            {
                "name": f.name,
                "datatype": datatype,
                "shape": [n, 1] if shape2d else [n],
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        buffers.append(raw)
    return {"inputs": header_inputs}, buffers


def encode_binary(header: Any, buffers: list[bytes], *, length: str | None = None) -> tuple:
    head = _json(header)
    headers = {
        "Content-Type": "application/octet-stream",
        _BINARY_HEADER: length if length is not None else str(len(head)),
    }
    return head + b"".join(buffers), headers


def _json(obj: Any) -> bytes:
    return _DEEP.sub(_expand, json.dumps(obj).encode())


def _records(rng: random.Random, n: int | None = None) -> list[dict]:
    return [dict(GOOD, tenure=rng.randint(0, 72)) for _ in range(n or rng.randint(1, 3))]


def named() -> list[tuple[str, str, bytes, dict]]:
    """The shapes the security review answered with a 500 (issue 13, finding 3)."""
    good_v2 = v2_body([GOOD])
    out: list[tuple[str, str, bytes, dict]] = []

    def v2(label: str, body: Any) -> None:
        out.append((label, V2, body if isinstance(body, bytes) else _json(body), JSON))

    deep = _nest(1000)
    v2("v2-id-nested-1000", {**good_v2, "id": deep})
    v2("v2-unknown-key-nested-1000", {**good_v2, "extra": deep})
    v2("v2-unknown-key-nested-dicts", {**good_v2, "extra": _nest(1000, kind="dict")})
    v2("v2-parameters-nested-1000", {**good_v2, "parameters": {"a": deep}})
    v2(
        "v2-data-nested-1000",
        _json(good_v2).replace(b'"data": ["Female"]', b'"data": ' + _json(deep), 1),
    )
    named_list = copy.deepcopy(good_v2)
    named_list["inputs"][0]["name"] = ["gender"]
    v2("v2-input-name-list", named_list)
    named_dict = copy.deepcopy(good_v2)
    named_dict["inputs"][0]["name"] = {"a": 1}
    v2("v2-input-name-object", named_dict)
    v2(
        "v2-outputs-parameters-string",
        {**good_v2, "outputs": [{"name": "churn", "parameters": "x"}]},
    )
    v2("v2-parameters-string", {**good_v2, "parameters": "binary_data_output"})
    v2("v2-parameters-list", {**good_v2, "parameters": [1, 2]})
    v2("v2-id-object", {**good_v2, "id": {"a": [1, 2]}})
    tensor_params = copy.deepcopy(good_v2)
    tensor_params["inputs"][0]["parameters"] = "x"
    v2("v2-tensor-parameters-string", tensor_params)
    surrogate = _json(good_v2).replace(b'"datatype": "BYTES"', b'"datatype": "\\ud800"', 1)
    v2("v2-datatype-lone-surrogate", surrogate)
    v2("v2-name-lone-surrogate", _json(good_v2).replace(b'"name": "gender"', b'"name": "\\udc00"'))
    data_surrogate = _json(good_v2).replace(b'"Female"', b'"\\ud800"', 1)
    v2("v2-data-lone-surrogate", data_surrogate)
    shape2d = copy.deepcopy(good_v2)
    for t in shape2d["inputs"]:
        t["shape"] = [1, 1]
        t["data"] = [t["data"]]
    v2("v2-json-2d-shape", shape2d)
    wide = copy.deepcopy(good_v2)
    wide["inputs"][0]["shape"] = [1, 3]
    v2("v2-json-2d-wide-shape", wide)
    v2("v2-shape-nested", _json(good_v2).replace(b'"shape": [1]', b'"shape": [[1]]', 1))
    v2("v2-huge-shape", _json(good_v2).replace(b'"shape": [1]', b'"shape": [1e400]', 1))

    v1_deep = dict(GOOD, tenure=_nest(990))
    out.append(("v1-value-nested-990", V1, _json({"instances": [v1_deep]}), JSON))
    v1_deep_cat = dict(GOOD, gender=_nest(990))
    out.append(("v1-category-nested-990", V1, _json({"instances": [v1_deep_cat]}), JSON))
    out.append(("v1-unknown-key-nested", V1, _json({"instances": [GOOD], "x": deep}), JSON))
    out.append(("v1-record-key-lone-surrogate", V1, _json({"instances": [{"\udc00": 1}]}), JSON))
    out.append(("v1-instances-nested", V1, _json({"instances": [_nest(999)]}), JSON))
    out.append(("v1-json-nested-5000", V1, b"[" * 5000 + b"]" * 5000, JSON))

    header, buffers = binary_body([GOOD, GOOD])
    body, headers = encode_binary(header, buffers)
    out.append(("binary-valid", V2, body, headers))
    cat = next(i for i, f in enumerate(contract.FEATURES) if not f.is_numeric)
    for label, fix in (
        ("binary-prefix-short", lambda b: b[:-3]),
        ("binary-prefix-too-long", lambda b: struct.pack("<I", 10_000) + b[4:]),
        ("binary-prefix-truncated", lambda b: b[:2]),
        ("binary-invalid-utf8", lambda b: struct.pack("<I", 2) + b"\xff\xfe" + b[4 + 6 :]),
    ):
        bufs = list(buffers)
        bufs[cat] = fix(bufs[cat])
        body, headers = encode_binary(header, bufs)
        out.append((label, V2, body, headers))
    body, headers = encode_binary({"inputs": [1]}, [])
    out.append(("binary-header-inputs-number", V2, body, headers))
    body, headers = encode_binary({"inputs": "x"}, [])
    out.append(("binary-header-inputs-string", V2, body, headers))
    body, headers = encode_binary([1, 2], [])
    out.append(("binary-header-not-object", V2, body, headers))
    bad_params = copy.deepcopy(header)
    bad_params["inputs"][0]["parameters"] = "x"
    out.append(("binary-tensor-parameters-string", V2, *encode_binary(bad_params, buffers)))
    bad_size = copy.deepcopy(header)
    bad_size["inputs"][0]["parameters"] = {"binary_data_size": "x"}
    out.append(("binary-data-size-string", V2, *encode_binary(bad_size, buffers)))
    neg_size = copy.deepcopy(header)
    neg_size["inputs"][0]["parameters"] = {"binary_data_size": -5}
    out.append(("binary-data-size-negative", V2, *encode_binary(neg_size, buffers)))
    h2d, b2d = binary_body([GOOD, GOOD], shape2d=True)
    out.append(("binary-2d-shape", V2, *encode_binary(h2d, b2d)))
    hwide = copy.deepcopy(header)
    hwide["inputs"][0]["shape"] = [2, 2]
    out.append(("binary-2d-wide-shape", V2, *encode_binary(hwide, buffers)))
    hout = dict(header, outputs=[{"name": "churn", "parameters": "x"}])
    out.append(("binary-outputs-parameters-string", V2, *encode_binary(hout, buffers)))
    hsur = _json(header).replace(b'"datatype": "BYTES"', b'"datatype": "\\ud800"', 1)
    out.append(
        (
            "binary-datatype-lone-surrogate",
            V2,
            hsur + b"".join(buffers),
            {"Content-Type": "application/octet-stream", _BINARY_HEADER: str(len(hsur))},
        )
    )
    head = _json(header)
    for label, length in (
        ("binary-length-negative", "-1"),
        ("binary-length-not-a-number", "abc"),
        ("binary-length-beyond-body", str(len(head) * 100)),
        ("binary-length-zero", "0"),
        ("binary-length-huge", "9" * 40),
    ):
        out.append(
            (
                label,
                V2,
                head + b"".join(buffers),
                dict(encode_binary(header, [])[1], **{_BINARY_HEADER: length}),
            )
        )
    return out


# --- random mutations ------------------------------------------------------------------

_ODD_VALUES: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**70,
    1e308,
    -0.0,
    "",
    "x" * 300,
    "\u0000",
    "Yes",
    [],
    {},
    [1, 2],
    {"a": 1},
    [[1]],
    [None],
)


def _random_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.08:
        return _nest(rng.choice((50, 500, 990, 1000, 1100)), kind=rng.choice(("list", "dict")))
    if roll < 0.15:
        return rng.uniform(-1e6, 1e6)
    return copy.deepcopy(rng.choice(_ODD_VALUES))


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node[:4]):
            out += _paths(v, (*prefix, i))
    return out


def _mutate_tree(rng: random.Random, body: Any) -> Any:
    for _ in range(rng.randint(1, 3)):
        paths = _paths(body)
        path = rng.choice(paths)
        if not path:
            body = _random_value(rng)
            continue
        parent = body
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = rng.random()
        if action < 0.6:
            parent[key] = _random_value(rng)
        elif action < 0.8:
            del parent[key]
        elif isinstance(parent, dict):
            parent[rng.choice(("id", "parameters", "outputs", "zz", "name", "datatype"))] = (
                _random_value(rng)
            )
        else:
            parent.append(_random_value(rng))
    return body


def _mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    raw = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        if not raw:
            break
        i = rng.randrange(len(raw))
        roll = rng.random()
        if roll < 0.3:
            raw[i] = rng.randrange(256)
        elif roll < 0.5:
            del raw[i:]
        elif roll < 0.7:
            raw[i:i] = rng.choice((b"\xff", b"\xc0\x80", b"\\ud800", b"[" * 50, b"\x00", b'"'))
        else:
            j = min(len(raw), i + rng.randint(1, 40))
            raw[i:i] = raw[i:j]
    return bytes(raw)


def _random_case(rng: random.Random) -> tuple[str, str, bytes, dict]:
    kind = rng.choice(("v1", "v2", "binary"))
    records = _records(rng)
    if kind == "binary":
        header, buffers = binary_body(records, shape2d=rng.random() < 0.2)
        if rng.random() < 0.5:
            header = _mutate_tree(rng, copy.deepcopy(header))
        if rng.random() < 0.5 and buffers:
            i = rng.randrange(len(buffers))
            buffers[i] = _mutate_bytes(rng, buffers[i])
        try:
            body, headers = encode_binary(header, buffers)
        except (TypeError, ValueError):
            body, headers = encode_binary({"inputs": []}, buffers)
        if rng.random() < 0.15:
            headers[_BINARY_HEADER] = str(rng.randint(-10, len(body) + 10))
        return "random-binary", V2, body, headers
    body = v1_body(records) if kind == "v1" else v2_body(records)
    path = V1 if kind == "v1" else V2
    if rng.random() < 0.65:
        body = _mutate_tree(rng, body)
        raw = _json(body)
    else:
        raw = _mutate_bytes(rng, _json(body))
    return f"random-{kind}", path, raw, JSON


def cases(seed: int, n: int) -> Iterator[tuple[str, str, bytes, dict]]:
    """The named hostile shapes, then ``n`` seeded random mutations."""
    yield from named()
    rng = random.Random(seed)
    for _ in range(n):
        yield _random_case(rng)
