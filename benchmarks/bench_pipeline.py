"""make bench-pipeline: the KFP pipeline under kfp.local next to `churnops train`, same data, one run.

Reports wall times on 7k and 200k synthetic rows (medians of interleaved rounds), the
orchestration overhead as a ratio, per-task wall times from kfp.local's task log, and
what a fresh interpreter's imports cost (what each step forked from the warm one skips).
Results: benchmarks/results/pipeline.json and a table on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from churnops import processes
from churnops.data.generate import GeneratorConfig, write
from churnops.progress import log
from churnops.training.runner import run_local

RESULTS = Path(__file__).parent / "results"
# BENCH_PIPELINE_ROWS=7043 for a quick run; the figures in the notes use both sizes.
SIZES = tuple(int(n) for n in os.environ.get("BENCH_PIPELINE_ROWS", "7043,200000").split(","))
# Rounds per size (median reported): a 200,000-row round takes about 6 minutes here.
REPEATS = {7043: 3}


class TaskClock(logging.Filter):
    """Collects each task's wall time, from its first start to its last finish, from
    kfp.local's "Executing task" / "finished" records (the loop's train tasks share a
    name: theirs is the loop's wall time).

    A filter on the root logger, not a handler: kfp.local replaces the root handlers
    while it runs, but leaves the logger's filters alone.
    """

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    @property
    def seconds(self) -> dict[str, float]:
        return {name: end - self.started[name] for name, end in self.finished.items()}

    def filter(self, record: logging.LogRecord) -> bool:
        self._observe(record)
        return True

    def _observe(self, record: logging.LogRecord) -> None:
        message = re.sub(r"\x1b\[\d+m", "", record.getMessage())
        if match := re.match(r"Executing task '([\w-]+)'", message):
            self.started.setdefault(match.group(1), record.created)
        elif (match := re.match(r"Task '([\w-]+)' finished", message)) and match.group(
            1
        ) in self.started:
            self.finished[match.group(1)] = record.created


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


def _one_round(work: Path, data: Path, rows: int, i: int, tracking_uri: str) -> dict:
    """One `churnops train`, then one pipeline run, on the same data and MLflow server."""
    log(f"bench: churnops train on {rows:,} rows (round {i + 1})")
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
            tracking_uri,
            "--model-name",
            f"bench-train-{rows}-{i}",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    train_seconds = time.perf_counter() - start
    log(f"bench: kfp.local pipeline on {rows:,} rows (round {i + 1})")
    clock = TaskClock()
    logging.getLogger().addFilter(clock)
    start = time.perf_counter()
    run_local(
        data_uri=str(data),
        tracking_uri=tracking_uri,
        model_name=f"bench-pipe-{rows}-{i}",
        pipeline_root=work / f"kfp-{rows}-{i}",
    )
    pipeline_seconds = time.perf_counter() - start
    logging.getLogger().removeFilter(clock)
    log(f"bench: {rows:,} rows: train {train_seconds:.1f}s, pipeline {pipeline_seconds:.1f}s")
    return {
        "churnops_train_seconds": train_seconds,
        "pipeline_seconds": pipeline_seconds,
        "tasks": clock.seconds,
    }


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
                runs = []
                # Interleaved, median of REPEATS: on this 2-core machine two runs of one
                # command differ by up to 30 %.
                for i in range(REPEATS.get(rows, 1)):
                    runs.append(_one_round(work, data, rows, i, mlflow.url))
                train = statistics.median(r["churnops_train_seconds"] for r in runs)
                pipeline = statistics.median(r["pipeline_seconds"] for r in runs)
                results["sizes"][rows] = {
                    "churnops_train_seconds": train,
                    "pipeline_seconds": pipeline,
                    "overhead_ratio": pipeline / train,
                    "runs": runs,
                }
    (RESULTS / "pipeline.json").write_text(json.dumps(results, indent=2))
    print(
        "\n| rows | rounds | churnops train (median) | kfp.local pipeline (median) | ratio "
        "| each round: train / pipeline |"
    )
    print("|---:|---:|---:|---:|---:|---|")
    for rows, r in results["sizes"].items():
        rounds = ", ".join(
            f"{x['churnops_train_seconds']:.1f} / {x['pipeline_seconds']:.1f}s" for x in r["runs"]
        )
        print(
            f"| {rows:,} | {len(r['runs'])} | {r['churnops_train_seconds']:.1f}s | "
            f"{r['pipeline_seconds']:.1f}s | {r['overhead_ratio']:.2f}x | {rounds} |"
        )
    print(
        f"\nA fresh interpreter's imports, which each step forked from the warm one skips: "
        f"{results['task_startup_seconds']:.1f}s"
    )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
