"""``churnops score`` as a user runs it: the real command on exports laid out like the
Telco CSV, outputs and rejects read back, scores equal to the pyfunc's, bounded memory."""

from __future__ import annotations

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _consumers_support import export_bytes, save_model_dir

pytestmark = pytest.mark.integration

CHURNOPS = [sys.executable, "-m", "churnops.cli"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("score") / "model", candidate="xgboost")


def run(*args: str) -> tuple[int, dict | None, str]:
    proc = subprocess.run([*CHURNOPS, *args], capture_output=True, text=True, timeout=1200)
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, json.loads(lines[-1]) if lines else None, proc.stderr


def messy_export(path: Path, rows: int = 3000) -> pd.DataFrame:
    """An export with a few invalid rows; returns it as text (what was written)."""
    import io

    text = pd.read_csv(io.BytesIO(export_bytes(rows, seed=8)), dtype=str, keep_default_na=False)
    text.loc[10, "tenure"] = "-3"
    text.loc[20, "MonthlyCharges"] = "seventy"
    text.loc[30, "Contract"] = "Three year"
    path.write_bytes(text.to_csv(index=False, lineterminator="\r\n").encode())
    return text


def test_score_writes_scores_and_rejects_like_pyfunc(model_dir: Path, tmp_path: Path) -> None:
    import mlflow.pyfunc

    data = tmp_path / "customers.csv"
    text = messy_export(data)
    out = tmp_path / "out" / "scores.parquet"
    code, result, stderr = run(
        "score", "--model-uri", str(model_dir), "--data", str(data), "--out", str(out)
    )
    assert code == 0, stderr
    assert "score:" in stderr  # progress on stderr
    assert result["rows"] == 3000 and result["scored"] == 2997 and result["rejected"] == 3
    scores = pd.read_parquet(out)
    assert list(scores.columns) == [
        "customerID",
        "churn_probability",
        "churn",
        "model_version",
        "scored_at",
    ]
    rejects = pd.read_csv(result["rejects"])
    assert rejects[["row", "field"]].values.tolist() == [
        [10, "tenure"],
        [20, "MonthlyCharges"],
        [30, "Contract"],
    ]
    assert rejects.loc[0, "customerID"] == text.loc[10, "customerID"]
    assert "outside the allowed range" in rejects.loc[0, "problem"]
    valid = text.drop(index=[10, 20, 30])
    assert scores["customerID"].tolist() == valid["customerID"].tolist()
    # the same records through MLflow's pyfunc, as a user reads the file
    expected = mlflow.pyfunc.load_model(str(model_dir)).predict(
        pd.read_csv(data).drop(index=[10, 20, 30])
    )
    diff = np.abs(scores["churn_probability"].to_numpy() - expected["churn_probability"].to_numpy())
    assert diff.max() <= 1e-6
    assert (scores["churn"].to_numpy() == expected["churn"].to_numpy()).all()
    assert (scores["model_version"] == "local").all()


def test_reject_rate_above_threshold_fails_the_job(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    messy_export(data, rows=200)
    out = tmp_path / "scores.csv"
    code, result, stderr = run(
        "score", "--model-uri", str(model_dir), "--data", str(data), "--out", str(out),
        "--max-reject-rate", "0.01",
    )  # fmt: skip
    assert code == 2
    assert stderr.strip().splitlines()[-1].startswith("error: 3 of 200 rows rejected")
    assert "Traceback" not in stderr
    assert result["rejected"] == 3 and result["reject_rate"] == 0.015
    assert len(pd.read_csv(out)) == 197  # written either way


def test_missing_column_and_missing_file_are_one_line(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    messy_export(data, rows=50)
    pd.read_csv(data).drop(columns="tenure").to_csv(data, index=False)
    code, _, stderr = run("score", "--model-uri", str(model_dir), "--data", str(data),
                          "--out", str(tmp_path / "o.csv"))  # fmt: skip
    assert code == 2 and "tenure" in stderr and "Traceback" not in stderr
    code, _, stderr = run("score", "--model-uri", str(model_dir), "--data",
                          str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv"))  # fmt: skip
    assert code == 3 and "nope.csv" in stderr and "Traceback" not in stderr


def test_parquet_in_over_http_csv_out(model_dir: Path, tmp_path: Path) -> None:
    import io

    frame = pd.read_csv(io.BytesIO(export_bytes(1500, seed=9)))
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    served = tmp_path / "served"
    served.mkdir()
    frame.to_parquet(served / "customers.parquet")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/customers.parquet"
        out = tmp_path / "scores.csv"
        code, result, stderr = run(
            "score", "--model-uri", str(model_dir), "--data", url, "--out", f"file://{out}"
        )
    finally:
        httpd.shutdown()
    assert code == 0, stderr
    assert result["scored"] == 1500
    scores = pd.read_csv(out)
    assert scores["customerID"].tolist() == frame["customerID"].tolist()
    assert scores["churn_probability"].between(0, 1).all()


def peak_rss_mb(*args: str) -> tuple[float, dict]:
    """Peak RSS of one ``churnops`` run, measured by a parent that runs only it."""
    probe = (
        "import json, resource, subprocess, sys;"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr[-2000:],"
        " 'rss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, *CHURNOPS, *args],
        capture_output=True,
        text=True,
        timeout=3000,
    )
    report = json.loads(proc.stdout)
    assert report["rc"] == 0, report["err"]
    return report["rss_kb"] / 1024, json.loads(report["out"].strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_millions_of_rows_in_bounded_memory(model_dir: Path, tmp_path: Path) -> None:
    """3M rows, then 6M (a generated million, repeated): the peak stays where it was.

    Up to about a million rows the peak still rises with the file, and at a million it
    is not yet at its plateau (Arrow's CSV reader reads blocks ahead until its queue is
    full; on 2 cores, 1M rows peaked 10-16 % below 3M, while 3M and 6M are within 3 %,
    idle or loaded), so the comparison starts at 3M."""
    one = tmp_path / "customers-1000000.csv"
    code, _, stderr = run("data", "generate", "--rows", "1000000", "--seed", "3",
                          "--out", str(one))  # fmt: skip
    assert code == 0, stderr
    with one.open("rb") as src:
        header = src.readline()
        body = src.read()
    one.unlink()
    sizes = {}
    for copies in (3, 6):
        data = tmp_path / f"customers-{copies}000000.csv"
        with data.open("wb") as out:
            out.write(header)
            for _ in range(copies):
                out.write(body)
        rss, result = peak_rss_mb(
            "score", "--model-uri", str(model_dir), "--data", str(data),
            "--out", str(tmp_path / f"scores-{copies}.parquet"),
        )  # fmt: skip
        data.unlink()
        assert result["scored"] == copies * 1_000_000
        sizes[result["scored"]] = rss
    # twice the rows, (about) the same peak: memory holds batches, not the table
    assert sizes[6_000_000] <= sizes[3_000_000] * 1.1 + 30, sizes


def test_a_linear_model_scores_from_its_saved_scorer_like_pyfunc(tmp_path: Path) -> None:
    import shutil

    import mlflow.pyfunc

    from churnops.serving.scoring import COMPILED_FILE

    model = save_model_dir(tmp_path / "model", candidate="logreg")
    data = tmp_path / "customers.csv"
    data.write_bytes(export_bytes(2000, seed=9))
    code, result, stderr = run("score", "--model-uri", str(model), "--data", str(data),
                               "--out", str(tmp_path / "a.parquet"))  # fmt: skip
    assert code == 0, stderr
    assert result["scorer"] == "logistic-regression" and result["scorer_precompiled"] is True
    scores = pd.read_parquet(tmp_path / "a.parquet")
    expected = mlflow.pyfunc.load_model(str(model)).predict(pd.read_csv(data))
    diff = np.abs(scores["churn_probability"].to_numpy() - expected["churn_probability"].to_numpy())
    assert diff.max() <= 1e-6
    assert (scores["churn"].to_numpy() == expected["churn"].to_numpy()).all()
    # Without the saved scorer (a model logged before it existed), the estimator is loaded.
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / COMPILED_FILE).unlink()
    code, result, stderr = run("score", "--model-uri", str(bare), "--data", str(data),
                               "--out", str(tmp_path / "b.parquet"))  # fmt: skip
    assert code == 0, stderr
    assert result["scorer_precompiled"] is False
    again = pd.read_parquet(tmp_path / "b.parquet")
    assert np.abs(again["churn_probability"] - scores["churn_probability"]).max() <= 1e-12
