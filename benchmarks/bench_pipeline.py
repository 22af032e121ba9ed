"""make bench-pipeline: the KFP pipeline under kfp.local next to `churnops train`, same data, one run.

Reports wall times on 7k and 200k synthetic rows, the orchestration overhead as a ratio,
and where it goes: per-task wall times from kfp.local's task log, and the cost of one
task's process start + imports (paid once per task).
Results: benchmarks/results/pipeline.json and a table on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from churnops import processes
from churnops.data.generate import GeneratorConfig, write
from churnops.progress import log
from churnops.training.runner import run_local

RESULTS = Path(__file__).parent / "results"
# BENCH_PIPELINE_ROWS=7043 for a quick run; the figures in the notes use both sizes.
SIZES = tuple(int(n) for n in os.environ.get("BENCH_PIPELINE_ROWS", "7043,200000").split(","))


class TaskClock(logging.Filter):
    """Collects per-task wall time from kfp.local's "Executing task" / "finished" records.

    A filter on the root logger, not a handler: kfp.local replaces the root handlers
    while it runs, but leaves the logger's filters alone.
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = defaultdict(float)

    def filter(self, record: logging.LogRecord) -> bool:
        self._observe(record)
        return True

    def _observe(self, record: logging.LogRecord) -> None:
        message = re.sub(r"\x1b\[\d+m", "", record.getMessage())
        if match := re.match(r"Executing task '([\w-]+)'", message):
            self.started[match.group(1)] = record.created
        elif (match := re.match(r"Task '([\w-]+)' finished", message)) and match.group(
            1
        ) in self.started:
            self.seconds[match.group(1)] += record.created - self.started.pop(match.group(1))


def import_cost() -> float:
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import kfp, churnops.training.components, mlflow, sklearn, xgboost",
        ],
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    results: dict = {"sizes": {}, "task_startup_seconds": import_cost()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with processes.start_mlflow(
            backend_uri=f"sqlite:///{work / 'mlflow.db'}",
            artifacts_dir=work / "art",
            log_path=work / "mlflow.log",
        ) as mlflow:
            for rows in SIZES:
                data = write(
                    GeneratorConfig(rows=rows, seed=5),
                    work / f"churn-{rows}.csv",
                    show_progress=False,
                )
                log(f"bench: churnops train on {rows:,} rows")
                start = time.perf_counter()
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "churnops.cli",
                        "train",
                        "--data",
                        str(data),
                        "--tracking-uri",
                        mlflow.url,
                        "--model-name",
                        f"bench-train-{rows}",
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
                train_seconds = time.perf_counter() - start
                log(f"bench: kfp.local pipeline on {rows:,} rows")
                clock = TaskClock()
                logging.getLogger().addFilter(clock)
                start = time.perf_counter()
                run_local(
                    data_uri=str(data),
                    tracking_uri=mlflow.url,
                    model_name=f"bench-pipe-{rows}",
                    pipeline_root=work / f"kfp-{rows}",
                )
                pipeline_seconds = time.perf_counter() - start
                logging.getLogger().removeFilter(clock)
                results["sizes"][rows] = {
                    "churnops_train_seconds": train_seconds,
                    "pipeline_seconds": pipeline_seconds,
                    "overhead_ratio": pipeline_seconds / train_seconds,
                    "tasks": dict(clock.seconds),
                    "task_count": len(clock.seconds),
                }
    (RESULTS / "pipeline.json").write_text(json.dumps(results, indent=2))
    print(
        "\n| rows | churnops train | kfp.local pipeline | ratio | tasks | process start + imports per task |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for rows, r in results["sizes"].items():
        print(
            f"| {rows:,} | {r['churnops_train_seconds']:.1f}s | {r['pipeline_seconds']:.1f}s | "
            f"{r['overhead_ratio']:.2f}x | {r['task_count']} | {results['task_startup_seconds']:.1f}s |"
        )
    for rows, r in results["sizes"].items():
        top = sorted(r["tasks"].items(), key=lambda kv: -kv[1])
        print(f"\n{rows:,} rows, task wall times: " + ", ".join(f"{k} {v:.1f}s" for k, v in top))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
