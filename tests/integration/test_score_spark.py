"""``churnops score --engine spark`` as a user runs it: a real local Spark session
(pyspark from the project's install, the machine's OpenJDK), the registered model through
``mlflow.pyfunc.spark_udf``; its output equals ``--engine local``'s row for row."""

from __future__ import annotations

import glob
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _consumers_support import export_bytes, save_model_dir
from test_score import messy_export, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Small partitions: several per file, so row numbers cross partition boundaries.
SPARK = ["--engine", "spark", "--spark-master", "local[2]",
         "--spark-conf", "spark.sql.files.maxPartitionBytes=150000"]  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("spark") / "model", candidate="xgboost")


def read_scores(path: Path) -> pd.DataFrame:
    """A single file (local engine) or a Spark dataset directory of part files."""
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    parts = sorted(glob.glob(str(path / "part-*"))) if path.is_dir() else [str(path)]
    return pd.concat([pd.read_csv(p, dtype={"customerID": str}) for p in parts], ignore_index=True)


def assert_same_scores(spark: pd.DataFrame, local: pd.DataFrame) -> None:
    assert list(spark.columns) == list(local.columns)
    assert spark["customerID"].tolist() == local["customerID"].tolist()
    diff = np.abs(spark["churn_probability"].to_numpy() - local["churn_probability"].to_numpy())
    assert diff.max() <= 1e-6
    assert (spark["churn"].to_numpy() == local["churn"].to_numpy()).all()
    assert spark["model_version"].tolist() == local["model_version"].tolist()


def test_spark_engine_equals_local_engine_csv(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    text = messy_export(data, rows=3000)
    code, local, stderr = run("score", "--model-uri", str(model_dir), "--data", str(data),
                              "--out", str(tmp_path / "local.parquet"))  # fmt: skip
    assert code == 0, stderr
    # 3 rejects of 3000 is above 0.05%: the job fails, after writing scores and rejects
    out = tmp_path / "spark.parquet"
    code, result, stderr = run("score", "--model-uri", str(model_dir), "--data", str(data),
                               "--out", str(out), "--max-reject-rate", "0.0005", *SPARK)  # fmt: skip
    assert code == 2, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: 3 of 3,000 rows rejected")
    assert "Traceback" not in stderr
    assert result["engine"] == "spark" and result["spark_master"] == "local[2]"
    assert (result["rows"], result["scored"], result["rejected"]) == (3000, 2997, 3)
    assert result["problems"] == local["problems"]
    spark_scores = read_scores(out)
    assert_same_scores(spark_scores, read_scores(tmp_path / "local.parquet"))
    assert str(spark_scores["scored_at"].dtype) == "datetime64[ms, UTC]"
    spark_rejects = pd.read_csv(result["rejects"], dtype=str, keep_default_na=False)
    local_rejects = pd.read_csv(local["rejects"], dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(spark_rejects, local_rejects)
    assert spark_rejects[["row", "field"]].values.tolist() == [
        ["10", "tenure"], ["20", "MonthlyCharges"], ["30", "Contract"],
    ]  # fmt: skip
    assert spark_rejects.loc[0, "customerID"] == text.loc[10, "customerID"]


def test_spark_engine_equals_local_engine_parquet(model_dir: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(io.BytesIO(export_bytes(2000, seed=12)))
    frame["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    frame.loc[5, "tenure"] = 500
    frame.loc[1500, "InternetService"] = "Cable"
    data = tmp_path / "customers.parquet"
    frame.to_parquet(data, row_group_size=300)
    code, local, stderr = run("score", "--model-uri", str(model_dir), "--data", str(data),
                              "--out", str(tmp_path / "local.csv"))  # fmt: skip
    assert code == 0, stderr
    out = tmp_path / "spark.csv"
    code, result, stderr = run("score", "--model-uri", str(model_dir), "--data", str(data),
                               "--out", str(out), *SPARK)  # fmt: skip
    assert code == 0, stderr
    assert (result["rows"], result["scored"], result["rejected"]) == (2000, 1998, 2)
    assert out.is_dir()  # Spark's writers: a dataset directory of part files
    spark_scores = read_scores(out)
    local_scores = read_scores(tmp_path / "local.csv")
    assert_same_scores(spark_scores, local_scores)
    # one UTC timestamp per run, the one in the JSON line (the runs differ by seconds)
    stamps = pd.to_datetime(spark_scores["scored_at"], utc=True)
    assert (stamps == pd.Timestamp(result["scored_at"])).all()
    spark_rejects = pd.read_csv(result["rejects"], dtype=str, keep_default_na=False)
    local_rejects = pd.read_csv(local["rejects"], dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(spark_rejects, local_rejects)
    assert spark_rejects["row"].tolist() == ["5", "1500"]


def _run_env(env: dict[str, str], *args: str, prelude: str = "") -> tuple[int, str, str]:
    code = f"{prelude}import sys; from churnops.cli import main; sys.argv = ['churnops', *sys.argv[1:]]; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=600
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_missing_java_or_pyspark_is_one_line(model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "customers.csv"
    messy_export(data, rows=50)
    args = ["score", "--model-uri", str(model_dir), "--data", str(data),
            "--out", str(tmp_path / "o.parquet"), "--engine", "spark"]  # fmt: skip
    bindir = str(Path(sys.executable).parent)
    no_java = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    no_java["PATH"] = bindir  # the venv only: no java on PATH
    code, _, stderr = _run_env(no_java, *args)
    assert code != 0 and "Traceback" not in stderr
    assert "Java 17" in stderr.strip().splitlines()[-1] and "openjdk" in stderr
    # pyspark not importable (as in an install without the [spark] extra)
    code, _, stderr = _run_env(
        dict(os.environ), *args, prelude="import sys; sys.modules['pyspark'] = None; "
    )
    assert code != 0 and "Traceback" not in stderr
    assert "churnops[spark]" in stderr.strip().splitlines()[-1]
