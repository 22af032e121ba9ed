"""The registered model as MLflow consumers meet it: ``mlflow.pyfunc`` on a plain
``pd.read_csv`` of an export, ``mlflow.models.predict``, ``mlflow models serve`` and
MLServer (``mlserver-mlflow``) as real processes, all answering like ``churnops serve``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from _consumers_support import export_frame, save_model_dir

from churnops import processes
from churnops.data import contract

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MLSERVER = ROOT / ".tools" / "mlserver-venv" / "bin" / "mlserver"


@pytest.fixture(scope="module")
def export() -> pd.DataFrame:
    raw = export_frame()
    assert raw["tenure"].dtype == np.int64 and raw["TotalCharges"].dtype == object
    assert (raw["TotalCharges"] == " ").any()
    return raw


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("consumers") / "model")


@pytest.fixture(scope="module")
def model_uri(model_dir: Path) -> str:
    return str(model_dir)


@pytest.fixture(scope="module")
def model_server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """``churnops serve`` on the same model directory."""
    from churnops.serving.process import start_model_server

    log = tmp_path_factory.mktemp("consumers-serve") / "server.log"
    with start_model_server(str(model_dir), None, log_path=log, max_batch_rows=5000) as proc:
        yield proc


def records(frame: pd.DataFrame) -> list[dict]:
    """JSON records as a client sends an export's rows (JSON integers, text blanks)."""
    return json.loads(frame.to_json(orient="records"))


def server_answer(model_server, frame: pd.DataFrame) -> pd.DataFrame:
    rows = [{k: v for k, v in r.items() if k != "Churn"} for r in records(frame)]
    response = requests.post(
        f"{model_server.url}/v1/models/churn:predict", json={"instances": rows}, timeout=60
    )
    assert response.status_code == 200, response.text
    return pd.DataFrame(response.json()["predictions"])


def assert_same_answer(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns)[:3] == ["churn_probability", "churn", "model_version"]
    assert len(got) == len(expected)
    diff = np.abs(got["churn_probability"].to_numpy() - expected["churn_probability"].to_numpy())
    assert diff.max() <= 1e-6
    assert (got["churn"].astype(bool).to_numpy() == expected["churn"].astype(bool).to_numpy()).all()
    assert (got["model_version"].astype(str) == expected["model_version"].astype(str)).all()


def test_signature_follows_the_contract(model_uri: str) -> None:
    import mlflow.pyfunc

    schema = mlflow.pyfunc.load_model(model_uri).metadata.get_input_schema()
    types = {c.name: str(c.type) for c in schema.inputs}
    required = {c.name: c.required for c in schema.inputs}
    assert types["tenure"].endswith("long") and types["SeniorCitizen"].endswith("long")
    assert types["MonthlyCharges"].endswith("double") and "any" in types["TotalCharges"].lower()
    assert required["customerID"] is False


def test_pyfunc_on_plain_read_csv_answers_like_the_server(
    model_uri: str, export: pd.DataFrame, model_server
) -> None:
    import mlflow.pyfunc

    got = mlflow.pyfunc.load_model(model_uri).predict(export)
    assert got["model_version"].eq("local").all()
    assert_same_answer(got, server_answer(model_server, export))


def test_pyfunc_names_field_and_row_of_a_bad_record(model_uri: str, export: pd.DataFrame) -> None:
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    bad = export.head(5).copy()
    bad["TotalCharges"] = bad["TotalCharges"].astype(object)
    bad.loc[3, "TotalCharges"] = "n/a"
    with pytest.raises(MlflowException, match=r"row 3: TotalCharges: not a number"):
        mlflow.pyfunc.load_model(model_uri).predict(bad)


def test_sklearn_flavor_stays_loadable(model_uri: str, export: pd.DataFrame) -> None:
    import mlflow.pyfunc
    import mlflow.sklearn

    from churnops.data.coerce import coerce_frame

    estimator = mlflow.sklearn.load_model(model_uri)
    proba = estimator.predict_proba(coerce_frame(export).model_frame())[:, 1]
    got = mlflow.pyfunc.load_model(model_uri).predict(export)["churn_probability"]
    assert np.abs(proba - got.to_numpy()).max() <= 1e-12


def test_mlflow_models_predict(
    model_dir: Path, export: pd.DataFrame, model_server, tmp_path
) -> None:
    import mlflow.models

    out = tmp_path / "predictions.json"
    mlflow.models.predict(
        model_uri=str(model_dir),
        input_data=export.head(50),
        content_type="json",
        output_path=str(out),
        env_manager="local",
    )
    got = pd.DataFrame(json.loads(out.read_text())["predictions"])
    assert_same_answer(got, server_answer(model_server, export.head(50)))


def test_mlflow_models_serve_takes_json_integers_and_blanks(
    model_uri: str, export: pd.DataFrame, model_server, tmp_path
) -> None:
    port = processes.free_port()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    argv = [mlflow_bin, "models", "serve", "-m", model_uri, "--env-manager", "local"]
    argv += ["--host", "127.0.0.1", "-p", str(port), "-w", "1"]
    with processes.start(
        "mlflow-models-serve",
        argv,
        url=f"http://127.0.0.1:{port}",
        health="/ping",
        log_path=tmp_path / "serve.log",
        timeout=300,
        # it execs uvicorn from PATH: this venv's
        env={"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
    ) as proc:
        rows = records(export.head(200))
        assert isinstance(rows[0]["tenure"], int) and any(r["TotalCharges"] == " " for r in rows)
        rows[1]["TotalCharges"] = "518.10"
        response = requests.post(
            f"{proc.url}/invocations", json={"dataframe_records": rows}, timeout=60
        )
        assert response.status_code == 200, response.text
        got = pd.DataFrame(response.json()["predictions"])
        frame = export.head(200).copy()
        frame["TotalCharges"] = frame["TotalCharges"].astype(object)
        frame.loc[1, "TotalCharges"] = "518.10"
        assert_same_answer(got, server_answer(model_server, frame))
        rows[2]["tenure"] = -4
        bad = requests.post(f"{proc.url}/invocations", json={"dataframe_records": rows}, timeout=60)
        assert bad.status_code == 400 and "row 2: tenure" in bad.text


@pytest.mark.skipif(
    not MLSERVER.exists() and os.environ.get("CI") != "true",
    reason="MLServer venv not built (make mlserver-venv)",
)
def test_mlserver_mlflow_runtime(
    model_dir: Path, export: pd.DataFrame, model_server, tmp_path
) -> None:
    repo = tmp_path / "mlserver"
    (repo / "churn").mkdir(parents=True)
    port = processes.free_port()
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": processes.free_port(),
        "metrics_port": processes.free_port(),
        "parallel_workers": 0,
        "environments_dir": str(repo / ".envs"),
        "metrics_dir": str(repo / ".metrics"),
    }
    model_settings = {
        "name": "churn",
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model_dir)},
    }
    (repo / "settings.json").write_text(json.dumps(settings))
    (repo / "churn" / "model-settings.json").write_text(json.dumps(model_settings))
    with processes.start(
        "mlserver",
        [str(MLSERVER), "start", str(repo)],
        url=f"http://127.0.0.1:{port}",
        health="/v2/models/churn/ready",
        log_path=tmp_path / "mlserver.log",
        timeout=300,
        env={"PATH": os.pathsep.join([str(MLSERVER.parent), os.environ.get("PATH", "")])},
    ) as proc:
        frame = export.head(100)
        rows = [{k: v for k, v in r.items() if k != "Churn"} for r in records(frame)]
        response = requests.post(
            f"{proc.url}/invocations", json={"dataframe_records": rows}, timeout=60
        )
        assert response.status_code == 200, response.text
        body = response.json()
        got = pd.DataFrame(body["predictions"] if isinstance(body, dict) else body)
        expected = server_answer(model_server, frame)
        assert_same_answer(got, expected)
        inputs = [
            {
                "name": f.name,
                "datatype": {"integer": "INT64", "number": "FP64"}.get(f.kind, "BYTES"),
                "shape": [len(frame)],
                "data": [
                    None if (f.name == "TotalCharges" and v == " ") else v
                    for v in (
                        float(x) if f.kind == "number" and x != " " else x for x in frame[f.name]
                    )
                ]
                if f.is_numeric
                else frame[f.name].tolist(),
                **({"parameters": {"content_type": "np"}} if f.is_numeric else {}),
            }
            for f in contract.FEATURES
        ]
        v2 = requests.post(f"{proc.url}/v2/models/churn/infer", json={"inputs": inputs}, timeout=60)
        assert v2.status_code == 200, v2.text
        outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
        assert (
            np.abs(
                np.asarray(outputs["churn_probability"]) - expected["churn_probability"].to_numpy()
            ).max()
            <= 1e-6
        )
