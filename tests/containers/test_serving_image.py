"""The model-server image run as its pod runs it: read-only root, tmpfs /tmp, no
capabilities, no-new-privileges, its own non-root user; a model directory mounted
read-only at /mnt/models, or ``models:/churn@champion`` from an MLflow server on the host."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
import requests
from _docker import docker, run_detached

from churnops import processes
from churnops.data import contract
from churnops.data.generate import GeneratorConfig, generate
from churnops.testing import records_to_columns

pytestmark = [pytest.mark.containers, pytest.mark.slow]


def records(n: int, seed: int = 5) -> list[dict]:
    frame = generate(GeneratorConfig(rows=n, seed=seed)).drop(columns=["Churn"])
    out = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in out]


def v2_body(rows: list[dict]) -> dict:
    columns = records_to_columns(rows)
    inputs = []
    for f in contract.FEATURES:
        datatype = "BYTES" if not f.is_numeric else ("INT64" if f.kind == "integer" else "FP64")
        inputs.append(
            {"name": f.name, "datatype": datatype, "shape": [len(rows)], "data": columns[f.name]}
        )
    return {"inputs": inputs}


def pyfunc_scores(champion: dict, rows: list[dict]) -> np.ndarray:
    import mlflow.pyfunc
    import pandas as pd

    from churnops import tracking

    tracking.connect(champion["tracking_uri"])
    model = mlflow.pyfunc.load_model(f"models:/churn/{champion['version']}")
    # pyfunc answers like the server: a frame with churn_probability, churn, model_version.
    return model.predict(pd.DataFrame(rows))["churn_probability"].to_numpy()


def start_server(images: dict, *args: str, options: tuple[str, ...] = ()):
    port = processes.free_port()
    container = run_detached(images["serving"], "--http-port", str(port), *args, options=options)
    url = f"http://127.0.0.1:{port}"
    seconds = container.wait_http(f"{url}/v2/health/ready", timeout=180)
    return container, url, seconds


@pytest.fixture(scope="module")
def dir_server(images, model_dir):
    """The server on a read-only model directory at /mnt/models, no tracking server at all."""
    container, url, seconds = start_server(
        images,
        "--model-uri", "/mnt/models",
        options=("-v", f"{model_dir}:/mnt/models:ro", "-e", "MLFLOW_TRACKING_URI="),
    )  # fmt: skip
    yield {"container": container, "url": url, "ready_seconds": seconds}
    container.remove()


@pytest.fixture(scope="module")
def registry_server(images, champion, container_mlflow):
    """The server on models:/churn@champion, resolved through the tracking server on the
    host's loopback (the components image's, on PostgreSQL)."""
    container, url, _ = start_server(
        images, options=("-e", f"MLFLOW_TRACKING_URI={container_mlflow['url']}")
    )  # the image's default CHURNOPS_MODEL_URI is models:/churn@champion
    yield {"container": container, "url": url}
    container.remove()


def test_runs_as_a_pod_runs_it(dir_server, images) -> None:
    state = dir_server["container"].inspect()
    host = state["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert state["Config"]["User"] == "10001:10001"  # the image's own user, not one we forced
    cid = dir_server["container"].cid
    assert docker("exec", cid, "id", "-u").stdout.strip() == "10001"
    probe = docker("exec", cid, "sh", "-c", "touch /opt/venv/x || touch /mnt/models/x", check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr
    # What serving does not need is not in the image.
    missing = docker(
        "exec", cid, "python", "-c",
        "import importlib.util as u; print([m for m in ('kfp', 'matplotlib', 'pyarrow', 'flask', 'sqlalchemy') if u.find_spec(m)])",
    )  # fmt: skip
    assert missing.stdout.strip() == "[]"


def test_model_dir_v1_v2_and_metrics(dir_server, champion) -> None:
    url = dir_server["url"]
    rows = records(40)
    v1 = requests.post(f"{url}/v1/models/churn:predict", json={"instances": rows}, timeout=30)
    assert v1.status_code == 200, v1.text
    got = np.array([p["churn_probability"] for p in v1.json()["predictions"]])
    assert np.max(np.abs(got - pyfunc_scores(champion, rows))) <= 1e-6
    assert [p["churn"] for p in v1.json()["predictions"]] == [
        bool(p >= champion["threshold"]) for p in got
    ]

    v2 = requests.post(f"{url}/v2/models/churn/infer", json=v2_body(rows), timeout=30)
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert (
        outputs["churn_probability"]["datatype"] == "FP64"
        and outputs["churn"]["datatype"] == "BOOL"
    )
    assert np.max(np.abs(np.array(outputs["churn_probability"]["data"]) - got)) <= 1e-6

    bad = requests.post(
        f"{url}/v1/models/churn:predict",
        json={"instances": [{**rows[0], "tenure": "long"}]},
        timeout=30,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "tenure"

    metrics = requests.get(f"{url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "churnops_requests_total{" in metrics.text and 'code="422"' in metrics.text
    assert "request_predict_seconds" in metrics.text  # KServe's own histograms


def test_champion_from_the_registry(registry_server, champion) -> None:
    url = registry_server["url"]
    rows = records(10, seed=9)
    response = requests.post(f"{url}/v1/models/churn:predict", json={"instances": rows}, timeout=30)
    assert response.status_code == 200, response.text
    assert {p["model_version"] for p in response.json()["predictions"]} == {champion["version"]}
    got = np.array([p["churn_probability"] for p in response.json()["predictions"]])
    assert np.max(np.abs(got - pyfunc_scores(champion, rows))) <= 1e-6
    v2 = requests.post(f"{url}/v2/models/churn/infer", json=v2_body(rows), timeout=30)
    assert v2.status_code == 200 and v2.json()["model_version"] == champion["version"]


def test_sigterm_drains_in_flight_request_and_exits_zero(images, model_dir) -> None:
    container, url, _ = start_server(
        images, "--model-uri", "/mnt/models", options=("-v", f"{model_dir}:/mnt/models:ro")
    )
    try:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"instances": records(3)}).encode()
        head = (
            f"POST /v1/models/churn:predict HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        # A request in flight when SIGTERM arrives: headers and half the body sent.
        sock = socket.create_connection((host, int(port)), timeout=60)
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)
        grace = 30
        exit_code: list[int] = []
        stopper = threading.Thread(target=lambda: exit_code.append(container.stop(grace=grace)))
        stopper.start()
        time.sleep(1.5)  # the server has had SIGTERM and is draining
        assert stopper.is_alive(), "the server exited with a request in flight"
        sock.sendall(body[len(body) // 2 :])
        response = b""
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        sock.close()
        assert response.startswith(b"HTTP/1.1 200"), response[:300]
        assert b'"churn_probability"' in response
        stopper.join(grace + 60)
        assert exit_code == [0], container.logs()  # not 137: it exited within the grace period
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/v2/health/live", timeout=2)
    finally:
        container.remove()
