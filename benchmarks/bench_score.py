"""make bench-score: `churnops score` vs the loop a user writes with MLflow's pyfunc.

For each size (default 1M and 10M generated rows, CSV laid out like the Telco export):
  1. `churnops score --model-uri <dir> --data <csv> --out <parquet>` (the real CLI);
  2. the plain loop: `pd.read_csv(chunksize=...)` + `mlflow.pyfunc.load_model(<dir>).predict`
     + `to_csv` of the answers, in bounded chunks like the CLI (a whole-file read_csv would
     not fit the larger sizes);
each in its own process, timed end to end (model load included) with its peak RSS.
On the size given by --spark-rows (default 1M) also `churnops score --engine spark` in
local mode (`--spark-master local[2]`, output a Parquet dataset directory). Results:
benchmarks/results/score.json and a summary on stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from churnops.progress import log

RESULTS = Path(__file__).parent / "results"

PLAIN_LOOP = """
import sys, mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
with open(sys.argv[3], "w") as out:
    for i, chunk in enumerate(pd.read_csv(sys.argv[2], chunksize=100_000)):
        model.predict(chunk).assign(customerID=chunk["customerID"]).to_csv(
            out, header=i == 0, index=False
        )
"""


def build_model(path: Path, candidate: str) -> Path:
    """A churn model (no hyper-parameter search) saved as churnops logs it."""
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    from churnops.data.generate import GeneratorConfig, generate
    from churnops.data.validate import validate_frame
    from churnops.model import pyfunc
    from churnops.model.candidates import spec
    from churnops.model.serialize import TRUSTED_TYPES
    from churnops.model.train import xy

    typed, _ = validate_frame(generate(GeneratorConfig(rows=20_000, seed=1)))
    x, y = xy(typed)
    fitted = spec(candidate).build(1, 1, len(y)).fit(x, y)
    model = FixedThresholdClassifier(
        FrozenEstimator(fitted), threshold=0.3, response_method="predict_proba"
    ).fit(x, y)
    pyfunc.save_model(
        model,
        str(path),
        trusted_types=list(TRUSTED_TYPES),
        input_example=pyfunc.example_records(x.head(5)),
        metadata={"candidate": candidate},
    )
    return path


def measured(argv: list[str]) -> dict:
    """Run ``argv`` in a fresh parent that waits for it alone: seconds and peak RSS."""
    probe = (
        "import json, resource, subprocess, sys, time;"
        "t = time.perf_counter();"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "print(json.dumps({'rc': p.returncode, 'seconds': time.perf_counter() - t,"
        " 'stdout': p.stdout[-4000:], 'stderr': p.stderr[-4000:],"
        " 'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))"
    )
    proc = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True)
    report = json.loads(proc.stdout)
    if report["rc"] != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{report['stderr']}")
    return report


def churnops_score(model: Path, data: Path, out: Path, engine: str = "local") -> dict:
    argv = [sys.executable, "-m", "churnops.cli", "score", "--model-uri", str(model)]
    argv += ["--data", str(data), "--out", str(out), "--engine", engine]
    if engine == "spark":
        argv += ["--spark-master", "local[2]"]
    report = measured(argv)
    result = json.loads(report["stdout"].strip().splitlines()[-1])
    return {
        "seconds": round(report["seconds"], 2),
        "peak_rss_mb": round(report["peak_rss_mb"], 1),
        "scoring_seconds": result["seconds"],
        "scorer": result.get("scorer"),
    }


def plain_loop(model: Path, data: Path, out: Path) -> dict:
    report = measured([sys.executable, "-c", PLAIN_LOOP, str(model), str(data), str(out)])
    return {"seconds": round(report["seconds"], 2), "peak_rss_mb": round(report["peak_rss_mb"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--candidate", default="logreg", help="model family (logreg, xgboost, ...)")
    parser.add_argument("--out", type=Path, default=RESULTS / "score.json")
    parser.add_argument(
        "--spark-rows", type=int, default=1_000_000, help="size the Spark engine runs on (0: none)"
    )
    parser.add_argument(
        "--only-spark", action="store_true", help="measure the Spark engine only (--spark-rows)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.only_spark:
        sizes = [args.spark_rows]

    from churnops.data.generate import GeneratorConfig, write

    results: dict = {
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "model": args.candidate,
        "sizes": {},
        "spark": "not measured",
    }
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        work = Path(tmp)
        model = build_model(work / "model", args.candidate)
        for rows in sizes:
            data = work / f"customers-{rows}.csv"
            log(f"bench: generating {rows:,} rows")
            write(GeneratorConfig(rows=rows, seed=7), data, show_progress=False)
            if rows == args.spark_rows:
                log(f"bench: churnops score --engine spark (local[2]) on {rows:,} rows")
                spark = churnops_score(model, data, work / "spark-scores.parquet", "spark")
                results["spark"] = {
                    "rows": rows,
                    "master": "local[2]",
                    **spark,
                    "rows_per_second": round(rows / spark["seconds"]),
                }
                log(f"bench: spark engine: {json.dumps(results['spark'])}")
            if args.only_spark:
                continue
            log(f"bench: churnops score on {rows:,} rows")
            ours = churnops_score(model, data, work / "scores.parquet")
            log(f"bench: read_csv + pyfunc.predict loop on {rows:,} rows")
            plain = plain_loop(model, data, work / "plain.csv")
            entry = {
                "churnops_score": {**ours, "rows_per_second": round(rows / ours["seconds"])},
                "pyfunc_loop": {**plain, "rows_per_second": round(rows / plain["seconds"])},
            }
            entry["speedup"] = round(plain["seconds"] / ours["seconds"], 2)
            results["sizes"][str(rows)] = entry
            log(f"bench: {rows:,} rows: {json.dumps(entry)}")
            data.unlink()
        rss = [e["churnops_score"]["peak_rss_mb"] for e in results["sizes"].values()]
        if rss:
            results["churnops_peak_rss_ratio_largest_to_smallest"] = round(rss[-1] / rss[0], 3)
        results["target"] = {"speedup": 5.0, "met": bool(results["sizes"]) and all(
            e["speedup"] >= 5.0 for e in results["sizes"].values()
        )}  # fmt: skip
    results["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if args.only_spark and args.out.is_file():  # keep the other engines' figures
        results = {**json.loads(args.out.read_text()), "spark": results["spark"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"bench: results in {args.out}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
