"""The model server as a real process: V1/V2 round trips (also with tritonclient), the
bad-input battery, exactness against MLflow's pyfunc, and metrics after known traffic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
from _serving_support import dumps, metric_value, sample_records

from churnops.data import contract
from churnops.testing import records_to_columns

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JSON = {"Content-Type": "application/json"}


def v1(server, body, *, headers=JSON, name="churn") -> requests.Response:
    data = body if isinstance(body, bytes | str) else dumps(body)
    return requests.post(
        f"{server.url}/v1/models/{name}:predict", data=data, headers=headers, timeout=30
    )


def v2_body(records: list[dict]) -> dict:
    columns = records_to_columns(records)
    inputs = []
    for f in contract.FEATURES:
        datatype = "BYTES" if not f.is_numeric else ("INT64" if f.kind == "integer" else "FP64")
        inputs.append(
            {"name": f.name, "datatype": datatype, "shape": [len(records)], "data": columns[f.name]}
        )
    return {"id": "req-1", "inputs": inputs}


def pyfunc_scores(trained: dict, records: list[dict]) -> np.ndarray:
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(f"models:/{trained['model_name']}/{trained['version']}")
    return model.predict(pd.DataFrame(records))["churn_probability"].to_numpy()


def test_health_and_metadata(model_server) -> None:
    assert requests.get(f"{model_server.url}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert requests.get(f"{model_server.url}/v1/models/churn", timeout=5).json() == {
        "name": "churn",
        "ready": True,
    }
    meta = requests.get(f"{model_server.url}/v2/models/churn", timeout=5).json()
    assert [i["name"] for i in meta["inputs"]] == list(contract.FEATURE_NAMES)
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
        "churn_probability": "FP64",
        "churn": "BOOL",
    }


def test_v1_round_trip_matches_pyfunc(model_server, trained) -> None:
    records = sample_records(1500, seed=21)
    response = v1(model_server, {"instances": records})
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == len(records)
    assert {p["model_version"] for p in predictions} == {trained["version"]}
    got = np.array([p["churn_probability"] for p in predictions])
    expected = pyfunc_scores(trained, records)
    assert np.max(np.abs(got - expected)) <= 1e-6
    threshold = trained["threshold"]
    assert [p["churn"] for p in predictions] == [bool(p >= threshold) for p in got]


def test_v2_round_trip_json(model_server, trained) -> None:
    records = sample_records(50, seed=22)
    response = requests.post(
        f"{model_server.url}/v2/models/churn/infer", json=v2_body(records), timeout=30
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body["model_name"] == "churn"
        and body["model_version"] == trained["version"]
        and body["id"] == "req-1"
    )
    outputs = {o["name"]: o for o in body["outputs"]}
    assert (
        outputs["churn_probability"]["datatype"] == "FP64"
        and outputs["churn"]["datatype"] == "BOOL"
    )
    assert outputs["churn_probability"]["shape"] == [50]
    got = np.array(outputs["churn_probability"]["data"])
    assert np.max(np.abs(got - pyfunc_scores(trained, records))) <= 1e-6
    assert outputs["churn"]["data"] == [bool(p >= trained["threshold"]) for p in got]


def test_v2_requested_outputs_in_the_order_asked(model_server, trained) -> None:
    records = sample_records(30, seed=24)
    url = f"{model_server.url}/v2/models/churn/infer"
    body = v2_body(records)
    body["outputs"] = [{"name": "churn"}]
    only = requests.post(url, json=body, timeout=30).json()
    assert [o["name"] for o in only["outputs"]] == ["churn"]
    body["outputs"] = [{"name": "churn"}, {"name": "churn_probability"}]
    both = requests.post(url, json=body, timeout=30).json()
    assert [o["name"] for o in both["outputs"]] == ["churn", "churn_probability"]
    proba = np.array(both["outputs"][1]["data"])
    assert np.max(np.abs(proba - pyfunc_scores(trained, records))) <= 1e-6
    assert (
        only["outputs"][0]["data"]
        == both["outputs"][0]["data"]
        == [bool(p >= trained["threshold"]) for p in proba]
    )


@pytest.mark.parametrize("binary", [True, False])
def test_v2_with_tritonclient(model_server, trained, binary: bool) -> None:
    """A third-party V2 client, binary tensors and JSON; a missing FP64 value is NaN."""
    import tritonclient.http as httpclient

    records = sample_records(20, seed=23)
    columns = records_to_columns(records)
    client = httpclient.InferenceServerClient(model_server.url.removeprefix("http://"))
    inputs = []
    for f in contract.FEATURES:
        if f.is_numeric:
            arr = np.array([np.nan if v is None else v for v in columns[f.name]], dtype=np.float64)
            inp = httpclient.InferInput(f.name, [len(records)], "FP64")
        else:
            arr = np.array(columns[f.name], dtype=object)
            inp = httpclient.InferInput(f.name, [len(records)], "BYTES")
        inp.set_data_from_numpy(arr, binary_data=binary)
        inputs.append(inp)
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=binary)
        for n in ("churn_probability", "churn")
    ]
    result = client.infer("churn", inputs, outputs=outputs)
    proba = result.as_numpy("churn_probability")
    assert result.get_response()["model_version"] == trained["version"]
    assert proba.shape == (20,) and result.as_numpy("churn").dtype == bool
    assert np.max(np.abs(proba - pyfunc_scores(trained, records))) <= 1e-6


GOOD = sample_records(1, seed=30)[0]


def _with(**changes) -> dict:
    record = dict(GOOD)
    for key, value in changes.items():
        if value is _DROP:
            record.pop(key)
        else:
            record[key] = value
    return record


_DROP = object()
_misspelled = dict(GOOD)
_misspelled["tenur"] = _misspelled.pop("tenure")

BATTERY = [
    # (id, body, content type, status, field, row, message fragment)
    (
        "missing-field",
        {"instances": [GOOD, _with(Contract=_DROP)]},
        "application/json",
        422,
        "Contract",
        1,
        "missing field 'Contract'",
    ),
    (
        "misspelled-field",
        {"instances": [_misspelled]},
        "application/json",
        422,
        "tenure",
        0,
        "did you mean 'tenure'",
    ),
    (
        "extra-field",
        {"instances": [_with(favouriteColour="blue")]},
        "application/json",
        422,
        "_request",
        0,
        "unknown field 'favouriteColour'",
    ),
    (
        "string-in-numeric",
        {"instances": [_with(MonthlyCharges="seventy")]},
        "application/json",
        422,
        "MonthlyCharges",
        0,
        "must be a number, got string",
    ),
    (
        "wrong-type-category",
        {"instances": [_with(Contract=2)]},
        "application/json",
        422,
        "Contract",
        0,
        "must be a string, got number",
    ),
    (
        "bool-in-numeric",
        {"instances": [_with(SeniorCitizen=True)]},
        "application/json",
        422,
        "SeniorCitizen",
        0,
        "must be a number, got boolean",
    ),
    (
        "negative-tenure",
        {"instances": [GOOD, GOOD, _with(tenure=-3)]},
        "application/json",
        422,
        "tenure",
        2,
        "outside [0, 120]",
    ),
    (
        "fractional-tenure",
        {"instances": [_with(tenure=2.5)]},
        "application/json",
        422,
        "tenure",
        0,
        "must be an integer",
    ),
    (
        "null-required",
        {"instances": [_with(tenure=None)]},
        "application/json",
        422,
        "tenure",
        0,
        "must not be null",
    ),
    (
        "unknown-category",
        {"instances": [_with(Contract="Lifetime")]},
        "application/json",
        422,
        "Contract",
        0,
        "'Lifetime' is not an allowed value",
    ),
    (
        "record-not-object",
        {"instances": [GOOD, [1, 2]]},
        "application/json",
        422,
        "_request",
        1,
        "must be a JSON object",
    ),
    ("empty-batch", {"instances": []}, "application/json", 400, "_request", None, "empty batch"),
    (
        "instances-not-list",
        {"instances": GOOD},
        "application/json",
        400,
        "_request",
        None,
        "must be a list",
    ),
    ("no-instances", {"records": [GOOD]}, "application/json", 400, "_request", None, '"instances"'),
    (
        "oversized",
        {"instances": [GOOD] * 2001},
        "application/json",
        413,
        "_request",
        None,
        "exceeds the maximum",
    ),
    (
        "malformed-json",
        b'{"instances": [{"gender": "Female",',
        "application/json",
        400,
        "_request",
        None,
        "malformed JSON",
    ),
    (
        "not-json-at-all",
        b"gender=Female",
        "application/json",
        400,
        "_request",
        None,
        "malformed JSON",
    ),
    (
        "wrong-content-type",
        {"instances": [GOOD]},
        "text/csv",
        415,
        "_request",
        None,
        "Content-Type",
    ),
    (
        "form-content-type",
        {"instances": [GOOD]},
        "application/x-www-form-urlencoded",
        415,
        "_request",
        None,
        "Content-Type",
    ),
]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "field", "row", "fragment"),
    [b[1:] for b in BATTERY],
    ids=[b[0] for b in BATTERY],
)
def test_v1_bad_input(model_server, body, ctype, status, field, row, fragment) -> None:
    response = v1(model_server, body, headers={"Content-Type": ctype})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["field"] == field and error["row"] == row
    assert fragment in error["error"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["MonthlyCharges", "TotalCharges"])
def test_v1_non_finite_numbers_name_the_field(model_server, literal: str, field: str) -> None:
    body = json.dumps({"instances": [GOOD, _with(**{field: 0.125})]}).replace("0.125", literal)
    response = v1(model_server, body)
    assert response.status_code == 422
    assert response.json()["field"] == field and response.json()["row"] == 1
    assert "finite" in response.json()["error"]


V2_BAD = [
    ("missing-input", lambda b: b["inputs"].pop(0), 422, "gender", "missing input 'gender'"),
    (
        "misspelled-input",
        lambda b: b["inputs"][4].update(name="Tenure"),
        422,
        "tenure",
        "did you mean 'tenure'",
    ),
    (
        "bytes-for-number",
        lambda b: b["inputs"][4].update(datatype="BYTES"),
        422,
        "tenure",
        "INT64 or FP64",
    ),
    (
        "number-for-category",
        lambda b: b["inputs"][0].update(datatype="INT64"),
        422,
        "gender",
        "BYTES",
    ),
    ("shape-mismatch", lambda b: b["inputs"][3].update(shape=[3]), 400, "Dependents", "disagrees"),
    (
        "data-length",
        lambda b: b["inputs"][0].update(data=["Male"]),
        400,
        "gender",
        "values for shape",
    ),
    (
        "string-in-numeric",
        lambda b: b["inputs"][18].update(data=["x", 1.0]),
        422,
        "TotalCharges",
        "must be a number",
    ),
    ("no-inputs", lambda b: b.pop("inputs"), 400, "_request", '"inputs"'),
]


@pytest.mark.parametrize(
    ("mutate", "status", "field", "fragment"), [b[1:] for b in V2_BAD], ids=[b[0] for b in V2_BAD]
)
def test_v2_bad_input(model_server, mutate, status, field, fragment) -> None:
    body = v2_body(sample_records(2, seed=31))
    mutate(body)
    response = requests.post(f"{model_server.url}/v2/models/churn/infer", json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field and fragment in response.json()["error"]


def test_v2_malformed_and_wrong_content_type(model_server) -> None:
    url = f"{model_server.url}/v2/models/churn/infer"
    r = requests.post(url, data=b'{"inputs": [', headers=JSON, timeout=10)
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    body = json.dumps(v2_body([GOOD])).encode().replace(b'"data": ["', b'"data": ["\xf4', 1)
    r = requests.post(url, data=body, headers=JSON, timeout=10)  # invalid UTF-8
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    body = json.dumps({"instances": [GOOD]}).encode().replace(b'"gender": "', b'"gender": "\xf4')
    r = requests.post(f"{model_server.url}/v1/models/churn:predict", data=body, headers=JSON)
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"]
    r = requests.post(url, data=b"a,b\n1,2", headers={"Content-Type": "text/csv"}, timeout=10)
    assert r.status_code == 415 and "Content-Type" in r.json()["error"]


def test_unknown_model_is_404_and_server_survives(model_server) -> None:
    r = v1(model_server, {"instances": [GOOD]}, name="nope")
    assert r.status_code == 404
    assert v1(model_server, {"instances": [GOOD]}).status_code == 200


@pytest.fixture(scope="module")
def scoring_server(trained, mlflow_server, tmp_path_factory):
    """A second server, unknown categories scored as unknown, for exact metric counts."""
    from churnops.serving.process import start_model_server

    log = tmp_path_factory.mktemp("serve-score") / "server.log"
    with start_model_server(
        f"models:/{trained['model_name']}/{trained['version']}",
        mlflow_server,
        log_path=log,
        unknown_categories="score",
    ) as proc:
        yield proc


def test_metrics_after_known_traffic(scoring_server, trained) -> None:
    version = trained["version"]
    good = sample_records(3, seed=40)
    for record in good[:2]:
        assert v1(scoring_server, {"instances": [record]}).status_code == 200
    unknown = dict(good[2], PaymentMethod="Crypto")
    assert (
        requests.post(
            f"{scoring_server.url}/v2/models/churn/infer", json=v2_body([unknown]), timeout=10
        ).status_code
        == 200
    )
    assert v1(scoring_server, {"instances": [_with(tenure=-1)]}).status_code == 422
    window = sample_records(200, seed=41, drift=1.0)
    assert v1(scoring_server, {"instances": window}).status_code == 200

    text = requests.get(f"{scoring_server.url}/metrics", timeout=10).text
    labels = {"model_name": "churn", "model_version": version}
    assert metric_value(text, "churnops_requests_total", code="200", protocol="v1", **labels) == 3
    assert metric_value(text, "churnops_requests_total", code="200", protocol="v2", **labels) == 1
    assert metric_value(text, "churnops_requests_total", code="422", protocol="v1", **labels) == 1
    assert (
        metric_value(text, "churnops_request_duration_seconds_count", protocol="v1", **labels) == 4
    )
    assert metric_value(text, "churnops_rows_scored_total", **labels) == 203
    assert metric_value(text, "churnops_churn_probability_count", **labels) == 203
    assert metric_value(text, "churnops_churn_probability_bucket", le="+Inf", **labels) == 203
    assert (
        metric_value(text, "churnops_validation_errors_total", model_name="churn", field="tenure")
        == 1
    )
    assert (
        metric_value(
            text, "churnops_unknown_categories_total", model_name="churn", field="PaymentMethod"
        )
        == 1
    )
    assert metric_value(text, "churnops_model_ready", model_name="churn") == 1
    assert metric_value(text, "churnops_model_info", run_id=trained["run_id"], **labels) == 1
    predicted = metric_value(text, "churnops_predicted_churn_total", **labels)
    assert 0 < predicted <= 203
    # a drifted window (shorter tenure, more month-to-month) shows in the PSI gauges
    assert metric_value(text, "churnops_feature_psi", feature="Contract", **labels) > 0.05
    assert metric_value(text, "churnops_prediction_psi", **labels) > 0
    # KServe's own histograms share the exposition
    assert metric_value(text, "request_predict_seconds_count", model_name="churn") == 4
