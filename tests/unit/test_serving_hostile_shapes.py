"""The hostile request shapes, in-process: each is refused with a client error that names a
field (never another exception), and an error message quoting a lone surrogate or a value
nested a thousand deep can still be encoded. The same shapes go over HTTP in
``tests/integration/test_serving_hostile_input.py``."""

from __future__ import annotations

import orjson
import pytest
from integration._serving_fuzz import V1, named

from churnops.errors import InvalidRecord
from churnops.serving import errors, server
from churnops.serving.validation import Tensor, parse_instances, parse_tensors, preview

VALID = {"binary-valid", "v2-json-2d-shape", "binary-2d-shape", "v1-unknown-key-nested"}
# Unknown top-level keys are ignored by the request functions; over HTTP a value nested that
# deep is refused by the route (400, nested too deeply), which the integration test checks.
IGNORED_HERE = {
    "v2-unknown-key-nested-1000",
    "v2-unknown-key-nested-dicts",
    "v2-parameters-nested-1000",
}


def _judge(path: str, body: bytes, headers: dict) -> None:
    length = headers.get("Inference-Header-Content-Length")
    if length is not None:
        request = server._binary_v2_request(body, length, "churn")
        tensors = [Tensor(i.name, i.datatype, i.shape, i.data) for i in request.inputs]
        parse_tensors(tensors, max_rows=100)
        return
    payload = server.loads(body)
    if path == V1:
        parse_instances(payload["instances"], max_rows=100)
        return
    request = server._v2_request(payload, "churn")
    parse_tensors(
        [Tensor(i.name, i.datatype, i.shape, i.data) for i in request.inputs], max_rows=100
    )


@pytest.mark.parametrize(("label", "path", "body", "headers"), named(), ids=lambda v: str(v)[:40])
def test_hostile_shapes_are_client_errors(label, path, body, headers) -> None:
    if label in VALID | IGNORED_HERE:
        _judge(path, body, headers)
        return
    with pytest.raises(InvalidRecord) as info:
        _judge(path, body, headers)
    err = info.value
    status, response = errors.to_response(err)
    assert 400 <= status < 500, (label, status, response)
    assert response["field"]
    orjson.dumps(response)  # encodable, lone surrogates included


def test_preview_is_bounded_in_depth_and_length() -> None:
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert len(preview(deep)) <= 80
    assert len(preview("x" * 10_000)) <= 80


def test_error_body_escapes_lone_surrogates() -> None:
    status, body = errors.to_response(InvalidRecord("bad datatype '\ud800'", field="gender"))
    assert status == 422 and "\\ud800" in body["error"]
    orjson.dumps(body)
