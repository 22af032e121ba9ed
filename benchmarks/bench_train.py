"""make bench-train: training at scale, and where its time goes.

All in one run on this machine:
  1. `churnops train` on 1M synthetic rows: wall time and peak RSS (real CLI, real MLflow);
  2. the final XGBoost fit inside churnops (sklearn wrapper, as the pipeline runs it) vs
     plain `xgboost.train` with the same parameters on the same encoded matrix;
  3. ingest + validate + encode throughput for CSV and Parquet;
  4. the test-split metrics on synthetic data.
Results: benchmarks/results/train.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from churnops import processes
from churnops.data import load
from churnops.data.generate import GeneratorConfig, write
from churnops.model.candidates import spec
from churnops.model.train import split, xy
from churnops.progress import log

RESULTS = Path(__file__).parent / "results"


def ingest_throughput(path: Path) -> dict:
    start = time.perf_counter()
    frame, report = load(path)
    loaded = time.perf_counter() - start
    x, _ = xy(frame)
    start = time.perf_counter()
    spec("xgboost").build(0, 1, len(x)).named_steps["pre"].fit_transform(x)
    encoded = time.perf_counter() - start
    return {
        "rows": report.rows,
        "ingest_validate_seconds": loaded,
        "encode_seconds": encoded,
        "rows_per_second": report.rows / (loaded + encoded),
    }


def xgboost_fit(frame, params: dict, n_jobs: int) -> dict:
    import xgboost

    parts = split(frame, seed=42)
    x, y = xy(parts.train)
    pipeline = spec("xgboost").build(42, n_jobs, len(y)).set_params(**params)
    encoded = pipeline.named_steps["pre"].fit_transform(x)
    clf = pipeline.named_steps["clf"]
    start = time.perf_counter()
    clf.fit(encoded, y)
    churnops_seconds = time.perf_counter() - start
    native = clf.get_xgb_params()
    rounds = native.pop("n_estimators", None) or clf.n_estimators
    native = {k: v for k, v in native.items() if v is not None}
    native.update({"objective": "binary:logistic", "nthread": n_jobs})
    start = time.perf_counter()
    dtrain = xgboost.DMatrix(encoded, label=y, nthread=n_jobs)
    xgboost.train(native, dtrain, num_boost_round=rounds)
    plain_seconds = time.perf_counter() - start
    return {
        "rows": len(y),
        "features": encoded.shape[1],
        "rounds": rounds,
        "params": params,
        "churnops_seconds": churnops_seconds,
        "xgboost_train_seconds": plain_seconds,
        "ratio": churnops_seconds / plain_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--throughput-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    results: dict = {"machine": {"cpus": __import__("os").cpu_count()}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = write(GeneratorConfig(rows=args.rows, seed=1), work / "train.csv")
        parquet = write(GeneratorConfig(rows=args.throughput_rows, seed=1), work / "train.parquet")
        log("bench: ingest + validate + encode throughput")
        results["ingest"] = {"csv": ingest_throughput(csv), "parquet": ingest_throughput(parquet)}

        with processes.start_mlflow(
            backend_uri=f"sqlite:///{work / 'mlflow.db'}",
            artifacts_dir=work / "art",
            log_path=work / "mlflow.log",
        ) as mlflow:
            log(f"bench: churnops train on {args.rows:,} rows (progress below)")
            start = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "churnops.cli",
                    "train",
                    "--data",
                    str(csv),
                    "--tracking-uri",
                    mlflow.url,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            wall = time.perf_counter() - start
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            if proc.returncode != 0:
                raise SystemExit(f"churnops train failed with {proc.returncode}")
            summary = json.loads(proc.stdout.strip().splitlines()[-1])
        results["train"] = {
            "rows": args.rows,
            "wall_seconds": wall,
            "peak_rss_gib": peak_kib / 2**20,
            "candidate": summary["candidate"],
            "metrics": summary["metrics"],
            "threshold": summary["threshold"],
        }

        log("bench: final XGBoost fit, churnops vs plain xgboost.train")
        frame, _ = load(csv)
        params = {"clf__max_depth": 4, "clf__min_child_weight": 5}
        results["xgboost_fit"] = xgboost_fit(
            frame, params, n_jobs=__import__("os").cpu_count() or 1
        )

    (RESULTS / "train.json").write_text(json.dumps(results, indent=2))
    t, x, i = results["train"], results["xgboost_fit"], results["ingest"]
    print(f"""
| measurement | value |
|---|---|
| churnops train, {t["rows"]:,} rows | {t["wall_seconds"] / 60:.1f} min wall, peak RSS {t["peak_rss_gib"]:.2f} GiB |
| winner / test ROC AUC / F1 | {t["candidate"]} / {t["metrics"]["roc_auc"]:.4f} / {t["metrics"]["f1"]:.4f} |
| XGBoost fit ({x["rows"]:,}×{x["features"]}, {x["rounds"]} rounds) | churnops {x["churnops_seconds"]:.1f}s vs xgboost.train {x["xgboost_train_seconds"]:.1f}s → ratio {x["ratio"]:.2f} |
| ingest+validate+encode CSV | {i["csv"]["rows_per_second"]:,.0f} rows/s |
| ingest+validate+encode Parquet | {i["parquet"]["rows_per_second"]:,.0f} rows/s |
""")
    print(json.dumps(results))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
