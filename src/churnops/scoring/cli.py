"""``churnops score``: flags → ``ScoreConfig`` → ``churnops.scoring.batch.score``."""

from __future__ import annotations

import argparse
import os
from dataclasses import fields
from typing import Any

from churnops.scoring.batch import ScoreConfig

_DEFAULTS = {f.name: f.default for f in fields(ScoreConfig)}


def register(subparsers: Any) -> None:
    """Add the ``score`` subcommand (called by ``churnops.cli``)."""
    p = subparsers.add_parser(
        "score",
        help="batch scoring of a whole table in bounded memory",
        description="Score a CSV or Parquet table (path, file://, http(s)://, s3://, dvc://) "
        "with a churn model; invalid rows go to a rejects file.",
    )
    p.add_argument(
        "--model-uri",
        default=os.environ.get("CHURNOPS_MODEL_URI", "models:/churn@champion"),
        help="models:/name@alias, models:/name/version, runs:/... or a model directory",
    )
    p.add_argument("--data", required=True, help="input table URI (CSV or Parquet by extension)")
    p.add_argument("--out", required=True, help="output URI (.parquet for Parquet, else CSV)")
    p.add_argument("--rejects", help="rejects CSV URI (default: <out>.rejects.csv)")
    p.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking/registry URI (env MLFLOW_TRACKING_URI)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "spark"],
        default=_DEFAULTS["engine"],
        help="local: this process, bounded memory; spark: a Spark session through "
        "mlflow.pyfunc.spark_udf (pip install 'churnops[spark]', Java 17+)",
    )
    p.add_argument(
        "--spark-master",
        default=_DEFAULTS["spark_master"],
        help="Spark master for --engine spark (local[2], spark://host:7077, "
        "k8s://https://host:443); default: env SPARK_MASTER, else spark.master of the "
        "Spark configuration, else local[*]",
    )
    p.add_argument(
        "--spark-conf",
        action="append",
        default=list(ScoreConfig().spark_conf),
        metavar="KEY=VALUE",
        help="a Spark setting for --engine spark (repeatable)",
    )
    p.add_argument(
        "--max-reject-rate",
        type=float,
        default=_DEFAULTS["max_reject_rate"],
        help="fail (exit 2) when a larger share of rows is rejected",
    )
    p.add_argument(
        "--batch-rows", type=int, default=_DEFAULTS["batch_rows"], help="Parquet rows per batch"
    )
    p.add_argument(
        "--block-bytes", type=int, default=_DEFAULTS["block_bytes"], help="CSV bytes per batch"
    )
    p.set_defaults(handler=_score)


def _score(args: argparse.Namespace) -> dict:
    from churnops.scoring.batch import score

    if args.tracking_uri:
        from churnops import tracking

        tracking.connect(args.tracking_uri)
    config = ScoreConfig(
        block_bytes=args.block_bytes,
        batch_rows=args.batch_rows,
        max_reject_rate=args.max_reject_rate,
        engine=args.engine,
        spark_master=args.spark_master,
        spark_conf=tuple(args.spark_conf),
    )
    bad = [kv for kv in config.spark_conf if "=" not in kv]
    if bad:
        from churnops.errors import ContractViolation

        raise ContractViolation(f"--spark-conf {bad[0]!r}: expected KEY=VALUE")
    return score(args.model_uri, args.data, args.out, rejects_uri=args.rejects, config=config)
